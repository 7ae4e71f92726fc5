"""``decide_tob``, the naive top-of-book baseline: one tick better than the best other quote,
stopped at the edge limit, never crossing, and bound by the same halts, trading states and
worst-case cap as ``decide``."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from strategykit import CENT, DEEP, EVENT, GAME, MAKER, NOW, PARAMS, A, B, D

from kmm_interactive.domain import Game, GameSide, Market, PriceGrid, Side
from kmm_interactive.pricing.fees import expected_fee
from kmm_interactive.pricing.quote_table import BookInputs, QuoteModel, QuoteProblem, QuoteTable
from kmm_interactive.strategy import risk
from kmm_interactive.strategy.halts import HaltReason, TradingState
from kmm_interactive.strategy.naive import TobMode, decide_tob
from kmm_interactive.strategy.quoter import (
    BookView,
    Decision,
    DesiredQuote,
    GameState,
    Resting,
    UnitState,
    decide,
)

# At theo A = 0.48 (B = 0.52), one cent of edge and the maker fee: the edge limits.
LIMIT = {
    GameSide.BID_A: "0.46",
    GameSide.ASK_A: "0.50",
    GameSide.BID_B: "0.50",
    GameSide.ASK_B: "0.54",
}


def cents(price: str) -> int:
    return CENT.tick(D(price))


def book(bid: str | None = None, ask: str | None = None) -> BookView:
    return BookView(cents(bid) if bid else None, cents(ask) if ask else None, depth=D(10_000))


def state(
    *,
    theo: float | None = 0.48,
    table: QuoteTable | None = None,
    q: str = "0",
    books: tuple[BookView, BookView] = (DEEP, DEEP),
    halts: frozenset[HaltReason] = frozenset(),
    theo_as_of: datetime | None = NOW,
) -> GameState:
    unit = UnitState((A, B), books, table, D(q), D("0.45") if q != "0" else None, theo=theo)
    return GameState(GAME, (unit,), theo_as_of, halts)


def sides(decision: Decision) -> dict[GameSide, DesiredQuote]:
    return {d.game_side: d for u in decision.units for d in u.quotes}


def prices(decision: Decision) -> dict[GameSide, str]:
    return {s: str(d.price) for s, d in sides(decision).items() if d.quoting}


def test_outbids_the_best_other_quote_by_one_tick_without_a_quote_table() -> None:
    books = (book("0.42", "0.55"), book("0.45", "0.58"))
    decision = decide_tob(state(books=books), PARAMS, NOW)
    assert decision.state is TradingState.ACTIVE
    assert prices(decision) == {
        GameSide.BID_A: "0.43",
        GameSide.ASK_A: "0.54",
        GameSide.BID_B: "0.46",
        GameSide.ASK_B: "0.57",
    }
    bid_a = sides(decision)[GameSide.BID_A]
    assert bid_a.reason == "outbid 0.43 (competitor 0.42, edge limit 0.46)"
    assert bid_a.tick == cents("0.43")
    assert bid_a.ceiling == cents("0.46")
    assert bid_a.competitor == cents("0.42")
    assert bid_a.size == 25
    assert bid_a.backed_off_since is None
    # The same Decision shape as decide: keyed by (ticker, YES side) for the order manager.
    assert decision.quotes[(B.ticker, Side.ASK)].game_side is GameSide.ASK_B
    assert decision.quotes[(B.ticker, Side.ASK)].price == D("0.57")


def test_stops_at_the_edge_limit_and_quotes_it_on_an_empty_side() -> None:
    # A competitor beyond our limit, one at it, and one a tick inside it.
    books = (book("0.49", "0.50"), book("0.49", None))
    decision = sides(decide_tob(state(books=books), PARAMS, NOW))
    assert decision[GameSide.BID_A].price == D("0.46")  # competitor 0.49: capped at 0.46
    assert decision[GameSide.BID_A].reason.startswith(f"{TobMode.AT_LIMIT} 0.46")
    assert decision[GameSide.ASK_A].price == D("0.50")  # competitor at the limit: join
    assert decision[GameSide.BID_B].price == D("0.50")  # competitor 0.49: 0.50 is the limit
    assert decision[GameSide.BID_B].reason.startswith("outbid 0.5 ")  # exact Decimal
    assert decision[GameSide.ASK_B].price == D("0.54")  # nobody asks B: quote the limit
    assert decision[GameSide.ASK_B].reason == "at edge limit 0.54 (no competitor, edge limit 0.54)"
    # Each limit is the shared one, not a copy: theo − edge − maker fee.
    for side, quote in decision.items():
        theo = D("0.48") if side.leg.sign > 0 else D("0.52")
        assert quote.ceiling == risk.edge_limit(side.side, theo, D("0.01"), CENT, MAKER)
        assert quote.price is not None
        fee = expected_fee(quote.price, maker=True, fees=MAKER)
        edge = theo - quote.price - fee if side.side is Side.BID else quote.price - fee - theo
        assert edge >= PARAMS.min_edge
        assert quote.price == D(LIMIT[side])


def test_never_crosses_the_opposite_best() -> None:
    # Others bid A at 0.44 and ask it at 0.45: our bid would be 0.45, which would take.
    books = (book("0.44", "0.45"), book(None, "0.47"))
    decision = sides(decide_tob(state(books=books), PARAMS, NOW))
    assert decision[GameSide.BID_A].price == D("0.44")
    assert decision[GameSide.BID_A].reason.startswith(f"{TobMode.INSIDE} 0.44")
    assert decision[GameSide.ASK_A].price == D("0.50")  # the ask stays at its own limit
    # B: nobody bids, so the bid would go to its 0.50 limit, through the 0.47 ask.
    assert decision[GameSide.BID_B].price == D("0.46")
    # An opposite at the grid's edge leaves no room at all.
    edge = (book(None, "0.01"), DEEP)
    bid_a = sides(decide_tob(state(books=edge), PARAMS, NOW))[GameSide.BID_A]
    assert (bid_a.quoting, bid_a.reason) == (False, str(TobMode.NO_ROOM))


def test_one_tick_is_a_tick_of_the_markets_grid() -> None:
    tapered = PriceGrid.from_price_ranges(
        [
            {"start": "0", "end": "0.1", "step": "0.001"},
            {"start": "0.1", "end": "0.9", "step": "0.01"},
            {"start": "0.9", "end": "1", "step": "0.001"},
        ]
    )
    longshot = Market(f"{EVENT}-X", EVENT, "Longshot", tapered, MAKER)
    view = BookView(tapered.tick(D("0.030")), tapered.tick(D("0.2")), D(10_000))
    unit = UnitState((longshot,), (view,), None, theo=0.06)
    decision = decide_tob(GameState(GAME, (unit,), NOW), PARAMS, NOW)
    assert prices(decision) == {GameSide.BID_A: "0.031", GameSide.ASK_A: "0.19"}


def test_the_tables_theo_is_used_when_no_newer_theo_is_given() -> None:
    problem = QuoteProblem(
        book_a=BookInputs(CENT, 0.58, 0.05, 0.5, MAKER),
        book_b=BookInputs(CENT, 0.42, 0.05, 0.5, MAKER),
        gamma=0.02,
        q_max=10,
    )
    table = QuoteTable(
        problem, QuoteModel.HJB, np.array([0.0, 1e9]), np.zeros((2, 21, 4), dtype=np.int32)
    )
    decision = decide_tob(state(theo=None, table=table), PARAMS, NOW)
    assert prices(decision)[GameSide.BID_A] == "0.56"  # 0.58 − edge − fee; the table's ticks unused
    nothing = decide_tob(state(theo=None), PARAMS, NOW)
    assert prices(nothing) == {}
    assert {d.reason for d in sides(nothing).values()} == {"no theo"}


def test_reducing_quotes_only_the_sides_that_shrink_the_exposure() -> None:
    recheck = frozenset({HaltReason.ODDS_RECHECK})
    long_a = decide_tob(state(q="30", halts=recheck), PARAMS, NOW)
    assert long_a.state is TradingState.REDUCING
    assert set(prices(long_a)) == {GameSide.ASK_A, GameSide.BID_B}
    assert sides(long_a)[GameSide.BID_A].reason == "reducing only"
    short_a = decide_tob(state(q="-30", halts=recheck), PARAMS, NOW)
    assert set(prices(short_a)) == {GameSide.BID_A, GameSide.ASK_B}
    assert prices(decide_tob(state(halts=recheck), PARAMS, NOW)) == {}  # flat: nothing reduces


def test_halted_quotes_nothing_and_says_why() -> None:
    halted = decide_tob(state(halts=frozenset({HaltReason.WS_DOWN})), PARAMS, NOW)
    assert halted.state is TradingState.HALTED
    assert prices(halted) == {}
    assert {d.reason for d in sides(halted).values()} == {"halted: ws down"}
    late = NOW + timedelta(hours=2) - timedelta(seconds=299)  # inside the start buffer
    started = decide_tob(state(), PARAMS, late)
    assert HaltReason.GAME_STARTED in started.halts
    assert prices(started) == {}
    stale = decide_tob(state(theo_as_of=NOW - timedelta(seconds=2701)), PARAMS, NOW)
    assert stale.halts == {HaltReason.STALE_THEO}
    assert prices(stale) == {}


def test_sizes_shrink_near_the_cap_like_decide() -> None:
    near = sides(decide_tob(state(q="90"), PARAMS, NOW))
    assert near[GameSide.BID_A].size + near[GameSide.ASK_B].size == 10  # cap − q
    assert near[GameSide.ASK_A].size == near[GameSide.BID_B].size == 25
    full = sides(decide_tob(state(q="100"), PARAMS, NOW))
    assert not full[GameSide.BID_A].quoting
    assert full[GameSide.BID_A].reason == "at cap (100, q = 100)"
    thin = (BookView(depth=D(60)), BookView(depth=D(20)))  # 80 × 0.5 = a cap of 40
    params = dataclasses.replace(PARAMS, liquidity_factor=0.5)
    decision = decide_tob(state(q="30", books=thin), params, NOW)
    assert decision.units[0].cap == 40
    quotes = sides(decision)
    assert quotes[GameSide.BID_A].size + quotes[GameSide.ASK_B].size == 10


def test_no_skew_no_hysteresis_no_back_off() -> None:
    books = (book("0.42", "0.55"), DEEP)
    flat = prices(decide_tob(state(books=books), PARAMS, NOW))
    long_a = prices(decide_tob(state(q="60", books=books), PARAMS, NOW))
    assert flat[GameSide.BID_A] == long_a[GameSide.BID_A] == "0.43"  # no inventory skew
    # A just-moved resting order and a back-off memory change nothing.
    unit = UnitState(
        (A, B),
        books,
        None,
        resting={GameSide.BID_A: Resting(cents("0.40"), D(25), NOW)},
        backed_off={GameSide.BID_A: NOW},
        theo=0.48,
        widen={GameSide.BID_A: 3},
    )
    decision = decide_tob(GameState(GAME, (unit,), NOW), PARAMS, NOW)
    assert prices(decision)[GameSide.BID_A] == "0.43"


def test_a_three_way_game_quotes_each_market_on_its_own() -> None:
    tie = Market(f"{EVENT}-TIE", EVENT, "Tie", CENT, MAKER)
    game = Game(EVENT, "epl", NOW + timedelta(hours=2), A, B, tie)
    units = tuple(
        UnitState((m,), (DEEP,), None, theo=t) for m, t in ((A, 0.40), (B, 0.34), (tie, 0.26))
    )
    decision = decide_tob(GameState(game, units, NOW), PARAMS, NOW)
    assert set(decision.quotes) == {(m.ticker, s) for m in game.markets for s in Side}
    assert decision.quotes[(tie.ticker, Side.BID)].price == D("0.24")


@given(
    q=st.decimals(min_value=D(-120), max_value=D(120), places=2),
    theo=st.floats(min_value=0.03, max_value=0.97),
    size=st.integers(min_value=1, max_value=50),
    depth=st.integers(min_value=0, max_value=500),
    ticks=st.lists(st.one_of(st.none(), st.integers(0, 98)), min_size=4, max_size=4),
    halts=st.sets(st.sampled_from([HaltReason.ODDS_RECHECK, HaltReason.STALE_BOOK])),
)
def test_never_crosses_never_passes_the_limit_or_the_cap(
    q: Decimal,
    theo: float,
    size: int,
    depth: int,
    ticks: list[int | None],
    halts: set[HaltReason],
) -> None:
    books = (
        BookView(ticks[0], ticks[1], D(depth)),
        BookView(ticks[2], ticks[3], D(depth)),
    )
    params = dataclasses.replace(PARAMS, quote_size=size, liquidity_factor=0.5)
    unit = UnitState((A, B), books, None, q, D("0.5"), theo=theo)
    decision = decide_tob(GameState(GAME, (unit,), NOW, frozenset(halts)), params, NOW)
    (out,) = decision.units
    for d in out.quotes:
        if not d.quoting:
            continue
        assert d.tick is not None
        assert d.ceiling is not None
        view = books[0 if d.game_side.leg.sign > 0 else 1]
        if d.side is Side.BID:
            assert d.tick <= d.ceiling
            assert view.best_ask is None or d.tick < view.best_ask
            assert view.best_bid is None or d.tick <= view.best_bid + 1
        else:
            assert d.tick >= d.ceiling
            assert view.best_bid is None or d.tick > view.best_bid
            assert view.best_ask is None or d.tick >= view.best_ask - 1
    up = sum(d.size for d in out.quotes if d.quoting and d.game_side.q_sign > 0)
    down = sum(d.size for d in out.quotes if d.quoting and d.game_side.q_sign < 0)
    assert up == 0 or q + up <= out.cap
    assert down == 0 or q - down >= -out.cap
    assert all((d.size > 0) == (d.tick is not None) for d in out.quotes)
    if decision.state is TradingState.HALTED:
        assert up == down == 0
    if decision.state is TradingState.REDUCING:
        assert all(risk.reduces(d.game_side, q) for d in out.quotes if d.quoting)


def test_decide_and_decide_tob_agree_on_everything_but_the_prices() -> None:
    problem = QuoteProblem(
        book_a=BookInputs(CENT, 0.48, 0.05, 0.5, MAKER),
        book_b=BookInputs(CENT, 0.52, 0.05, 0.5, MAKER),
        gamma=0.02,
        q_max=100,
    )
    row = [cents("0.40"), cents("0.56"), cents("0.44"), cents("0.60")]
    table = QuoteTable(
        problem,
        QuoteModel.HJB,
        np.array([0.0, 1e9]),
        np.tile(np.array(row, dtype=np.int32), (2, 201, 1)),
    )
    s = state(table=table, q="95")
    model, tob = decide(s, PARAMS, NOW), decide_tob(s, PARAMS, NOW)
    assert (model.state, model.halts) == (tob.state, tob.halts)
    assert [(u.tickers, u.q, u.cap, u.over_exposed) for u in model.units] == [
        (u.tickers, u.q, u.cap, u.over_exposed) for u in tob.units
    ]
    assert {k: v.size for k, v in model.quotes.items()} == {
        k: v.size for k, v in tob.quotes.items()
    }
