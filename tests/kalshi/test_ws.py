"""The WebSocket client against the embedded exchange: books, private channels, faults.

Orders are placed straight into the exchange core (fast, and independent of the REST
client); the books are compared with the REST client's batch ``orderbooks`` read, which
parses the REST shape (NO bids in NO prices) by another path than the WS frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest
from kalshikit import Venue, eventually, new_signer
from speckit import validate_ws
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from kmm_interactive.domain import Side
from kmm_interactive.kalshi.messages import BookDelta, FillMsg, PositionMsg, UserOrderMsg
from kmm_interactive.kalshi.models import BookLevels
from kmm_interactive.kalshi.rest import KalshiRest
from kmm_interactive.kalshi.ws import (
    Connected,
    Disconnected,
    Event,
    KalshiWs,
    Reconnected,
    SequenceGap,
    SubscriptionLost,
)
from kmm_interactive.sim.exchange import ExchangeError

TRADER = "mm"  # a third account that places the random orders, straight into the core


async def open_ws(venue: Venue, **options: object) -> tuple[KalshiWs, list[Event]]:
    ws = KalshiWs(venue.ws_url, venue.alice, backoff_initial=0.02, backoff_max=0.2, **options)  # type: ignore[arg-type]
    seen: list[Event] = []
    ws.on_event(seen.append)
    ws.start()
    await ws.wait_connected(5)
    return ws, seen


async def rest_books(venue: Venue, tickers: list[str]) -> dict[str, BookLevels]:
    async with KalshiRest(venue.rest_url, venue.alice) as rest:
        return await rest.orderbooks(tickers)


def as_levels(ws: KalshiWs, ticker: str) -> BookLevels:
    return ws.books[ticker].as_levels()


def same(a: BookLevels, b: BookLevels) -> bool:
    return sorted(a.bids) == sorted(b.bids) and sorted(a.asks) == sorted(b.asks)


async def books_agree(venue: Venue, ws: KalshiWs, tickers: list[str]) -> None:
    """Wait until every WS book is fresh and equal to the REST book, then check once more."""

    async def check() -> bool:
        rest = await rest_books(venue, tickers)
        return all(not ws.books[t].stale and same(as_levels(ws, t), rest[t]) for t in tickers)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not await check():
        if loop.time() > deadline:
            rest = await rest_books(venue, tickers)
            bad = [t for t in tickers if not same(as_levels(ws, t), rest[t]) or ws.books[t].stale]
            pytest.fail(f"WS books differ from REST (or are stale) for {bad[:3]}")
        await asyncio.sleep(0.05)


def random_orders(
    venue: Venue, n: int, seed: int, tickers: list[str]
) -> Callable[[], Awaitable[None]]:
    rng = random.Random(seed)
    exchange = venue.exchange
    if TRADER not in exchange.accounts:
        exchange.open_account(TRADER, Decimal(10_000_000))
        exchange.open_account(TRADER + "2", Decimal(10_000_000))

    async def run() -> None:
        resting: list[tuple[str, str]] = []
        for i in range(n):
            user = TRADER if rng.random() < 0.5 else TRADER + "2"
            if resting and rng.random() < 0.25:
                who, oid = resting.pop(rng.randrange(len(resting)))
                with contextlib.suppress(ExchangeError):  # it had filled meanwhile
                    exchange.cancel_order(who, oid)
            else:
                ticker = rng.choice(tickers)
                market = exchange.markets[ticker]
                mid = len(market.grid) // 2
                tick = rng.randint(max(0, mid - 15), min(len(market.grid) - 1, mid + 15))
                count = Decimal(rng.randint(1, 2000)) / (100 if rng.random() < 0.3 else 1)
                order = exchange.create_order(
                    user,
                    ticker=ticker,
                    side=rng.choice(["bid", "ask"]),
                    price=market.grid.wire(tick),
                    count=f"{min(count, Decimal(500)):.2f}",
                    time_in_force="good_till_canceled",
                    self_trade_prevention_type="maker",
                )
                if order.status == "resting":
                    resting.append((user, order.order_id))
            if i % 20 == 0:
                await asyncio.sleep(0)  # let the frames flow, as a live market would

    return run


def open_tickers(venue: Venue) -> list[str]:
    return sorted(t for t, m in venue.exchange.markets.items() if m.status == "active")


async def test_books_equal_the_rest_books_after_1000_random_orders(venue: Venue):
    tickers = open_tickers(venue)
    ws, seen = await open_ws(venue)
    try:
        await ws.subscribe("orderbook_delta", tickers)
        await eventually(lambda: all(not ws.books[t].stale for t in tickers), "snapshots")
        await random_orders(venue, 1000, seed=5, tickers=tickers)()
        await books_agree(venue, ws, tickers)
        deltas = sum(isinstance(e, BookDelta) for e in seen)
        assert deltas > 500
        assert ws.stats.gaps == ws.stats.duplicates == ws.stats.malformed == 0
        assert ws.stats.last_age is not None
        assert ws.stats.last_age < 60
        assert isinstance(seen[0], Connected)
        assert not seen[0].reconnect
    finally:
        await ws.close()


async def test_add_and_delete_markets_follow_the_wanted_set(venue: Venue):
    first, second, *_ = open_tickers(venue)
    ws, _ = await open_ws(venue)
    try:
        await ws.subscribe("orderbook_delta", [first])
        await eventually(lambda: not ws.books[first].stale, "first snapshot")
        await ws.subscribe("orderbook_delta", [second])  # adds to the same subscription
        await eventually(lambda: second in ws.books and not ws.books[second].stale, "added")
        await ws.unsubscribe("orderbook_delta", [first])
        assert first not in ws.books
        await random_orders(venue, 200, seed=2, tickers=[first, second])()
        await books_agree(venue, ws, [second])
        assert first not in ws.books  # deltas for a deleted market are not applied
    finally:
        await ws.close()


async def test_fills_orders_and_positions_arrive_on_the_private_channels(venue: Venue):
    ticker = open_tickers(venue)[0]
    ws, seen = await open_ws(venue)
    try:
        for channel in ("fill", "user_orders", "market_positions"):
            await ws.subscribe(channel)
        await eventually(lambda: len(ws._by_sid) == 3, "three subscriptions")
        ex = venue.exchange
        price = ex.markets[ticker].grid.wire(len(ex.markets[ticker].grid) // 2)
        mine = ex.create_order(
            "alice",
            ticker=ticker,
            side="bid",
            price=price,
            count="7.50",
            time_in_force="good_till_canceled",
            self_trade_prevention_type="maker",
            client_order_id="alice-1",
        )
        ex.create_order(
            "bob",
            ticker=ticker,
            side="ask",
            price=price,
            count="5.00",
            time_in_force="immediate_or_cancel",
            self_trade_prevention_type="maker",
        )
        await eventually(lambda: any(isinstance(e, FillMsg) for e in seen), "a fill")
        await eventually(lambda: any(isinstance(e, PositionMsg) for e in seen), "a position")
        fill = next(e for e in seen if isinstance(e, FillMsg)).fill
        assert fill.order_id == mine.order_id
        assert fill.client_order_id == "alice-1"
        assert fill.side is Side.BID
        assert fill.count == Decimal("5.00")
        assert not fill.is_taker
        assert str(fill.price) == price or fill.price == Decimal(price)
        position = [e for e in seen if isinstance(e, PositionMsg)][-1]
        assert position.position == Decimal("5.00") == ex.position("alice", ticker).position / 100
        orders = [e.order for e in seen if isinstance(e, UserOrderMsg)]
        assert orders[-1].order_id == mine.order_id
        assert orders[-1].remaining == Decimal("2.50")
    finally:
        await ws.close()


async def test_a_dropped_connection_reconnects_resubscribes_and_resyncs(venue: Venue):
    tickers = open_tickers(venue)
    ws, seen = await open_ws(venue)
    try:
        await ws.subscribe("orderbook_delta", tickers)
        await ws.subscribe("fill")
        await eventually(lambda: all(not ws.books[t].stale for t in tickers), "snapshots")
        venue.faults.set(ws_drop=0.3)
        trade = random_orders(venue, 600, seed=9, tickers=tickers)
        await trade()
        await eventually(lambda: ws.stats.reconnects >= 2, "two reconnects")
        venue.faults.set(ws_drop=0)
        await trade()
        await books_agree(venue, ws, tickers)
        assert venue.faults.counts["ws_drop"] >= 2
        kinds = [type(e) for e in seen]
        assert Disconnected in kinds
        assert Reconnected in kinds
        # Every channel came back: the fill subscription is live again on the new connection.
        assert {ch.name for ch in ws._by_sid.values()} == {"orderbook_delta", "fill"}
    finally:
        await ws.close()


@pytest.mark.parametrize(
    ("fault", "counter"),
    [("seq_gap", "gaps"), ("duplicate_frame", "duplicates"), ("malformed_frame", "malformed")],
)
async def test_faulty_frames_are_recovered_or_skipped_and_books_stay_exact(
    venue: Venue, fault: str, counter: str
):
    tickers = open_tickers(venue)
    ws, seen = await open_ws(venue)
    try:
        await ws.subscribe("orderbook_delta", tickers)
        await eventually(lambda: all(not ws.books[t].stale for t in tickers), "snapshots")
        venue.faults.set(**{fault: 0.05})
        await random_orders(venue, 600, seed=11, tickers=tickers)()
        venue.faults.set(**{fault: 0})
        await random_orders(venue, 100, seed=12, tickers=tickers)()
        await books_agree(venue, ws, tickers)
        fired = venue.faults.counts[fault]
        assert fired > 0, f"the {fault} fault never fired"
        assert getattr(ws.stats, counter) > 0
        if fault == "malformed_frame":
            assert ws.stats.malformed == fired
        if fault == "seq_gap":
            assert ws.stats.snapshots_requested > 0
            assert any(isinstance(e, SequenceGap) for e in seen)
    finally:
        await ws.close()


async def test_a_bad_key_is_refused_and_retried_without_crashing(venue: Venue):
    ws = KalshiWs(venue.ws_url, new_signer("key-alice"), backoff_initial=0.02)
    seen: list[Event] = []
    ws.on_event(seen.append)
    ws.start()
    try:
        await eventually(lambda: any(isinstance(e, Disconnected) for e in seen), "a refusal")
        assert ws.stats.connects == 0
        assert not ws.connected
    finally:
        await ws.close()


# --------------------------------------------------------------------------- scripted server


class Script:
    """A tiny WS server whose behaviour each test writes, to reach what the sim cannot."""

    def __init__(self) -> None:
        self.commands: list[dict[str, object]] = []
        self.connections = 0
        self.handler: Callable[[ServerConnection, int], Awaitable[None]] | None = None

    async def __call__(self, conn: ServerConnection) -> None:
        self.connections += 1
        assert self.handler is not None
        await self.handler(conn, self.connections)

    async def command(self, conn: ServerConnection) -> dict[str, object]:
        """The next command the client sends, checked against Kalshi's AsyncAPI schema."""
        cmd = json.loads(await conn.recv())
        validate_ws(cmd, COMMAND_SCHEMAS[cmd["cmd"]])
        self.commands.append(cmd)
        return cmd


COMMAND_SCHEMAS = {
    "subscribe": "subscribeCommandPayload",
    "unsubscribe": "unsubscribeCommandPayload",
    "update_subscription": "updateSubscriptionCommandPayload",
    "list_subscriptions": "listSubscriptionsCommandPayload",
}


def subscribed(cmd: dict[str, object], sid: int, channel: str) -> str:
    return json.dumps(
        {"id": cmd["id"], "type": "subscribed", "msg": {"sid": sid, "channel": channel}}
    )


def snapshot(sid: int, seq: int, ticker: str, bid: str) -> str:
    return json.dumps(
        {
            "type": "orderbook_snapshot",
            "sid": sid,
            "seq": seq,
            "msg": {"market_ticker": ticker, "yes_dollars_fp": [[bid, "10.00"]]},
        }
    )


async def scripted(
    script: Script, silence_timeout: float = 30.0
) -> tuple[KalshiWs, list[Event], Callable[[], Awaitable[None]]]:
    server = await serve(script, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1] if server.sockets else 0
    ws = KalshiWs(
        f"ws://127.0.0.1:{port}/trade-api/ws/v2",
        new_signer(),
        backoff_initial=0.02,
        backoff_max=0.1,
        silence_timeout=silence_timeout,
    )
    seen: list[Event] = []
    ws.on_event(seen.append)

    async def stop() -> None:
        await ws.close()
        server.close()
        await server.wait_closed()

    return ws, seen, stop


@pytest.mark.parametrize("code", [10, 25])
async def test_terminal_errors_resubscribe_and_resnapshot(code: int):
    script = Script()

    async def handler(conn: ServerConnection, _n: int) -> None:
        cmd = await script.command(conn)
        await conn.send(subscribed(cmd, 1, "orderbook_delta"))
        await conn.send(snapshot(1, 1, "T", "0.4000"))
        await conn.send(
            json.dumps({"type": "error", "sid": 1, "msg": {"code": code, "msg": "gone"}})
        )
        again = await script.command(conn)
        await conn.send(subscribed(again, 2, "orderbook_delta"))
        await conn.send(snapshot(2, 1, "T", "0.4500"))
        with contextlib.suppress(ConnectionClosed):
            while True:  # record (and check) whatever else the client sends
                await script.command(conn)

    script.handler = handler
    ws, seen, stop = await scripted(script)
    try:
        ws.start()
        await ws.subscribe("orderbook_delta", ["T"])
        await eventually(
            lambda: ws.books["T"].best_bid() == (Decimal("0.4500"), Decimal("10.00")), "resnapshot"
        )
        assert not ws.books["T"].stale
        await ws.resnapshot(["T"])
        await ws.list_subscriptions()
        await ws.subscribe("orderbook_delta", ["U"])
        await ws.unsubscribe("orderbook_delta", ["U"])
        await ws.unsubscribe("orderbook_delta")
        sent = ("update_subscription", "list_subscriptions", "update_subscription")
        sent += ("update_subscription", "unsubscribe")
        await eventually(lambda: len(script.commands) == 2 + len(sent), "every command")
        assert tuple(c["cmd"] for c in script.commands[2:]) == sent
        subscribes = [c for c in script.commands if c["cmd"] == "subscribe"]
        assert len(subscribes) == 2
        assert all(c["params"]["use_yes_price"] is True for c in subscribes)  # type: ignore[index]
        assert any(isinstance(e, SubscriptionLost) and e.code == code for e in seen)
        assert "T" not in ws.books  # the whole channel is gone
    finally:
        await stop()


async def test_silence_trips_the_watchdog_and_reconnects():
    script = Script()

    async def handler(conn: ServerConnection, _n: int) -> None:
        cmd = await script.command(conn)
        await conn.send(subscribed(cmd, 1, "fill"))
        await conn.wait_closed()  # then nothing: a stream gone quiet

    script.handler = handler
    ws, seen, stop = await scripted(script, silence_timeout=0.3)
    try:
        ws.start()
        await ws.subscribe("fill")
        await eventually(lambda: script.connections >= 2, "a reconnect after silence")
        assert ws.stats.watchdog_trips >= 1
        await eventually(lambda: any(isinstance(e, Reconnected) for e in seen), "reconnected")
    finally:
        await stop()


async def test_a_book_that_goes_negative_asks_for_a_snapshot_and_recovers():
    script = Script()

    async def handler(conn: ServerConnection, _n: int) -> None:
        cmd = await script.command(conn)
        await conn.send(subscribed(cmd, 1, "orderbook_delta"))
        await conn.send(snapshot(1, 1, "T", "0.4000"))
        delta = {"market_ticker": "T", "price_dollars": "0.4000", "delta_fp": "-25.00"}
        delta |= {"side": "yes"}
        await conn.send(json.dumps({"type": "orderbook_delta", "sid": 1, "seq": 2, "msg": delta}))
        again = await script.command(conn)
        assert again["params"] == {  # what a resnapshot must ask for
            "sid": 1,
            "market_tickers": ["T"],
            "action": "get_snapshot",
        }
        await conn.send(snapshot(1, 3, "T", "0.3900"))
        await conn.wait_closed()

    script.handler = handler
    ws, _, stop = await scripted(script)
    try:
        ws.start()
        await ws.subscribe("orderbook_delta", ["T"])
        fresh = (Decimal("0.3900"), Decimal("10.00"))
        await eventually(lambda: ws.books["T"].best_bid() == fresh, "the new snapshot")
        assert not ws.books["T"].stale
        assert ws.books["T"].negative_levels == 1
        assert ws.stats.gaps == 0
    finally:
        await stop()
