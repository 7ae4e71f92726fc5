"""The pure parts under the dashboard: history, decimation, the games table, figure updates."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from kmm_interactive.domain import Side
from kmm_interactive.engine.history import History, decimate
from kmm_interactive.engine.views import GameView, SideView
from kmm_interactive.ledger import PnL
from kmm_interactive.ui.figures import (
    Drawn,
    game_figure,
    inventory_figure,
    pnl_figure,
    update_game,
    update_inventory,
    update_pnl,
)
from kmm_interactive.ui.table import games_table_html

T0 = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


def _side(label: str, ticker: str, side: Side, price: str | None, reason: str) -> SideView:
    return SideView(
        label=label,
        ticker=ticker,
        side=side,
        price=None if price is None else Decimal(price),
        size=0 if price is None else 25,
        competitor=Decimal("0.44"),
        resting=None if price is None else Decimal(price),
        resting_size=Decimal(25) if price else Decimal(0),
        reason=reason,
    )


def _view(event: str = "KXNBAGAME-26DEC04BOSLAL", q: int = 10, override: bool = False) -> GameView:
    a, b = f"{event}-BOS", f"{event}-LAL"
    return GameView(
        event_ticker=event,
        sport="nba",
        teams=("Boston", "Los Angeles L"),
        tickers=(a, b),
        start_time=T0,
        seconds_to_start=3725.0,
        state="ACTIVE",
        halts=(),
        theo_a=0.61 if override else 0.45,
        feed_theo_a=0.45,
        theo_source="override" if override else "consensus",
        theo_age=12.0,
        override_until=T0 + timedelta(minutes=30) if override else None,
        q=Decimal(q),
        cap=100,
        sides=(
            _side("bid A", a, Side.BID, "0.43", "own price 0.43"),
            _side("ask A", a, Side.ASK, "0.47", "outbid <script>"),
            _side("bid B", b, Side.BID, "0.53", "own price 0.53"),
            _side("ask B", b, Side.ASK, None, "at cap (100, q = 10)"),
        ),
        pnl=Decimal("1.2345"),
        resting_orders=3,
    )


def test_decimate_keeps_the_newest_and_at_most_points():
    assert decimate(10, 20) == slice(None)
    for count in (601, 1000, 7200):
        kept = list(range(count))[decimate(count, 600)]
        assert len(kept) <= 600
        assert kept[-1] == count - 1


def test_history_is_bounded_and_forgets_gone_games():
    h = History(maxlen=50)
    pnl = PnL(Decimal("1"), Decimal("0.5"), Decimal("0.1"), Decimal("1.5"))
    for i in range(120):
        h.record(float(i), pnl, [_view()])
    series = h.pnl(points=20)
    assert len(series.t) <= 20
    assert series.t[-1] == 119.0
    assert series.values["total"][-1] == 1.5
    game = h.game("KXNBAGAME-26DEC04BOSLAL")
    assert game.values["theo"][-1] == pytest.approx(0.45)
    assert game.values["bid"][-1] == pytest.approx(0.43)
    assert game.values["best_ask"][-1] == pytest.approx(0.44)
    assert len(h.game("KXNBAGAME-26DEC04BOSLAL", points=10_000).t) == 50
    h.forget([])
    assert len(h.game("KXNBAGAME-26DEC04BOSLAL").t) == 0
    with pytest.raises(ValueError, match="at least 2"):
        History(maxlen=1)


def test_history_marks_a_missing_quote_as_a_gap():
    h = History()
    view = _view()
    idle = _side("bid A", view.tickers[0], Side.BID, None, "reducing only")
    no_quotes = GameView(**{**view.__dict__, "sides": (idle, *view.sides[1:])})
    h.record(0.0, PnL(Decimal(0), Decimal(0), Decimal(0), Decimal(0)), [no_quotes])
    row = h.game(view.event_ticker).values
    assert math.isnan(row["bid"][-1])
    assert row["ask"][-1] == pytest.approx(0.47)


def test_the_games_table_shows_quotes_competitors_reasons_and_the_override():
    plain = games_table_html([_view()], selected="KXNBAGAME-26DEC04BOSLAL")
    assert "Boston @ Los Angeles L" in plain
    assert "43¢×25" in plain
    assert "best 44¢" in plain
    assert "at cap (100, q = 10)" in plain
    assert "<script>" not in plain  # reasons are escaped
    assert "1h02" in plain
    assert 'class="sel"' in plain
    assert "OVERRIDE" not in plain
    marked = games_table_html([_view(override=True)])
    assert "OVERRIDE" in marked
    assert "feed 0.450" in marked
    assert games_table_html([]) == "<i>no games tracked yet</i>"


def test_figure_updates_send_numpy_once_and_skip_when_nothing_changed():
    inventory, drawn = inventory_figure(), Drawn()
    views = [_view(), _view("KXNBAGAME-26DEC04NYKMIA", q=-100)]
    assert update_inventory(inventory, drawn, views) is True
    assert isinstance(inventory.data[0].y, np.ndarray)
    assert list(inventory.data[0].y) == [10.0, -100.0]
    assert list(inventory.data[2].y) == [-100.0, -100.0]
    assert list(inventory.data[0].marker.color) == ["#0969da", "#cf222e"]  # at the cap: red
    assert update_inventory(inventory, drawn, views) is False
    h = History()
    h.record(1.0, PnL(Decimal(1), Decimal(0), Decimal(0), Decimal(1)), views)
    pnl, pnl_drawn = pnl_figure(), Drawn()
    assert update_pnl(pnl, pnl_drawn, h.pnl()) is True
    assert update_pnl(pnl, pnl_drawn, h.pnl()) is False
    h.record(2.0, PnL(Decimal(2), Decimal(0), Decimal(0), Decimal(2)), views)
    assert update_pnl(pnl, pnl_drawn, h.pnl()) is True
    assert list(pnl.data[2].y) == [1.0, 2.0]
    game, game_drawn = game_figure(), Drawn()
    assert update_game(game, game_drawn, "Boston @ LA", h.game(views[0].event_ticker)) is True
    assert game.layout.title.text == "Boston @ LA"
    assert update_game(game, game_drawn, "Boston @ LA", h.game(views[0].event_ticker)) is False
