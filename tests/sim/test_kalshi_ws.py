"""The embedded exchange's WebSocket: commands, channels, per-sid seq, snapshots, errors, faults.

Every frame received in these tests is validated against the AsyncAPI payload schema of its
type before anything else looks at it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from simkit import World, validate_ws

SCHEMAS = {
    "subscribed": "subscribedResponsePayload",
    "unsubscribed": "unsubscribedResponsePayload",
    "error": "errorResponsePayload",
    "orderbook_snapshot": "orderbookSnapshotPayload",
    "orderbook_delta": "orderbookDeltaPayload",
    "ticker": "tickerPayload",
    "trade": "tradePayload",
    "fill": "fillPayload",
    "user_order": "userOrderPayload",
    "market_position": "marketPositionPayload",
    "market_lifecycle_v2": "marketLifecycleV2Payload",
}
GTC = {"time_in_force": "good_till_canceled", "self_trade_prevention_type": "maker"}


class Stream:
    """A connected socket that validates every frame and keeps the malformed ones aside."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.malformed: list[str] = []
        self.next_id = 1

    async def send(self, cmd: str, params: dict[str, Any] | None = None) -> int:
        cmd_id = self.next_id
        self.next_id += 1
        body: dict[str, Any] = {"id": cmd_id, "cmd": cmd}
        if params is not None:
            body["params"] = params
        await self.ws.send_str(json.dumps(body))
        return cmd_id

    async def recv(self, timeout: float = 1.0) -> dict[str, Any]:
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), timeout)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"socket ended: {msg.type!r}")
            try:
                frame = json.loads(msg.data)
            except ValueError:
                self.malformed.append(msg.data)
                continue
            kind = frame["type"]
            if kind == "ok":
                schema = (
                    "listSubscriptionsResponsePayload"
                    if isinstance(frame.get("msg"), list)
                    else "okResponsePayload"
                )
            else:
                schema = SCHEMAS[kind]
            validate_ws(frame, schema)
            return frame

    async def take(self, n: int, timeout: float = 1.0) -> list[dict[str, Any]]:
        return [await self.recv(timeout) for _ in range(n)]

    async def quiet(self, timeout: float = 0.15) -> list[dict[str, Any]]:
        """Every frame that arrives before the socket goes quiet for ``timeout`` seconds."""
        frames = []
        while True:
            try:
                frames.append(await self.recv(timeout))
            except TimeoutError:
                return frames


@pytest.fixture
async def alice_ws(world: World) -> Any:
    ws = await world.alice.ws()
    yield Stream(ws)
    await ws.close()


def _rest(world: World, user: str, side: str, price: str, count: str = "10", **extra: Any) -> Any:
    return world.exchange.create_order(
        user, ticker=world.nba, side=side, price=price, count=count, **(GTC | extra)
    )


async def test_snapshot_then_gapless_deltas_rebuild_the_book(
    world: World, alice_ws: Stream
) -> None:
    _rest(world, "bob", "bid", "0.40")
    sid_frame = await alice_ws.send(
        "subscribe",
        {"channels": ["orderbook_delta"], "market_tickers": [world.nba], "use_yes_price": True},
    )
    subscribed, snapshot = await alice_ws.take(2)
    assert subscribed == {
        "id": sid_frame,
        "type": "subscribed",
        "msg": {"channel": "orderbook_delta", "sid": 1},
    }
    assert (snapshot["seq"], snapshot["msg"]["yes_dollars_fp"]) == (1, [["0.4000", "10.00"]])
    assert "no_dollars_fp" not in snapshot["msg"]  # an empty side is omitted
    _rest(world, "alice", "ask", "0.47", client_order_id="mine")
    _rest(world, "bob", "bid", "0.47", "4", time_in_force="immediate_or_cancel")
    o = _rest(world, "bob", "bid", "0.41", "3")
    world.exchange.decrease_order("bob", o.order_id, reduce_by="1")
    world.exchange.cancel_order("bob", o.order_id)
    deltas = await alice_ws.quiet()
    assert [d["seq"] for d in deltas] == list(range(2, 2 + len(deltas)))
    assert {d["type"] for d in deltas} == {"orderbook_delta"}
    book: dict[tuple[str, str], Decimal] = {("yes", "0.4000"): Decimal(10)}
    for d in deltas:
        key = (d["msg"]["side"], d["msg"]["price_dollars"])
        book[key] = book.get(key, Decimal(0)) + Decimal(d["msg"]["delta_fp"])
    assert {k: v for k, v in book.items() if v} == {("yes", "0.4000"): 10, ("no", "0.4700"): 6}
    own = [d["msg"].get("client_order_id") for d in deltas if d["msg"]["side"] == "no"]
    assert own[0] == "mine"  # our order rested: we caused that change
    assert own[1] is None  # Bob's taker caused the fill: not ours to see


async def test_no_levels_use_no_prices_unless_use_yes_price(world: World, alice_ws: Stream) -> None:
    _rest(world, "bob", "ask", "0.47")
    await alice_ws.send("subscribe", {"channels": ["orderbook_delta"], "market_ticker": world.nba})
    await alice_ws.send(
        "subscribe",
        {"channels": ["orderbook_delta"], "market_ticker": world.nba, "use_yes_price": True},
    )
    frames = await alice_ws.take(4)
    snaps = {
        f["sid"]: f["msg"]["no_dollars_fp"] for f in frames if f["type"] == "orderbook_snapshot"
    }
    assert snaps == {1: [["0.5300", "10.00"]], 2: [["0.4700", "10.00"]]}
    _rest(world, "bob", "ask", "0.48", "2")
    deltas = {f["sid"]: f["msg"]["price_dollars"] for f in await alice_ws.take(2)}
    assert deltas == {1: "0.5200", 2: "0.4800"}


async def test_get_snapshot_leaves_the_subscription_unchanged(
    world: World, alice_ws: Stream
) -> None:
    tickers = [world.nba, next(t for t in world.exchange.markets if t.endswith("-TIE"))]
    await alice_ws.send("subscribe", {"channels": ["orderbook_delta"], "market_tickers": tickers})
    await alice_ws.take(3)  # subscribed + two snapshots (seq 1, 2)
    _rest(world, "bob", "bid", "0.30")
    assert (await alice_ws.recv())["seq"] == 3
    cmd = await alice_ws.send(
        "update_subscription", {"sid": 1, "action": "get_snapshot", "market_tickers": [world.nba]}
    )
    snap = await alice_ws.recv()
    assert (snap["type"], snap["id"], snap["seq"]) == ("orderbook_snapshot", cmd, 4)
    assert snap["msg"]["yes_dollars_fp"] == [["0.3000", "10.00"]]
    await alice_ws.send("list_subscriptions")
    listed = await alice_ws.recv()
    assert listed["msg"] == [{"channel": "orderbook_delta", "sid": 1}]
    _rest(world, "bob", "bid", "0.31")
    assert (await alice_ws.recv())["seq"] == 5  # deltas carry on after the snapshot
    cmd = await alice_ws.send(
        "update_subscription",
        {"sids": [1], "action": "delete_markets", "market_tickers": [world.nba]},
    )
    ok = await alice_ws.recv()
    assert (ok["type"], ok["id"], ok["msg"]["market_tickers"]) == ("ok", cmd, [tickers[1]])
    _rest(world, "bob", "bid", "0.32")
    assert await alice_ws.quiet() == []
    await alice_ws.send(
        "update_subscription", {"sid": 1, "action": "add_markets", "market_tickers": [world.nba]}
    )
    ok, snap = await alice_ws.take(2)
    assert ok["msg"]["market_tickers"] == sorted(tickers)
    assert (snap["type"], snap["seq"]) == ("orderbook_snapshot", 6)
    await alice_ws.send("unsubscribe", {"sids": [1]})
    gone = await alice_ws.recv()
    assert (gone["type"], gone["sid"]) == ("unsubscribed", 1)
    _rest(world, "bob", "bid", "0.33")
    assert await alice_ws.quiet() == []


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ({"id": 1, "cmd": "dance", "params": {}}, 5),
        ({"id": 1, "cmd": "subscribe"}, 2),
        ({"id": 1, "cmd": "subscribe", "params": {}}, 3),
        ({"id": 1, "cmd": "subscribe", "params": {"channels": ["nope"]}}, 8),
        ({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}}, 14),
        (
            {
                "id": 1,
                "cmd": "subscribe",
                "params": {"channels": ["trade"], "market_ticker": "A", "market_tickers": ["B"]},
            },
            11,
        ),
        ({"id": 1, "cmd": "subscribe", "params": {"channels": ["communications"]}}, 10),
        ({"id": 1, "cmd": "unsubscribe", "params": {}}, 4),
        ({"id": 1, "cmd": "unsubscribe", "params": {"sids": [99]}}, 7),
        ({"id": 1, "cmd": "update_subscription", "params": {"sid": 1}}, 15),
        ({"id": 1, "cmd": "update_subscription", "params": {"sid": 1, "action": "dance"}}, 13),
        (
            {
                "id": 1,
                "cmd": "update_subscription",
                "params": {"sids": [1, 2], "action": "add_markets"},
            },
            12,
        ),
        (
            {
                "id": 1,
                "cmd": "update_subscription",
                "params": {"sid": 42, "action": "add_markets", "market_tickers": ["X"]},
            },
            7,
        ),
    ],
)
async def test_documented_error_codes(alice_ws: Stream, command: dict[str, Any], code: int) -> None:
    await alice_ws.ws.send_str(json.dumps(command))
    frame = await alice_ws.recv()
    assert (frame["type"], frame["msg"]["code"], frame["id"]) == ("error", code, 1)


async def test_non_json_gets_code_1_and_the_stream_survives(alice_ws: Stream) -> None:
    await alice_ws.ws.send_str("{not json")
    assert (await alice_ws.recv())["msg"]["code"] == 1
    await alice_ws.send("list_subscriptions")
    assert (await alice_ws.recv())["msg"] == []


async def test_private_channels_reach_only_their_owner(world: World, alice_ws: Stream) -> None:
    bob = Stream(await world.bob.ws())
    channels = ["fill", "user_orders", "market_positions", "trade", "ticker"]
    for s in (alice_ws, bob):
        await s.send("subscribe", {"channels": channels})
        await s.take(len(channels))
    _rest(world, "alice", "bid", "0.45", client_order_id="a1")
    _rest(
        world, "bob", "ask", "0.45", "4", time_in_force="immediate_or_cancel", client_order_id="b1"
    )
    mine = await alice_ws.quiet()
    theirs = await bob.quiet()
    await bob.ws.close()

    def kinds(frames: list[dict[str, Any]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in frames:
            out[f["type"]] = out.get(f["type"], 0) + 1
        return out

    assert kinds(mine) == {
        "user_order": 2,
        "ticker": 2,
        "fill": 1,
        "market_position": 1,
        "trade": 1,
    }
    assert kinds(theirs) == {
        "user_order": 1,
        "ticker": 2,
        "fill": 1,
        "market_position": 1,
        "trade": 1,
    }
    fill = next(f["msg"] for f in mine if f["type"] == "fill")
    assert (fill["client_order_id"], fill["is_taker"], fill["post_position_fp"]) == (
        "a1",
        False,
        "4.00",
    )
    assert {f["msg"]["client_order_id"] for f in mine if f["type"] == "user_order"} == {"a1"}
    pos = next(f["msg"] for f in theirs if f["type"] == "market_position")
    assert (pos["position_fp"], pos["position_cost_dollars"]) == ("-4.00", "2.2000")
    trade = next(f for f in mine if f["type"] == "trade")
    assert (trade["seq"], trade["msg"]["taker_book_side"], trade["msg"]["yes_price_dollars"]) == (
        1,
        "ask",
        "0.4500",
    )


async def test_lifecycle_close_determine_settle(world: World, alice_ws: Stream) -> None:
    await alice_ws.send("subscribe", {"channels": ["market_lifecycle_v2"]})
    await alice_ws.recv()
    world.exchange.determine(world.nba, "no")
    world.exchange.settle(world.nba)
    frames = await alice_ws.quiet()
    assert [(f["seq"], f["msg"]["event_type"]) for f in frames] == [
        (1, "close_date_updated"),
        (2, "determined"),
        (3, "settled"),
    ]
    assert (frames[1]["msg"]["result"], frames[1]["msg"]["settlement_value"]) == ("no", "0.0000")


async def _book_stream(
    world: World, stream: Stream, n_orders: int, **faults: float
) -> list[dict[str, Any]]:
    await stream.send("subscribe", {"channels": ["orderbook_delta"], "market_tickers": [world.nba]})
    await stream.take(2)
    world.faults.set(**faults)
    for i in range(n_orders):
        _rest(world, "bob", "bid", f"0.{10 + i}", "1")
    return await stream.quiet()


async def test_no_injected_faults_unless_switched_on(world: World, alice_ws: Stream) -> None:
    frames = await _book_stream(world, alice_ws, 40)
    assert [f["seq"] for f in frames] == list(range(2, 42))
    assert not alice_ws.malformed
    assert not world.faults.counts


async def test_injected_gaps_duplicates_and_garbage_happen_when_on(
    world: World, alice_ws: Stream
) -> None:
    frames = await _book_stream(
        world, alice_ws, 60, seq_gap=0.2, duplicate_frame=0.2, malformed_frame=0.2
    )
    seqs = [f["seq"] for f in frames]
    counts = world.faults.counts
    assert counts["seq_gap"] > 0
    assert counts["duplicate_frame"] > 0
    assert counts["malformed_frame"] > 0
    gaps = sum(1 for a, b in itertools.pairwise(seqs) if b > a + 1)
    dups = sum(1 for a, b in itertools.pairwise(seqs) if b == a)
    assert gaps >= 1
    assert dups == counts["duplicate_frame"]
    assert len(alice_ws.malformed) == counts["malformed_frame"]


async def test_injected_drop_closes_the_socket(world: World) -> None:
    world.faults.set(ws_drop=0.2)
    stream = Stream(await world.alice.ws())
    with pytest.raises(ConnectionError):
        await stream.recv(timeout=2.0)
    assert world.faults.counts["ws_drop"] == 1


async def test_server_pings_with_a_heartbeat_payload(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmm_interactive.sim import ws as ws_module

    monkeypatch.setattr(ws_module, "PING_INTERVAL", 0.1)
    sock = await world.alice.ws(autoping=False)
    msg = await sock.receive(timeout=2)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.PING, b"heartbeat")
    await sock.close()


@pytest.mark.parametrize(
    "params",
    [
        {"cmd": "unsubscribe", "params": {"sids": [[1]]}},
        {"cmd": "unsubscribe", "params": {"sids": [True]}},
        {
            "cmd": "subscribe",
            "params": {
                "channels": ["ticker"],
                "market_tickers": ["NOPE"],
                "send_initial_snapshot": True,
            },
        },
        {"cmd": "subscribe", "params": {"channels": ["fill"], "market_id": "abc"}},
        {"cmd": "subscribe", "params": {"channels": ["trade", "bogus"]}},
        {"cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": []}},
        {"cmd": "subscribe", "params": {"channels": [["x"]]}},
    ],
)
async def test_hostile_commands_get_an_error_and_change_nothing(
    alice_ws: Stream, params: dict[str, Any]
) -> None:
    await alice_ws.ws.send_str(json.dumps({"id": 9, **params}))
    frame = await alice_ws.recv()
    assert frame["type"] == "error"
    await alice_ws.send("list_subscriptions")
    assert (await alice_ws.recv())["msg"] == []  # nothing half-created, socket alive


async def test_deeply_nested_json_does_not_kill_the_socket(alice_ws: Stream) -> None:
    await alice_ws.ws.send_str("[" * 100_000 + "]" * 100_000)
    assert (await alice_ws.recv())["msg"]["code"] == 1
    await alice_ws.send("list_subscriptions")
    assert (await alice_ws.recv())["type"] == "ok"


async def test_a_reader_that_falls_behind_gets_error_25_on_every_channel(
    world: World, alice_ws: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmm_interactive.sim import ws as ws_module

    monkeypatch.setattr(ws_module, "QUEUE_LIMIT", 20)
    await alice_ws.send("subscribe", {"channels": ["user_orders", "fill"]})
    await alice_ws.take(2)
    for i in range(30):  # 30 user_order frames queued at once: more than the limit
        _rest(world, "alice", "bid", f"0.{10 + i:02d}", "1")
    # A new book subscription arrives while the queue is still full: its snapshots overflow
    # too, and it gets one error 25, not one per snapshot.
    tickers = list(world.exchange.markets)
    await alice_ws.send("subscribe", {"channels": ["orderbook_delta"], "market_tickers": tickers})
    frames = await alice_ws.quiet()
    errors = [f for f in frames if f["type"] == "error"]
    assert [(e["sid"], e["msg"]["code"]) for e in errors] == [(1, 25), (3, 25)]
    assert len([f for f in frames if f["type"] == "user_order"]) == 20
    await alice_ws.send("list_subscriptions")
    assert (await alice_ws.recv())["msg"] == [{"channel": "fill", "sid": 2}]
    assert not alice_ws.ws.closed


async def test_switching_the_drop_fault_on_drops_an_open_socket(world: World) -> None:
    stream = Stream(await world.alice.ws())
    await stream.send("list_subscriptions")
    await stream.recv()
    world.faults.set(ws_drop=0.3)  # the socket has been open for a while already
    with pytest.raises(ConnectionError):
        await stream.recv(timeout=2.0)
    assert world.faults.counts["ws_drop"] == 1
