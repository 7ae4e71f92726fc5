"""Kalshi's market-data WebSocket (``/trade-api/ws/v2``): commands, channels, sids and seq.

One :class:`WsHub` listens to the exchange and fans its events out to connections. Each
subscription has a server id (``sid``) and, on sequenced channels (``orderbook_delta``,
``trade``, ``market_lifecycle_v2``), its own gapless ``seq`` counter starting at 1. A
connection's frames go through a bounded queue; a subscriber that cannot keep up gets
error 25 (buffer overflow) and that subscription ends, as on Kalshi.

Faults (faults.py) act here: a skipped seq number, a duplicated or a malformed frame,
and dropping the connection every N seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import WSMsgType, web

from kmm_interactive.sim import wire
from kmm_interactive.sim.exchange import (
    BookChange,
    Exchange,
    ExchangeEvent,
    FillEvent,
    LifecycleEvent,
    OrderEvent,
    PositionEvent,
    TradeEvent,
)
from kmm_interactive.sim.faults import Faults

CHANNELS: Final = (
    "orderbook_delta",
    "ticker",
    "trade",
    "fill",
    "market_positions",
    "market_lifecycle_v2",
    "user_orders",
)
#: Channels of the spec that this exchange does not serve (no combos, RFQs or index feeds).
UNSERVED: Final = (
    "multivariate_market_lifecycle",
    "communications",
    "order_group_updates",
    "cfbenchmarks_value",
    "cfbenchmarks_value_5hz",
    "pyth_value",
)
SEQUENCED: Final = frozenset({"orderbook_delta", "trade", "market_lifecycle_v2"})
PRIVATE: Final = frozenset({"fill", "user_orders", "market_positions"})
log = logging.getLogger(__name__)
PING_INTERVAL: Final = 10.0
QUEUE_LIMIT: Final = 20_000  # frames waiting for one connection before its streams overflow
ERROR_ROOM: Final = 1_000  # kept free beyond the limit for the frames that say so
MAX_COMMAND_BYTES: Final = 24 * 1024 * 1024  # room for a subscribe naming 500k tickers
MAX_MARKETS_PER_SUB: Final = 500_000

ERRORS: Final = {
    1: "Unable to process message",
    2: "Params required",
    3: "Channels required",
    4: "Subscription IDs required",
    5: "Unknown command",
    7: "Unknown subscription ID",
    8: "Unknown channel name",
    9: "Authentication required",
    10: "Channel error",
    11: "Invalid parameter",
    12: "Exactly one subscription ID is required",
    13: "Unsupported action",
    14: "Market Ticker required",
    15: "Action required",
    25: "Subscription buffer overflow",
    26: "Subscription market limit exceeded",
}


class CommandError(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail or ERRORS[code])
        self.code = code
        self.detail = detail


@dataclass
class Subscription:
    sid: int
    channel: str
    tickers: set[str] | None  # None: every market
    use_yes_price: bool = False
    seq: int = 0

    def wants(self, ticker: str) -> bool:
        return self.tickers is None or ticker in self.tickers


@dataclass(eq=False)
class Connection:
    user_id: str
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT + ERROR_ROOM)
    )
    subs: dict[int, Subscription] = field(default_factory=dict)
    next_sid: int = 1
    opened: float = field(default_factory=time.monotonic)
    closer: asyncio.Task[bool] | None = None  # set once the connection is being given up


class WsHub:
    def __init__(self, exchange: Exchange, faults: Faults) -> None:
        self.exchange = exchange
        self.faults = faults
        self.connections: set[Connection] = set()
        self.frames_sent = 0
        exchange.listeners.append(self.on_event)

    # ------------------------------------------------------------------ connection

    async def serve(self, request: web.Request, user_id: str) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=MAX_COMMAND_BYTES)
        await ws.prepare(request)
        conn = Connection(user_id, ws)
        self.connections.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        pinger = asyncio.create_task(self._pinger(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._command(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._error(conn, None, 1, "binary frames are not accepted")
        finally:
            self.connections.discard(conn)
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(None)
            pinger.cancel()
            await asyncio.gather(writer, pinger, return_exceptions=True)
        return ws

    async def _writer(self, conn: Connection) -> None:
        while True:
            # The drop fault is read afresh on every pass: switching it on or off takes
            # effect on open connections within a quarter second.
            every = self.faults.settings.ws_drop
            due = conn.opened + every - time.monotonic() if every > 0 else None
            if due is not None and due <= 0:
                self.faults.counts["ws_drop"] += 1
                await conn.ws.close(code=1011, message=b"injected drop")
                return
            if conn.queue.empty():
                try:
                    frame = await asyncio.wait_for(conn.queue.get(), min(due or 0.25, 0.25))
                except TimeoutError:
                    continue
            else:  # no timer per frame when frames are waiting: that halves the throughput
                frame = conn.queue.get_nowait()
            if frame is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return
            self.frames_sent += 1

    async def _pinger(self, conn: Connection) -> None:
        while not conn.ws.closed:
            await asyncio.sleep(PING_INTERVAL)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.ping(b"heartbeat")

    async def close_all(self) -> None:
        for conn in list(self.connections):
            await conn.ws.close(code=1001, message=b"server shutdown")

    # ------------------------------------------------------------------ sending

    def _put(self, conn: Connection, payload: Mapping[str, Any], sub: Subscription | None) -> None:
        faults = self.faults
        if sub is not None and sub.channel in SEQUENCED:
            sub.seq += 1
            if faults.roll("seq_gap"):
                sub.seq += 1  # the frame with the burnt number is never sent
            payload = {**payload, "seq": sub.seq}
        frame = json.dumps(payload, separators=(",", ":"))
        frames = [frame]
        if faults.settings.malformed_frame and faults.roll("malformed_frame"):
            frames.insert(0, frame[: len(frame) // 2])
        if faults.settings.duplicate_frame and faults.roll("duplicate_frame"):
            frames.append(frame)
        if sub is not None and conn.subs.get(sub.sid) is not sub:
            return  # the subscription ended (overflow, unsubscribe) while this was being sent
        for f in frames:
            if sub is not None and conn.queue.qsize() >= QUEUE_LIMIT:
                self._overflow(conn, sub)
                return
            self._enqueue(conn, f)

    def _enqueue(self, conn: Connection, frame: str) -> None:
        try:
            conn.queue.put_nowait(frame)
        except asyncio.QueueFull:  # even the room kept for errors is gone: give up on it
            conn.subs.clear()
            if conn.closer is None:
                conn.closer = asyncio.get_running_loop().create_task(
                    conn.ws.close(code=1011, message=b"overflow")
                )

    def _overflow(self, conn: Connection, sub: Subscription) -> None:
        """End a subscription whose reader fell behind, with error 25 (terminal, as on Kalshi)."""
        conn.subs.pop(sub.sid, None)
        body: dict[str, Any] = {
            "type": "error",
            "sid": sub.sid,
            "msg": {"code": 25, "msg": ERRORS[25]},
        }
        if sub.channel in SEQUENCED:
            body["seq"] = sub.seq
        self._enqueue(conn, json.dumps(body))

    def _error(self, conn: Connection, cmd_id: object, code: int, detail: str = "") -> None:
        body: dict[str, Any] = {
            "type": "error",
            "msg": {"code": code, "msg": detail or ERRORS[code]},
        }
        if isinstance(cmd_id, int) and not isinstance(cmd_id, bool) and cmd_id:
            body["id"] = cmd_id
        self._put(conn, body, None)

    # ------------------------------------------------------------------ commands

    def _command(self, conn: Connection, text: str) -> None:
        try:
            cmd = json.loads(text)
        except (ValueError, RecursionError):
            self._error(conn, None, 1, "message is not JSON")
            return
        if not isinstance(cmd, dict):
            self._error(conn, None, 1, "message must be a JSON object")
            return
        cmd_id = cmd.get("id", 0)
        try:
            if not isinstance(cmd_id, int) or isinstance(cmd_id, bool) or cmd_id < 0:
                raise CommandError(11, "id must be a non-negative integer")
            name = cmd.get("cmd")
            params = cmd.get("params")
            if name == "list_subscriptions":
                self._list(conn, cmd_id)
                return
            if name not in ("subscribe", "unsubscribe", "update_subscription"):
                raise CommandError(5, f"unknown command {name!r}")
            if not isinstance(params, dict):
                raise CommandError(2)
            if name == "subscribe":
                self._subscribe(conn, cmd_id, params)
            elif name == "unsubscribe":
                self._unsubscribe(conn, cmd_id, params)
            else:
                self._update(conn, cmd_id, params)
        except CommandError as exc:
            self._error(conn, cmd_id, exc.code, exc.detail)
        except Exception as exc:  # a command must never take the connection down
            log.warning("ws command failed: %s", type(exc).__name__)
            self._error(conn, cmd_id, 1, "the command could not be processed")

    def _tickers(
        self, params: Mapping[str, Any], *, required: bool, ids_allowed: bool = False
    ) -> list[str] | None:
        """The markets a command names (by ticker, or by id on the ticker channel), all known."""
        given = [
            k for k in ("market_ticker", "market_tickers", "market_id", "market_ids") if k in params
        ]
        if len(given) > 1:
            raise CommandError(11, f"{' and '.join(given)} are mutually exclusive")
        if not given:
            if required:
                raise CommandError(14)
            return None
        key = given[0]
        value = params[key]
        many = [value] if key in ("market_ticker", "market_id") else value
        if not isinstance(many, list) or not all(isinstance(t, str) and t for t in many):
            raise CommandError(11, f"{key} must be a non-empty string or a list of them")
        if not many:
            raise CommandError(14)
        if key.startswith("market_id"):
            if not ids_allowed:
                raise CommandError(11, f"{key} is accepted on the ticker channel only")
            by_id = {m.market_id: t for t, m in self.exchange.markets.items()}
            unknown = [i for i in many if i not in by_id]
            if unknown:
                raise CommandError(11, f"unknown market id(s): {', '.join(unknown[:5])}")
            many = [by_id[i] for i in many]
        unknown = [t for t in many if t not in self.exchange.markets]
        if unknown:
            raise CommandError(11, f"unknown market ticker(s): {', '.join(unknown[:5])}")
        if len(many) > MAX_MARKETS_PER_SUB:
            raise CommandError(26)
        return list(dict.fromkeys(many))

    def _subscribe(self, conn: Connection, cmd_id: int, params: Mapping[str, Any]) -> None:
        channels = params.get("channels")
        if not isinstance(channels, list) or not channels:
            raise CommandError(3)
        for ch in channels:
            if ch in UNSERVED:
                raise CommandError(10, f"channel {ch!r} is not available on this exchange")
            if ch not in CHANNELS:
                raise CommandError(8, f"unknown channel {ch!r}")
        use_yes = params.get("use_yes_price", False)
        if not isinstance(use_yes, bool):
            raise CommandError(11, "use_yes_price must be true or false")
        tickers = self._tickers(
            params, required="orderbook_delta" in channels, ids_allowed=channels == ["ticker"]
        )
        if "market_lifecycle_v2" in channels and tickers is not None:
            raise CommandError(11, "market_lifecycle_v2 takes no market filter")
        # Everything is checked before anything is created: a refused command changes nothing.
        for ch in dict.fromkeys(channels):
            sub = Subscription(
                conn.next_sid, ch, set(tickers) if tickers is not None else None, use_yes
            )
            conn.next_sid += 1
            conn.subs[sub.sid] = sub
            self._put(
                conn,
                {"id": cmd_id, "type": "subscribed", "msg": {"channel": ch, "sid": sub.sid}},
                None,
            )
            if ch == "orderbook_delta":
                for t in tickers or ():
                    self._snapshot(conn, sub, t, None)
            elif ch == "ticker" and params.get("send_initial_snapshot") and tickers:
                for t in tickers:
                    self._ticker(conn, sub, t, time.time())

    def _snapshot(
        self, conn: Connection, sub: Subscription, ticker: str, cmd_id: int | None
    ) -> None:
        market = self.exchange.markets[ticker]  # tickers are checked when commands arrive
        body: dict[str, Any] = {
            "type": "orderbook_snapshot",
            "sid": sub.sid,
            "msg": wire.ws_book_levels(market, use_yes_price=sub.use_yes_price),
        }
        if cmd_id:
            body["id"] = cmd_id
        self._put(conn, body, sub)

    def _one_sid(self, conn: Connection, params: Mapping[str, Any]) -> Subscription:
        sid, sids = params.get("sid"), params.get("sids")
        if sid is not None and sids is not None:
            raise CommandError(12)
        if sids is not None:
            if not isinstance(sids, list) or len(sids) != 1:
                raise CommandError(12)
            sid = sids[0]
        if sid is None:
            raise CommandError(12)
        if not isinstance(sid, int) or isinstance(sid, bool) or sid not in conn.subs:
            raise CommandError(7)
        return conn.subs[sid]

    def _update(self, conn: Connection, cmd_id: int, params: Mapping[str, Any]) -> None:
        action = params.get("action")
        if action is None:
            raise CommandError(15)
        if action not in ("add_markets", "delete_markets", "get_snapshot"):
            raise CommandError(13, f"unsupported action {action!r}")
        sub = self._one_sid(conn, params)
        tickers = self._tickers(params, required=True)
        assert tickers is not None
        if action == "get_snapshot":
            if sub.channel != "orderbook_delta":
                raise CommandError(13, "get_snapshot applies to orderbook_delta only")
            for t in tickers:
                if not sub.wants(t):
                    raise CommandError(11, f"{t} is not in subscription {sub.sid}")
            for t in tickers:
                self._snapshot(conn, sub, t, cmd_id)
            return
        if sub.tickers is None:
            raise CommandError(13, f"subscription {sub.sid} covers every market")
        if action == "add_markets":
            new = [t for t in tickers if t not in sub.tickers]
            if len(sub.tickers) + len(new) > MAX_MARKETS_PER_SUB:
                raise CommandError(26)
            sub.tickers.update(new)
        else:
            new = []
            sub.tickers.difference_update(tickers)
        body: dict[str, Any] = {
            "id": cmd_id,
            "sid": sub.sid,
            "type": "ok",
            "msg": {"market_tickers": sorted(sub.tickers)},
        }
        if sub.channel in SEQUENCED:
            body["seq"] = sub.seq  # the ack carries the stream's position, it is not a frame
        self._put(conn, body, None)
        if sub.channel == "orderbook_delta":
            for t in new:
                self._snapshot(conn, sub, t, None)

    def _unsubscribe(self, conn: Connection, cmd_id: int, params: Mapping[str, Any]) -> None:
        sids = params.get("sids")
        if not isinstance(sids, list) or not sids:
            raise CommandError(4)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in sids):
            raise CommandError(11, "sids must be a list of integers")
        sids = list(dict.fromkeys(sids))
        unknown = [s for s in sids if s not in conn.subs]
        if unknown:
            raise CommandError(7, f"unknown subscription id(s) {unknown}")
        for sid in sids:
            sub = conn.subs.pop(sid)
            self._put(
                conn, {"id": cmd_id, "sid": sid, "seq": sub.seq, "type": "unsubscribed"}, None
            )

    def _list(self, conn: Connection, cmd_id: int) -> None:
        subs = [{"channel": s.channel, "sid": s.sid} for s in conn.subs.values()]
        self._put(conn, {"id": cmd_id, "type": "ok", "msg": subs}, None)

    # ------------------------------------------------------------------ events

    def _subs(
        self, channel: str, ticker: str, user_id: str | None = None
    ) -> list[tuple[Connection, Subscription]]:
        out = []
        for conn in self.connections:
            if user_id is not None and conn.user_id != user_id:
                continue
            for sub in list(conn.subs.values()):
                if sub.channel == channel and sub.wants(ticker):
                    out.append((conn, sub))
        return out

    def _ticker(self, conn: Connection, sub: Subscription, ticker: str, ts: float) -> None:
        market = self.exchange.markets[ticker]
        self._put(conn, {"type": "ticker", "sid": sub.sid, "msg": wire.ws_ticker(market, ts)}, sub)

    def on_event(self, event: ExchangeEvent) -> None:
        """Fan one exchange event out; a failure here must never reach the exchange."""
        if not self.connections:
            return
        try:
            self._fan_out(event)
        except Exception:
            log.exception("ws fan-out failed for %s", type(event).__name__)

    def _fan_out(self, event: ExchangeEvent) -> None:
        ex = self.exchange
        if isinstance(event, BookChange):
            market = ex.markets[event.ticker]
            for conn, sub in self._subs("orderbook_delta", event.ticker):
                mine = conn.user_id == event.user_id
                msg = wire.ws_book_delta(
                    market, event.book_side, event.price, event.delta, event.ts,
                    use_yes_price=sub.use_yes_price,
                    client_order_id=event.client_order_id if mine else None,
                )  # fmt: skip
                self._put(conn, {"type": "orderbook_delta", "sid": sub.sid, "msg": msg}, sub)
            for conn, sub in self._subs("ticker", event.ticker):
                self._ticker(conn, sub, event.ticker, event.ts)
        elif isinstance(event, TradeEvent):
            msg = wire.ws_trade(event.trade)
            for conn, sub in self._subs("trade", event.trade.ticker):
                self._put(conn, {"type": "trade", "sid": sub.sid, "msg": msg}, sub)
        elif isinstance(event, FillEvent):
            f = event.fill
            for conn, sub in self._subs("fill", f.ticker, f.user_id):
                self._put(conn, {"type": "fill", "sid": sub.sid, "msg": wire.ws_fill(f)}, sub)
        elif isinstance(event, OrderEvent):
            o = event.order
            for conn, sub in self._subs("user_orders", o.ticker, event.user_id):
                msg = wire.ws_user_order(o)
                self._put(conn, {"type": "user_order", "sid": sub.sid, "msg": msg}, sub)
        elif isinstance(event, PositionEvent):
            subs = self._subs("market_positions", event.ticker, event.user_id)
            if subs:
                pos = ex.position(event.user_id, event.ticker)
                msg = wire.ws_market_position(event.user_id, event.ticker, pos)
                for conn, sub in subs:
                    self._put(conn, {"type": "market_position", "sid": sub.sid, "msg": msg}, sub)
        elif isinstance(event, LifecycleEvent):
            msg = {
                "market_ticker": event.ticker,
                "event_type": event.event_type,
                **dict(event.fields),
            }
            for conn, sub in self._subs("market_lifecycle_v2", event.ticker):
                self._put(conn, {"type": "market_lifecycle_v2", "sid": sub.sid, "msg": msg}, sub)
