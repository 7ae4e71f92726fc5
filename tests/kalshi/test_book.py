"""The local order book: against a brute-force model, its staleness rules, and kept from the
simulator's WS frames until it matches the exchange's own book and its REST order book."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm_interactive.domain import ONE, Side
from kmm_interactive.kalshi.book import OrderBook
from kmm_interactive.kalshi.messages import BookDelta, BookSnapshot, parse_frame
from kmm_interactive.kalshi.models import BookLevels
from kmm_interactive.sim import wire
from kmm_interactive.sim.agents import Simulation
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.exchange import BookChange, Exchange, ExchangeEvent, SimMarket, cc_to_count
from kmm_interactive.sim.scenario import build_scenario

D = Decimal
T0 = 1_750_000_000.0
Model = dict[Side, dict[Decimal, Decimal]]


def book_of(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> OrderBook:
    levels = BookLevels(tuple((D(p), D(n)) for p, n in bids), tuple((D(p), D(n)) for p, n in asks))
    return OrderBook.from_levels("T", levels)


# --------------------------------------------------------------------------- against a model


def cents(low: int, high: int) -> st.SearchStrategy[Decimal]:
    # Sub-cent prices too, written with varying trailing zeros ("0.5" and "0.5000" are equal).
    return st.integers(min_value=low * 10, max_value=high * 10).map(lambda m: D(m) / 1000)


SIZES = st.integers(min_value=0, max_value=50_000).map(lambda c: D(c) / 100)
# Bids mostly below asks, with an overlap so that crossings happen now and then.
BID_PRICES, ASK_PRICES = cents(1, 60), cents(40, 99)


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[BookLevels, list[tuple[Side, Decimal, Decimal]], dict[tuple[Side, Decimal], Decimal]]:
    bids = draw(st.dictionaries(BID_PRICES, SIZES, max_size=12))
    asks = draw(st.dictionaries(ASK_PRICES, SIZES, max_size=12))
    deltas = draw(
        st.lists(
            st.one_of(
                st.tuples(
                    st.just(Side.BID), BID_PRICES | st.sampled_from(sorted(bids) or [D(1) / 2])
                ),
                st.tuples(
                    st.just(Side.ASK), ASK_PRICES | st.sampled_from(sorted(asks) or [D(1) / 2])
                ),
            ).flatmap(
                lambda sp: st.tuples(
                    st.just(sp[0]),
                    st.just(sp[1]),
                    st.integers(min_value=-30_000, max_value=30_000).map(lambda c: D(c) / 100),
                )
            ),
            max_size=60,
        )
    )
    own_keys = st.tuples(st.sampled_from([Side.BID, Side.ASK]), BID_PRICES | ASK_PRICES)
    own = draw(st.dictionaries(own_keys, SIZES.filter(lambda n: n > 0), max_size=6))
    levels = BookLevels(tuple(bids.items()), tuple(asks.items()))
    return levels, deltas, own


def model_best(model: Model, side: Side) -> tuple[Decimal, Decimal] | None:
    live = {p: n for p, n in model[side].items() if n > 0}
    if not live:
        return None
    p = max(live) if side is Side.BID else min(live)
    return p, live[p]


def model_levels(model: Model, side: Side) -> list[tuple[Decimal, Decimal]]:
    live = [(p, n) for p, n in model[side].items() if n > 0]
    return sorted(live, reverse=side is Side.BID)


def assert_matches(book: OrderBook, model: Model, probe: Decimal) -> None:
    for side in (Side.BID, Side.ASK):
        assert book.levels(side) == model_levels(model, side)
        expected = sum(
            (
                n
                for p, n in model_levels(model, side)
                if (p >= probe if side is Side.BID else p <= probe)
            ),
            D(0),
        )
        assert book.depth(side, probe) == expected
    assert book.best_bid() == model_best(model, Side.BID)
    assert book.best_ask() == model_best(model, Side.ASK)


def crossed(model: Model) -> bool:
    bid, ask = model_best(model, Side.BID), model_best(model, Side.ASK)
    return bid is not None and ask is not None and bid[0] >= ask[0]


@settings(max_examples=400, deadline=None)
@given(scenarios(), cents(1, 99))
def test_book_matches_a_brute_force_model(
    case: tuple[
        BookLevels, list[tuple[Side, Decimal, Decimal]], dict[tuple[Side, Decimal], Decimal]
    ],
    probe: Decimal,
) -> None:
    levels, deltas, own = case
    book = OrderBook("T")
    book.apply_snapshot(levels)
    model: Model = {Side.BID: dict(levels.bids), Side.ASK: dict(levels.asks)}
    stale, negatives = crossed(model), 0
    assert book.stale is stale
    assert_matches(book, model, probe)
    for side, price, delta in deltas:
        new = model[side].get(price, D(0)) + delta
        if new < 0:
            negatives += 1
            stale = True
        model[side][price] = max(new, D(0))
        stale = stale or crossed(model)
        book.apply_delta(side, price, delta)
        assert book.stale is stale
        assert (book.stale_reason is None) is not stale
        assert book.negative_levels == negatives
    assert_matches(book, model, probe)
    assert book.updates == 1 + len(deltas)

    before = book.as_levels()
    view = book.without(own)
    for side in (Side.BID, Side.ASK):
        for p in list(model[side]):
            model[side][p] -= own.get((side, p), D(0))
    assert_matches(view, model, probe)
    assert view.stale is book.stale
    # The view is a copy: the book itself still shows our orders.
    assert book.as_levels() == before

    book.apply_snapshot(levels)
    assert book.stale is crossed({Side.BID: dict(levels.bids), Side.ASK: dict(levels.asks)})


# --------------------------------------------------------------------------- staleness


def test_a_new_book_is_stale_until_its_first_snapshot() -> None:
    book = OrderBook("T")
    assert (book.stale, book.stale_reason) == (True, "no snapshot yet")
    assert (book.best_bid(), book.best_ask(), book.updates) == (None, None, 0)
    book.apply_snapshot(BookLevels((), ()))
    assert (book.stale, book.stale_reason, book.updates) == (False, None, 1)


def test_a_delta_below_zero_removes_the_level_and_marks_the_book_stale() -> None:
    book = book_of([("0.40", "10")], [("0.60", "5")])
    book.apply_delta(Side.BID, D("0.40"), D("-12.5"))
    assert book.best_bid() is None
    assert book.stale
    assert book.stale_reason == "bid 0.40 would go to -2.5: a delta was missed"
    assert book.negative_levels == 1
    # A removal of a level we never saw is the same story.
    book.apply_delta(Side.ASK, D("0.70"), D("-1"))
    assert book.negative_levels == 2
    assert book.levels(Side.ASK) == [(D("0.60"), D(5))]
    assert book.stale_reason == "bid 0.40 would go to -2.5: a delta was missed"  # the first


def test_a_snapshot_makes_a_stale_book_fresh() -> None:
    book = book_of([("0.40", "10")], [])
    book.mark_stale("seq gap")
    book.mark_stale("snapshot requested")
    assert book.stale_reason == "seq gap"
    book.apply_snapshot(BookLevels(((D("0.41"), D(3)),), ((D("0.45"), D(1)),)))
    assert not book.stale
    assert book.stale_reason is None
    assert (book.best_bid(), book.best_ask()) == ((D("0.41"), D(3)), (D("0.45"), D(1)))


def test_a_crossing_marks_the_book_stale_and_keeps_the_levels() -> None:
    """Kalshi matches crossing orders at once, so a crossed local book means a delta we did
    not get (e.g. the removal of the ask that was taken): stale until the next snapshot."""
    book = book_of([("0.40", "10")], [("0.45", "5")])
    book.apply_delta(Side.BID, D("0.40"), D("5"))  # more at a known level: cannot cross
    book.apply_delta(Side.BID, D("0.45"), D("1"))  # locked (bid == ask) counts as crossed
    assert book.stale
    assert book.stale_reason == "crossed after a bid at 0.45"
    assert book.crossings == 1
    assert (book.best_bid(), book.best_ask()) == ((D("0.45"), D(1)), (D("0.45"), D(5)))
    book.apply_delta(Side.ASK, D("0.45"), D("-5"))  # uncrossed again, but still not trusted
    assert book.stale


def test_a_crossed_snapshot_is_kept_but_stale() -> None:
    book = book_of([("0.50", "1")], [("0.49", "1")])
    assert (book.stale, book.stale_reason, book.crossings) == (True, "the snapshot is crossed", 1)


def test_equality_levels_and_views() -> None:
    a = book_of([("0.40", "10"), ("0.3", "2"), ("0.2", "0")], [("0.6", "5"), ("0.7", "1")])
    b = book_of([("0.4000", "10.00"), ("0.30", "2")], [("0.70", "1"), ("0.60", "5")])
    assert a == b  # zero-size levels are not kept; "0.4" equals "0.4000"
    b.mark_stale("whatever")
    assert a == b  # staleness is not part of the book's contents
    assert a != book_of([("0.40", "10")], [("0.6", "5"), ("0.7", "1")])
    assert a.as_levels() == BookLevels(
        ((D("0.40"), D(10)), (D("0.3"), D(2))), ((D("0.6"), D(5)), (D("0.7"), D(1)))
    )
    assert a.depth(Side.BID, D("0.35")) == 10
    assert a.depth(Side.ASK, D("0.65")) == 5
    assert a.depth(Side.ASK, D("0.59")) == 0
    assert a.size_at(Side.BID, D("0.3")) == 2
    assert a.size_at(Side.BID, D("0.31")) == 0
    # Our 10 at 0.40 is the whole best bid; our 9 at 0.6 more than all but 1 of the ask.
    competition = a.without({(Side.BID, D("0.40")): D(10), (Side.ASK, D("0.6")): D(4)})
    assert competition.best_bid() == (D("0.3"), D(2))
    assert competition.best_ask() == (D("0.6"), D(1))
    assert a.best_bid() == (D("0.40"), D(10))
    gone = a.without({(Side.BID, D("0.3")): D(50)})  # the book has not caught up with us yet
    assert gone.levels(Side.BID) == [(D("0.40"), D(10))]


def test_updated_is_the_event_time_when_given() -> None:
    book = book_of([], [])
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    book.apply_delta(Side.BID, D("0.1"), D(1), ts=when)
    assert book.updated == when
    book.apply_delta(Side.BID, D("0.1"), D(1))
    assert book.updated is not None
    assert book.updated > when  # no time given: local time


# --------------------------------------------------------------------------- against the simulator


def snapshot_frame(m: SimMarket, *, use_yes_price: bool) -> str:
    body = wire.ws_book_levels(m, use_yes_price=use_yes_price)
    return json.dumps({"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": body})


def sim_levels(m: SimMarket) -> BookLevels:
    def side(name: str) -> tuple[tuple[Decimal, Decimal], ...]:
        return tuple((m.grid.price(t), cc_to_count(n)) for t, n in m.book.depth(name))  # type: ignore[arg-type]

    return BookLevels(side("bid"), side("ask"))


@pytest.mark.parametrize("use_yes_price", [False, True])
def test_book_kept_from_sim_frames_matches_the_exchange(use_yes_price: bool) -> None:
    scn = build_scenario("small", seed=4, now=T0, speed=10.0)
    ex = Exchange.from_scenario(scn, VirtualClock(T0))
    books: dict[str, OrderBook] = {}
    for ticker, m in ex.markets.items():
        event = parse_frame(
            snapshot_frame(m, use_yes_price=use_yes_price), yes_prices=use_yes_price
        )
        assert isinstance(event, BookSnapshot)
        books[ticker] = OrderBook.from_levels(ticker, event.book)
    seq = 1
    checked = 0

    def on_event(e: ExchangeEvent) -> None:
        nonlocal seq, checked
        if not isinstance(e, BookChange):
            return
        m = ex.markets[e.ticker]
        msg = wire.ws_book_delta(
            m, e.book_side, e.price, e.delta, e.ts,
            use_yes_price=use_yes_price, client_order_id=e.client_order_id,
        )  # fmt: skip
        seq += 1
        frame = json.dumps({"type": "orderbook_delta", "sid": 1, "seq": seq, "msg": msg})
        delta = parse_frame(frame, yes_prices=use_yes_price)
        assert isinstance(delta, BookDelta)
        book = books[delta.ticker]
        book.apply_delta(delta.side, delta.price, delta.delta, ts=delta.ts)
        # A delta may leave the exchange mid-way through one order's changes, so compare
        # every so often rather than after each frame; staleness must never appear.
        assert not book.stale, book.stale_reason
        if seq % 97 == 0:
            assert book == OrderBook.from_levels(e.ticker, sim_levels(m))
            checked += 1

    ex.listeners.append(on_event)
    Simulation(scn, ex, seed=3).run_until(T0 + 1800)
    assert seq > 1000
    assert checked > 10
    for ticker, m in ex.markets.items():
        book = books[ticker]
        assert book == OrderBook.from_levels(ticker, sim_levels(m))
        rest = wire.orderbook_json(m)  # REST prints NO bids in NO prices, ascending
        rest_book = BookLevels.from_wire(
            rest, "yes_dollars", "no_dollars", "rest", yes_prices=False
        )
        assert book == OrderBook.from_levels(ticker, rest_book)
        if book.best_ask() is not None:
            assert book.best_ask() == (
                ONE - D(rest["no_dollars"][-1][0]),
                D(rest["no_dollars"][-1][1]),
            )


def test_the_competition_is_read_without_copying_the_book() -> None:
    book = OrderBook.from_levels(
        "T",
        BookLevels(
            ((D("0.40"), D(10)), (D("0.39"), D(5))),
            ((D("0.60"), D(4)), (D("0.61"), D(7))),
        ),
    )
    own = {(Side.BID, D("0.40")): D(10), (Side.ASK, D("0.60")): D(1)}
    bid, ask, depth = book.competition(own)
    assert (bid, ask, depth) == ((D("0.39"), D(5)), (D("0.60"), D(3)), D(15))
    view = book.without(own)  # the same rule, as a copy
    assert (view.best_bid(), view.best_ask()) == (bid, ask)
    assert book.competition({}) == ((D("0.40"), D(10)), (D("0.60"), D(4)), D(26))
