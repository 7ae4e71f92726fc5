"""``decide``: the whole pipeline on one game — quote table, limits, competition (bid wars on
scripted books), trading states, and the cap under simultaneous fills."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategykit import CENT, DEEP, EVENT, GAME, MAKER, NOW, PARAMS, A, B, D

from kmm_interactive.domain import Game, GameSide, Market, Side
from kmm_interactive.pricing.fees import expected_fee
from kmm_interactive.pricing.hjb import solve_quote_table
from kmm_interactive.pricing.quote_table import (
    NO_QUOTE,
    BookInputs,
    QuoteModel,
    QuoteProblem,
    QuoteTable,
)
from kmm_interactive.strategy.competition import Mode
from kmm_interactive.strategy.halts import HaltReason, TradingState
from kmm_interactive.strategy.quoter import (
    BookView,
    Decision,
    GameState,
    Resting,
    UnitState,
    clear_own_cross,
    decide,
)


def cents(price: str) -> int:
    return CENT.tick(D(price))


def flat_table(theo_a: float, ticks: Mapping[GameSide, str | None], cap: int = 100) -> QuoteTable:
    """A quote table with the same ticks at every (τ, q): decisions without a solve."""
    problem = QuoteProblem(
        book_a=BookInputs(CENT, theo_a, 0.05, 0.5, MAKER),
        book_b=BookInputs(CENT, 1.0 - theo_a, 0.05, 0.5, MAKER),
        gamma=0.02,
        q_max=cap,
    )
    row = [cents(t) if (t := ticks.get(s)) else NO_QUOTE for s in GameSide]
    grid = np.tile(np.array(row, dtype=np.int32), (2, 2 * cap + 1, 1))
    return QuoteTable(problem, QuoteModel.HJB, np.array([0.0, 1e9]), grid)


STANDARD = {
    GameSide.BID_A: "0.44",
    GameSide.ASK_A: "0.52",
    GameSide.BID_B: "0.48",
    GameSide.ASK_B: "0.56",
}


def state(
    table: QuoteTable | None,
    *,
    q: str = "0",
    cost: Decimal | None = None,
    books: tuple[BookView, BookView] = (DEEP, DEEP),
    resting: dict[GameSide, Resting] | None = None,
    backed_off: dict[GameSide, datetime] | None = None,
    halts: frozenset[HaltReason] = frozenset(),
    theo_as_of: datetime | None = NOW,
    widen: dict[GameSide, int] | None = None,
) -> GameState:
    unit = UnitState(
        (A, B), books, table, D(q), cost, resting or {}, backed_off or {}, widen=widen or {}
    )
    return GameState(GAME, (unit,), theo_as_of, halts)


def quoted(decision: Decision) -> dict[GameSide, tuple[str, int]]:
    return {
        d.game_side: (str(d.price), d.size) for u in decision.units for d in u.quotes if d.quoting
    }


def test_a_flat_game_quotes_all_four_sides_from_a_solved_table() -> None:
    problem = QuoteProblem(
        book_a=BookInputs(CENT, 0.48, 0.05, 0.5, MAKER),
        book_b=BookInputs(CENT, 0.52, 0.05, 0.5, MAKER),
        gamma=0.02,
        q_max=100,
    )
    decision = decide(state(solve_quote_table(problem)), PARAMS, NOW)
    assert decision.state is TradingState.ACTIVE
    assert decision.halts == frozenset()
    sides = quoted(decision)
    assert set(sides) == set(GameSide)
    assert all(size == 25 for _, size in sides.values())
    # Every quote keeps the edge after the maker fee against its book's theo.
    for d in decision.units[0].quotes:
        assert d.price is not None
        theo = D("0.48") if d.ticker == A.ticker else D("0.52")
        fee = expected_fee(d.price, maker=True, fees=MAKER)
        edge = theo - d.price - fee if d.side is Side.BID else d.price - fee - theo
        assert edge >= PARAMS.min_edge
        assert d.reason.startswith("own price")
    assert decision.quotes[(A.ticker, Side.BID)].game_side is GameSide.BID_A


def test_the_seeds_example_long_a_at_45_bids_b_up_to_54() -> None:
    table = flat_table(0.48, STANDARD)  # B's theo is 52¢
    cost = D("0.45") + expected_fee(D("0.45"), maker=True, fees=MAKER)
    rival = (DEEP, dataclasses.replace(DEEP, best_bid=cents("0.53")))  # someone bids B at 53¢
    exposed = decide(state(table, q="60", cost=cost, books=rival), PARAMS, NOW)
    bid_b = exposed.quotes[(B.ticker, Side.BID)]
    assert bid_b.price == D("0.54")  # outbids to 54¢: up to break-even, above theo
    assert "break-even limit 0.54" in bid_b.reason
    assert bid_b.ceiling == cents("0.54")
    flat = decide(state(table, q="0", books=rival), PARAMS, NOW)
    bid_b = flat.quotes[(B.ticker, Side.BID)]
    assert bid_b.price == D("0.48")  # without the exposure: backs off to its own price
    assert bid_b.reason.startswith("back off")
    assert bid_b.ceiling == cents("0.50")  # theo − edge − fee


def test_our_own_bid_and_ask_in_a_market_never_meet() -> None:
    # Long A: bid B may go up to break-even (54¢), past B's theo; ask B outbids a rival at
    # 55¢ down to 54¢ within its own edge limit. Our two orders would meet: the exchange would
    # cancel the later as crossing, and it would be sent again at every decision. The side
    # that adds to the exposure (ask B) stays a tick clear of the one that reduces it.
    table = flat_table(0.48, STANDARD)
    cost = D("0.45") + expected_fee(D("0.45"), maker=True, fees=MAKER)
    rival = (DEEP, dataclasses.replace(DEEP, best_bid=cents("0.53"), best_ask=cents("0.55")))
    decision = decide(state(table, q="60", cost=cost, books=rival), PARAMS, NOW)
    bid_b, ask_b = (decision.quotes[(B.ticker, s)] for s in (Side.BID, Side.ASK))
    assert (bid_b.price, ask_b.price) == (D("0.54"), D("0.55"))
    assert ask_b.reason == "clear of our own bid 0.55 (it is at 0.54)"
    assert ask_b.quoting
    # Without the exposure there is nothing to clear: ask B outbids the rival to 54¢.
    flat = decide(state(table, q="0", books=rival), PARAMS, NOW)
    assert flat.quotes[(B.ticker, Side.ASK)].price == D("0.54")
    assert flat.quotes[(B.ticker, Side.BID)].price == D("0.48")


def test_with_no_tick_left_the_side_that_adds_exposure_does_not_quote() -> None:
    # Short A: ask B reduces the exposure, bid B adds to it; both on the grid's first tick.
    table = flat_table(0.50, STANDARD)
    unit = state(table, q="-60").units[0]
    planned = {d.game_side: d for d in decide(state(table, q="-60"), PARAMS, NOW).units[0].quotes}
    bid_b = dataclasses.replace(planned[GameSide.BID_B], tick=0, price=CENT.price(0))
    ask_b = dataclasses.replace(planned[GameSide.ASK_B], tick=0, price=CENT.price(0))
    cleared = clear_own_cross(unit, {**planned, GameSide.BID_B: bid_b, GameSide.ASK_B: ask_b})
    assert cleared[GameSide.ASK_B] == ask_b  # reduces: kept
    assert cleared[GameSide.BID_B].tick is None
    assert cleared[GameSide.BID_B].reason == f"no room beside our own ask {CENT.price(0)}"


@given(
    q=st.integers(min_value=-99, max_value=99).map(D),
    theo=st.floats(min_value=0.05, max_value=0.95),
    cost=st.integers(min_value=1, max_value=99).map(lambda c: D(c) / 100),
    rivals=st.lists(st.one_of(st.none(), st.integers(0, 98)), min_size=4, max_size=4),
    offsets=st.lists(st.integers(min_value=-10, max_value=10), min_size=4, max_size=4),
)
def test_no_decision_has_our_bid_at_or_above_our_ask_in_one_market(
    q: Decimal, theo: float, cost: Decimal, rivals: list[int | None], offsets: list[int]
) -> None:
    center = round(theo * 100)
    ticks = {
        side: str(CENT.price(min(max(center - 1 + off * side.side.sign * -1, 0), 98)))
        for side, off in zip(GameSide, offsets, strict=True)
    }
    books = tuple(
        dataclasses.replace(DEEP, best_bid=lo, best_ask=hi)
        for lo, hi in ((min(a, b), max(a, b) + 1) if a is not None and b is not None
                       else (a, b) for a, b in (rivals[:2], rivals[2:]))
    )  # fmt: skip
    decision = decide(
        state(flat_table(theo, ticks), q=str(q), cost=cost, books=books),  # type: ignore[arg-type]
        PARAMS,
        NOW,
    )
    for market in (A, B):
        bid, ask = (decision.quotes[(market.ticker, s)] for s in (Side.BID, Side.ASK))
        if bid.tick is not None and ask.tick is not None:
            assert bid.tick < ask.tick, (bid.reason, ask.reason)


def test_reducing_quotes_only_the_sides_that_shrink_the_exposure() -> None:
    table = flat_table(0.48, STANDARD)
    decision = decide(
        state(table, q="30", cost=D("0.46"), halts=frozenset({HaltReason.ODDS_RECHECK})),
        PARAMS,
        NOW,
    )
    assert decision.state is TradingState.REDUCING
    assert set(quoted(decision)) == {GameSide.ASK_A, GameSide.BID_B}
    reasons = {d.game_side: d.reason for d in decision.units[0].quotes}
    assert reasons[GameSide.BID_A] == "reducing only"
    flat = decide(state(table, halts=frozenset({HaltReason.ODDS_RECHECK})), PARAMS, NOW)
    assert quoted(flat) == {}  # nothing to reduce


def test_halts_quote_nothing_and_say_why() -> None:
    table = flat_table(0.48, STANDARD)
    halted = decide(state(table, halts=frozenset({HaltReason.WS_DOWN})), PARAMS, NOW)
    assert halted.state is TradingState.HALTED
    assert quoted(halted) == {}
    assert {d.reason for d in halted.units[0].quotes} == {"halted: ws down"}
    # From the clock alone: within the start buffer, and a theo past its age.
    late = NOW + timedelta(hours=2) - timedelta(seconds=299)
    started = decide(state(table), PARAMS, late)
    assert HaltReason.GAME_STARTED in started.halts
    assert quoted(started) == {}
    old = decide(state(table, theo_as_of=NOW - timedelta(seconds=2701)), PARAMS, NOW)
    assert old.halts == {HaltReason.STALE_THEO}
    assert quoted(decide(state(table, theo_as_of=None), PARAMS, NOW)) == {}
    assert quoted(decide(state(None), PARAMS, NOW)) == {}


def test_sizes_shrink_near_the_cap_and_the_liquidity_cap_binds() -> None:
    table = flat_table(0.48, STANDARD)
    near = quoted(decide(state(table, q="90", cost=D("0.4")), PARAMS, NOW))
    assert near[GameSide.BID_A][1] + near[GameSide.ASK_B][1] == 10
    thin = (BookView(depth=D(60)), BookView(depth=D(20)))  # 80 × 0.5 = a cap of 40
    params = dataclasses.replace(PARAMS, liquidity_factor=0.5)
    decision = decide(state(table, q="30", cost=D("0.4"), books=thin), params, NOW)
    assert decision.units[0].cap == 40
    sides = quoted(decision)
    assert sides[GameSide.BID_A][1] + sides[GameSide.ASK_B][1] == 10


# --------------------------------------------------------------------------- bid wars


Competitor = Callable[[int | None], int | None]


def hold_firm(own: str, ceiling: str) -> Competitor:
    """Outbids our bid by a tick up to its ceiling, joins us there, and stays at the top."""
    state_: dict[str, int] = {"at": cents(own)}

    def respond(ours: int | None) -> int | None:
        if ours is not None and ours >= state_["at"]:
            state_["at"] = min(ours + 1, cents(ceiling))
        return state_["at"]

    return respond


def walk_down_firm(own: str, ceiling: str) -> Competitor:
    """Quotes one tick above us up to its ceiling; with nobody above its own price, its own
    price (so it walks down when we back off)."""

    def respond(ours: int | None) -> int | None:
        if ours is None or ours < cents(own):
            return cents(own)
        return ours + 1 if ours + 1 <= cents(ceiling) else cents(own)

    return respond


def bid_war(
    competitor: Competitor, seconds: float, step: float = 0.5, rival: int | None = None
) -> list[tuple[float, int | None, int | None]]:
    """Our bid on A (own price 44¢, ceiling 46¢ at theo 0.48) against ``competitor``:
    each step we decide, then it responds. Returns (t, ours, theirs) per step."""
    table = flat_table(0.48, STANDARD)
    resting: Resting | None = None
    memory: dict[GameSide, datetime] = {}
    path = []
    t = 0.0
    theirs = rival
    while t <= seconds:
        now = NOW + timedelta(seconds=t)
        book = dataclasses.replace(DEEP, best_bid=theirs)
        decision = decide(
            state(
                table,
                books=(book, DEEP),
                resting={GameSide.BID_A: resting} if resting else {},
                backed_off=memory,
            ),
            PARAMS,
            now,
        )
        bid = decision.quotes[(A.ticker, Side.BID)]
        memory = {GameSide.BID_A: bid.backed_off_since} if bid.backed_off_since else {}
        if bid.tick is not None and (resting is None or resting.tick != bid.tick):
            resting = Resting(bid.tick, D(bid.size), now)
        theirs = competitor(resting.tick if resting else None)
        path.append((t, resting.tick if resting else None, theirs))
        t += step
    return path


def price_changes(path: list[tuple[float, int | None, int | None]]) -> int:
    return sum(1 for a, b in itertools.pairwise(path) if a[1] != b[1])


def test_a_war_with_an_equal_ceiling_ends_at_the_shared_ceiling() -> None:
    path = bid_war(hold_firm("0.45", "0.46"), seconds=30, rival=cents("0.45"))
    _, ours, theirs = path[-1]
    assert ours == theirs == cents("0.46")  # joined at the shared ceiling
    assert price_changes(path) <= 2  # a few steps, each after min_rest
    settled = [p for p in path if p[0] >= 10]
    assert {(p[1], p[2]) for p in settled} == {(cents("0.46"), cents("0.46"))}


def test_against_a_higher_ceiling_we_back_off_and_stay_off() -> None:
    path = bid_war(walk_down_firm("0.45", "0.60"), seconds=29, rival=cents("0.45"))
    # We climb to our ceiling, are outbid beyond it, back off to 44¢ and stay there while
    # the winner walks down to 45¢: no cycling within the back-off hold.
    assert max(p[1] or 0 for p in path) == cents("0.46")
    after = [p for p in path if p[1] == cents("0.44") and p[0] > 0]
    assert after
    first_back = after[0][0]
    assert all(p[1] == cents("0.44") for p in path if p[0] >= first_back)
    assert path[-1][2] == cents("0.45")
    # Over a longer run it re-engages at most once per hold period.
    long_run = bid_war(walk_down_firm("0.45", "0.60"), seconds=120, rival=cents("0.45"))
    assert price_changes(long_run) <= 4 * (120 / 30 + 1)


def test_walk_down_after_the_competitor_leaves() -> None:
    gone_at = 8.0
    firm = hold_firm("0.45", "0.46")
    clock = {"t": 0.0}

    def leaves(ours: int | None) -> int | None:
        clock["t"] += 0.5
        return None if clock["t"] > gone_at else firm(ours)

    path = bid_war(leaves, seconds=20, rival=cents("0.45"))
    assert path[-1][1] == cents("0.44")  # back to our own price
    back = next(p[0] for p in path if p[0] > gone_at and p[1] == cents("0.44"))
    assert back - gone_at <= PARAMS.min_rest + 1.0  # after the rest time, not before


def test_hold_mode_is_reported_while_the_rest_time_runs() -> None:
    table = flat_table(0.48, STANDARD)
    resting = {GameSide.BID_A: Resting(cents("0.46"), D(25), NOW - timedelta(seconds=1))}
    decision = decide(state(table, resting=resting), PARAMS, NOW)
    bid = decision.quotes[(A.ticker, Side.BID)]
    assert (bid.price, bid.reason) == (D("0.46"), f"{Mode.HOLD} 0.46")


# --------------------------------------------------------------------------- invariants


@given(
    q=st.decimals(min_value=D(-120), max_value=D(120), places=2),
    theo=st.floats(min_value=0.05, max_value=0.95),
    size=st.integers(min_value=1, max_value=50),
    depth=st.integers(min_value=0, max_value=500),
    offsets=st.lists(st.integers(min_value=-10, max_value=10), min_size=4, max_size=4),
    halts=st.sets(st.sampled_from([HaltReason.ODDS_RECHECK, HaltReason.STALE_BOOK])),
)
def test_no_decision_can_pass_the_cap_even_if_every_order_fills_at_once(
    q: Decimal, theo: float, size: int, depth: int, offsets: list[int], halts: set[HaltReason]
) -> None:
    center = round(theo * 100)
    ticks = {
        side: str(CENT.price(min(max(center - 1 + off * side.side.sign * -1, 0), 98)))
        for side, off in zip(GameSide, offsets, strict=True)
    }
    params = dataclasses.replace(PARAMS, quote_size=size, liquidity_factor=0.5)
    books = (BookView(depth=D(depth)), BookView(depth=D(depth)))
    decision = decide(
        state(
            flat_table(theo, ticks), q=str(q), cost=D("0.5"), books=books, halts=frozenset(halts)
        ),
        params,
        NOW,
    )
    (unit,) = decision.units
    up = sum(d.size for d in unit.quotes if d.quoting and d.game_side.q_sign > 0)
    down = sum(d.size for d in unit.quotes if d.quoting and d.game_side.q_sign < 0)
    assert up == 0 or q + up <= unit.cap
    assert down == 0 or q - down >= -unit.cap
    assert all(d.size <= size for d in unit.quotes)
    assert all((d.size > 0) == (d.tick is not None) for d in unit.quotes)
    if decision.state is TradingState.HALTED:
        assert up == down == 0


def test_a_three_way_game_is_three_single_book_inventories() -> None:
    tie = Market(f"{EVENT}-TIE", EVENT, "Tie", CENT, MAKER)
    game = Game(EVENT, "epl", NOW + timedelta(hours=2), A, B, tie)
    units = []
    for market, theo in ((A, 0.40), (B, 0.34), (tie, 0.26)):
        problem = QuoteProblem(
            book_a=BookInputs(CENT, theo, 0.05, 0.5, MAKER), gamma=0.02, q_max=100
        )
        units.append(UnitState((market,), (DEEP,), solve_quote_table(problem), D(0)))
    decision = decide(GameState(game, tuple(units), NOW), PARAMS, NOW)
    assert set(decision.quotes) == {(m.ticker, s) for m in game.markets for s in Side}
    assert all(d.quoting for d in decision.quotes.values())


# --------------------------------------------------------------------------- widen hook


def test_widen_moves_the_model_tick_away_from_theo_or_toward_it() -> None:
    table = flat_table(0.48, STANDARD)
    widen = {GameSide.BID_A: 2, GameSide.ASK_A: 1, GameSide.BID_B: -1, GameSide.ASK_B: -2}
    decision = decide(state(table, widen=widen), PARAMS, NOW)
    assert {s: p for s, (p, _) in quoted(decision).items()} == {
        GameSide.BID_A: "0.42",  # 0.44 two ticks wider: down
        GameSide.ASK_A: "0.53",  # 0.52 one tick wider: up
        GameSide.BID_B: "0.49",  # 0.48 one tick tighter: up
        GameSide.ASK_B: "0.54",  # 0.56 two ticks tighter: down
    }
    bid_a = decision.quotes[(A.ticker, Side.BID)]
    assert bid_a.reason == "own price 0.42 (widen +2)"
    # Without a widen nothing moves and the reason says nothing about it.
    plain = decide(state(table), PARAMS, NOW).quotes[(A.ticker, Side.BID)]
    assert (plain.price, plain.reason) == (D("0.44"), "own price 0.44")


def test_the_edge_ceiling_still_binds_a_tightened_quote() -> None:
    table = flat_table(0.48, STANDARD)
    widen = {GameSide.BID_A: -5, GameSide.ASK_A: -5, GameSide.BID_B: -9, GameSide.ASK_B: -9}
    decision = decide(state(table, widen=widen), PARAMS, NOW)
    limits = {s: d.ceiling for s, d in ((d.game_side, d) for d in decision.units[0].quotes)}
    for side, (price, _) in quoted(decision).items():
        assert cents(price) == limits[side]  # pulled back to the limit, never through it
    assert quoted(decision)[GameSide.BID_A][0] == "0.46"  # 0.49 wanted, theo 0.48
    assert quoted(decision)[GameSide.ASK_A][0] == "0.5"  # 0.47 wanted, through theo


def test_widen_acts_before_competition() -> None:
    table = flat_table(0.48, STANDARD)
    # A competitor at 43¢: our own bid widened to 42¢ is outbid → we step to 44¢.
    rival = (dataclasses.replace(DEEP, best_bid=cents("0.43")), DEEP)
    decision = decide(state(table, books=rival, widen={GameSide.BID_A: 2}), PARAMS, NOW)
    bid_a = decision.quotes[(A.ticker, Side.BID)]
    assert bid_a.price == D("0.44")
    assert bid_a.reason.startswith(f"{Mode.OUTBID} 0.44")
    assert bid_a.reason.endswith("(widen +2)")


def test_widen_is_clamped_to_the_grid_and_validated() -> None:
    table = flat_table(0.48, STANDARD)
    far = {GameSide.BID_A: 100, GameSide.ASK_A: 100}
    sides = quoted(decide(state(table, widen=far), PARAMS, NOW))
    assert sides[GameSide.BID_A][0] == "0.01"
    assert sides[GameSide.ASK_A][0] == "0.99"
    with pytest.raises(ValueError, match=r"widen\[.*\] = True: keys must be GameSide"):
        state(table, widen={GameSide.BID_A: True})
    with pytest.raises(ValueError, match="values whole ticks"):
        state(table, widen={GameSide.BID_A: 1.5})  # type: ignore[dict-item]
