"""The position book's accounting (exact examples and cash-flow properties), game exposure,
adoption, and reconciliation against the embedded exchange over loopback."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kalshikit import EPL, NBA, Venue

from kmm_interactive.domain import ONE, ZERO, Fill, Side
from kmm_interactive.engine.positions import Mismatch, MismatchCounter, reconcile
from kmm_interactive.kalshi.errors import KalshiError
from kmm_interactive.kalshi.rest import KalshiRest, OrderRequest, Retry
from kmm_interactive.ledger import Exposure, Holding, PnL, PositionBook
from kmm_interactive.pricing.fees import taker_fee
from kmm_interactive.sim.exchange import cc_to_count

D = Decimal
A, B = "GAME-A", "GAME-B"
T0 = datetime(2026, 5, 1, 18, 0, tzinfo=UTC)
_ids = itertools.count()


def fill(
    side: Side,
    price: str | Decimal,
    count: str | Decimal,
    fee: str | Decimal = "0",
    ticker: str = A,
    *,
    fill_id: str | None = None,
    ts: datetime = T0,
) -> Fill:
    return Fill(
        fill_id=fill_id or f"f{next(_ids)}",
        order_id="o1",
        ticker=ticker,
        side=side,
        price=D(price),
        count=D(count),
        fee=D(fee),
        is_taker=True,
        ts=ts,
    )


def book_of(*fills: Fill) -> PositionBook:
    book = PositionBook()
    for f in fills:
        assert book.apply_fill(f)
    return book


# --------------------------------------------------------------------------- accounting


def test_open_add_partial_close_and_close_a_long_position() -> None:
    book = book_of(fill(Side.BID, "0.45", "10", "0.02"))
    h = book.holding(A)
    assert (h.position, h.open_cost, h.avg_cost, h.realized) == (D(10), D("4.52"), D("0.452"), ZERO)

    book.apply_fill(fill(Side.BID, "0.50", "5", "0.01", ts=T0 + timedelta(seconds=1)))
    assert (book.holding(A).position, book.holding(A).open_cost) == (D(15), D("7.03"))

    # 6 of 15 closed at 0.60: basis 7.03 × 6/15 = 2.812; 3.60 − 2.812 − 0.03 fee.
    book.apply_fill(fill(Side.ASK, "0.60", "6", "0.03", ts=T0 + timedelta(seconds=2)))
    h = book.holding(A)
    assert (h.position, h.open_cost, h.realized) == (D(9), D("4.218"), D("0.758"))

    book.apply_fill(fill(Side.ASK, "0.40", "9", "0.01", ts=T0 + timedelta(seconds=3)))
    assert book.holding(A) == Holding(
        A,
        position=ZERO,
        open_cost=ZERO,
        realized=D("0.130"),  # the cash flow: −4.52 − 2.51 + 3.57 + 3.59
        fees=D("0.07"),
        volume=D(30),
        fills=4,
        last_fill=T0 + timedelta(seconds=3),
    )
    assert book.holding(A).avg_cost is None


def test_a_short_position_holds_no_claims_and_a_crossing_fill_flips_it() -> None:
    book = book_of(fill(Side.ASK, "0.30", "10", "0.02"))
    h = book.holding(A)
    # Selling YES at 0.30 buys NO claims at 0.70.
    assert (h.position, h.open_cost, h.avg_cost) == (D(-10), D("7.02"), D("0.702"))

    # Buying 15 YES at 0.40 closes the 10 NO claims (each worth 0.60) and opens 5 YES; the
    # 0.03 fee splits 0.02 / 0.01.
    book.apply_fill(fill(Side.BID, "0.40", "15", "0.03"))
    h = book.holding(A)
    assert (h.position, h.open_cost, h.realized, h.fees) == (D(5), D("2.01"), D("-1.04"), D("0.05"))

    assert book.settle(A, "no") == D("-2.01")
    h = book.holding(A)
    assert (h.position, h.open_cost, h.realized) == (ZERO, ZERO, D("-3.05"))  # = the cash flow
    assert book.settle(A, "no") == ZERO  # idempotent
    assert book.holding(A).realized == D("-3.05")
    with pytest.raises(ValueError, match="already settled 'no'"):
        book.settle(A, "yes")


def test_a_fee_split_by_a_crossing_fill_is_kept_whole() -> None:
    book = book_of(fill(Side.ASK, "0.50", "1"), fill(Side.BID, "0.50", "3", "0.01"))
    h = book.holding(A)
    # 1/3 of the fee closes (to the micro-dollar), the rest opens: nothing is lost.
    assert (h.realized, h.open_cost) == (D("-0.003333"), D("1.006667"))
    assert h.realized - h.open_cost == D("-1.01")


def test_settlement_pays_the_claims_held() -> None:
    book = book_of(
        fill(Side.BID, "0.45", "10", "0.10", ticker=A),
        fill(Side.ASK, "0.45", "4", ticker=B),  # NO B at 0.55
    )
    assert book.settle(A, "yes") == D("5.40")  # 10 − 4.60
    assert book.settle(B, "yes") == D("-2.20")  # NO claims pay nothing
    assert [h.realized for h in book.holdings()] == [D("5.40"), D("-2.20")]


def test_void_and_scalar_settle_at_the_settlement_value_or_are_refused() -> None:
    book = book_of(fill(Side.BID, "0.45", "10", ticker=A), fill(Side.ASK, "0.40", "5", ticker=B))
    with pytest.raises(ValueError, match="needs the settlement value"):
        book.settle(A, "void")
    with pytest.raises(ValueError, match="allowed: yes, no, void, scalar"):
        book.settle(A, "maybe")
    with pytest.raises(ValueError, match="between 0 and 1"):
        book.settle(A, "scalar", D("1.5"))
    assert book.holding(A).position == D(10)  # refusals change nothing

    assert book.settle(A, "void", D("0.45")) == ZERO  # refunded at cost
    assert book.settle(B, "scalar", D("0.30")) == D("0.50")  # 5 NO × 0.70 − 3.00
    assert book.holding(B).position == ZERO


def test_a_fill_backfilled_after_settlement_is_settled_at_once() -> None:
    book = PositionBook()
    assert book.settle(A, "yes") == ZERO
    assert book.apply_fill(fill(Side.BID, "0.40", "2", "0.01"))
    h = book.holding(A)
    assert (h.position, h.open_cost, h.realized, h.fills) == (ZERO, ZERO, D("1.19"), 1)


def test_a_fill_is_applied_once_per_fill_id() -> None:
    book = book_of(fill(Side.BID, "0.45", "10", "0.02", fill_id="t1"))
    before = book.holding(A)
    assert not book.apply_fill(fill(Side.BID, "0.45", "10", "0.02", fill_id="t1"))
    assert not book.apply_fill(fill(Side.ASK, "0.99", "3", fill_id="t1", ticker=B))
    assert book.holding(A) == before
    assert book.holdings() == [before]


def test_a_market_never_traded_is_flat() -> None:
    book = PositionBook()
    assert book.holding(A) == Holding(A)
    assert book.holdings() == []
    assert book.exposure((A,)) == Exposure(ZERO, None)
    assert book.exposure((A, B)) == Exposure(ZERO, None)


# --------------------------------------------------------------------------- value and PnL


def test_value_marks_the_open_claims_at_theo() -> None:
    long = book_of(fill(Side.BID, "0.45", "15", "0.03")).holding(A)  # cost 6.78
    assert long.value(D("0.55")) == D("1.47")  # 15 × 0.55 − 6.78
    short = book_of(fill(Side.ASK, "0.30", "10", "0.02")).holding(A)  # NO cost 7.02
    assert short.value(D("0.25")) == D("0.48")  # 10 × 0.75 − 7.02
    assert Holding(A).value(D("0.5")) == ZERO
    with pytest.raises(ValueError, match="between 0 and 1"):
        long.value(D("1.01"))


def test_pnl_counts_fees_once_and_marks_only_markets_with_a_theo() -> None:
    book = book_of(
        fill(Side.BID, "0.45", "10", "0.02", ticker=A),
        fill(Side.ASK, "0.55", "4", "0.01", ticker=A),  # realized 2.20 − 1.808 − 0.01 = 0.382
        fill(Side.BID, "0.30", "5", "0.01", ticker=B),  # cost 1.51
    )
    assert book.pnl({A: D("0.50")}) == PnL(
        realized=D("0.382"), unrealized=D("0.288"), fees=D("0.04"), total=D("0.670")
    )  # A: 6 × 0.50 − 2.712
    assert book.pnl({A: D("0.50"), B: D("0.40")}, [B]) == PnL(
        realized=ZERO, unrealized=D("0.49"), fees=D("0.01"), total=D("0.49")
    )


# --------------------------------------------------------------------------- exposure


def test_exposure_of_one_market_and_the_seed_example() -> None:
    fee = taker_fee(D("0.45"), D(10))
    assert fee == D("0.18")
    book = book_of(fill(Side.BID, "0.45", "10", fee, ticker=A))
    # Long A at 45¢, fee included: the break-even price of the reducing side is 1 − 0.468.
    assert book.exposure((A,)) == Exposure(D(10), D("0.468"))
    assert book.exposure((A, B)) == Exposure(D(10), D("0.468"))
    assert book.exposure((B, A)) == Exposure(D(-10), D("0.468"))


def test_game_exposure_weighs_yes_a_and_no_b_together() -> None:
    book = book_of(
        fill(Side.BID, "0.45", "10", "0.18", ticker=A),  # YES A: 4.68
        fill(Side.ASK, "0.60", "5", "0.02", ticker=B),  # NO B at 0.40: 2.02
    )
    assert book.exposure((A, B)) == Exposure(D(15), D("0.4466666666666666666666666667"))
    assert book.exposure((B,)) == Exposure(D(-5), D("0.404"))


def test_game_exposure_on_the_b_side_and_offsetting_claims() -> None:
    b_side = book_of(
        fill(Side.BID, "0.50", "8", ticker=B),  # YES B: 4.00
        fill(Side.ASK, "0.40", "2", ticker=A),  # NO A at 0.60: 1.20
    )
    assert b_side.exposure((A, B)) == Exposure(D(-10), D("0.52"))
    mixed = book_of(
        fill(Side.BID, "0.45", "10", ticker=A),
        fill(Side.BID, "0.50", "4", ticker=B),  # B-claims, against a net long A
    )
    assert mixed.exposure((A, B)) == Exposure(D(6), D("0.45"))
    flat = book_of(fill(Side.BID, "0.45", "3", ticker=A), fill(Side.BID, "0.52", "3", ticker=B))
    assert flat.exposure((A, B)) == Exposure(ZERO, None)
    with pytest.raises(ValueError, match="two distinct"):
        flat.exposure((A, A))


# --------------------------------------------------------------------------- adopt


def test_adopt_scales_the_cost_on_the_same_side_and_keeps_realized() -> None:
    book = book_of(fill(Side.BID, "0.45", "10", "0.02"), fill(Side.BID, "0.50", "5", "0.01"))
    assert book.adopt(A, D(12), reason="test") == D(-3)
    h = book.holding(A)
    assert (h.position, h.open_cost, h.realized, h.fees) == (D(12), D("5.624"), ZERO, D("0.03"))
    assert book.adopt(A, D(20), reason="test") == D(8)
    assert book.holding(A).open_cost == D("9.373333")  # 5.624 × 20/12, to the micro-dollar
    assert book.adopt(A, D(20), reason="test") == ZERO
    assert book.adopt(A, ZERO, reason="test") == D(-20)
    assert (book.holding(A).open_cost, book.holding(A).realized) == (ZERO, ZERO)


def test_adopt_prices_a_new_side_at_the_exchange_cost_or_at_one_dollar() -> None:
    book = book_of(fill(Side.BID, "0.45", "10", "0.02"))
    assert book.adopt(A, D(-4), reason="test", exchange_cost=D("2.40")) == D(-14)
    assert (book.holding(A).position, book.holding(A).avg_cost) == (D(-4), D("0.60"))
    assert book.adopt(B, D(3), reason="test") == D(3)
    assert book.holding(B).avg_cost == ONE
    with pytest.raises(ValueError, match="must not be negative"):
        book.adopt(B, D(-1), reason="test", exchange_cost=D(-1))
    assert book.holding(B).position == D(3)


# --------------------------------------------------------------------------- properties

_prices = st.integers(1, 999).map(lambda n: D(n) / 1000)
_counts = st.integers(1, 5000).map(lambda n: D(n) / 100)
_fees = st.integers(0, 300).map(lambda n: D(n) / 10000)
_fills = st.lists(
    st.tuples(st.sampled_from(Side), _prices, _counts, _fees), min_size=1, max_size=30
).map(
    lambda rows: [
        fill(s, p, n, f, fill_id=f"p{i}", ts=T0 + timedelta(seconds=i))
        for i, (s, p, n, f) in enumerate(rows)
    ]
)


@settings(max_examples=300, deadline=None)
@given(fills=_fills, result=st.sampled_from(["yes", "no"]))
def test_realized_pnl_is_the_exact_cash_flow(fills: list[Fill], result: str) -> None:
    book = PositionBook()
    cash = position = ZERO
    for f in fills:
        book.apply_fill(f)
        cash += f.cash_delta
        position += f.position_delta
        h = book.holding(A)
        assert h.position == position
        assert h.open_cost >= 0
        assert h.open_cost == 0 or h.position != 0
        no_claims = max(-h.position, ZERO)
        # The open claims carried at what they cost reconcile realized PnL with the cash.
        assert h.realized - h.open_cost + no_claims == cash
    h = book.holding(A)
    assert (h.fees, h.volume, h.fills) == (
        sum(f.fee for f in fills),
        sum(f.count for f in fills),
        len(fills),
    )
    yes_pays = ONE if result == "yes" else ZERO
    marked = h.value(yes_pays)
    assert book.settle(A, result) == marked  # settling is marking at 0 or 1
    assert book.holding(A).realized == cash + position * yes_pays
    assert book.pnl({}) == PnL(h.realized + marked, ZERO, h.fees, h.realized + marked)


@settings(max_examples=100, deadline=None)
@given(fills=_fills, data=st.data())
def test_duplicates_change_nothing(fills: list[Fill], data: st.DataObject) -> None:
    replayed = data.draw(st.lists(st.sampled_from(fills)))
    once = book_of(*fills)
    twice = book_of(*fills)
    assert not any(twice.apply_fill(f) for f in replayed)
    assert twice.holdings() == once.holdings()


# --------------------------------------------------------------------------- mismatch counter


def test_mismatch_counter_trips_on_repeats_within_the_window() -> None:
    counter = MismatchCounter(limit=3, window=60)
    assert not counter.note("G1", T0)
    assert not counter.note("G1", T0 + timedelta(seconds=30))
    assert not counter.note("G2", T0 + timedelta(seconds=31))
    assert counter.note("G1", T0 + timedelta(seconds=60))
    assert not counter.note("G1", T0 + timedelta(seconds=200))  # the old ones fell out
    with pytest.raises(ValueError, match="must be >= 1"):
        MismatchCounter(limit=0, window=60)


# --------------------------------------------------------------------------- reconcile


@pytest.fixture
async def alice(venue: Venue) -> AsyncIterator[KalshiRest]:
    async with KalshiRest(venue.rest_url, venue.alice, retry=Retry(attempts=1)) as client:
        yield client


@pytest.fixture
async def bob(venue: Venue) -> AsyncIterator[KalshiRest]:
    async with KalshiRest(venue.rest_url, venue.bob) as client:
        yield client


async def trade(alice: KalshiRest, bob: KalshiRest, *counts: str) -> list[Fill]:
    """Alice rests a bid at 0.45 that bob hits once per count; alice's fills, oldest first."""
    await alice.create_order(OrderRequest(NBA, Side.BID, D("0.45"), D(20)))
    for n in counts:
        ioc = OrderRequest(NBA, Side.ASK, D("0.45"), D(n), time_in_force="immediate_or_cancel")
        await bob.create_order(ioc)
    return sorted(await alice.fills(ticker=NBA), key=lambda f: f.ts)


def truth(venue: Venue, ticker: str = NBA) -> Decimal:
    return cc_to_count(venue.exchange.position("alice", ticker).position)


def an_hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


def later() -> datetime:
    """A reconciliation time past the quiet period of the fills just made."""
    return datetime.now(UTC) + timedelta(seconds=10)


async def test_reconcile_backfills_a_fill_the_stream_missed(
    venue: Venue, alice: KalshiRest, bob: KalshiRest
) -> None:
    first, second = await trade(alice, bob, "4", "3")
    book = book_of(first)
    report = await reconcile(book, alice, [NBA, EPL], since=None, now=later())
    assert (report.backfilled, report.mismatches, report.checked) == ((second,), (), 2)
    assert report.skipped_recent == ()
    h = book.holding(NBA)
    assert h.position == D(7) == truth(venue)
    fees = sum(f.fee for f in venue.exchange.account("alice").fills)
    assert h.open_cost == D("3.15") + fees == venue.exchange.position("alice", NBA).cost + fees
    again = await reconcile(book, alice, [NBA], since=None, now=later())
    assert (again.backfilled, again.mismatches) == ((), ())


async def test_reconcile_adopts_and_reports_a_mismatch(
    venue: Venue, alice: KalshiRest, bob: KalshiRest
) -> None:
    fills = await trade(alice, bob, "4")
    ghost = fill(Side.BID, "0.50", "5", ticker=EPL, ts=an_hour_ago())
    book = book_of(*fills, ghost)
    report = await reconcile(book, alice, [NBA, EPL], since=None, now=later())
    assert report.mismatches == (Mismatch(EPL, D(5), ZERO),)
    assert (report.backfilled, report.checked) == ((), 2)
    assert (book.holding(EPL).position, book.holding(EPL).open_cost) == (ZERO, ZERO)
    assert book.holding(NBA).position == D(4) == truth(venue)


async def test_a_market_settled_here_is_not_taken_for_a_mismatch(
    venue: Venue, alice: KalshiRest, bob: KalshiRest
) -> None:
    # Settled at its determined result, while the exchange still shows the position until
    # it pays out: comparing would adopt the position back, and it would never settle.
    fills = await trade(alice, bob, "4")
    book = book_of(*fills)
    book.settle(NBA, "yes")
    report = await reconcile(book, alice, [NBA], since=None, now=later())
    assert (report.mismatches, report.checked) == ((), 1)
    assert book.holding(NBA).position == ZERO
    assert truth(venue) == D(4)


async def test_with_suspects_a_difference_is_adopted_only_on_a_second_look(
    alice: KalshiRest, bob: KalshiRest
) -> None:
    fills = await trade(alice, bob, "4")
    ghost = fill(Side.BID, "0.50", "5", ticker=EPL, ts=an_hour_ago())
    book = book_of(*fills, ghost)
    suspects: dict[str, Decimal] = {}
    first = await reconcile(book, alice, [NBA, EPL], since=None, now=later(), suspects=suspects)
    assert first.mismatches == ()
    assert first.suspected == (Mismatch(EPL, D(5), ZERO),)
    assert book.holding(EPL).position == D(5)  # not yet: it may be a fill still on its way
    second = await reconcile(book, alice, [NBA, EPL], since=None, now=later(), suspects=suspects)
    assert second.mismatches == (Mismatch(EPL, D(5), ZERO),)
    assert book.holding(EPL).position == ZERO
    assert suspects == {}


async def test_reconcile_prices_an_adopted_position_at_the_exchange_cost(
    venue: Venue, alice: KalshiRest, bob: KalshiRest
) -> None:
    await trade(alice, bob, "4")
    book = PositionBook()
    since = datetime.now(UTC) + timedelta(minutes=1)  # no fill to backfill
    # The exchange updated the position moments ago: REST may still lag, so wait.
    report = await reconcile(book, alice, [NBA], since=since, now=datetime.now(UTC))
    assert (report.skipped_recent, book.holding(NBA)) == ((NBA,), Holding(NBA))
    report = await reconcile(book, alice, [NBA], since=since, now=later())
    assert report.mismatches == (Mismatch(NBA, ZERO, D(4)),)
    h = book.holding(NBA)
    assert (h.position, h.open_cost, h.realized) == (D(4), D("1.80"), ZERO)
    assert h.position == truth(venue)


async def test_reconcile_skips_a_ticker_traded_moments_ago(
    venue: Venue, alice: KalshiRest, bob: KalshiRest
) -> None:
    fills = await trade(alice, bob, "4")
    ghost = fill(Side.BID, "0.50", "5", ticker=NBA, ts=an_hour_ago())
    book = book_of(*fills, ghost)
    report = await reconcile(book, alice, [NBA], since=None, now=datetime.now(UTC))
    assert (report.skipped_recent, report.checked, report.mismatches) == ((NBA,), 0, ())
    assert book.holding(NBA).position == D(9)  # left for the next pass
    report = await reconcile(book, alice, [NBA], since=None, now=later())
    assert report.mismatches == (Mismatch(NBA, D(9), D(4)),)
    assert book.holding(NBA).position == truth(venue)


async def test_a_failed_read_changes_nothing(
    venue: Venue, alice: KalshiRest, bob: KalshiRest, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = await trade(alice, bob, "4", "3")
    book = book_of(first, fill(Side.BID, "0.50", "5", ticker=EPL, ts=an_hour_ago()))
    before = book.holdings()
    real_positions = alice.positions

    async def positions_then_outage(**kwargs: Any) -> Any:
        answer = await real_positions(**kwargs)
        venue.faults.set(rest_5xx=1.0)  # the fills read that follows fails
        return answer

    monkeypatch.setattr(alice, "positions", positions_then_outage)
    with pytest.raises(KalshiError):
        await reconcile(book, alice, [NBA, EPL], since=None, now=later())
    assert book.holdings() == before
