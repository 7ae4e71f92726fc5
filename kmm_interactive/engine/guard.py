"""The engine's last lines of defence: the halts in force, the kill switch, the loop watchdog.

* :class:`HaltBook` records which named halt reasons (strategy/halts.py) are in force, per
  game and for the whole session, and derives each game's trading state from them. Healing
  reasons are cleared by whoever watches the condition; latched ones only by ``rearm()``
  (``resume()`` for a pause); ``GAME_STARTED`` never. It is plain state for the engine's
  loop (not thread-safe); the watchdog hands its trips over through ``take_trip()``.
* :func:`kill_switch` takes every order of the account off the exchange and keeps at it
  until the REST order list shows none on several consecutive checks. Kalshi's cancel
  answers can describe the wrong order (apis.md §1.11 #1), so no answer is believed; only
  the listing decides. The caller latches ``MANUAL_KILL`` first.
* :class:`LoopWatchdog` is a daemon thread with its own synchronous HTTP client that cancels
  everything at the exchange when the engine's event loop stops beating while orders rest:
  a blocking notebook cell freezes the loop, and with it the engine's own cancels.

Failure semantics: ``HaltBook.clear`` of a latched reason is a ``ValueError``, and a reason
that is not a :class:`HaltReason` or an empty game name is refused; an ``on_change``
callback's exception reaches the caller of the change (which stands). The kill switch
raises only ``CancelledError`` (and ``ValueError`` for bad arguments, before sending
anything): every failed call (REST error, unreadable answer, refused id) is counted and
logged and the loop goes on until the timeout, and the :class:`KillReport` says whether the
account is clean. The watchdog's thread never raises: failures are logged and counted in
its :class:`StallReport`. Nothing here logs a key or a signature (errors are described from
their text only, never from the signed request).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import EllipsisType
from typing import Any, Final

import httpx

from kmm_interactive.kalshi.auth import Signer, signing_path
from kmm_interactive.kalshi.errors import KalshiError, error_from_response
from kmm_interactive.kalshi.models import (
    ExchangeOrder,
    PayloadError,
    items,
    loads,
    obj,
    optional,
    parse_order,
    text,
)
from kmm_interactive.kalshi.rest import (
    ORDERS,
    KalshiRest,
    base_url_for,
    checked_id,
    transport_failure,
)
from kmm_interactive.strategy.halts import HaltReason, TradingState, trading_state

log = logging.getLogger(__name__)

#: ``resting_left`` when the order list could never be read: the count is not known.
UNKNOWN: Final = -1
#: Latched reasons that ``rearm()`` leaves alone: a started game is never quoted again, and
#: a pause is the trader's own, lifted by ``resume()``.
_REARM_KEEPS: Final = frozenset({HaltReason.GAME_STARTED, HaltReason.MANUAL_PAUSE})
_ORDER_LIST: Final = "/portfolio/orders"
_MAX_PAGES: Final = 100


# --------------------------------------------------------------------------- halts


@dataclass(frozen=True)
class HaltRecord:
    """One reason in force: for ``game``, or for every game when ``game`` is None."""

    reason: HaltReason
    game: str | None
    since: datetime
    detail: str


def _game(game: str | None) -> str | None:
    if game is not None and (not isinstance(game, str) or not game.strip()):
        raise ValueError(f"game must be a non-empty event ticker or None, got {game!r:.60}")
    return game


def _key(reason: HaltReason, game: str | None) -> tuple[HaltReason, str | None]:
    if not isinstance(reason, HaltReason):
        raise TypeError(f"reason must be a HaltReason, got {reason!r:.60}")
    return reason, _game(game)


def _one_game(game: str) -> str:
    """Pauses are per game: the session-wide stop is the kill switch."""
    if not isinstance(game, str):
        raise TypeError(f"give the game's event ticker, got {game!r:.60}")
    return game


class HaltBook:
    """The halt reasons in force, per game and global (``game=None``).

    ``clock`` stamps each record's ``since``; ``on_change(record, True)`` is called when a
    reason is newly set and ``on_change(record, False)`` when one is cleared, once per real
    change (setting what is already set, or clearing what is not, calls nothing).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        on_change: Callable[[HaltRecord, bool], None] | None = None,
    ) -> None:
        self._clock = clock
        self._on_change = on_change
        self._in_force: dict[tuple[HaltReason, str | None], HaltRecord] = {}

    def __repr__(self) -> str:
        shown = ", ".join(f"{r.reason}@{r.game or 'all'}" for r in self._in_force.values())
        return f"HaltBook({shown})"

    def set(self, reason: HaltReason, game: str | None = None, detail: str = "") -> bool:
        """Put ``reason`` in force; True if it was not already (a repeat keeps the first
        record, its ``since`` and its detail)."""
        key = _key(reason, game)
        if key in self._in_force:
            return False
        record = HaltRecord(reason, game, self._clock(), detail)
        self._in_force[key] = record
        self._changed(record, True)
        return True

    def clear(self, reason: HaltReason, game: str | None = None) -> bool:
        """Lift a reason that heals (stale book, WS down, stale theo, odds recheck, ...);
        True if it was in force. A latched reason is a ``ValueError``."""
        key = _key(reason, game)
        if reason is HaltReason.GAME_STARTED:
            raise ValueError("game started is never cleared: a started game is not quoted again")
        if reason is HaltReason.MANUAL_PAUSE:
            raise ValueError("manual pause is latched: use resume(game) to lift it")
        if reason.latched:
            raise ValueError(f"{reason} is latched: use rearm() to lift it")
        return self._drop(key)

    def reasons(self, game: str | None) -> frozenset[HaltReason]:
        """The reasons that apply to ``game``: its own and the global ones (for None, only
        the global ones)."""
        return frozenset(record.reason for record in self.records(game))

    def state(self, game: str | None) -> TradingState:
        return trading_state(self.reasons(game))

    def records(self, game: str | EllipsisType | None = ...) -> list[HaltRecord]:
        """The records in force, oldest first: all of them (the default), or those that
        apply to ``game`` (its own and the global ones; for None, the global ones)."""
        if game is ...:
            return list(self._in_force.values())
        wanted = _game(game)
        return [r for r in self._in_force.values() if r.game is None or r.game == wanted]

    def rearm(self) -> list[HaltRecord]:
        """Lift every latched reason, global and per game, except ``GAME_STARTED`` and
        ``MANUAL_PAUSE``; returns what was lifted."""
        lifted = [
            record
            for record in self._in_force.values()
            if record.reason.latched and record.reason not in _REARM_KEEPS
        ]
        for record in lifted:
            self._drop((record.reason, record.game))
        return lifted

    def pause(self, game: str, detail: str = "") -> bool:
        """The trader pauses ``game`` (``MANUAL_PAUSE``); True if it was not paused."""
        return self.set(HaltReason.MANUAL_PAUSE, _one_game(game), detail)

    def resume(self, game: str) -> bool:
        """Lift the trader's pause of ``game``; True if it was paused."""
        return self._drop(_key(HaltReason.MANUAL_PAUSE, _one_game(game)))

    def _drop(self, key: tuple[HaltReason, str | None]) -> bool:
        record = self._in_force.pop(key, None)
        if record is None:
            return False
        self._changed(record, False)
        return True

    def _changed(self, record: HaltRecord, in_force: bool) -> None:
        if self._on_change is not None:
            self._on_change(record, in_force)


# --------------------------------------------------------------------------- kill switch


@dataclass(frozen=True)
class KillReport:
    """How a kill-switch run ended. ``ok``: the order list showed no resting order on the
    required number of consecutive checks. ``resting_left``: what the last successful
    listing showed (:data:`UNKNOWN` if none succeeded). ``checks``: listings read;
    ``cancel_rounds``: rounds of cancels sent; ``errors``: calls (or batch items) that
    failed after the client's own retries."""

    ok: bool
    resting_left: int
    seconds: float
    checks: int
    cancel_rounds: int
    errors: int
    started: datetime
    detail: str

    @property
    def verdict(self) -> str:
        """What a trader reads: ``0 resting left (verified)``."""
        return f"{self.resting_left} resting left ({'verified' if self.ok else 'NOT verified'})"


@dataclass
class _Tally:
    """The running count of one kill-switch or watchdog run."""

    who: str
    checks: int = 0
    cancel_rounds: int = 0
    errors: int = 0
    resting: int = UNKNOWN
    clean: int = 0  # consecutive listings that showed nothing resting

    def failed(self, what: str, error: object) -> None:
        self.errors += 1
        log.warning("%s: %s failed: %s", self.who, what, error)

    def listed(self, resting: int) -> None:
        self.checks += 1
        self.resting = resting
        self.clean = 0 if resting else self.clean + 1

    def unlisted(self) -> None:
        self.clean = 0  # a check that could not be read breaks the run of clean ones


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} = {value!r} must be positive")


async def kill_switch(
    rest: KalshiRest,
    known: Sequence[tuple[str, str | None]],
    *,
    timeout: float = 60.0,
    clean_checks: int = 3,
    interval: float = 0.5,
) -> KillReport:
    """Cancel every order of ``rest``'s account and confirm it by listing.

    Batch-cancels ``known`` (order id, ticker) pairs and cancels all; then lists resting
    orders every ``interval`` seconds, re-cancelling whatever it finds, until
    ``clean_checks`` consecutive listings show none (ok) or ``timeout`` seconds have passed
    (not ok). See the module docstring for the failure semantics.
    """
    _require_positive(timeout=timeout, clean_checks=clean_checks)
    if interval < 0:
        raise ValueError(f"interval = {interval!r} must not be negative")
    loop = asyncio.get_running_loop()
    began, started = loop.time(), datetime.now(UTC)
    tally = _Tally("kill switch")
    try:
        async with asyncio.timeout_at(began + timeout):
            await _cancel_round(rest, list(known), tally)
            while True:
                resting = await _list_resting(rest, tally)
                if resting:
                    await _cancel_round(rest, [(o.order_id, o.ticker) for o in resting], tally)
                elif tally.clean >= clean_checks:
                    break
                await asyncio.sleep(interval)
        ok = True
    except TimeoutError:
        ok = False
    seconds = loop.time() - began
    if ok:
        detail = f"no resting orders on {clean_checks} consecutive checks"
    elif tally.resting == UNKNOWN:
        detail = f"the resting orders could not be listed within {timeout:g} s"
    else:
        detail = (
            f"{tally.resting} orders still resting at the last check, after {timeout:g} s"
            if tally.resting
            else f"only {tally.clean} of {clean_checks} clean checks within {timeout:g} s"
        )
    detail += f" ({tally.cancel_rounds} cancel rounds, {tally.errors} errors)"
    (log.info if ok else log.error)("kill switch: %s", detail)
    return KillReport(
        ok=ok,
        resting_left=tally.resting,
        seconds=seconds,
        checks=tally.checks,
        cancel_rounds=tally.cancel_rounds,
        errors=tally.errors,
        started=started,
        detail=detail,
    )


# Whatever goes wrong in one call (a REST error, an unreadable answer, an id the client
# refuses), the kill switch must keep trying until its timeout: hence `except Exception`.


async def _cancel_round(
    rest: KalshiRest, orders: Sequence[tuple[str, str | None]], tally: _Tally
) -> None:
    tally.cancel_rounds += 1
    if orders:
        try:
            changes = await rest.batch_cancel(orders)
        except Exception as exc:
            tally.failed("batch cancel", exc)
        else:
            for change in changes:
                if change.error is not None:
                    tally.failed(f"cancel of {change.order_id}", change.error)
    try:
        await rest.cancel_all()
    except Exception as exc:
        tally.failed("cancel all", exc)


async def _list_resting(rest: KalshiRest, tally: _Tally) -> list[ExchangeOrder] | None:
    try:
        orders = await rest.orders(status="resting")
    except Exception as exc:
        tally.failed("listing resting orders", exc)
        tally.unlisted()
        return None
    resting = [o for o in orders if o.is_resting]
    tally.listed(len(resting))
    return resting


# --------------------------------------------------------------------------- loop watchdog


@dataclass(frozen=True)
class StallReport:
    """One loop stall the watchdog acted on. ``stalled_for``: seconds since the last beat
    when it acted; ``resting_before``: the count the last beat reported; ``resting_left``:
    what the last listing showed (:data:`UNKNOWN` if none could be read); ``cancelled_ok``:
    the listing showed nothing resting on ``clean_checks`` consecutive checks; ``seconds``:
    how long cancelling and verifying took."""

    detected_at: datetime
    stalled_for: float
    resting_before: int
    resting_left: int
    cancelled_ok: bool
    seconds: float
    detail: str


class LoopWatchdog:
    """Cancels everything at the exchange when the event loop stops beating.

    The loop calls :meth:`beat` (or runs :meth:`run_heartbeat`) with how many orders rest.
    When no beat has come for more than ``limit`` seconds and orders rest (as the last beat
    said, or, when it said none, as the exchange lists: the beat can be one interval
    behind an order sent just before the stall), the thread (checking every ``poll``
    seconds) sends a signed cancel-all to
    ``rest_url`` (``"demo"``, ``"prod"`` or a URL ending in ``/trade-api/v2``), then lists
    resting orders every ``check_interval`` seconds, re-cancelling what it finds, until
    ``clean_checks`` consecutive listings show none or ``verify_timeout`` passes. It acts
    once per stall (the next beat re-arms it); the loop collects the result with
    :meth:`take_trip` and latches ``LOOP_STALL``. Each HTTP call gives up after
    ``http_timeout`` seconds.
    """

    def __init__(
        self,
        rest_url: str,
        signer: Signer,
        *,
        limit: float = 5.0,
        poll: float = 0.1,
        verify_timeout: float = 30.0,
        clean_checks: int = 2,
        http_timeout: float = 5.0,
        check_interval: float = 0.25,
    ) -> None:
        _require_positive(
            limit=limit,
            poll=poll,
            verify_timeout=verify_timeout,
            clean_checks=clean_checks,
            http_timeout=http_timeout,
            check_interval=check_interval,
        )
        self.rest_url = base_url_for(rest_url)
        self.limit = limit
        self.poll = poll
        self.verify_timeout = verify_timeout
        self.clean_checks = clean_checks
        self.http_timeout = http_timeout
        self.check_interval = check_interval
        self._root = signing_path(self.rest_url)  # signed paths start at the API root
        self._signer = signer
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Guarded by _lock:
        self._last_beat: float | None = None  # time.monotonic() of the last beat
        self._resting = 0
        self._tripped = False  # acted on the current stall already
        self._detected: float | None = None  # a stall acted on, for the loop to halt at once
        self._trip: StallReport | None = None

    def __repr__(self) -> str:
        return f"LoopWatchdog({self.rest_url!r}, limit={self.limit:g} s, running={self.running})"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ the loop's side

    def beat(self, resting_orders: int) -> None:
        """The loop is alive and ``resting_orders`` orders rest; thread-safe."""
        if isinstance(resting_orders, bool) or not isinstance(resting_orders, int):
            raise TypeError(f"resting_orders must be an int, got {resting_orders!r:.40}")
        if resting_orders < 0:
            raise ValueError(f"resting_orders = {resting_orders} must not be negative")
        with self._lock:
            self._last_beat = time.monotonic()
            self._resting = resting_orders
            self._tripped = False

    async def run_heartbeat(self, resting_orders: Callable[[], int], interval: float = 0.1) -> None:
        """Beat every ``interval`` seconds with ``resting_orders()``, until cancelled. If
        ``resting_orders`` raises, the task ends with its error and the beats stop (so the
        watchdog acts as for a stall)."""
        _require_positive(interval=interval)
        while True:
            self.beat(resting_orders())
            await asyncio.sleep(interval)

    def take_detection(self) -> float | None:
        """How long the loop stalled, if the watchdog has started cancelling because of it
        since the last call (the full report follows from :meth:`take_trip`)."""
        with self._lock:
            detected, self._detected = self._detected, None
        return detected

    def take_trip(self) -> StallReport | None:
        """The latest stall acted on since the last call, if any."""
        with self._lock:
            trip, self._trip = self._trip, None
        return trip

    def start(self) -> None:
        """Start watching (idempotent). Beats from before are forgotten: the first beat
        after this arms the watchdog."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                if self._stopping.is_set():
                    raise RuntimeError("the watchdog is still stopping; start it again shortly")
                return
            self._stopping.clear()
            self._last_beat, self._tripped = None, False
            self._thread = threading.Thread(
                target=self._watch, name="kmm-loop-watchdog", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop watching and join the thread (idempotent). It waits at most one HTTP
        call's timeout; a cancel in progress is abandoned."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._stopping.set()
        thread.join(self.http_timeout + self.poll + 1.0)
        if thread.is_alive():
            log.warning("loop watchdog: the thread is still finishing an HTTP call")

    # ------------------------------------------------------------------ the thread's side

    def _watch(self) -> None:
        with httpx.Client(
            base_url=self.rest_url,
            timeout=httpx.Timeout(self.http_timeout),
            headers={"Accept": "application/json"},
        ) as client:
            while not self._stopping.wait(self.poll):
                try:
                    self._check(client)
                except Exception:  # the watchdog must outlive its own bugs
                    log.exception("loop watchdog: a check failed")

    def _check(self, client: httpx.Client) -> None:
        with self._lock:
            if self._last_beat is None or self._tripped:
                return
            stalled_for = time.monotonic() - self._last_beat
            if stalled_for <= self.limit:
                return
            self._tripped = True
            resting_before = self._resting
        if resting_before == 0:
            # The last beat may predate orders sent just before the stall (it is up to one
            # beat old), so the exchange is asked once; with nothing there, nothing to do.
            listed = self._list_resting(client, _Tally("loop watchdog"))
            if listed == []:
                return
            resting_before = len(listed) if listed else UNKNOWN
        with self._lock:
            # Published before the cancels are verified (that can take verify_timeout): a
            # loop that wakes meanwhile must halt at once, not quote into the cancels.
            self._detected = stalled_for
        report = self._cancel_everything(client, stalled_for, resting_before)
        with self._lock:
            self._trip = report
        (log.warning if report.cancelled_ok else log.error)("loop watchdog: %s", report.detail)

    def _cancel_everything(
        self, client: httpx.Client, stalled_for: float, resting_before: int
    ) -> StallReport:
        detected_at, began = datetime.now(UTC), time.monotonic()
        log.error(
            "loop watchdog: no beat from the event loop for %.1f s with %d orders resting; "
            "cancelling everything at the exchange",
            stalled_for,
            resting_before,
        )
        tally = _Tally("loop watchdog")
        self._cancel_round(client, [], tally)
        while not self._stopping.is_set():
            resting = self._list_resting(client, tally)
            if resting:
                self._cancel_round(client, resting, tally)
            elif tally.clean >= self.clean_checks:
                break
            remaining = began + self.verify_timeout - time.monotonic()
            if remaining <= 0:
                break
            self._stopping.wait(min(self.check_interval, remaining))
        ok = tally.clean >= self.clean_checks
        stall = f"the loop stalled {stalled_for:.1f} s with {resting_before} orders resting"
        if ok:
            outcome = f"none rest on {self.clean_checks} consecutive checks"
        elif self._stopping.is_set():
            outcome = "the watchdog was stopped before the cancels were confirmed"
        elif tally.resting == UNKNOWN:
            outcome = "the resting orders could not be listed"
        else:
            outcome = f"{tally.resting} still rest after {self.verify_timeout:g} s"
        return StallReport(
            detected_at=detected_at,
            stalled_for=stalled_for,
            resting_before=resting_before,
            resting_left=tally.resting,
            cancelled_ok=ok,
            seconds=time.monotonic() - began,
            detail=f"{stall}: {outcome} ({tally.cancel_rounds} cancel rounds, "
            f"{tally.errors} errors)",
        )

    def _cancel_round(
        self, client: httpx.Client, listed: Sequence[ExchangeOrder], tally: _Tally
    ) -> None:
        tally.cancel_rounds += 1
        self._send(client, "DELETE", ORDERS, tally, "cancel all")
        for order in listed:
            if self._stopping.is_set():
                return
            try:
                path = f"{ORDERS}/{checked_id(order.order_id)}"
            except ValueError as exc:
                tally.failed("cancel", exc)
                continue
            params = {"market_ticker": order.ticker}
            self._send(client, "DELETE", path, tally, f"cancel of {order.order_id}", params)

    def _list_resting(self, client: httpx.Client, tally: _Tally) -> list[ExchangeOrder] | None:
        """Every resting order over all pages, or None if any page fails (logged)."""
        found: list[ExchangeOrder] = []
        cursor: str | None = None
        seen: set[str] = set()
        what = f"GET {_ORDER_LIST}"
        for _ in range(_MAX_PAGES):
            params = {
                "status": "resting",
                "limit": "1000",
                **({"cursor": cursor} if cursor else {}),
            }
            body = self._send(client, "GET", _ORDER_LIST, tally, "listing resting orders", params)
            if body is None:
                tally.unlisted()
                return None
            try:
                page = obj(body, what)
                rows = items(page.get("orders") or [], f"{what}.orders")
                found += [parse_order(row, f"{what}.orders[{i}]") for i, row in enumerate(rows)]
                cursor = optional(page, "cursor", what, text)
                if cursor and cursor in seen:
                    raise PayloadError(f"{what}: cursor {cursor[:40]!r} came back twice")
            except PayloadError as exc:
                tally.failed("listing resting orders", exc)
                tally.unlisted()
                return None
            if not cursor:
                resting = [o for o in found if o.is_resting]
                tally.listed(len(resting))
                return resting
            seen.add(cursor)
        tally.failed("listing resting orders", f"more than {_MAX_PAGES} pages")
        tally.unlisted()
        return None

    def _send(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        tally: _Tally,
        what: str,
        params: dict[str, str] | None = None,
    ) -> Any:
        """The decoded answer of a 2xx, or None when the call failed (logged, counted)."""
        headers = self._signer.headers(method, self._root + path)
        failure: KalshiError | PayloadError
        try:
            response = client.request(method, path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            # Described from its text alone: the exception holds the signed request.
            failure = transport_failure(exc, method, path)
        else:
            if response.is_success:
                try:
                    return loads(response.content) if response.content else {}
                except PayloadError as exc:
                    failure = exc
            else:
                failure = error_from_response(
                    response.status_code, response.content, method=method, path=path
                )
        tally.failed(what, failure)
        return None
