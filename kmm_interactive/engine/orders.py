"""The order manager: desired quotes in, the fewest writes out, every order in an explicit state.

**Planning** (:func:`plan_writes`, pure). Per market side, against our live order there:
nothing wanted → cancel; no order and a quote wanted → create; otherwise amend, decrease or
keep by the requote rule (:func:`~kmm_interactive.strategy.writes.side_change`). Several
creates (or cancels) of one game go out as one batch.

**States** (:class:`~kmm_interactive.domain.OrderState`): PENDING_NEW → RESTING →
PENDING_AMEND / PENDING_CANCEL → DONE, and UNKNOWN when a write's outcome was not learned (a
timeout, a 5xx, an answer we cannot read). At most one write is in flight per side; a side
whose order is UNKNOWN, or whose cancel is not yet confirmed, gets no new order (no
duplicates).

**What decides an order's state** is the exchange, not our guesses:

* ``user_orders`` and ``fill`` messages (the WS) update state, price and size at once;
* a cancel is never trusted on its answer alone (Kalshi's answer can describe another
  order, and the sim can acknowledge a cancel it did not apply): the order stays
  PENDING_CANCEL until ``user_orders`` says canceled/executed, or REST shows it is no longer
  resting; if REST still shows it resting, the cancel is sent again;
* an UNKNOWN order is looked up by REST (by id, or by ``client_order_id`` for a create
  whose answer was lost); a create REST has still not seen after ``unknown_giveup``
  seconds is taken as never created (the periodic reconciliation would still find it);
* an amend or decrease refused outright (4xx: the order had filled or been cancelled
  meanwhile) makes the order UNKNOWN until REST says what it is.

**The cap under simultaneous fills.** Writes that can grow what rests (creates, size-up
amends) are sent only when every other order of the game is settled (nothing in flight,
unknown or awaiting a cancel confirmation), after any shrinking writes of the same pass
have gone out and settled: at no moment can the game's resting orders exceed what the
risk layer allowed. Fills keep ``q + resting`` unchanged, so they cannot break it either.

Every ``create`` carries a ``client_order_id`` (``<prefix><n>``, the prefix unique per run),
the game's order group and, when the caller gives one, an expiry (``expiration_time``, whole
seconds, rounded down): the time the game stops quoting, so that the exchange itself takes
the order off should this process die first. No create is sent once that second has come
(the exchange would refuse the expiry, and the game is stopping). Nothing here raises into
the caller once a write has started; outcomes go to the callbacks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from kmm_interactive.domain import ZERO, Fill, Order, OrderState, Side
from kmm_interactive.kalshi.errors import KalshiError
from kmm_interactive.kalshi.models import ExchangeOrder, PayloadError
from kmm_interactive.kalshi.rest import CreateResult, CreateStatus, KalshiRest, OrderRequest
from kmm_interactive.strategy.writes import WriteKind, grows, may_grow, side_change

log = logging.getLogger(__name__)

#: The exchange's statuses of an order that no longer rests.
FINISHED: Final = frozenset({"canceled", "executed"})
#: Every client_order_id this package creates starts with this (then a per-run id).
CLIENT_ID_ROOT: Final = "kmm-"
GROUP_LIMIT_CODE: Final = "order_group_limit_reached"
#: Seconds a DONE order's record is kept for late messages about it (a WS message lost in
#: a reconnect is never sent again: REST reconciliation covers it, not this record).
DONE_KEPT: Final = 60.0
#: At most this many DONE records are kept, the oldest forgotten first: memory must not grow
#: with the rate orders finish at (a busy day finishes dozens a second).
DONE_KEPT_MAX: Final = 5000


@dataclass(frozen=True)
class Write:
    """One planned write. ``size`` is what should rest afterwards (None for a cancel);
    ``grows`` says it can add to what may fill (a create, or an amend to more size)."""

    kind: WriteKind
    ticker: str
    side: Side
    price: Decimal | None
    size: Decimal | None
    client_order_id: str | None
    grows: bool


@dataclass
class Tracked:
    """One of our orders and what the manager knows about it beyond its state.

    ``order`` is replaced on every change (domain.Order is immutable and checks its state
    transitions). ``busy``: a write for it is in flight. ``since``: when its price last
    changed (the competition layer's min rest). ``cancel_acked``: when the exchange
    acknowledged our cancel (the confirmation is still due). ``unknown_since``: when it
    became UNKNOWN.
    """

    order: Order
    game: str
    since: datetime
    touched: datetime
    busy: bool = False
    cancel_acked: datetime | None = None
    unknown_since: datetime | None = None
    cancels_sent: int = 0
    fill_ids: set[str] = field(default_factory=set)
    filled_by_fills: Decimal = ZERO

    @property
    def key(self) -> tuple[str, Side]:
        return self.order.ticker, self.order.side

    @property
    def settled(self) -> bool:
        """Nothing pending about it: resting as we know it, or done."""
        state = self.order.state
        return not self.busy and state in (OrderState.RESTING, OrderState.DONE)


@dataclass
class OrderStats:
    """Counters since start. ``answered``: writes the exchange answered (accepted or refused);
    ``failed``: writes with no usable answer (timeouts, 5xx, transport; their outcome was
    left to be learned), what the REST error-rate halt watches."""

    writes: dict[WriteKind, int] = field(default_factory=lambda: dict.fromkeys(WriteKind, 0))
    answered: int = 0
    failed: int = 0
    rejected: int = 0
    unknown: int = 0
    recancels: int = 0
    given_up: int = 0
    adopted: int = 0
    foreign_cancelled: int = 0


# --------------------------------------------------------------------------- planning


def _due(expires: datetime, now: datetime) -> bool:
    """An expiry the exchange would refuse: not after the current whole second."""
    return int(expires.timestamp()) <= int(now.timestamp())


def plan_writes(
    desired: Mapping[tuple[str, Side], tuple[Decimal, int] | None],
    live: Iterable[Tracked],
    *,
    refill_below: float,
) -> list[Write]:
    """The fewest writes that turn ``live`` into ``desired`` (see the module doc).

    ``desired`` maps each side the game quotes on to (price, size), or None for no quote;
    a side missing from it wants nothing. Sides with an order in flight, UNKNOWN without an
    id, or awaiting a cancel's confirmation are left alone this time.
    """
    by_side: dict[tuple[str, Side], list[Tracked]] = {}
    for tracked in live:
        if tracked.order.state is not OrderState.DONE:
            by_side.setdefault(tracked.key, []).append(tracked)
    writes: list[Write] = []
    for key in sorted(set(desired) | set(by_side)):
        wanted = desired.get(key)
        orders = by_side.get(key, [])
        if any(t.busy or t.cancel_acked is not None for t in orders):
            continue
        unknown = [t for t in orders if t.order.state is OrderState.UNKNOWN]
        if unknown:
            if wanted is None:  # an UNKNOWN order with an id can still be cancelled
                writes += [_cancel(t) for t in unknown if t.order.order_id is not None]
            continue
        writes += _plan_side(key, wanted, orders, refill_below)
    return writes


def _cancel(tracked: Tracked) -> Write:
    o = tracked.order
    return Write(WriteKind.CANCEL, o.ticker, o.side, None, None, o.client_order_id, False)


def _plan_side(
    key: tuple[str, Side],
    wanted: tuple[Decimal, int] | None,
    orders: list[Tracked],
    refill_below: float,
) -> list[Write]:
    ticker, side = key
    if wanted is None or wanted[1] <= 0:
        return [_cancel(t) for t in orders]
    price, size = wanted[0], Decimal(wanted[1])
    if not orders:
        return [Write(WriteKind.CREATE, ticker, side, price, size, None, True)]
    # Keep the order closest to what is wanted (same price first, then most size); any
    # other order on this side (adopted after a restart, say) is cancelled.
    keep = min(orders, key=lambda t: (t.order.price != price, -t.order.remaining))
    writes = [_cancel(t) for t in orders if t is not keep]
    o = keep.order
    kind = side_change(price, size, o.price, o.remaining, o.count, refill_below)
    if kind is not None:
        growing = grows(kind, size, o.price, price, o.remaining)
        writes.append(Write(kind, ticker, side, price, size, o.client_order_id, growing))
    return writes


# --------------------------------------------------------------------------- the manager


OnChange = Callable[[Tracked, str], None]


class OrderManager:
    """Our orders on the exchange (see the module doc). One per session and account."""

    def __init__(
        self,
        rest: KalshiRest,
        *,
        run_id: str,
        clock: Callable[[], datetime],
        refill_below: float = 0.5,
        group_limit: int | None = None,
        confirm_after: float = 1.0,
        unknown_giveup: float = 15.0,
        max_recancels: int = 20,
        on_change: OnChange | None = None,
        on_settled: Callable[[str], None] | None = None,
        on_rejected: Callable[[str, KalshiError | PayloadError], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        if not run_id or not run_id.replace("-", "").isalnum() or len(run_id) > 24:
            raise ValueError(f"run_id {run_id!r}: 1 to 24 letters, digits or '-'")
        self.rest = rest
        self.prefix = f"{CLIENT_ID_ROOT}{run_id}-"
        self.refill_below = refill_below
        self.group_limit = group_limit
        self.confirm_after = confirm_after
        self.unknown_giveup = unknown_giveup
        self.max_recancels = max_recancels
        self.stats = OrderStats()
        self._clock = clock
        self._on_change = on_change or (lambda _t, _n: None)
        self._on_settled = on_settled or (lambda _g: None)
        self._on_rejected = on_rejected or (lambda _g, _e: None)
        self._on_error = on_error or (lambda _what, _exc: None)
        # Per game, the orders the exchange says filled more than our fills have booked.
        self._unbooked: dict[str, set[str]] = {}
        self._orders: dict[str, Tracked] = {}  # by client_order_id, DONE ones for a while
        # Orders not DONE, by game and by market: what every decision scans.
        self._by_game: dict[str, dict[str, Tracked]] = {}
        self._by_market: dict[str, dict[str, Tracked]] = {}
        self._done: deque[tuple[float, str]] = deque()  # (monotonic time, client_order_id)
        self._by_id: dict[str, str] = {}  # order_id → client_order_id
        self._locks: dict[str, asyncio.Lock] = {}
        self._groups: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._counter = itertools.count(1)

    # ------------------------------------------------------------------ views

    def tracked(self, game: str | None = None) -> list[Tracked]:
        """Orders not DONE (of one game, or all)."""
        if game is not None:
            return list(self._by_game.get(game, {}).values())
        return [t for live in self._by_game.values() for t in live.values()]

    def _add(self, tracked: Tracked) -> None:
        cid = tracked.order.client_order_id
        self._orders[cid] = tracked
        if tracked.order.order_id:
            self._by_id[tracked.order.order_id] = cid
        self._by_game.setdefault(tracked.game, {})[cid] = tracked
        self._by_market.setdefault(tracked.order.ticker, {})[cid] = tracked

    def _retire(self, tracked: Tracked) -> None:
        """A DONE order leaves the live indexes; its record is kept for ``DONE_KEPT`` seconds
        for the late messages about it, then forgotten (memory stays bounded)."""
        cid = tracked.order.client_order_id
        if self._by_game.get(tracked.game, {}).pop(cid, None) is not None:
            self._by_market.get(tracked.order.ticker, {}).pop(cid, None)
            self._done.append((time.monotonic(), cid))
        self.forget_done()

    def forget_done(self) -> None:
        """Forget the DONE records older than ``DONE_KEPT``, and beyond ``DONE_KEPT_MAX`` the
        oldest: run as orders finish and by the verifier, so they go once trading has
        stopped too."""
        cutoff = time.monotonic() - DONE_KEPT
        while self._done and (self._done[0][0] < cutoff or len(self._done) > DONE_KEPT_MAX):
            _, old = self._done.popleft()
            gone = self._orders.pop(old, None)
            if gone is None:
                continue
            if gone.order.order_id is not None:
                self._by_id.pop(gone.order.order_id, None)
            if old in self._unbooked.get(gone.game, ()):
                # Long since reconciled from REST (positions adopt the exchange's truth).
                log.warning("order %s: fills never booked from its own messages", old)
                self._unbooked[gone.game].discard(old)

    def find(
        self, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Tracked | None:
        if client_order_id is None and order_id is not None:
            client_order_id = self._by_id.get(order_id)
        return self._orders.get(client_order_id) if client_order_id else None

    def live_orders(self) -> list[tuple[str, str | None]]:
        """(order_id, ticker) of every order that may rest: what the kill switch cancels."""
        return [(t.order.order_id, t.order.ticker) for t in self.tracked() if t.order.order_id]

    def resting_count(self) -> int:
        """Orders that may be resting (any state but DONE): what the watchdog needs."""
        return len(self.tracked())

    def own_sizes(self, ticker: str) -> dict[tuple[Side, Decimal], Decimal]:
        """Our resting size per (side, price) in one market, as the book shows it: removed
        from the book to see the competition."""
        sizes: dict[tuple[Side, Decimal], Decimal] = {}
        for t in self._by_market.get(ticker, {}).values():
            o = t.order
            if o.state is not OrderState.PENDING_NEW:
                sizes[(o.side, o.price)] = sizes.get((o.side, o.price), ZERO) + o.remaining
        return sizes

    # ------------------------------------------------------------------ applying decisions

    async def apply(
        self,
        game: str,
        desired: Mapping[tuple[str, Side], tuple[Decimal, int] | None],
        *,
        expires: datetime | None = None,
    ) -> list[Write]:
        """Plan and send the writes that move ``game``'s orders toward ``desired``; returns
        what was sent (the writes run as tasks; their outcomes arrive by callbacks). New
        orders expire at ``expires`` on the exchange (module doc)."""
        lock = self._locks.setdefault(game, asyncio.Lock())
        async with lock:
            live = self.tracked(game)
            writes = plan_writes(desired, live, refill_below=self.refill_below)
            shrinking = [w for w in writes if not w.grows]
            growing = [w for w in writes if w.grows]
            settled = all(t.settled for t in live) and not self.has_unbooked_fills(game)
            if not may_grow(bool(shrinking), settled):
                growing = []
            needs_group = self.group_limit is not None and game not in self._groups
            if growing and needs_group and not await self._ensure_group(game):
                growing = [w for w in growing if w.kind is not WriteKind.CREATE]
            if expires is not None and _due(expires, self._clock()):
                growing = [w for w in growing if w.kind is not WriteKind.CREATE]
            sent = shrinking + growing
            self._launch(game, sent, expires)
            return sent

    async def _ensure_group(self, game: str) -> bool:
        assert self.group_limit is not None
        try:
            self._groups[game] = await self.rest.create_order_group(Decimal(self.group_limit))
        except (KalshiError, PayloadError) as exc:
            log.warning("%s: could not create its order group (%s); no new orders yet", game, exc)
            return False
        return True

    def group_of(self, game: str) -> str | None:
        return self._groups.get(game)

    async def reset_group(self, game: str) -> None:
        """After the exchange's group limit tripped: let the group take orders again."""
        group = self._groups.get(game)
        if group is not None:
            await self.rest.reset_order_group(group)

    def _launch(self, game: str, writes: Sequence[Write], expires: datetime | None) -> None:
        """Mark every write's order at once (new orders tracked, the others busy), then send
        the writes as tasks. Marking happens here, before any task runs, so that the next
        decision of the game (which may come before the tasks start) sees them in flight
        and plans nothing more on those sides."""
        creates = [w for w in writes if w.kind is WriteKind.CREATE]
        cancels = [
            self._orders[w.client_order_id or ""] for w in writes if w.kind is WriteKind.CANCEL
        ]
        changes = [w for w in writes if w.kind in (WriteKind.AMEND, WriteKind.DECREASE)]
        for w in writes:
            self.stats.writes[w.kind] += 1
        if creates:
            self._spawn(self._create(*self._begin_creates(game, creates, expires)))
        if cancels:
            self._begin_cancel(cancels)
            self._spawn(self._cancel(cancels))
        for w in changes:
            tracked = self._orders[w.client_order_id or ""]
            tracked.busy = True
            if w.kind is WriteKind.AMEND:
                self._move(tracked, OrderState.PENDING_AMEND, f"amend to {w.size} @ {w.price}")
            self._spawn(self._change(tracked, w))

    def _begin_creates(
        self, game: str, writes: Sequence[Write], expires: datetime | None
    ) -> tuple[list[Tracked], list[OrderRequest]]:
        now = self._clock()
        group = self._groups.get(game)
        pending: list[Tracked] = []
        requests: list[OrderRequest] = []
        for w in writes:
            assert w.price is not None
            assert w.size is not None
            cid = f"{self.prefix}{next(self._counter)}"
            tracked = Tracked(
                Order(cid, w.ticker, w.side, w.price, w.size), game, now, now, busy=True
            )
            self._add(tracked)
            self._on_change(tracked, "create")
            pending.append(tracked)
            requests.append(
                OrderRequest(
                    w.ticker, w.side, w.price, w.size, client_order_id=cid,
                    post_only=True, order_group_id=group, expiration_time=expires,
                )
            )  # fmt: skip
        return pending, requests

    def _begin_cancel(self, targets: Sequence[Tracked]) -> None:
        for t in targets:
            t.busy = True
            t.cancels_sent += 1
            t.cancel_acked = None
            self._move(t, OrderState.PENDING_CANCEL, "cancel sent")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("order write task failed", exc_info=exc)
            self._on_error("an order write task", exc)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Until no write is in flight (tests and shutdown)."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ the writes

    def has_unbooked_fills(self, game: str) -> bool:
        """The exchange reports fills of this game's orders that our fills have not booked
        yet (``user_orders`` can come before ``fill``): the inventory is not known, so
        nothing may grow until they are booked (by the WS or a reconciliation)."""
        return bool(self._unbooked.get(game))

    def _note_booking(self, tracked: Tracked) -> None:
        cid, game = tracked.order.client_order_id, tracked.game
        if tracked.order.filled > tracked.filled_by_fills:
            self._unbooked.setdefault(game, set()).add(cid)
        elif cid in self._unbooked.get(game, ()):
            self._unbooked[game].discard(cid)
            self._on_settled(game)

    def _set(self, tracked: Tracked, order: Order, note: str) -> None:
        tracked.order = order
        self._note_booking(tracked)
        tracked.touched = self._clock()
        if order.order_id:
            self._by_id[order.order_id] = order.client_order_id
        if order.state is OrderState.DONE:
            self._retire(tracked)
        if order.state is OrderState.UNKNOWN and tracked.unknown_since is None:
            tracked.unknown_since = tracked.touched
            self.stats.unknown += 1
        elif order.state is not OrderState.UNKNOWN:
            tracked.unknown_since = None
        self._on_change(tracked, note)

    def _move(self, tracked: Tracked, state: OrderState, note: str, **changes: object) -> None:
        """Change state if the state machine allows it; a DONE order stays DONE (a late answer
        about an order the WS already finished changes nothing)."""
        current = tracked.order.state
        if current is OrderState.DONE:
            return
        if state is current and state not in (OrderState.RESTING, OrderState.UNKNOWN):
            order = replace(tracked.order, **changes)  # type: ignore[arg-type]
        else:
            order = tracked.order.transition(state, **changes)
        if order == tracked.order:  # a confirmation of what we knew: nothing to record
            tracked.touched = self._clock()
            return
        self._set(tracked, order, note)

    def _finish(self, tracked: Tracked, filled: Decimal, note: str) -> None:
        """DONE, with the most we know to have filled (never less than before)."""
        filled = max(filled, tracked.order.filled, tracked.filled_by_fills)
        count = max(tracked.order.count, filled)
        self._move(tracked, OrderState.DONE, note, filled=filled, count=count)
        if not tracked.busy:
            self._on_settled(tracked.game)

    def _settle(self, tracked: Tracked) -> None:
        tracked.busy = False
        self._on_settled(tracked.game)

    async def _create(self, pending: Sequence[Tracked], requests: Sequence[OrderRequest]) -> None:
        try:
            if len(requests) == 1:
                results = [await self.rest.create_order(requests[0])]
            else:
                results = await self.rest.batch_create(requests)
        except ValueError as exc:  # refused before anything was sent (a bad argument)
            log.error("create refused locally: %s", exc)
            for tracked in pending:
                self._move(tracked, OrderState.DONE, f"refused before sending: {exc}")
                self._settle(tracked)
            return
        except Exception as exc:  # not the client's contract: it may have been sent
            log.exception("create failed unexpectedly; the orders are looked up by id")
            for tracked in pending:
                self._move(tracked, OrderState.UNKNOWN, f"create failed: {exc!r}")
                self._settle(tracked)
            return
        for tracked, result in zip(pending, results, strict=True):
            try:
                self._created(tracked, result)
            finally:  # one failing callback must not leave the others in flight forever
                self._settle(tracked)

    def _count(self, error: KalshiError | PayloadError | None, n: int = 1) -> None:
        if error is None or (isinstance(error, KalshiError) and not error.is_transient):
            self.stats.answered += n
        else:
            self.stats.failed += n

    def _created(self, tracked: Tracked, result: CreateResult) -> None:
        self._count(result.error if result.status is CreateStatus.UNKNOWN else None)
        if result.status is CreateStatus.CREATED:
            remaining = result.remaining_count
            changes: dict[str, object] = {"order_id": result.order_id}
            # The answer's fill count; what is neither filled nor resting was cancelled
            # (a post-only order that would have crossed), not filled.
            filled = result.fill_count
            if filled is None and remaining is not None:
                filled = tracked.order.count - remaining
            if filled is not None and tracked.order.state is not OrderState.DONE:
                changes["filled"] = min(
                    max(filled, tracked.order.filled, ZERO), tracked.order.count
                )
            if remaining == 0:
                why = "filled at once" if filled else "cancelled at once (it would have crossed)"
                self._move(tracked, OrderState.DONE, f"created and {why}", **changes)
            else:
                self._move(tracked, OrderState.RESTING, "created", **changes)
        elif result.status is CreateStatus.REJECTED:
            self.stats.rejected += 1
            self._move(tracked, OrderState.DONE, f"rejected: {result.error}")
            if result.error is not None:
                self._on_rejected(tracked.game, result.error)
        else:
            self._move(tracked, OrderState.UNKNOWN, f"create outcome unknown: {result.error}")

    async def _change(self, tracked: Tracked, write: Write) -> None:
        """An amend or a decrease of one resting order."""
        o = tracked.order
        assert o.order_id is not None
        assert write.size is not None
        assert write.price is not None
        try:
            if write.kind is WriteKind.AMEND:
                answer = await self.rest.amend_order(
                    o.order_id,
                    ticker=o.ticker,
                    side=o.side,
                    price=write.price,
                    count=o.filled + write.size,
                )
            else:
                answer = await self.rest.decrease_order(
                    o.order_id, reduce_to=write.size, market_ticker=o.ticker
                )
        except (KalshiError, PayloadError) as exc:
            # Not retried by the client (it could apply twice) or refused: only the
            # exchange can say what the order is now.
            self._count(exc)
            self._move(tracked, OrderState.UNKNOWN, f"{write.kind} failed: {exc}")
            self._settle(tracked)
            return
        except Exception as exc:  # a bad argument, or a bug: the exchange decides
            log.exception("%s of %s failed unexpectedly", write.kind, o.order_id)
            self._move(tracked, OrderState.UNKNOWN, f"{write.kind} failed: {exc!r}")
            self._settle(tracked)
            return
        self._count(None)
        current = tracked.order
        if current.state is not OrderState.DONE:
            # Applied as asked (Kalshi applies it even when the answer describes another
            # order); user_orders and the verifier correct any difference.
            if write.price != current.price:
                tracked.since = self._clock()
            reported = answer.reported if answer.describes_request else None
            remaining = reported.remaining_count if reported is not None else None
            size = write.size if remaining is None else remaining
            if size <= 0:  # it filled (or was taken off) meanwhile: nothing rests
                self._finish(tracked, current.filled, f"{write.kind}: nothing rests")
            else:
                self._move(
                    tracked,
                    OrderState.RESTING,
                    f"{write.kind} done",
                    price=write.price,
                    count=current.filled + size,
                )
        self._settle(tracked)

    async def _cancel(self, targets: Sequence[Tracked]) -> None:
        """Send a cancel for orders already marked by :meth:`_begin_cancel`."""
        pairs = [(t.order.order_id or "", t.order.ticker) for t in targets]
        try:
            if len(pairs) == 1:
                changes = [await self.rest.cancel_order(pairs[0][0], market_ticker=pairs[0][1])]
            else:
                changes = await self.rest.batch_cancel(pairs)
        except Exception as exc:
            # The cancel may or may not have gone through; the verifier asks REST.
            if isinstance(exc, KalshiError | PayloadError):
                self._count(exc, len(targets))
            else:
                log.exception("a cancel failed unexpectedly; the verifier will ask REST")
                self.stats.failed += len(targets)
            for t in targets:
                t.cancel_acked = self._clock()
                self._set(t, t.order, f"cancel failed: {exc}")
                self._settle(t)
            return
        for t, change in zip(targets, changes, strict=True):
            try:
                self._count(change.error)
                if change.already_gone:
                    self._move(t, OrderState.DONE, "cancel: the exchange had no such order")
                else:
                    # Acknowledged is not done: the confirmation comes from user_orders or REST.
                    t.cancel_acked = self._clock()
            finally:
                self._settle(t)

    # ------------------------------------------------------------------ the exchange's word

    def on_user_order(self, update: ExchangeOrder) -> None:
        """A ``user_orders`` message (or a REST order): the exchange's view of one order."""
        tracked = self.find(order_id=update.order_id) or self.find(
            client_order_id=update.client_order_id
        )
        if tracked is None:
            return
        if tracked.order.order_id is None:
            self._set(tracked, replace(tracked.order, order_id=update.order_id), "id learned")
        filled = max(update.filled, tracked.filled_by_fills)
        if update.status in FINISHED:
            tracked.cancel_acked = None
            self._finish(tracked, filled, f"exchange: {update.status}")
            return
        if tracked.busy:
            return  # the write's answer will settle it; this may predate the write
        count = filled + update.remaining
        if tracked.cancel_acked is not None:
            return  # a resting report after our cancel: the verifier decides (may be stale)
        if update.price != tracked.order.price:
            tracked.since = self._clock()
        self._move(
            tracked, OrderState.RESTING, "exchange: resting", price=update.price, count=count,
            filled=filled,
        )  # fmt: skip
        self._on_settled(tracked.game)

    def on_fill(self, fill: Fill) -> None:
        """One of our fills: what is left of its order shrinks (positions are elsewhere)."""
        tracked = self.find(order_id=fill.order_id) or (
            self.find(client_order_id=fill.client_order_id) if fill.client_order_id else None
        )
        if tracked is None or fill.fill_id in tracked.fill_ids:
            return
        tracked.fill_ids.add(fill.fill_id)
        tracked.filled_by_fills += fill.count
        self._note_booking(tracked)
        o = tracked.order
        filled = max(o.filled, tracked.filled_by_fills)
        count = max(o.count, filled)
        if filled >= count and not tracked.busy:
            self._finish(tracked, filled, "filled")
            return
        if o.state is not OrderState.DONE:
            self._set(
                tracked, replace(o, filled=filled, count=count), f"fill {fill.count} @ {fill.price}"
            )
        self._on_settled(tracked.game)

    # ------------------------------------------------------------------ verification

    async def verify(self) -> None:
        """One pass over what is not settled: confirm cancels, resolve UNKNOWNs (module doc)."""
        now = self._clock()
        for t in self.tracked():
            if t.busy:
                continue
            if t.cancel_acked is not None:
                if (now - t.cancel_acked).total_seconds() >= self.confirm_after:
                    await self._confirm_cancel(t)
            elif t.unknown_since is not None and t.order.state is OrderState.UNKNOWN:
                waited = (now - t.unknown_since).total_seconds()
                if waited >= self.confirm_after:
                    await self._resolve(t, now)

    async def run_verifier(self, interval: float = 0.5) -> None:
        """The verification task; never raises except CancelledError."""
        while True:
            try:
                await self.verify()
            except (KalshiError, PayloadError) as exc:
                log.warning("order verification failed, retrying: %s", exc)
            self.forget_done()
            await asyncio.sleep(interval)

    async def _exchange_view(self, tracked: Tracked) -> ExchangeOrder | None:
        o = tracked.order
        if o.order_id is not None:
            try:
                return await self.rest.order(o.order_id)
            except KalshiError as exc:
                if exc.status == 404:
                    return None
                raise
        found = await self.rest.resolve_client_order_ids([o.client_order_id], ticker=o.ticker)
        return found.get(o.client_order_id)

    async def _confirm_cancel(self, tracked: Tracked) -> None:
        view = await self._exchange_view(tracked)
        if tracked.order.state is OrderState.DONE or tracked.busy:
            return  # the WS settled it while we asked
        if view is None or view.status in FINISHED:
            tracked.cancel_acked = None
            filled = view.filled if view else tracked.order.filled
            self._finish(tracked, filled, "cancel confirmed by REST")
            return
        if tracked.cancels_sent >= self.max_recancels:
            if tracked.cancels_sent == self.max_recancels:  # said once
                tracked.cancels_sent += 1
                problem = RuntimeError(
                    f"order {view.order_id} still rests after {self.max_recancels} cancels"
                )
                self._on_error("a cancel that does not take", problem)
            return
        self.stats.recancels += 1
        self._set(tracked, tracked.order, "cancel not applied: sent again")
        self._begin_cancel([tracked])
        await self._cancel([tracked])

    async def _resolve(self, tracked: Tracked, now: datetime) -> None:
        view = await self._exchange_view(tracked)
        if tracked.order.state is not OrderState.UNKNOWN or tracked.busy:
            return
        if view is None:
            assert tracked.unknown_since is not None
            waited = (now - tracked.unknown_since).total_seconds()
            if tracked.order.order_id is None and waited >= self.unknown_giveup:
                self.stats.given_up += 1
                self._finish(tracked, ZERO, f"not on the exchange after {waited:.0f} s")
            elif tracked.order.order_id is not None:
                self._finish(tracked, ZERO, "the exchange has no such order")
            return
        self.on_user_order(view)

    # ------------------------------------------------------------------ reconciliation

    def owns(self, client_order_id: str | None) -> bool:
        """Created by this package (any run): the client_order_id carries our root."""
        return client_order_id is not None and client_order_id.startswith(CLIENT_ID_ROOT)

    def adopt(self, exchange_order: ExchangeOrder, game: str) -> Tracked:
        """Track an order found resting on the exchange (ours from an earlier run)."""
        now = self._clock()
        e = exchange_order
        cid = e.client_order_id or f"{self.prefix}adopted-{e.order_id}"
        order = Order(
            cid, e.ticker, e.side, e.price, e.filled + e.remaining, e.filled,
            OrderState.RESTING, e.order_id,
        )  # fmt: skip
        # Its fills so far happened before this run: positions have them (journal, REST).
        tracked = Tracked(order, game, e.updated or now, now, filled_by_fills=e.filled)
        self._add(tracked)
        self.stats.adopted += 1
        self._on_change(tracked, "adopted from the exchange")
        return tracked

    async def cancel_foreign(self, orders: Sequence[ExchangeOrder]) -> None:
        """Cancel resting orders the engine does not own (not adopted)."""
        if not orders:
            return
        self.stats.foreign_cancelled += len(orders)
        await self.rest.batch_cancel([(o.order_id, o.ticker) for o in orders])

    async def reconcile_resting(
        self, resting: Sequence[ExchangeOrder], *, quiet_for: float = 5.0
    ) -> list[ExchangeOrder]:
        """Compare the exchange's resting orders with ours. Ours that it shows resting get
        its price and size; ours it does not show (and that have been quiet for
        ``quiet_for`` seconds: REST lags) are checked one by one. Returns the resting orders
        we do not track, for the caller to adopt or cancel."""
        now = self._clock()
        seen: set[str] = set()
        strangers: list[ExchangeOrder] = []
        for e in resting:
            tracked = self.find(order_id=e.order_id) or self.find(client_order_id=e.client_order_id)
            if tracked is None:
                strangers.append(e)
                continue
            seen.add(tracked.order.client_order_id)
            if tracked.order.state is OrderState.DONE:
                # We believed it gone and the exchange still has it: take it off.
                if (now - tracked.touched).total_seconds() >= quiet_for:
                    self._set(tracked, tracked.order, "exchange still shows it: cancelling")
                    await self.rest.cancel_order(e.order_id, market_ticker=e.ticker)
            elif (
                not tracked.busy
                and tracked.cancel_acked is None
                # Quiet for a while only: a listing lags, and must not undo an amend or a
                # decrease the WS has just confirmed.
                and (now - tracked.touched).total_seconds() >= quiet_for
            ):
                self.on_user_order(e)
        for t in self.tracked():
            if t.order.client_order_id in seen or t.busy or t.order.order_id is None:
                continue
            if (now - t.touched).total_seconds() >= quiet_for:
                view = await self._exchange_view(t)
                if view is None or view.status in FINISHED:
                    t.cancel_acked = None
                    self._finish(t, view.filled if view else t.order.filled, "reconciled: gone")
        return strangers
