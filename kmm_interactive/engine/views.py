"""What the trader sees, as plain rows read from a running :class:`Engine` (no I/O).

One place builds every per-game and per-side view, so that the session's DataFrames, the
dashboard's table and its plots agree on what a "quote", a "competitor" or a "theo age"
is. Prices stay ``Decimal`` (YES dollars, as on the wire); ages are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from kmm_interactive.domain import GameSide, Side
from kmm_interactive.engine.theo import TheoSource
from kmm_interactive.pricing.intensity import IntensityEstimate

if TYPE_CHECKING:
    from kmm_interactive.engine.game import GameRuntime
    from kmm_interactive.engine.runtime import Engine


@dataclass(frozen=True)
class SideView:
    """One side of one inventory: what we want, what rests, who is best besides us."""

    label: str  # "bid A", "ask B", ...
    ticker: str
    side: Side
    price: Decimal | None  # what decide wants (None: not quoting)
    size: int
    competitor: Decimal | None  # the others' best price on this side of the YES book
    resting: Decimal | None  # our live order's price on this side, if any
    resting_size: Decimal
    reason: str


@dataclass(frozen=True)
class GameView:
    """One game, for the games table and the selected-game plot."""

    event_ticker: str
    sport: str
    teams: tuple[str, str]
    tickers: tuple[str, ...]  # team A's market first
    start_time: datetime
    seconds_to_start: float
    state: str
    halts: tuple[str, ...]
    theo_a: float | None  # team A's YES probability in force
    feed_theo_a: float | None  # the odds feed's, shown beside an override
    theo_source: str | None
    theo_age: float | None
    override_until: datetime | None
    q: Decimal  # the most skewed inventory's q (soccer has three)
    cap: int
    sides: tuple[SideView, ...]
    pnl: Decimal
    resting_orders: int

    @property
    def title(self) -> str:
        return f"{self.teams[0]} @ {self.teams[1]}"


def _label(game_side: GameSide, ticker: str, g: GameRuntime) -> str:
    if g.game.tie is None:
        return str(game_side)
    return f"{game_side.side.value} {ticker.rsplit('-', 1)[-1]}"


def game_view(engine: Engine, g: GameRuntime, now: datetime) -> GameView:
    """The view of one game at ``now``."""
    event = g.event_ticker
    team_a = g.game.market_a.ticker
    theo = engine.theo.theo(event)
    feed = engine.theo.feed_theo(event)
    override = engine.theo.override_of(event)
    live: dict[tuple[str, Side], tuple[Decimal, Decimal]] = {}
    for t in engine.orders.tracked(event):
        o = t.order
        live[(o.ticker, o.side)] = (o.price, o.remaining)
    sides: list[SideView] = []
    q, cap = Decimal(0), g.profile.cap
    decision = g.decision
    if decision is not None:
        worst = max(decision.units, key=lambda u: abs(u.q) / u.cap)
        q, cap = worst.q, worst.cap
        for unit in decision.units:
            for d in unit.quotes:
                market = g.market(d.ticker)
                rest = live.get((d.ticker, d.side))
                sides.append(
                    SideView(
                        label=_label(d.game_side, d.ticker, g),
                        ticker=d.ticker,
                        side=d.side,
                        price=d.price if d.quoting else None,
                        size=d.size if d.quoting else 0,
                        competitor=(
                            market.grid.price(d.competitor) if d.competitor is not None else None
                        ),
                        resting=rest[0] if rest else None,
                        resting_size=rest[1] if rest else Decimal(0),
                        reason=d.reason,
                    )
                )
    book_halts = engine.halts.reasons(event)
    return GameView(
        event_ticker=event,
        sport=g.sport,
        teams=g.game.teams,
        tickers=g.tickers,
        start_time=g.game.start_time,
        seconds_to_start=g.game.seconds_to_start(now),
        state=str(engine.halts.state(event)) if decision is None else str(decision.state),
        # The decision's halts include those that follow from the clock and the theo (a
        # start within the buffer, a stale theo), which the halt book does not hold.
        halts=tuple(sorted(r.value for r in (decision.halts if decision else book_halts))),
        theo_a=theo.probs.get(team_a) if theo else None,
        feed_theo_a=feed.probs.get(team_a) if feed else None,
        theo_source=str(theo.source) if theo else None,
        theo_age=(now - theo.as_of).total_seconds() if theo else None,
        override_until=override.expires_at
        if override and theo and theo.source is TheoSource.OVERRIDE
        else None,
        q=q,
        cap=cap,
        sides=tuple(sides),
        pnl=engine.pnl(g.tickers, g).total,
        resting_orders=len(live),
    )


@dataclass(frozen=True)
class ParamView:
    """A game's parameters in force, and per market the fitted intensity beside A and k."""

    event_ticker: str
    gamma: float
    sigma: float
    cap: int
    quote_size: int
    A: dict[str, float]
    k: dict[str, float]
    estimates: dict[str, IntensityEstimate]


def param_view(engine: Engine, g: GameRuntime) -> ParamView:
    return ParamView(
        event_ticker=g.event_ticker,
        gamma=g.profile.gamma,
        sigma=g.profile.sigma,
        cap=g.profile.cap,
        quote_size=g.profile.quote_size,
        A={t: p.A for t, p in g.intensity.items()},
        k={t: p.k for t, p in g.intensity.items()},
        estimates=engine.intensity_estimates(g),
    )
