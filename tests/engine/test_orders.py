"""The order manager: the fewest writes (planned purely), explicit states, and the exchange
as the only judge of an order's state — lying and unapplied cancels, lost create answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from kalshikit import EPL, NBA, Venue

from kmm_interactive.domain import Order, OrderState, Side
from kmm_interactive.engine import orders
from kmm_interactive.engine.orders import OrderManager, Tracked, Write, plan_writes
from kmm_interactive.kalshi.rest import KalshiRest, OrderRequest, Retry
from kmm_interactive.sim.exchange import cc_to_count
from kmm_interactive.strategy.writes import WriteKind

D = Decimal
T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


def live(
    price: str,
    remaining: int,
    *,
    side: Side = Side.BID,
    ticker: str = NBA,
    state: OrderState = OrderState.RESTING,
    order_id: str | None = "o1",
    busy: bool = False,
    cid: str = "kmm-t-1",
    filled: int = 0,
) -> Tracked:
    order = Order(cid, ticker, side, D(price), D(remaining + filled), D(filled), state, order_id)
    return Tracked(order, "game", T0, T0, busy=busy)


def plan(
    desired: dict[tuple[str, Side], tuple[Decimal, int] | None], *orders: Tracked
) -> list[Write]:
    return plan_writes(desired, orders, refill_below=0.5)


# --------------------------------------------------------------------------- planning


def test_a_size_raised_above_what_the_order_was_placed_for_is_amended_up() -> None:
    (write,) = plan({(NBA, Side.BID): (D("0.40"), 30)}, live("0.40", 25))
    assert (write.kind, write.size, write.grows) == (WriteKind.AMEND, D(30), True)
    # Raised, but the order was placed for more and fills ate part of it: left alone.
    assert plan({(NBA, Side.BID): (D("0.40"), 30)}, live("0.40", 20, filled=20)) == []


def test_nothing_is_sent_when_desired_and_live_agree() -> None:
    assert plan({(NBA, Side.BID): (D("0.40"), 25)}, live("0.40", 25)) == []
    # Partly filled but above the refill line: left alone (keeps its queue place).
    assert plan({(NBA, Side.BID): (D("0.40"), 25)}, live("0.40", 13, filled=12)) == []


def test_a_price_move_is_one_amend_and_a_size_cut_one_decrease() -> None:
    (amend,) = plan({(NBA, Side.BID): (D("0.41"), 25)}, live("0.40", 25))
    assert (amend.kind, amend.price, amend.size, amend.client_order_id) == (
        WriteKind.AMEND,
        D("0.41"),
        D(25),
        "kmm-t-1",
    )
    assert not amend.grows
    (cut,) = plan({(NBA, Side.BID): (D("0.40"), 10)}, live("0.40", 25))
    assert (cut.kind, cut.size, cut.grows) == (WriteKind.DECREASE, D(10), False)
    (refill,) = plan({(NBA, Side.BID): (D("0.40"), 25)}, live("0.40", 12))
    assert (refill.kind, refill.size, refill.grows) == (WriteKind.AMEND, D(25), True)


def test_creates_and_cancels() -> None:
    (create,) = plan({(NBA, Side.ASK): (D("0.55"), 10)})
    assert (create.kind, create.side, create.price, create.grows) == (
        WriteKind.CREATE,
        Side.ASK,
        D("0.55"),
        True,
    )
    (cancel,) = plan({(NBA, Side.BID): None}, live("0.40", 25))
    assert (cancel.kind, cancel.client_order_id) == (WriteKind.CANCEL, "kmm-t-1")
    (cancel,) = plan({}, live("0.40", 25))  # a side not mentioned wants nothing
    assert cancel.kind is WriteKind.CANCEL
    assert plan({(NBA, Side.BID): (D("0.40"), 0)}, live("0.40", 5))[0].kind is WriteKind.CANCEL


def test_sides_in_flight_or_unknown_are_left_alone() -> None:
    wanted = {(NBA, Side.BID): (D("0.41"), 25)}
    assert plan(wanted, live("0.40", 25, busy=True)) == []
    unknown = live("0.40", 25, state=OrderState.UNKNOWN, order_id=None)
    assert plan(wanted, unknown) == []  # never a second order beside an unknown one
    assert plan({}, unknown) == []  # and no cancel without an id
    known = live("0.40", 25, state=OrderState.UNKNOWN)
    assert [w.kind for w in plan({}, known)] == [WriteKind.CANCEL]


def test_extra_orders_on_one_side_are_cancelled_keeping_the_best_match() -> None:
    a = live("0.40", 25, cid="kmm-a", order_id="a")
    b = live("0.39", 30, cid="kmm-b", order_id="b")
    writes = plan({(NBA, Side.BID): (D("0.40"), 25)}, a, b)
    assert [(w.kind, w.client_order_id) for w in writes] == [(WriteKind.CANCEL, "kmm-b")]


# --------------------------------------------------------------------------- against the exchange


def clock() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def alice(venue: Venue) -> AsyncIterator[KalshiRest]:
    retry = Retry(attempts=4, base_delay=0.001, max_delay=0.005)
    async with KalshiRest(venue.rest_url, venue.alice, retry=retry) as client:
        yield client


@pytest.fixture
async def bob(venue: Venue) -> AsyncIterator[KalshiRest]:
    async with KalshiRest(venue.rest_url, venue.bob) as client:
        yield client


def manager(rest: KalshiRest, **options: object) -> OrderManager:
    return OrderManager(
        rest,
        run_id="t1",
        clock=clock,
        confirm_after=0.05,
        group_limit=500,
        **options,  # type: ignore[arg-type]
    )


def resting_at_exchange(venue: Venue) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """(ticker, side) → (price, remaining) of alice's live orders, from the exchange itself."""
    out = {}
    for o in venue.exchange.live_orders("alice"):
        out[(o.ticker, o.book_side)] = (D(o.price), cc_to_count(o.remaining))
    return out


QUOTES: dict[tuple[str, Side], tuple[Decimal, int] | None] = {
    (NBA, Side.BID): (D("0.40"), 10),
    (NBA, Side.ASK): (D("0.60"), 10),
    (EPL, Side.BID): (D("0.30"), 5),
    (EPL, Side.ASK): (D("0.70"), 5),
}


async def test_a_game_is_quoted_requoted_and_pulled_with_minimal_writes(
    venue: Venue, alice: KalshiRest
) -> None:
    om = manager(alice)
    sent = await om.apply("g", QUOTES)
    await om.wait_idle()
    assert sorted(w.kind for w in sent) == [WriteKind.CREATE] * 4
    assert om.stats.writes[WriteKind.CREATE] == 4
    assert {t.order.state for t in om.tracked("g")} == {OrderState.RESTING}
    assert all(t.order.client_order_id.startswith("kmm-t1-") for t in om.tracked("g"))
    group = om.group_of("g")
    assert group is not None
    assert all(o.order_group_id == group for o in venue.exchange.live_orders("alice"))
    before = {t.order.order_id for t in om.tracked("g")}

    assert await om.apply("g", QUOTES) == []  # nothing changed, nothing sent

    moved = dict(QUOTES)
    moved[(NBA, Side.BID)] = (D("0.41"), 10)
    moved[(EPL, Side.ASK)] = (D("0.70"), 3)
    sent = await om.apply("g", moved)
    await om.wait_idle()
    assert sorted(w.kind for w in sent) == [WriteKind.AMEND, WriteKind.DECREASE]
    assert {t.order.order_id for t in om.tracked("g")} == before  # same orders
    book = resting_at_exchange(venue)
    assert book[(NBA, "bid")][0] == D("0.41")
    assert book[(EPL, "ask")][1] == D(3)

    sent = await om.apply("g", {})
    await om.wait_idle()
    assert [w.kind for w in sent] == [WriteKind.CANCEL] * 4
    assert resting_at_exchange(venue) == {}
    # Acknowledged is not confirmed: PENDING_CANCEL until the exchange's word (REST here).
    assert {t.order.state for t in om.tracked("g")} == {OrderState.PENDING_CANCEL}
    await asyncio.sleep(0.06)
    await om.verify()
    assert om.tracked("g") == []


async def test_new_orders_expire_on_the_exchange_itself_when_the_game_stops(
    venue: Venue, alice: KalshiRest
) -> None:
    # The backstop for a process that dies: the exchange takes the orders off at the stop.
    om = manager(alice)
    stop = datetime.now(UTC) + timedelta(seconds=2.7)
    await om.apply("g", {(NBA, Side.BID): (D("0.40"), 10)}, expires=stop)
    await om.wait_idle()
    (order,) = venue.exchange.live_orders("alice")
    assert order.expiration == int(stop.timestamp())  # whole seconds, never after the stop
    moved = {(NBA, Side.BID): (D("0.41"), 10)}
    await om.apply("g", moved, expires=stop)
    await om.wait_idle()
    (order,) = venue.exchange.live_orders("alice")
    assert (order.price, order.expiration) == (D("0.41"), int(stop.timestamp()))
    await asyncio.sleep(max(int(stop.timestamp()) - time.time(), 0) + 0.05)
    venue.exchange.advance()
    assert list(venue.exchange.live_orders("alice")) == []
    # Once the stop's second has come, no create goes out (its expiry would be refused);
    # what shrinks still does.
    assert await om.apply("g2", {(EPL, Side.ASK): (D("0.70"), 5)}, expires=stop) == []
    assert await om.apply("g3", {(EPL, Side.ASK): (D("0.70"), 5)}) != []  # no expiry: sent
    await om.wait_idle()


async def test_a_decision_right_after_another_sends_nothing_twice(
    venue: Venue, alice: KalshiRest
) -> None:
    # The next decision can come before the first one's write tasks have started: the
    # sides they write must already look busy, or they would be written twice.
    om = manager(alice)
    first = await om.apply("g", QUOTES)
    again = await om.apply("g", QUOTES)
    assert len(first) == 4
    assert again == []
    await om.wait_idle()
    moved = dict(QUOTES)
    moved[(NBA, Side.BID)] = (D("0.41"), 10)
    (amend,) = await om.apply("g", moved)
    assert await om.apply("g", moved) == []
    assert amend.kind is WriteKind.AMEND
    await om.wait_idle()
    assert len(list(venue.exchange.live_orders("alice"))) == 4
    assert om.stats.writes[WriteKind.CREATE] == 4


async def test_lying_and_unapplied_cancels_are_sent_again_until_the_order_is_gone(
    venue: Venue, alice: KalshiRest
) -> None:
    om = manager(alice)
    await om.apply("g", QUOTES)
    await om.wait_idle()
    venue.faults.set(lying_cancel=1.0, cancel_not_applied=3)
    await om.apply("g", {})
    await om.wait_idle()
    for _ in range(40):
        if not om.tracked("g"):
            break
        await asyncio.sleep(0.06)
        await om.verify()
        await om.wait_idle()
    assert om.tracked("g") == []
    assert resting_at_exchange(venue) == {}
    assert venue.faults.counts["cancel_not_applied"] == 3
    assert om.stats.recancels >= 1


async def test_growth_waits_until_the_game_is_settled(venue: Venue, alice: KalshiRest) -> None:
    om = manager(alice)
    await om.apply("g", {(NBA, Side.BID): (D("0.40"), 10)})
    await om.wait_idle()
    # Pull the bid and ask for an ask: the cancel goes first, the create only once the
    # cancel is confirmed (before, both could rest and fill at once).
    sent = await om.apply("g", {(NBA, Side.ASK): (D("0.60"), 10)})
    assert [w.kind for w in sent] == [WriteKind.CANCEL]
    await om.wait_idle()
    assert await om.apply("g", {(NBA, Side.ASK): (D("0.60"), 10)}) == []  # not confirmed yet
    await asyncio.sleep(0.06)
    await om.verify()
    sent = await om.apply("g", {(NBA, Side.ASK): (D("0.60"), 10)})
    assert [w.kind for w in sent] == [WriteKind.CREATE]
    await om.wait_idle()
    assert resting_at_exchange(venue) == {(NBA, "ask"): (D("0.60"), D(10))}


async def test_a_create_whose_answer_is_lost_is_unknown_then_resolved(venue: Venue) -> None:
    real = httpx.AsyncHTTPTransport()

    class AnswerLost(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await real.handle_async_request(request)
            if request.method == "POST" and request.url.path.endswith("/orders"):
                await response.aclose()
                raise httpx.ReadTimeout("read timed out", request=request)
            return response

    async with KalshiRest(
        venue.rest_url, venue.alice, retry=Retry(attempts=1), transport=AnswerLost()
    ) as rest:
        om = manager(rest)
        await om.apply("g", {(NBA, Side.BID): (D("0.40"), 10)})
        await om.wait_idle()
        (tracked,) = om.tracked("g")
        assert tracked.order.state is OrderState.UNKNOWN
        assert tracked.order.order_id is None
        # Nothing more is sent on that side while it is unknown: no duplicate.
        assert await om.apply("g", {(NBA, Side.BID): (D("0.41"), 10)}) == []
        await asyncio.sleep(0.06)
        await om.verify()
    assert tracked.order.state is OrderState.RESTING
    assert tracked.order.order_id is not None
    (only,) = venue.exchange.live_orders("alice")
    assert only.order_id == tracked.order.order_id
    assert om.stats.unknown == 1


async def test_the_exchanges_word_settles_state(alice: KalshiRest) -> None:
    om = manager(alice)
    await om.apply("g", {(NBA, Side.BID): (D("0.40"), 10)})
    await om.wait_idle()
    (tracked,) = om.tracked("g")
    assert tracked.order.order_id is not None
    view = await alice.order(tracked.order.order_id)
    om.on_user_order(view)
    assert tracked.order.state is OrderState.RESTING
    # A fill shrinks what rests; a finished report makes it DONE; a late answer changes nothing.
    await alice.cancel_order(tracked.order.order_id)
    om.on_user_order(await alice.order(tracked.order.order_id))
    assert tracked.order.state is OrderState.DONE
    assert om.tracked("g") == []


async def test_finished_orders_are_forgotten_in_time_even_when_nothing_else_finishes(
    alice: KalshiRest, monkeypatch: pytest.MonkeyPatch
) -> None:
    om = manager(alice)
    await om.apply("g", {(NBA, Side.BID): (D("0.40"), 10)})
    await om.wait_idle()
    (tracked,) = om.tracked("g")
    cid, oid = tracked.order.client_order_id, tracked.order.order_id
    assert oid is not None
    await alice.cancel_order(oid)
    om.on_user_order(await alice.order(oid))
    assert om.find(order_id=oid) is tracked  # kept a while, for late messages about it
    # Past DONE_KEPT, the verifier's next pass forgets it: no other order has to finish.
    monkeypatch.setattr(orders, "DONE_KEPT", 0.0)
    verifier = asyncio.create_task(om.run_verifier(interval=0.01))
    try:
        await asyncio.sleep(0.1)
    finally:
        verifier.cancel()
    assert om.find(client_order_id=cid) is None
    assert om.find(order_id=oid) is None


async def test_finished_records_are_kept_up_to_a_number_whatever_the_rate(
    alice: KalshiRest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orders, "DONE_KEPT_MAX", 2)
    om = manager(alice)
    ids = []
    for price in ("0.30", "0.31", "0.32"):
        await om.apply("g", {(NBA, Side.BID): (D(price), 1)})
        await om.wait_idle()
        (tracked,) = om.tracked("g")
        oid = tracked.order.order_id
        assert oid is not None
        await alice.cancel_order(oid)
        om.on_user_order(await alice.order(oid))
        ids.append(oid)
    # Within DONE_KEPT all three, but only the two newest are remembered.
    assert [om.find(order_id=i) is not None for i in ids] == [False, True, True]


async def test_reconciliation_finds_strangers_and_orders_we_lost(alice: KalshiRest) -> None:
    om = manager(alice)
    await om.apply("g", {(NBA, Side.BID): (D("0.40"), 10)})
    await om.wait_idle()
    other = OrderManager(alice, run_id="other", clock=clock)
    await other.apply("h", {(EPL, Side.BID): (D("0.20"), 5)})
    await other.wait_idle()
    resting = await alice.orders(status="resting")
    strangers = await om.reconcile_resting(resting, quiet_for=0.0)
    assert [s.ticker for s in strangers] == [EPL]
    assert om.owns(strangers[0].client_order_id)
    adopted = om.adopt(strangers[0], "h")
    assert adopted.order.state is OrderState.RESTING
    assert {t.order.ticker for t in om.tracked()} == {NBA, EPL}


async def test_nothing_grows_while_the_exchange_reports_fills_not_yet_booked(
    alice: KalshiRest, bob: KalshiRest
) -> None:
    # user_orders can tell "executed" before the fill message: the inventory that fill
    # brings is not in the positions yet, so the freed room must not be offered again.
    om = manager(alice)
    await om.apply("g", {(NBA, Side.BID): (D("0.40"), 5)})
    await om.wait_idle()
    (tracked,) = om.tracked("g")
    assert tracked.order.order_id is not None
    await bob.create_order(
        OrderRequest(NBA, Side.ASK, D("0.40"), D(5), time_in_force="immediate_or_cancel")
    )
    executed = await alice.order(tracked.order.order_id)
    assert executed.status == "executed"
    om.on_user_order(executed)  # the order's word first
    assert tracked.order.state is OrderState.DONE
    assert om.has_unbooked_fills("g")
    assert await om.apply("g", {(NBA, Side.BID): (D("0.40"), 5)}) == []  # no new bid yet
    (fill,) = await alice.fills(ticker=NBA)
    om.on_fill(fill)  # then the fill: booked, and the side may quote again
    assert not om.has_unbooked_fills("g")
    (create,) = await om.apply("g", {(NBA, Side.BID): (D("0.40"), 5)})
    assert create.kind is WriteKind.CREATE
    await om.wait_idle()
