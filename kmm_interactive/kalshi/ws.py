"""The Kalshi WebSocket client: one signed connection, kept alive, with exact local books.

What it does:

* **Handshake**: signs ``GET /trade-api/ws/v2`` afresh on every (re)connect.
* **Subscriptions** are kept as what we *want* per channel (a set of tickers, or every
  market); after each (re)connect every channel is subscribed again, and ``add_markets`` /
  ``delete_markets`` keep the server's list equal to ours. ``orderbook_delta`` always goes
  out with ``use_yes_price`` set explicitly (Kalshi will flip its default).
* **Sequence numbers** are tracked per ``sid``. A duplicate (seq already seen) is dropped. A
  gap on the book channel marks that subscription's books stale and asks for
  ``get_snapshot``; the book is exact again when the snapshot arrives. A gap on another
  sequenced channel is reported (:class:`SequenceGap`) for the engine to reconcile by REST.
* **Terminal errors** 10 (channel error) and 25 (buffer overflow) end a subscription on the
  server: its books go stale and the channel is subscribed again.
* **Reconnects** use capped exponential backoff with full jitter. While down every book is
  stale. After a reconnect a :class:`Reconnected` event tells the engine to reconcile
  orders, fills and positions by REST (the private channels carry no seq).
* **Silence watchdog**: no frame for ``silence_timeout`` seconds while subscribed closes
  the connection and reconnects (transport liveness is the library's ping/pong).
* **Malformed frames** are counted and skipped; they never end the stream.
* **Delivery**: typed events go to callbacks (called inline, in order) and to the
  :meth:`events` async iterator. The iterator's queue is bounded: a consumer that falls
  behind slows the reader (back-pressure) rather than losing events; if the server's
  buffer then overflows it says so with error 25 and we resubscribe and resnapshot.

Failure semantics: nothing here raises into the caller after :meth:`start`; problems become
events and counters in :attr:`stats`. Credentials appear in no log line or repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect

from kmm_interactive.kalshi.auth import RedactSignedHeaders, Signer, signing_path
from kmm_interactive.kalshi.book import OrderBook
from kmm_interactive.kalshi.messages import (
    BookDelta,
    BookSnapshot,
    ErrorMsg,
    Message,
    Ok,
    Subscribed,
    UnknownMsg,
    Unsubscribed,
    parse_frame,
)
from kmm_interactive.kalshi.models import PayloadError

log = logging.getLogger(__name__)
#: The WebSocket library's own log (it shows the handshake's headers at DEBUG): redacted.
_protocol_log = logging.getLogger(f"{__name__}.protocol")
_protocol_log.addFilter(RedactSignedHeaders())

BOOK: Final = "orderbook_delta"
#: Channels this client knows how to follow; ``market_lifecycle_v2`` takes no market filter.
CHANNELS: Final = (
    BOOK,
    "ticker",
    "trade",
    "fill",
    "user_orders",
    "market_positions",
    "market_lifecycle_v2",
)
UNFILTERED: Final = frozenset({"market_lifecycle_v2"})
#: Errors after which the server has dropped the subscription (AsyncAPI: terminal).
TERMINAL_ERRORS: Final = frozenset({10, 25})
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
#: Seconds between snapshot requests for a book that keeps going stale by itself.
RESNAPSHOT_INTERVAL: Final = 1.0


# --------------------------------------------------------------------------- connection events


@dataclass(frozen=True)
class Connected:
    """The connection is up and every wanted channel has been asked for."""

    reconnect: bool


@dataclass(frozen=True)
class Disconnected:
    """The connection dropped; every book is stale until it is back."""

    reason: str


@dataclass(frozen=True)
class Reconnected:
    """Back after a drop: the engine must reconcile private state by REST now."""

    attempts: int
    down_for: float


@dataclass(frozen=True)
class SequenceGap:
    """Frames were lost on a sequenced channel (books recover by snapshot by themselves)."""

    channel: str
    sid: int
    expected: int
    got: int
    tickers: tuple[str, ...]


@dataclass(frozen=True)
class SubscriptionLost:
    """The server ended a subscription (error 10 or 25); it is being subscribed again."""

    channel: str
    sid: int | None
    code: int
    message: str


Event = Message | Connected | Disconnected | Reconnected | SequenceGap | SubscriptionLost


class State(enum.StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKING_OFF = "backing_off"
    CLOSED = "closed"


@dataclass
class WsStats:
    frames: int = 0
    malformed: int = 0
    unknown: int = 0
    duplicates: int = 0
    gaps: int = 0
    snapshots_requested: int = 0
    resubscribes: int = 0
    connects: int = 0
    reconnects: int = 0
    watchdog_trips: int = 0
    errors: Counter[int] = field(default_factory=Counter)
    #: Age of the newest timestamped frame when it arrived, and the worst seen.
    last_age: float | None = None
    max_age: float = 0.0


@dataclass
class _Channel:
    """What we want from one channel, and what the current connection has of it."""

    name: str
    tickers: set[str] | None  # None: every market
    sid: int | None = None
    pending_id: int | None = None  # a subscribe in flight
    server_tickers: set[str] | None = None


# --------------------------------------------------------------------------- the client


class KalshiWs:
    """One WebSocket connection to Kalshi (see the module docstring)."""

    def __init__(
        self,
        url: str,
        signer: Signer,
        *,
        use_yes_price: bool = True,
        silence_timeout: float = 60.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        open_timeout: float = 10.0,
        queue_size: int = 10_000,
        rng: random.Random | None = None,
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("ws", "wss"):
            raise ValueError(f"WebSocket URL {url!r}: the scheme must be wss (or ws on loopback)")
        if silence_timeout <= 0 or backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("silence_timeout and backoffs must be positive, max >= initial")
        self.url = url
        self._path = signing_path(url)
        self._signer = signer
        self.use_yes_price = use_yes_price
        self.silence_timeout = silence_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.open_timeout = open_timeout
        self._rng = rng or random.Random()
        self.books: dict[str, OrderBook] = {}
        self.stats = WsStats()
        self.state = State.IDLE
        self._channels: dict[str, _Channel] = {}
        self._by_sid: dict[int, _Channel] = {}
        self._last_seq: dict[int, int] = {}
        self._by_id: dict[int, _Channel] = {}
        self._next_id = 1
        self._callbacks: list[Callable[[Event], None]] = []
        self._queue: asyncio.Queue[Event] | None = None
        self._queue_size = queue_size
        self._conn: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_frame = time.monotonic()
        self._connected = asyncio.Event()
        self._resnapshot_at: dict[str, float] = {}

    def __repr__(self) -> str:
        return (
            f"KalshiWs(url={self.url!r}, state={self.state.value}, "
            f"channels={sorted(self._channels)}, books={len(self.books)})"
        )

    # ------------------------------------------------------------------ public API

    def on_event(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` inline for every event; an exception in it is logged."""
        self._callbacks.append(callback)

    async def events(self) -> AsyncIterator[Event]:
        """Every event, in order, from the moment this is first iterated."""
        if self._queue is None:
            self._queue = asyncio.Queue(self._queue_size)
        queue = self._queue
        try:
            while True:
                yield await queue.get()
        finally:
            # An abandoned iterator must not hold the reader back (see the module doc).
            if self._queue is queue:
                self._queue = None

    def start(self) -> None:
        """Start connecting in the running loop; returns at once (idempotent)."""
        if self._task is None or self._task.done():
            self.state = State.CONNECTING
            self._task = asyncio.get_running_loop().create_task(self._run(), name="kalshi-ws")

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def close(self) -> None:
        self.state = State.CLOSED
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        self._mark_all_stale("closed")

    async def subscribe(self, channel: str, tickers: Iterable[str] | None = None) -> None:
        """Follow ``channel`` for ``tickers`` (None: every market), now and after reconnects.

        Subscribing again to a channel adds the tickers to what it already follows."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r} (allowed: {', '.join(CHANNELS)})")
        wanted = None if tickers is None else set(tickers)
        if channel in UNFILTERED and wanted is not None:
            raise ValueError(f"{channel} takes no market filter: pass tickers=None")
        if channel == BOOK and not wanted:
            raise ValueError("orderbook_delta needs at least one market ticker")
        if wanted is not None:
            _check_tickers(wanted)
        ch = self._channels.get(channel)
        if ch is None:
            self._channels[channel] = ch = _Channel(channel, wanted)
            added = wanted or set()
        else:
            added = (wanted or set()) - (ch.tickers or set())
            if ch.tickers is not None:
                ch.tickers = None if wanted is None else ch.tickers | wanted
        if channel == BOOK:
            for t in added:
                self.books.setdefault(t, OrderBook(t)).mark_stale("awaiting snapshot")
        await self._sync(ch)

    async def unsubscribe(self, channel: str, tickers: Iterable[str] | None = None) -> None:
        """Stop following ``tickers`` on ``channel`` (None: the whole channel)."""
        ch = self._channels.get(channel)
        if ch is None:
            return
        dropped = set(ch.tickers or ()) if tickers is None else set(tickers) & (ch.tickers or set())
        if tickers is None or ch.tickers is None or not ch.tickers - dropped:
            del self._channels[channel]
            if ch.pending_id is not None:
                self._by_id.pop(ch.pending_id, None)  # its late ``subscribed`` is undone
            if ch.sid is not None:
                self._forget_sid(ch.sid)
                await self._send("unsubscribe", {"sids": [ch.sid]})
        else:
            ch.tickers -= dropped
            await self._sync(ch)
        if channel == BOOK:
            for t in dropped:
                self.books.pop(t, None)

    async def resnapshot(self, tickers: Iterable[str]) -> None:
        """Ask for fresh snapshots of these books (they are stale until they arrive)."""
        ch = self._channels.get(BOOK)
        wanted = [t for t in tickers if ch is not None and ch.tickers and t in ch.tickers]
        for t in wanted:
            self.books[t].mark_stale("snapshot requested")
        if ch is not None and ch.sid is not None and wanted:
            self.stats.snapshots_requested += 1
            await self._send(
                "update_subscription",
                {"sid": ch.sid, "market_tickers": sorted(wanted), "action": "get_snapshot"},
            )

    async def list_subscriptions(self) -> None:
        """Ask the server for its list (the answer arrives as an :class:`Ok` event)."""
        await self._send("list_subscriptions", None)

    @property
    def connected(self) -> bool:
        return self.state is State.CONNECTED

    def seconds_since_frame(self) -> float:
        return time.monotonic() - self._last_frame

    # ------------------------------------------------------------------ connection loop

    async def _run(self) -> None:
        attempts = 0
        down_since: float | None = None
        ever_connected = False
        while self.state is not State.CLOSED:
            try:
                self.state = State.CONNECTING
                headers = self._signer.headers("GET", self._path)
                host = urlsplit(self.url).hostname or ""
                async with connect(
                    self.url,
                    additional_headers=headers,
                    open_timeout=self.open_timeout,
                    max_size=16 * 2**20,
                    max_queue=256,
                    proxy=None if host in _LOOPBACK else True,
                    logger=_protocol_log,
                ) as conn:
                    self._on_open(conn)
                    self.stats.connects += 1
                    for ch in list(self._channels.values()):
                        await self._sync(ch)
                    await self._emit(Connected(reconnect=ever_connected))
                    if ever_connected:
                        self.stats.reconnects += 1
                        down = time.monotonic() - down_since if down_since else 0.0
                        await self._emit(Reconnected(attempts, down))
                    ever_connected, attempts, down_since = True, 0, None
                    await self._read(conn)
                reason = "closed by the server"
            except asyncio.CancelledError:
                raise
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                reason = _describe(exc)
            except Exception as exc:  # a bug in handling must not end the client
                log.exception("kalshi ws: unexpected failure")
                reason = f"internal error: {type(exc).__name__}"
            self._on_close()
            if self.state is State.CLOSED:
                return
            if down_since is None:
                down_since = time.monotonic()
                await self._emit(Disconnected(reason))
            attempts += 1
            delay = self._rng.uniform(0, min(self.backoff_max, self.backoff_initial * 2**attempts))
            log.info("kalshi ws: %s; reconnecting in %.1f s", reason, delay)
            self.state = State.BACKING_OFF
            await asyncio.sleep(delay)

    def _on_open(self, conn: ClientConnection) -> None:
        self._conn = conn
        self.state = State.CONNECTED
        self._last_frame = time.monotonic()
        self._connected.set()

    def _on_close(self) -> None:
        self._conn = None
        self._connected.clear()
        self._by_sid.clear()
        self._by_id.clear()
        self._last_seq.clear()
        for ch in self._channels.values():
            ch.sid = ch.pending_id = None
            ch.server_tickers = None
        self._mark_all_stale("websocket down")

    async def _read(self, conn: ClientConnection) -> None:
        while True:
            timeout = self.silence_timeout if self._channels else None
            try:
                async with asyncio.timeout(timeout):
                    frame = await conn.recv()
            except TimeoutError:
                self.stats.watchdog_trips += 1
                await conn.close()
                raise TimeoutError(f"no frame for {self.silence_timeout:g} s") from None
            self._last_frame = time.monotonic()
            await self._handle(frame)

    # ------------------------------------------------------------------ frames

    async def _handle(self, frame: str | bytes) -> None:
        self.stats.frames += 1
        try:
            msg = parse_frame(frame, yes_prices=self.use_yes_price)
        except PayloadError as exc:
            self.stats.malformed += 1
            log.debug("kalshi ws: skipped a malformed frame: %s", exc)
            return
        if isinstance(msg, Subscribed | Ok | Unsubscribed | ErrorMsg):
            await self._control(msg)
            await self._emit(msg)
            return
        sid, seq = msg.sid, msg.seq
        ch = self._by_sid.get(sid) if sid is not None else None
        if sid is not None and ch is None:
            return  # a late frame of a subscription we dropped
        # A type we do not know still moves the sequence, or it would look like a gap.
        if seq is not None and sid is not None and not await self._in_sequence(sid, seq, ch):
            return
        if isinstance(msg, UnknownMsg):
            self.stats.unknown += 1
            return
        ts = msg.ts
        if ts is not None:
            age = (datetime.now(UTC) - ts).total_seconds()
            self.stats.last_age = age
            self.stats.max_age = max(self.stats.max_age, age)
        if isinstance(msg, BookSnapshot | BookDelta):
            book = self.books.get(msg.ticker)
            if book is None:
                return  # a market we stopped following
            if isinstance(msg, BookSnapshot):
                book.apply_snapshot(msg.book)
            else:
                book.apply_delta(msg.side, msg.price, msg.delta, ts=msg.ts)
            if book.stale:
                await self._recover(book)
        await self._emit(msg)

    async def _recover(self, book: OrderBook) -> None:
        """A book that went stale by itself (a level below zero, a crossed book) asks for a
        snapshot, at most once per ``RESNAPSHOT_INTERVAL`` so a bad feed cannot loop us."""
        now = time.monotonic()
        if now - self._resnapshot_at.get(book.ticker, -RESNAPSHOT_INTERVAL) >= RESNAPSHOT_INTERVAL:
            self._resnapshot_at[book.ticker] = now
            log.info(
                "kalshi ws: %s is stale (%s); asking for a snapshot", book.ticker, book.stale_reason
            )
            await self.resnapshot([book.ticker])

    async def _in_sequence(self, sid: int, seq: int, ch: _Channel | None) -> bool:
        """Track seq on ``sid``: False for a duplicate; a gap triggers recovery, then True."""
        last = self._last_seq.get(sid)
        if last is not None and seq <= last:
            self.stats.duplicates += 1
            return False
        self._last_seq[sid] = seq
        if last is not None and seq != last + 1:
            self.stats.gaps += 1
            name = ch.name if ch else "?"
            tickers = tuple(sorted(ch.tickers or ())) if ch else ()
            await self._emit(SequenceGap(name, sid, last + 1, seq, tickers))
            if name == BOOK:
                await self.resnapshot(tickers)
        return True

    async def _control(self, msg: Subscribed | Ok | Unsubscribed | ErrorMsg) -> None:
        if isinstance(msg, Subscribed):
            ch = self._by_id.pop(msg.id, None) if msg.id is not None else None
            if ch is None or self._channels.get(ch.name) is not ch:
                # Nobody wants it any more (unsubscribed while the command was in flight).
                await self._send("unsubscribe", {"sids": [msg.sid]})
                return
            ch.sid, ch.pending_id = msg.sid, None
            self._by_sid[msg.sid] = ch
            await self._sync(ch)
        elif isinstance(msg, Ok) and msg.sid is not None and msg.market_tickers is not None:
            ch = self._by_sid.get(msg.sid)
            if ch is not None:
                ch.server_tickers = set(msg.market_tickers)
                await self._sync(ch)
        elif isinstance(msg, ErrorMsg):
            self.stats.errors[msg.code] += 1
            await self._on_error(msg)

    async def _on_error(self, msg: ErrorMsg) -> None:
        ch = self._by_sid.get(msg.sid) if msg.sid is not None else None
        if ch is None and msg.id is not None:
            ch = self._by_id.pop(msg.id, None)
            if ch is not None and ch.pending_id == msg.id:
                # The subscribe itself was refused: say so, and do not loop on it.
                ch.pending_id = None
                log.warning("kalshi ws: subscribe to %s refused: %s", ch.name, msg.message)
                return
        if msg.code not in TERMINAL_ERRORS or ch is None:
            log.warning("kalshi ws: error %d: %s", msg.code, msg.message)
            return
        self.stats.resubscribes += 1
        await self._emit(SubscriptionLost(ch.name, ch.sid, msg.code, msg.message))
        if ch.sid is not None:
            self._forget_sid(ch.sid)
        ch.sid = ch.pending_id = None
        ch.server_tickers = None
        if ch.name == BOOK:
            for t in ch.tickers or ():
                self.books[t].mark_stale(f"subscription lost (error {msg.code})")
        await self._sync(ch)

    def _forget_sid(self, sid: int) -> None:
        self._by_sid.pop(sid, None)
        self._last_seq.pop(sid, None)

    async def _sync(self, ch: _Channel) -> None:
        """Bring the server's view of ``ch`` in line with ours (if connected and not waiting)."""
        if self._conn is None or ch.pending_id is not None:
            return
        if ch.sid is None:
            params: dict[str, Any] = {"channels": [ch.name]}
            if ch.tickers is not None:
                params["market_tickers"] = sorted(ch.tickers)
            if ch.name == BOOK:
                params["use_yes_price"] = self.use_yes_price
            ch.pending_id = await self._send("subscribe", params)
            if ch.pending_id is not None:
                self._by_id[ch.pending_id] = ch
                ch.server_tickers = None if ch.tickers is None else set(ch.tickers)
            return
        if ch.tickers is None or ch.server_tickers is None:
            return
        add, drop = ch.tickers - ch.server_tickers, ch.server_tickers - ch.tickers
        for action, tickers in (("add_markets", add), ("delete_markets", drop)):
            if tickers:
                # Optimistic: the ``ok`` reply carries the server's full list and corrects us.
                ch.server_tickers = (
                    ch.server_tickers | tickers
                    if action == "add_markets"
                    else ch.server_tickers - tickers
                )
                await self._send(
                    "update_subscription",
                    {"sid": ch.sid, "market_tickers": sorted(tickers), "action": action},
                )

    async def _send(self, cmd: str, params: dict[str, Any] | None) -> int | None:
        conn = self._conn
        if conn is None:
            return None
        cmd_id = self._next_id
        self._next_id += 1
        body: dict[str, Any] = {"id": cmd_id, "cmd": cmd}
        if params is not None:
            body["params"] = params
        try:
            await conn.send(json.dumps(body))
        except websockets.ConnectionClosed:
            return None  # the read loop sees the close and reconnects
        return cmd_id

    # ------------------------------------------------------------------ delivery

    async def _emit(self, event: Event) -> None:
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:
                log.exception("kalshi ws: an event callback failed")
        if self._queue is not None:
            # A full queue pauses the reader: back-pressure, never a lost event.
            await self._queue.put(event)

    def _mark_all_stale(self, reason: str) -> None:
        for book in self.books.values():
            book.mark_stale(reason)


def _check_tickers(tickers: set[str]) -> None:
    bad = [t for t in tickers if not isinstance(t, str) or not t or len(t) > 128]
    if bad:
        raise ValueError(f"market tickers must be non-empty strings, got {bad[:3]!r}")


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}"
