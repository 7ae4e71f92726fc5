"""The live engine: discovers the configured sports' games, prices them, quotes them and keeps
them safe, as a set of asyncio tasks in the running loop.

Life of a session (:meth:`Engine.start` returns once the first three are done):

1. **Recover.** The journal's fills rebuild positions and PnL; the exchange is asked for
   the fills since on every market the journal has orders in, and for every resting order:
   ours (this run's ``client_order_id`` prefix, or an id its journal knows) are adopted on
   the games quoted and cancelled elsewhere; others on the games quoted are cancelled
   unless ``adopt_foreign``. Only then is anything quoted.
2. **Discover.** Each sport profile's series: its fee type, its open events and markets;
   games are matched to Odds API events (start time, team A) and priced (theo.py). A game
   without a known start time, of a fee type we cannot price, or already within the start
   buffer is skipped, with the reason kept in :attr:`Engine.skipped`.
3. **Subscribe.** Books, fills, our orders and market lifecycles over the WebSocket.
4. **Quote.** One coalescing task per game: a book change, a fill, an order update, a new
   theo or table, a halt or the clock (every second) marks the game dirty; the task runs
   ``strategy.decide`` on a snapshot and hands the wanted quotes to the order manager,
   which sends only the difference. Quote tables are solved off the event loop (a worker
   process, solver.py) whenever the theo or a parameter changes.
5. **Guard.** A monitor (4 Hz) keeps the halts true: WS down, stale books (after a grace,
   so a reconnect does not cancel everything), odds rechecks in flight, PnL limits, the
   REST failure rate, the start of each game (latched: never quoted again); every
   ``refresh.positions`` seconds positions and resting orders are reconciled with REST
   (and at once after a WS reconnect); a watchdog thread cancels everything if the loop
   stalls while orders rest.
6. **End of a game.** At ``start − start_buffer`` it halts and its orders are cancelled;
   once none rest its task ends. Every order also carries that time as its expiry on the
   exchange: should this process die, the exchange takes it off then (a backstop). At
   settlement its positions are settled and it is dropped.

Failure semantics: no task's exception vanishes. A task that fails latches
``ENGINE_ERROR`` for the whole session, the kill switch runs (a broken engine must not leave
orders resting), and then it is logged and journaled; :attr:`Engine.failures` keeps what
happened. A write the journal refuses (a full disk, say) is such a failure wherever it
happens: trading without a record stops. ``stop()``
cancels every order we know of (unless told not to) and closes every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from kmm_interactive.config import Config
from kmm_interactive.domain import (
    Fill,
    Game,
    Market,
    OrderState,
    SeriesFees,
    parse_dollars,
    utc_now,
)
from kmm_interactive.engine.game import GameRuntime, OwnOrder
from kmm_interactive.engine.guard import HaltBook, HaltRecord, KillReport, LoopWatchdog, kill_switch
from kmm_interactive.engine.journal import Journal, JournalError
from kmm_interactive.engine.orders import GROUP_LIMIT_CODE, OrderManager, Tracked
from kmm_interactive.engine.positions import MismatchCounter, reconcile
from kmm_interactive.engine.solver import TableSolver
from kmm_interactive.engine.theo import Override, Theo, TheoService, team_a_ticker
from kmm_interactive.kalshi.auth import Signer
from kmm_interactive.kalshi.errors import KalshiError, RateLimited, ServerError
from kmm_interactive.kalshi.messages import (
    BookDelta,
    BookSnapshot,
    FillMsg,
    LifecycleMsg,
    UserOrderMsg,
)
from kmm_interactive.kalshi.models import ExchangeOrder, MarketInfo, PayloadError
from kmm_interactive.kalshi.rest import KalshiRest
from kmm_interactive.kalshi.ws import (
    BOOK,
    Disconnected,
    Event,
    KalshiWs,
    Reconnected,
    SequenceGap,
    SubscriptionLost,
)
from kmm_interactive.ledger import PnL, PositionBook
from kmm_interactive.odds.client import OddsClient
from kmm_interactive.odds.matching import KalshiGame, ticker_start
from kmm_interactive.pricing.fees import UnsupportedFeeType, check_fee_type
from kmm_interactive.pricing.hjb import SolveError
from kmm_interactive.pricing.intensity import IntensityEstimate
from kmm_interactive.pricing.intensity_tracker import IntensityTracker
from kmm_interactive.pricing.quote_table import QuoteProblem
from kmm_interactive.strategy.halts import HaltReason, TradingState
from kmm_interactive.strategy.quoter import decide

log = logging.getLogger(__name__)

#: What :attr:`Engine.failures` calls a write the journal refused.
JOURNAL_FAILURE: Final = "journal write"

MONITOR_HZ: Final = 4.0
#: Every game is re-decided at least this often: τ moves, rests and holds expire.
TICK_SECONDS: Final = 1.0
DISCOVERY_SECONDS: Final = 300.0
EXCHANGE_STATUS_SECONDS: Final = 30.0
#: A REST failure rate is judged only over at least this many writes.
MIN_WRITES_FOR_RATE: Final = 10
#: How long a start-up step (discovery, recovery) is tried again while the exchange refuses
#: it for a passing reason (429, 5xx): a burst at start-up delays the engine.
STARTUP_PATIENCE: Final = 30.0


@dataclass(frozen=True)
class Connection:
    """Where the engine trades: the exchange's URLs and signer, the odds feed and its key."""

    env: str
    rest_url: str
    ws_url: str
    signer: Signer
    odds_url: str | None = None
    odds_key: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        odds = "none" if self.odds_url is None else self.odds_url
        return f"Connection(env={self.env!r}, rest_url={self.rest_url!r}, odds={odds!r})"


@dataclass(frozen=True)
class Skipped:
    event_ticker: str
    reason: str


@dataclass(frozen=True)
class EngineStatus:
    """One line's worth of how the session is doing."""

    state: TradingState
    halts: tuple[HaltRecord, ...]
    ws: str
    games: int
    quoting: int
    resting: int
    fills: int
    pnl: PnL
    odds_remaining: int | None
    write_tokens: float
    failures: int

    def line(self) -> str:
        halts = ", ".join(sorted({h.reason.value for h in self.halts})) or "none"
        odds = "?" if self.odds_remaining is None else str(self.odds_remaining)
        return (
            f"{self.state} | ws {self.ws} | games {self.quoting}/{self.games} quoting | "
            f"resting {self.resting} | fills {self.fills} | pnl {self.pnl.total:+.2f} "
            f"(realized {self.pnl.realized:+.2f}) | odds credits {odds} | halts: {halts}"
        )


class Engine:
    """The market maker (see the module doc). Build it, ``await start()``, ``await stop()``."""

    def __init__(
        self,
        config: Config,
        connection: Connection,
        *,
        journal: Journal | None = None,
        sports: Sequence[str] | None = None,
        adopt_foreign: bool = False,
        watchdog: bool = True,
        clock: Callable[[], datetime] = utc_now,
        rest_timeout: float = 10.0,
    ) -> None:
        unknown = sorted(set(sports or ()) - set(config.sports))
        if unknown:
            raise ValueError(
                f"sport {unknown[0]!r} has no profile (have: {', '.join(config.sports)})"
            )
        self.config = config
        self.connection = connection
        self.sports = tuple(sports) if sports else tuple(config.sports)
        self.adopt_foreign = adopt_foreign
        self.clock = clock
        self.journal = journal or Journal(None)
        self.journal.on_write_error = self._on_journal_error
        self.rest = KalshiRest(connection.rest_url, connection.signer, timeout=rest_timeout)
        self.ws = KalshiWs(connection.ws_url, connection.signer)
        self.odds = (
            OddsClient.from_config(config.odds, connection.odds_key, base_url=connection.odds_url)
            if connection.odds_url and connection.odds_key
            else None
        )
        self.halts = HaltBook(clock=clock, on_change=self._on_halt)
        self.positions = PositionBook()
        #: Our quotes' resting time and fills by distance from theo: the fitted A and k
        #: shown beside the trader's (estimation only; quoting uses the parameters set).
        self.intensity = IntensityTracker()
        self.mismatches = MismatchCounter(
            config.risk.mismatch_halt_after, config.risk.mismatch_window
        )
        self.orders = OrderManager(
            self.rest,
            run_id=self.journal.run_id,
            clock=clock,
            refill_below=config.quoting.refill_below,
            group_limit=config.risk.order_group_contracts,
            on_change=self._on_order,
            on_settled=self._dirty,
            on_rejected=self._on_rejected,
            on_error=self._fail,
        )
        self.theo = TheoService(
            self.odds, config, clock=clock, on_change=self._on_theo, on_event=self._on_theo_event
        )
        self.watchdog = (
            LoopWatchdog(connection.rest_url, connection.signer, limit=config.risk.loop_stall_after)
            if watchdog
            else None
        )
        self.games: dict[str, GameRuntime] = {}
        self.settled: dict[str, GameRuntime] = {}
        self.skipped: dict[str, Skipped] = {}
        self.failures: list[tuple[str, BaseException]] = []
        self.last_kill: KillReport | None = None
        self._by_ticker: dict[str, GameRuntime] = {}
        self._series_fees: dict[str, SeriesFees] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.solver = TableSolver()
        self._solves: set[asyncio.Task[None]] = set()
        self._stale_since: dict[str, float] = {}
        self._ws_down_since: float | None = None
        self._rest_samples: deque[tuple[float, int, int]] = deque()
        self._read_failures = 0
        self._fills = 0
        self._started = False
        self._stopping = False
        self._session_since: datetime | None = None
        self._reconciling = asyncio.Lock()
        self._reconciled_at: datetime | None = None
        self._suspects: dict[str, Decimal] = {}  # position differences seen once
        self._known_ids: set[str] = set()
        self._traded_before: set[str] = set()
        self._reconcile_again = False
        self._paused_by_refusal: dict[str, float] = {}
        self._reconnects = 0
        self._killing: asyncio.Task[KillReport] | None = None

    def __repr__(self) -> str:
        return (
            f"Engine(env={self.connection.env!r}, games={len(self.games)}, "
            f"state={self.halts.state(None)}, started={self._started})"
        )

    # ------------------------------------------------------------------ start and stop

    async def start(self) -> None:
        """Discover, recover, subscribe, then quote (see the module doc); idempotent. If any
        step fails, everything opened so far is closed and the error is raised: an engine
        that did not start is not left half-running."""
        if self._started:
            return
        self._started = True
        try:
            await self._start()
        except BaseException:
            # The journal stays open: what was recorded before the failure stays readable.
            await self.stop(cancel_orders=False, close_journal=False)
            raise

    async def _start(self) -> None:
        self._session_since = self.clock()
        self.journal.record("start", env=self.connection.env, sports=list(self.sports))
        for fill in self.journal.fills():
            self.positions.apply_fill(fill)
        with contextlib.suppress(KalshiError, PayloadError):
            await self.rest.configure_rate_limits()
        await self._patiently("discovery", self._discover)
        await self._patiently("recovery", self._recover)
        self.ws.on_event(self._on_ws)
        self.ws.start()
        await self._subscribe(self._all_tickers())
        await self.ws.subscribe("fill")
        await self.ws.subscribe("user_orders")
        await self.ws.subscribe("market_lifecycle_v2")
        self._spawn("theo", self.theo.run())
        self._spawn("verifier", self.orders.run_verifier())
        self._spawn("monitor", self._monitor())
        self._spawn("reconcile", self._reconcile_loop())
        self._spawn("discovery", self._discovery_loop())
        self._spawn("exchange status", self._exchange_status_loop())
        if self.watchdog is not None:
            self.watchdog.start()
            self._spawn("heartbeat", self.watchdog.run_heartbeat(self.orders.resting_count))
        for g in self.games.values():
            self._start_game(g)

    async def stop(
        self, *, cancel_orders: bool = True, close_journal: bool = True
    ) -> KillReport | None:
        """Stop quoting; cancel every order (verified, like the kill switch, but briefly)
        unless told not to; close every connection, and the journal unless told not to (a
        notebook keeps reading its tables). Idempotent."""
        if self._stopping:
            return None
        self._stopping = True
        report = None
        background: list[asyncio.Task[Any]] = list(self._tasks.values())
        if self._killing is not None:
            background.append(self._killing)  # stop() runs its own verified cancel below
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self.orders.close()
        if cancel_orders and self._started:
            report = await kill_switch(
                self.rest, self.orders.live_orders(), timeout=15.0, clean_checks=1, interval=0.2
            )
            self._record_safely("kill", why="stop", ok=report.ok, left=report.resting_left)
        if self.watchdog is not None:
            self.watchdog.stop()
        await self.ws.close()
        await self.rest.aclose()
        if self.odds is not None:
            await self.odds.aclose()
        for solve in list(self._solves):
            solve.cancel()
        await self.solver.close()
        self._record_safely("stop", pnl=str(self.pnl().total))
        if close_journal:
            self.journal.close()
        return report

    def _spawn(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"kmm-{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda t, n=name: self._task_done(n, t))  # type: ignore[misc]

    def _task_done(self, name: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is not None:
            self._fail(f"task {name}", exc)

    def _fail(self, what: str, exc: BaseException) -> None:
        """Something the engine relies on failed: halt, cancel all, say so everywhere. The
        halt and the cancels come first: the journal may be what failed."""
        if self._stopping:
            return
        log.error("engine: %s failed", what, exc_info=exc)
        self.failures.append((what, exc))
        self.halts.set(HaltReason.ENGINE_ERROR, None, f"{what}: {type(exc).__name__}: {exc}")
        if self._killing is None or self._killing.done():
            self._killing = asyncio.ensure_future(self._kill_now("engine error"))
        self._record_safely("error", task=what, error=f"{type(exc).__name__}: {exc}")

    def _on_journal_error(self, exc: JournalError) -> None:
        if not any(what == JOURNAL_FAILURE for what, _ in self.failures):  # said once
            self._fail(JOURNAL_FAILURE, exc)

    def _record_safely(self, kind: str, **data: Any) -> None:
        """Journal an event on the fail-safe paths (halts, kills, failures, what follows a
        reconnect), where a broken journal must not stop what comes after: it has halted
        the engine already (``_on_journal_error``)."""
        try:
            self.journal.record(kind, **data)
        except JournalError as exc:
            log.error("engine: could not journal %s: %s", kind, exc)

    # ------------------------------------------------------------------ discovery

    async def _discover(self) -> None:
        """Find the configured sports' open games and start tracking the new ones."""
        found: list[tuple[KalshiGame, list[MarketInfo], str]] = []
        for sport in self.sports:
            for series in self.config.sports[sport].series:
                try:
                    fees = self._series_fees.get(series) or (await self.rest.series(series)).fees
                    events = await self.rest.events(
                        series_ticker=series, status="open", with_nested_markets=True
                    )
                except KalshiError as exc:
                    if exc.status == 404:
                        continue  # a series this exchange does not list
                    raise
                self._series_fees[series] = fees
                for event in events:
                    if event.event_ticker in self.games or event.event_ticker in self.skipped:
                        continue
                    markets = [m for m in event.markets if m.status in ("active", "open")]
                    if len(markets) not in (2, 3):
                        self._skip(event.event_ticker, f"{len(markets)} open markets, not 2 or 3")
                        continue
                    pairs = tuple((m.ticker, m.yes_sub_title) for m in markets)
                    start = next((m.occurrence_time for m in markets if m.occurrence_time), None)
                    found.append(
                        (KalshiGame(event.event_ticker, series, start, pairs), markets, sport)
                    )
        if not found:
            return
        tracked = [g.kalshi for g in self.games.values() if g.kalshi is not None]
        self.theo.track(tracked + [kg for kg, _, _ in found])
        await self.theo.refresh()
        now = self.clock()
        for kalshi_game, markets, sport in found:
            runtime = self._build_game(kalshi_game, markets, sport, now)
            if runtime is None:
                continue
            self.games[runtime.event_ticker] = runtime
            for ticker in runtime.tickers:
                self._by_ticker[ticker] = runtime
            self._apply_theo(runtime, self.theo.theo(runtime.event_ticker))
            if self._tasks:  # discovered while running: subscribe and quote at once
                await self._subscribe(runtime.tickers)
                self._start_game(runtime)

    def _skip(self, event_ticker: str, reason: str) -> None:
        self.skipped[event_ticker] = Skipped(event_ticker, reason)
        log.info("%s: not quoted: %s", event_ticker, reason)

    def _build_game(
        self, kg: KalshiGame, markets: list[MarketInfo], sport: str, now: datetime
    ) -> GameRuntime | None:
        fees = self._series_fees[kg.series_ticker]
        try:
            check_fee_type(fees.fee_type)
        except UnsupportedFeeType as exc:
            self._skip(kg.event_ticker, str(exc))
            return None
        match = self.theo.match(kg.event_ticker)
        start = match.event.commence_time if match is not None else kg.start_time
        if start is None:
            coded = ticker_start(kg.event_ticker)
            start = coded[0] if coded is not None and coded[1] else None
        if start is None:
            self._skip(kg.event_ticker, "no start time (unmatched, and none on the exchange)")
            return None
        if (start - now).total_seconds() <= self.config.risk.start_buffer:
            self._skip(kg.event_ticker, f"starts at {start:%H:%M}Z, within the start buffer")
            return None
        info = {m.ticker: m for m in markets}

        def market(ticker: str) -> Market:
            m = info[ticker]
            return Market(ticker, kg.event_ticker, m.yes_sub_title, m.grid, fees)

        a = team_a_ticker(kg, match)
        teams = [t for t, _ in kg.team_markets]
        if a not in teams or len(teams) != 2:
            self._skip(kg.event_ticker, f"not a two-team game: {teams}")
            return None
        b = teams[1] if teams[0] == a else teams[0]
        tie = market(kg.tie_ticker) if kg.tie_ticker else None
        game = Game(kg.event_ticker, sport, start, market(a), market(b), tie)
        return GameRuntime(game, sport, self.config.sports[sport], self.config, kg)

    def _all_tickers(self) -> list[str]:
        return [t for g in self.games.values() if not g.finished for t in g.tickers]

    async def _subscribe(self, tickers: Sequence[str]) -> None:
        if tickers:
            await self.ws.subscribe("orderbook_delta", tickers)

    async def _exchange_status_loop(self) -> None:
        """Every ``EXCHANGE_STATUS_SECONDS``: a paused exchange (maintenance) halts every
        game; when it trades again the halt heals, and so do the games paused by a
        ``MARKET_INACTIVE`` refusal (they try again; a market that is still inactive
        refuses again)."""
        while True:
            try:
                status = await self.rest.exchange_status()
            except (KalshiError, PayloadError) as exc:
                self._read_failures += 1
                log.warning("exchange status unavailable: %s", exc)
            else:
                if status.trading_active:
                    self.halts.clear(HaltReason.EXCHANGE_PAUSED)
                    now = time.monotonic()
                    for game, since in list(self._paused_by_refusal.items()):
                        if now - since >= EXCHANGE_STATUS_SECONDS:
                            del self._paused_by_refusal[game]
                            self.halts.clear(HaltReason.EXCHANGE_PAUSED, game)
                else:
                    self.halts.set(HaltReason.EXCHANGE_PAUSED, None, "exchange not trading")
            await asyncio.sleep(EXCHANGE_STATUS_SECONDS)

    async def _discovery_loop(self) -> None:
        while True:
            await asyncio.sleep(DISCOVERY_SECONDS)
            try:
                await self._discover()
            except (KalshiError, PayloadError) as exc:
                log.warning("discovery failed, trying again later: %s", exc)

    async def _patiently(self, what: str, step: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a start-up step (it must be safe to run again) until it succeeds, again after
        each 429 or 5xx, backing off, for up to :data:`STARTUP_PATIENCE` seconds; then raise.
        Any other error is raised at once: a refused key, a payload we cannot read, and no
        answer at all (at start-up, most likely a wrong address: the trader hears of it now,
        not in half a minute)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_PATIENCE
        delay = 0.5
        while True:
            try:
                await step()
                return
            except (RateLimited, ServerError) as exc:
                if loop.time() + delay > deadline:
                    raise
                log.warning("%s failed, trying again in %.1f s: %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 5.0)

    # ------------------------------------------------------------------ recovery

    async def _recover(self) -> None:
        """Positions and resting orders as the exchange has them, before any quote: the
        journal's settlements, the exchange's settlements and fills since, then the resting
        orders on the markets we quote (ours adopted, others cancelled)."""
        for event in self.journal.events_frame("settled")["data"]:
            self._settle(event["ticker"], event["result"], event.get("value"))
        since = self.journal.last_fill_time()
        for settlement in await self.rest.settlements(min_ts=since):
            self._settle(settlement.ticker, settlement.market_result, None)
        self._known_ids = self.journal.known_client_order_ids()
        self._traded_before = self.journal.traded_tickers()
        await self._reconcile_positions(since=since - timedelta(minutes=5) if since else None)
        strangers = await self.rest.orders(status="resting")
        cancelled = await self._adopt_or_cancel(strangers)
        self.journal.record("reconcile", phase="start", adopted=len(strangers) - cancelled,
                            cancelled=cancelled)  # fmt: skip

    def _settle(self, ticker: str, result: str, value: object) -> None:
        """Settle a market in the positions (idempotent), and journal it."""
        if self.positions.holding(ticker).position == 0:
            return
        try:
            settlement_value = None if value is None else parse_dollars(value, "settlement value")
            self.positions.settle(ticker, result, settlement_value)
        except (TypeError, ValueError) as exc:
            log.warning("%s: cannot settle: %s", ticker, exc)
            return
        g = self._by_ticker.get(ticker)
        self.journal.record("settled", game=g.event_ticker if g else None, ticker=ticker,
                            result=result, value=settlement_value)  # fmt: skip

    def _ours(self, client_order_id: str | None) -> bool:
        """Made by this engine: this run, or a run whose journal this is."""
        return client_order_id is not None and (
            client_order_id.startswith(self.orders.prefix) or client_order_id in self._known_ids
        )

    async def _adopt_or_cancel(self, strangers: Sequence[ExchangeOrder]) -> int:
        """Resting orders the engine does not track. On a market of a game it quotes: ours
        (or any, with ``adopt_foreign``) are adopted while the game quotes, the rest are
        cancelled (two quoters on one book of one account would trade with each other).
        On other markets, ours are cancelled (nothing would manage them: a game skipped
        since, a sport no longer configured); others' are the account's own business."""
        cancel = []
        for order in strangers:
            g = self._by_ticker.get(order.ticker)
            if g is None:
                if self._ours(order.client_order_id):
                    cancel.append(order)
                continue
            live = not g.finished and HaltReason.GAME_STARTED not in self.halts.reasons(
                g.event_ticker
            )
            if live and (self.adopt_foreign or self._ours(order.client_order_id)):
                self.orders.adopt(order, g.event_ticker)
            else:
                cancel.append(order)
        if cancel:
            log.warning("cancelling %d resting orders on quoted markets", len(cancel))
            await self.orders.cancel_foreign(cancel)
        return len(cancel)

    # ------------------------------------------------------------------ quoting

    def _start_game(self, g: GameRuntime) -> None:
        self._spawn(f"game {g.event_ticker}", self._run_game(g))
        g.mark_dirty()

    async def _run_game(self, g: GameRuntime) -> None:
        """Requote whenever the game is marked dirty, and at least every ``TICK_SECONDS``
        (τ moves, rests and holds expire). Each game's tick has its own phase, so that
        200 games do not all requote in the same few milliseconds."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + random.uniform(0.0, TICK_SECONDS)
        while not g.finished:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(next_tick):
                    await g.dirty.wait()
            g.dirty.clear()
            await self._requote(g)
            next_tick = loop.time() + TICK_SECONDS
            if HaltReason.GAME_STARTED in self.halts.reasons(g.event_ticker) and not (
                self.orders.tracked(g.event_ticker)
            ):
                g.finished = True
                g.release()
                await self.ws.unsubscribe("orderbook_delta", g.tickers)
                self.journal.record("game_done", game=g.event_ticker)

    async def _requote(self, g: GameRuntime) -> None:
        self._check_stall()  # first thing after a stall: before any quote goes out
        self._refresh_tables(g)
        halts = self.halts.reasons(g.event_ticker)
        halted = any(r.state is TradingState.HALTED for r in halts)
        books = self.ws.books
        if not halted and any(books.get(t) is None or books[t].stale for t in g.tickers):
            return  # hold what rests until the book is back or the grace runs out
        own = {t: self.orders.own_sizes(t) for t in g.tickers}
        live = [
            OwnOrder(t.order.ticker, t.order.side, t.order.price, t.order.remaining, t.since)
            for t in self.orders.tracked(g.event_ticker)
        ]
        exposure = {}
        for markets in g.units:
            tickers = tuple(m.ticker for m in markets)
            e = self.positions.exposure(tickers)  # type: ignore[arg-type]  # one or two
            exposure[tickers] = (e.q, e.claim_cost)
        now = self.clock()
        state = g.state(books, own, live, exposure, halts, now)
        decision = decide(state, g.quote_params(), now)
        last = g.decision
        if last is None or (last.state, last.halts) != (decision.state, decision.halts):
            self.journal.record(
                "state", game=g.event_ticker, state=decision.state.name,
                halts=sorted(r.value for r in decision.halts),
            )  # fmt: skip
        g.remember(decision)
        # The exchange's expiry at the game's stop is the backstop should this process die.
        stop = g.game.start_time - timedelta(seconds=self.config.risk.start_buffer)
        await self.orders.apply(g.event_ticker, g.desired(), expires=stop)
        # The skew check takes the game's most skewed inventory (of three, in soccer), against
        # the sport's cap: the liquidity cap moves with the book's depth, and a level that
        # moved with it would ask for rechecks while q stood still.
        worst = max(decision.units, key=lambda u: abs(u.q))
        self.theo.note_inventory(g.event_ticker, worst.q, g.profile.cap)

    def _refresh_tables(self, g: GameRuntime) -> None:
        for i in range(len(g.units)):
            problem = g.problem_changed(i)
            if problem is None:
                continue
            g.solving[i] = problem
            task = asyncio.create_task(self._solve(g, i, problem))
            self._solves.add(task)
            task.add_done_callback(self._solves.discard)

    async def _solve(self, g: GameRuntime, unit: int, problem: QuoteProblem) -> None:
        try:
            table = await self.solver.solve(problem, g.model)
        except (SolveError, ValueError) as exc:
            if g.solving[unit] == problem:
                g.solving[unit] = None
                g.tables[unit] = None
                g.model_error = str(exc)
                self.halts.set(HaltReason.MODEL_ERROR, g.event_ticker, str(exc))
            return
        if g.solving[unit] != problem:
            return  # a newer problem is being solved
        g.solving[unit] = None
        g.tables[unit] = table
        if g.model_error is not None and all(s is None for s in g.solving):
            g.model_error = None
            self.halts.clear(HaltReason.MODEL_ERROR, g.event_ticker)
        g.mark_dirty()

    # ------------------------------------------------------------------ events

    def _game_of(self, ticker: str) -> GameRuntime | None:
        return self._by_ticker.get(ticker)

    def _dirty(self, event_ticker: str) -> None:
        g = self.games.get(event_ticker)
        if g is not None:
            g.mark_dirty()

    def _on_ws(self, event: Event) -> None:
        """Every WS event, inline and in order (must not block or raise)."""
        if isinstance(event, BookDelta | BookSnapshot):
            g = self._by_ticker.get(event.ticker)
            if g is not None:
                g.mark_dirty()
        elif isinstance(event, FillMsg):
            self._on_fill(event.fill)
        elif isinstance(event, UserOrderMsg):
            self.orders.on_user_order(event.order)
        elif isinstance(event, LifecycleMsg):
            self._on_lifecycle(event)
        elif isinstance(event, Reconnected):
            self._reconnects += 1
            self._record_safely("ws_reconnected", attempts=event.attempts, down_for=event.down_for)
            self._missed_messages(f"reconnect {self._reconnects}")
        elif isinstance(event, SequenceGap | SubscriptionLost) and event.channel != BOOK:
            # Fills, order updates or settlements may be lost (a book heals by its snapshot).
            self._missed_messages(f"{event.channel} {type(event).__name__}")
        elif isinstance(event, Disconnected):
            log.warning("WebSocket down: %s", event.reason)

    def _missed_messages(self, why: str) -> None:
        """WS messages may have been lost: what they would have said is read by REST at
        once (settlements, fills, positions and resting orders)."""
        self._spawn(f"reconcile after {why}", self._reconcile_once())

    def _on_fill(self, fill: Fill) -> None:
        if not self.positions.apply_fill(fill):
            return  # seen already (dedup by trade id)
        self._fills += 1
        g = self._by_ticker.get(fill.ticker)
        self.journal.fill(fill, game=g.event_ticker if g else None)
        self.orders.on_fill(fill)
        theo = g.probs.get(fill.ticker) if g is not None and g.probs else None
        if theo is not None and 0.0 < theo < 1.0 and not fill.is_taker:
            self.intensity.note_fill(fill.ticker, fill.side, fill.price, theo)
        if g is not None:
            self.theo.note_fill(g.event_ticker, fill.ts, g.q_direction(fill.ticker, fill.side))
            g.mark_dirty()

    def _on_lifecycle(self, msg: LifecycleMsg) -> None:
        g = self._by_ticker.get(msg.ticker)
        if g is None:
            return
        if msg.event_type in ("determined", "settled") and msg.result:
            self._settle(msg.ticker, msg.result, msg.settlement_value)
            if all(self.positions.holding(t).position == 0 for t in g.tickers):
                self._drop(g)
        elif msg.event_type == "deactivated" or msg.is_deactivated:
            self.halts.set(HaltReason.EXCHANGE_PAUSED, g.event_ticker, f"{msg.ticker} paused")
        elif msg.event_type == "activated":
            self.halts.clear(HaltReason.EXCHANGE_PAUSED, g.event_ticker)

    def _drop(self, g: GameRuntime) -> None:
        g.finished = True
        g.mark_dirty()
        self.games.pop(g.event_ticker, None)
        g.release()
        self.settled[g.event_ticker] = g
        for ticker in g.tickers:
            self.intensity.forget(ticker)

    def _on_order(self, tracked: Tracked, note: str) -> None:
        o = tracked.order
        self.journal.order(
            client_order_id=o.client_order_id, ticker=o.ticker, side=o.side, price=o.price,
            count=o.count, filled=o.filled, state=o.state, order_id=o.order_id,
            game=tracked.game, reason=note,
        )  # fmt: skip

    def _on_rejected(self, game: str, error: KalshiError | PayloadError) -> None:
        code = getattr(error, "code", "")
        if code == GROUP_LIMIT_CODE:
            self.halts.set(HaltReason.ORDER_GROUP_TRIGGERED, game, str(error))
        elif code == "MARKET_INACTIVE":
            self.halts.set(HaltReason.EXCHANGE_PAUSED, game, str(error))
            self._paused_by_refusal[game] = time.monotonic()

    def _on_halt(self, record: HaltRecord, is_set: bool) -> None:
        # A halt takes effect whether or not it can be written down.
        self._record_safely(
            "halt" if is_set else "halt_cleared", game=record.game,
            reason=record.reason.value, detail=record.detail,
        )  # fmt: skip
        targets = self.games.values() if record.game is None else [self.games.get(record.game)]
        for g in targets:
            if g is not None:
                g.mark_dirty()

    def _on_theo(self, event_ticker: str, theo: Theo | None) -> None:
        g = self.games.get(event_ticker)
        if g is not None:
            self._apply_theo(g, theo)
            g.mark_dirty()

    def _apply_theo(self, g: GameRuntime, theo: Theo | None) -> None:
        if theo is None:
            g.set_theo(None, None)
            return
        override = self.theo.override_of(g.event_ticker)
        g.set_theo(theo.probs, theo.as_of, override.expires_at if override else None)

    def _on_theo_event(self, kind: str, data: dict[str, object]) -> None:
        game = data.get("event_ticker")
        event = game if isinstance(game, str) else None
        # Nested, so that no key of the theo service's can stand in for the journal's own.
        self.journal.record(kind, game=event, data=data)
        if kind == "recheck" and event is not None and event in self.games:
            # At once, not at the monitor's next look: the exposed side pauses while the
            # pull is out (the monitor only catches what this misses).
            if data.get("state") == "requested":
                self.halts.set(HaltReason.ODDS_RECHECK, event, str(data.get("why", "")))
            else:
                self.halts.clear(HaltReason.ODDS_RECHECK, event)

    # ------------------------------------------------------------------ guarding

    async def _monitor(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(1.0 / MONITOR_HZ)
            now_mono = time.monotonic()
            # A stalled loop's time is not resting time anyone could have filled.
            self._observe_quotes(min(now_mono - last, 2.0 / MONITOR_HZ))
            last = now_mono
            self._check_ws(now_mono)
            self._check_rest_errors(now_mono)
            self._check_stall()
            now = self.clock()
            for g in list(self.games.values()):
                if not g.finished:
                    self._check_game(g, now, now_mono)
            self._check_session_loss()

    def _observe_quotes(self, seconds: float) -> None:
        for g in self.games.values():
            if g.probs is None:
                continue
            for t in self.orders.tracked(g.event_ticker):
                o = t.order
                theo = g.probs.get(o.ticker)
                if o.state is OrderState.RESTING and theo is not None and 0.0 < theo < 1.0:
                    self.intensity.observe(o.ticker, o.side, o.price, theo, seconds)

    def _check_ws(self, now: float) -> None:
        if self.ws.connected:
            self._ws_down_since = None
            self.halts.clear(HaltReason.WS_DOWN)
            return
        if self._ws_down_since is None:
            self._ws_down_since = now
        elif now - self._ws_down_since >= self.config.risk.ws_down_after:
            self.halts.set(HaltReason.WS_DOWN, None, "no WebSocket connection")

    def _check_rest_errors(self, now: float) -> None:
        """The share of writes (and reconciliation reads) over the window that got no usable
        answer; above ``max_rest_error_rate`` everything halts, below half of it the halt
        heals (hysteresis)."""
        stats = self.orders.stats
        samples = self._rest_samples
        samples.append((now, stats.answered, stats.failed + self._read_failures))
        while len(samples) > 1 and now - samples[1][0] >= self.config.risk.rest_error_window:
            samples.popleft()
        _, answered, failed = (b - a for a, b in zip(samples[0], samples[-1], strict=True))
        total = answered + failed
        limit = self.config.risk.max_rest_error_rate
        if total >= MIN_WRITES_FOR_RATE and failed / total > limit:
            self.halts.set(HaltReason.REST_ERROR_RATE, None, f"{failed} of {total} calls failed")
        elif total < MIN_WRITES_FOR_RATE or failed / total <= limit / 2:
            self.halts.clear(HaltReason.REST_ERROR_RATE)

    def _check_stall(self) -> None:
        """The watchdog's word: halt as soon as it has acted (before it has verified its
        cancels), and journal its report when it has one."""
        if self.watchdog is None:
            return
        detected = self.watchdog.take_detection()
        if detected is not None:
            self.halts.set(HaltReason.LOOP_STALL, None, f"loop stalled {detected:.1f} s")
        trip = self.watchdog.take_trip()
        if trip is not None:
            self.journal.record(
                "stall", stalled_for=trip.stalled_for, cancelled_ok=trip.cancelled_ok,
                resting_left=trip.resting_left, detail=trip.detail,
            )  # fmt: skip
            self.halts.set(HaltReason.LOOP_STALL, None, f"loop stalled {trip.stalled_for:.1f} s")

    def _check_game(self, g: GameRuntime, now: datetime, now_mono: float) -> None:
        game = g.event_ticker
        match = self.theo.match(game)
        if match is not None and match.event.commence_time != g.game.start_time:
            # A rescheduled or corrected start: the stop follows it (a started game stays
            # stopped, whatever the new time says).
            self.journal.record("start_time", game=game, old=g.game.start_time,
                                new=match.event.commence_time)  # fmt: skip
            g.game = dataclasses.replace(g.game, start_time=match.event.commence_time)
        if g.game.seconds_to_start(now) <= self.config.risk.start_buffer:
            self.halts.set(HaltReason.GAME_STARTED, game, f"starts {g.game.start_time:%H:%M}Z")
        stale = [t for t in g.tickers if (b := self.ws.books.get(t)) is None or b.stale]
        if stale:
            since = min(self._stale_since.setdefault(t, now_mono) for t in stale)
            if now_mono - since >= self.config.risk.stale_book_after:
                self.halts.set(HaltReason.STALE_BOOK, game, ", ".join(stale))
        else:
            for t in g.tickers:
                self._stale_since.pop(t, None)
            self.halts.clear(HaltReason.STALE_BOOK, game)
        if self.theo.recheck_pending(game):
            self.halts.set(HaltReason.ODDS_RECHECK, game)
        else:
            self.halts.clear(HaltReason.ODDS_RECHECK, game)
        loss = self.pnl(g.tickers, g).total
        if loss < -self.config.risk.max_game_loss:
            self.halts.set(HaltReason.PNL_LIMIT, game, f"game PnL {loss:.2f}")

    def _check_session_loss(self) -> None:
        total = self.pnl().total
        if total < -self.config.risk.max_session_loss:
            self.halts.set(HaltReason.PNL_LIMIT, None, f"session PnL {total:.2f}")

    # ------------------------------------------------------------------ reconciliation

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.refresh.positions)
            await self._reconcile_once()

    async def _reconcile_once(self) -> None:
        """A reconciliation pass; asked for while one runs, another follows it (what the
        running pass read may predate the reason for asking: a reconnect, a gap)."""
        if self._reconciling.locked():
            self._reconcile_again = True
            return
        async with self._reconciling:
            while True:
                self._reconcile_again = False
                await self._reconcile_pass()
                if not self._reconcile_again:
                    return

    async def _reconcile_pass(self) -> None:
        started = self.clock()
        try:
            # Settlements first: a market settled unseen would look like a mismatch.
            await self._catch_up_settlements()
            # Fills since the last good reconciliation (a margin for the exchange's lag).
            since = self._reconciled_at or self._session_since
            await self._reconcile_positions(since=since - timedelta(minutes=5) if since else None)
            strangers = await self.orders.reconcile_resting(
                await self.rest.orders(status="resting")
            )
            await self._adopt_or_cancel(strangers)
        except (KalshiError, PayloadError) as exc:
            self._read_failures += 1
            log.warning("reconciliation failed, retrying later: %s", exc)
            return
        self._reconciled_at = started

    async def _catch_up_settlements(self) -> None:
        """Settlements the lifecycle channel did not deliver (a gap, a reconnect, a market
        no longer subscribed); settling is idempotent."""
        since = self._reconciled_at or self._session_since
        for settlement in await self.rest.settlements(
            min_ts=since - timedelta(minutes=5) if since else None
        ):
            self._settle(settlement.ticker, settlement.market_result, None)

    async def _reconcile_positions(self, *, since: datetime | None) -> None:
        # Markets no longer quoted still hold what our orders traded there (a game that
        # started while this process was down, or whose quoting has ended): theirs count too.
        tickers = {t for g in self.games.values() for t in g.tickers}
        tickers |= self._traded_before | {h.ticker for h in self.positions.holdings()}
        report = await reconcile(
            self.positions, self.rest, tickers, since=since, now=self.clock(),
            suspects=self._suspects,
        )  # fmt: skip
        for fill in report.backfilled:
            g = self._by_ticker.get(fill.ticker)
            self.journal.fill(fill, game=g.event_ticker if g else None)
            self.orders.on_fill(fill)
            self._fills += 1
        for m in report.mismatches:
            g = self._by_ticker.get(m.ticker)
            game = g.event_ticker if g else None
            self.journal.record("mismatch", game=game, ticker=m.ticker, ours=m.ours,
                                exchange=m.exchange)  # fmt: skip
            if game is not None and self.mismatches.note(game, report.at):
                self.halts.set(HaltReason.RECONCILIATION_MISMATCH, game, f"{m.ticker}: {m}")
        if report.backfilled or report.mismatches:
            for g in self.games.values():
                g.mark_dirty()

    # ------------------------------------------------------------------ the trader's controls

    async def kill(self) -> KillReport:
        """The kill switch: latch HALTED everywhere, cancel everything, verify (60 s max)."""
        self.halts.set(HaltReason.MANUAL_KILL, None, "kill switch")
        return await self._kill_now("kill switch")

    async def _kill_now(self, why: str) -> KillReport:
        risk = self.config.risk
        report = await kill_switch(
            self.rest,
            self.orders.live_orders(),
            timeout=risk.kill_verify_timeout,
            clean_checks=risk.kill_clean_checks,
        )
        self.last_kill = report
        self._record_safely(
            "kill", why=why, ok=report.ok, resting_left=report.resting_left,
            seconds=report.seconds, detail=report.detail,
        )  # fmt: skip
        await self._reconcile_once()
        return report

    def rearm(self) -> list[HaltRecord]:
        """Clear the latched halts (kill, stall, loss limit, mismatches, group, errors);
        games that started stay stopped. Journaled."""
        cleared = self.halts.rearm()
        self.journal.record("rearm", cleared=[r.reason.value for r in cleared])
        for game in {r.game for r in cleared if r.reason is HaltReason.ORDER_GROUP_TRIGGERED}:
            if game is not None:
                self._spawn(f"reset group {game}", self._reset_group(game))
        return cleared

    async def _reset_group(self, game: str) -> None:
        try:
            await self.orders.reset_group(game)
        except (KalshiError, PayloadError) as exc:
            # Its creates will be refused and trip the halt again: said, not fatal.
            log.warning("%s: could not reset its order group: %s", game, exc)

    def game(self, target: str) -> GameRuntime:
        """A game by its event ticker or one of its market tickers."""
        g = None
        if isinstance(target, str):
            g = self.games.get(target) or self._by_ticker.get(target)
        if g is None:
            known = ", ".join(sorted(self.games)) or "none"
            raise KeyError(f"{target!r} is neither a game nor a market of one (games: {known})")
        return g

    def set_params(self, target: str, **changes: Any) -> dict[str, Any]:
        """Change a game's parameters (or, for A and k, one market's when ``target`` is a
        market ticker); validated before anything changes, journaled, in force at the next
        decision (a new quote table is solved off the loop)."""
        g = self.game(target)
        ticker = target if target in g.tickers else None
        changed = g.set_params(ticker, **changes)
        if changed:
            changes = {k: [str(a), str(b)] for k, (a, b) in changed.items()}
            self.journal.record("params", game=g.event_ticker, ticker=ticker, changes=changes)
            g.mark_dirty()
        return changed

    def override_theo(self, target: str, prob: float, *, ttl: float | str, reason: str) -> Override:
        """A manual theo for a game (``prob`` is team A's) or a market (its YES), for ``ttl``
        (seconds or "30m"); beats the feed, journaled, requoted at once."""
        return self.theo.override(target, prob, ttl=ttl, reason=reason)

    def clear_override(self, target: str) -> bool:
        return self.theo.clear_override(target)

    def pause(self, target: str) -> None:
        g = self.game(target)
        self.halts.pause(g.event_ticker, "paused by the trader")

    def resume(self, target: str) -> None:
        g = self.game(target)
        self.halts.resume(g.event_ticker)

    # ------------------------------------------------------------------ views

    def pnl(self, tickers: Sequence[str] | None = None, game: GameRuntime | None = None) -> PnL:
        """Realized and mark-to-market PnL at theo, from our own fills (no API calls)."""
        theos: dict[str, Decimal] = {}
        for g in [game] if game else list(self.games.values()):
            if g.probs:
                theos.update({t: Decimal(repr(p)) for t, p in g.probs.items()})
        return self.positions.pnl(theos, tickers)

    def intensity_estimates(self, g: GameRuntime) -> dict[str, IntensityEstimate]:
        """A and k fitted from our own quotes, per market of ``g`` (the sport's prior, with
        the reason, while the data are thin)."""
        prior = g.profile.intensity_prior
        return {t: self.intensity.estimate(t, prior) for t in g.tickers}

    def status(self) -> EngineStatus:
        quoting = sum(
            1
            for g in self.games.values()
            if g.decision is not None and any(q.quoting for q in g.decision.quotes.values())
        )
        quota = self.theo.quota
        write = self.rest.limiter.buckets["write"]
        return EngineStatus(
            state=self.halts.state(None),
            halts=tuple(self.halts.records()),
            ws=str(self.ws.state),
            games=len(self.games),
            quoting=quoting,
            resting=self.orders.resting_count(),
            fills=self._fills,
            pnl=self.pnl(),
            odds_remaining=quota.remaining if quota else None,
            write_tokens=write.level(),
            failures=len(self.failures),
        )

    def quotes(self) -> list[dict[str, Any]]:
        """Every game side's last decision, for tables and plots."""
        rows = []
        for g in self.games.values():
            if g.decision is None:
                continue
            for unit in g.decision.units:
                for q in unit.quotes:
                    rows.append(
                        {
                            "game": g.event_ticker,
                            "ticker": q.ticker,
                            "side": str(q.game_side),
                            "price": q.price,
                            "size": q.size,
                            "q": unit.q,
                            "cap": unit.cap,
                            "state": str(g.decision.state),
                            "reason": q.reason,
                        }
                    )
        return rows
