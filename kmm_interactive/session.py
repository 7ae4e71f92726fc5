"""The notebook's market maker: one object that runs the engine as tasks in the running
event loop, and gives the trader controls, tables and a dashboard.

::

    s = Session.demo(seed=7)          # the embedded exchange and odds feed on 127.0.0.1
    s.start()                         # returns at once; the engine runs between cells
    await s.ready()                   # optional: wait until the games are quoted
    s.dashboard()
    s.set_params("KXNBAGAME-…", gamma=0.03, k=0.8)
    s.override_theo("KXNBAGAME-…", 0.61, ttl="30m", reason="starter ruled out")
    await s.kill(); s.rearm()
    s.positions(); s.fills(); s.pnl()
    await s.stop()

Where it trades: :meth:`Session.demo` starts the embedded exchange (on a thread of its own,
so that a cell blocking the notebook's loop stalls the engine, not the exchange, and the
loop-stall watchdog can still cancel); :meth:`Session.live` trades Kalshi's demo or
production hosts with keys from the environment (production needs ``confirm_prod=True``);
:meth:`Session.from_config` picks one from a configuration file.

Threads: everything runs on the loop that called :meth:`start`. The controls are plain
methods to call from cells (the same thread); a widget callback, which may run on another
thread (ipykernel 7.0–7.3 subshells), hands its work over with :meth:`submit` instead.

Failure semantics:

* ``start()`` needs a running loop (a notebook cell, async code); a script calls
  :meth:`run_forever`. It is idempotent, and starting a session stops the one started
  before it in this process (re-running a cell must not double the tasks or the orders).
* If starting fails, the session is FAILED: ``status()`` and the dashboard say why, and the
  next call raises :class:`SessionError` with the cause. A task of the engine that fails
  halts everything (``ENGINE_ERROR``, orders cancelled); the next call raises it once, and
  ``status()`` keeps it until :meth:`rearm`.
* Every control validates all of its arguments before changing anything and raises an
  error saying what is allowed; a refused call changes nothing.
* ``stop()`` cancels our orders (verified) and closes every connection; the tables still
  read after it. ``kill()`` and ``stop()`` never raise for an earlier failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import html
import logging
import math
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from kmm_interactive.config import Config, ConfigError, load_config
from kmm_interactive.domain import utc_now
from kmm_interactive.engine.guard import HaltRecord, KillReport
from kmm_interactive.engine.history import History
from kmm_interactive.engine.journal import Journal
from kmm_interactive.engine.runtime import Connection, Engine
from kmm_interactive.engine.theo import Override
from kmm_interactive.engine.views import GameView, ParamView, game_view, param_view
from kmm_interactive.launch import EmbeddedExchange, compressed, live_connection
from kmm_interactive.ledger import PnL

if TYPE_CHECKING:
    from kmm_interactive.ui.dashboard import Dashboard

log = logging.getLogger(__name__)

#: History samples per second (the plots' resolution).
SAMPLE_HZ: Final = 2.0
#: set_params' names for the trader, and the engine's.
PARAM_NAMES: Final = {
    "gamma": "gamma",
    "k": "k",
    "A": "A",
    "size": "quote_size",
    "cap": "cap",
    "sigma": "sigma",
}
#: What submit() may run from a widget callback.
COMMANDS: Final = frozenset(
    {"set_params", "override_theo", "clear_override", "pause", "resume", "kill", "rearm"}
)

_current: weakref.ReferenceType[Session] | None = None


class SessionError(RuntimeError):
    """The session cannot do what was asked: not started, failed, or stopped."""


class Phase(enum.StrEnum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class SessionStatus:
    """How the session is doing, for the status bar and ``repr``."""

    phase: str
    env: str
    state: str
    halts: tuple[HaltRecord, ...]
    ws: str
    data_age: float | None  # seconds since the last WebSocket frame
    theo_age: float | None  # the freshest game's theo age
    games: int
    quoting: int
    resting: int
    fills: int
    pnl: PnL
    odds_remaining: int | None
    write_tokens: float
    write_capacity: float
    failures: tuple[str, ...]
    error: str | None
    last_kill: KillReport | None
    uptime: float

    def line(self) -> str:
        reasons = ", ".join(sorted({h.reason.value for h in self.halts})) or "none"
        if self.error:
            return f"{self.phase}: {self.error}"
        return (
            f"{self.phase} on {self.env} | {self.state} | halts: {reasons} | ws {self.ws} | "
            f"games {self.quoting}/{self.games} quoting | resting {self.resting} | "
            f"fills {self.fills} | PnL {self.pnl.total:+.2f}"
        )


def _age(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def status_html(st: SessionStatus) -> str:
    """The status as a small HTML block (the session's repr and the dashboard's bar)."""
    colour = {"ACTIVE": "#1a7f37", "REDUCING": "#9a6700", "HALTED": "#cf222e"}.get(
        st.state, "#57606a"
    )
    reasons = sorted({h.reason.value for h in st.halts})
    odds = "?" if st.odds_remaining is None else str(st.odds_remaining)
    used = 0.0 if st.write_capacity <= 0 else 1.0 - st.write_tokens / st.write_capacity
    parts = [
        f"<b>{html.escape(st.phase)}</b> on {html.escape(st.env)}",
        f'<b style="color:{colour}" class="kmm-state">{html.escape(st.state)}</b>'
        + (f" ({html.escape(', '.join(reasons))})" if reasons else ""),
        f"ws {html.escape(st.ws)}, data {_age(st.data_age)} old, theo {_age(st.theo_age)} old",
        f"games {st.quoting}/{st.games} quoting",
        f'<span class="kmm-resting">resting {st.resting}</span>',
        f"fills {st.fills}",
        f"PnL realized {st.pnl.realized:+.2f} · MTM {st.pnl.unrealized:+.2f} · "
        f"<b>total {st.pnl.total:+.2f}</b>",
        f"odds credits {odds}",
        f"write tokens used {used:.0%}",
    ]
    text = " | ".join(parts)
    if st.error:
        text += f'<br><b style="color:#cf222e">session error: {html.escape(st.error)}</b>'
    for failure in st.failures:
        text += f'<br><span style="color:#cf222e">task failed: {html.escape(failure)}</span>'
    if st.last_kill is not None:
        k = st.last_kill
        text += f'<br><span class="kmm-kill">kill switch: {k.verdict}, {k.seconds:.1f} s</span>'
    return f'<div class="kmm-status" style="font-family:monospace;font-size:12px">{text}</div>'


#: Tables show money to a hundredth of a cent (fees are fractions of a cent); the
#: positions keep every digit.
_SHOWN: Final = Decimal("0.0001")


def _money(value: Decimal) -> Decimal:
    return value.quantize(_SHOWN)


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ConfigError(name, value, "is not a number", "a finite number")
    try:
        number = float(value)
    except (OverflowError, ValueError):  # an int beyond any float; a signalling NaN
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(name, value, "is not finite", "a finite number")
    return number


def _pnl_row(p: PnL) -> dict[str, Decimal]:
    return {
        "realized": _money(p.realized),
        "mark-to-market": _money(p.unrealized),
        "fees": _money(p.fees),
        "total": _money(p.total),
    }


class Session:
    """The market maker in the notebook (see the module doc)."""

    def __init__(
        self,
        config: Config,
        connection: Connection | None = None,
        *,
        world: EmbeddedExchange | None = None,
        journal: str | Path | None = None,
        sports: Sequence[str] | None = None,
        watchdog: bool = True,
    ) -> None:
        if (connection is None) == (world is None):
            raise ValueError("a Session trades on a connection or an embedded world: give one")
        self.config = config
        self._connection = connection
        self._world = world
        self._journal_path = None if journal is None else Path(journal)
        if sports is not None:  # tuple("nba") would be ("n", "b", "a")
            names = list(sports) if isinstance(sports, Iterable) else None
            if (
                isinstance(sports, str)
                or names is None
                or not all(isinstance(n, str) for n in names)
            ):
                raise ValueError(
                    f"sports = {sports!r}: give a list of profile names, e.g. ['nba'] "
                    f"(have: {', '.join(config.sports)})"
                )
            sports = names
        self._sports = tuple(sports) if sports else None
        unknown = sorted(set(self._sports or ()) - set(config.sports))
        if unknown:
            raise ValueError(
                f"sport {unknown[0]!r} has no profile (have: {', '.join(config.sports)})"
            )
        self._watchdog = watchdog
        self.engine: Engine | None = None
        self.history = History()
        self.phase = Phase.NEW
        self.error: BaseException | None = None
        self._reported = 0  # engine failures already raised to the trader
        self._acknowledged = 0  # ... and cleared by rearm()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._started_at: float | None = None
        self._stop_report: KillReport | None = None
        self._stopping: asyncio.Task[KillReport | None] | None = None
        self._dashboards: list[Dashboard] = []
        self._sampler_error: str | None = None

    # ------------------------------------------------------------------ constructors

    @classmethod
    def demo(
        cls,
        seed: int = 7,
        speed: float = 30.0,
        *,
        config: Config | str | Path | None = None,
        games: int | None = None,
        sports: Sequence[str] | None = None,
        journal: str | Path | None = None,
        watchdog: bool = True,
        tier: str = "basic",
    ) -> Session:
        """Against the embedded exchange and odds feed (127.0.0.1, a throwaway key), with
        time compressed ``speed`` times: a game's last two hours pass in four minutes.
        ``tier`` is the account's rate-limit tier (Kalshi's names: basic, advanced, …)."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not 1 <= speed <= 1000:
            raise ValueError(f"speed = {speed!r}: must be a number from 1 to 1000")
        if games is not None and (
            isinstance(games, bool) or not isinstance(games, int) or not 1 <= games <= 500
        ):
            raise ValueError(f"games = {games!r}: must be an int from 1 to 500 (or None)")
        loaded = config if isinstance(config, Config) else load_config(config)
        world = EmbeddedExchange(seed=seed, speed=float(speed), n_games=games, tier=tier)
        return cls(
            compressed(loaded, float(speed)),
            world=world,
            journal=journal,
            sports=sports,
            watchdog=watchdog,
        )

    @classmethod
    def live(
        cls,
        config: Config | str | Path | None = "kmm.toml",
        env: str = "demo",
        *,
        confirm_prod: bool = False,
        journal: str | Path | None = "kmm-journal.sqlite",
        sports: Sequence[str] | None = None,
    ) -> Session:
        """Kalshi's ``demo`` or ``prod`` hosts. The key id and the private key's path come
        from the environment variables the configuration names (never from arguments, so
        that they stay out of notebooks); the Odds API key likewise (without it, games
        trade on manual theos only). Production needs ``confirm_prod=True``."""
        loaded = config if isinstance(config, Config) else load_config(config)
        connection = live_connection(loaded, env, confirm_prod=confirm_prod)
        return cls(loaded, connection, journal=journal, sports=sports)

    @classmethod
    def from_config(cls, path: str | Path, **options: Any) -> Session:
        """The environment the file names: ``embedded`` starts :meth:`demo`, ``demo`` and
        ``prod`` trade Kalshi (:meth:`live`; ``confirm_prod=True`` for prod)."""
        config = load_config(path)
        if config.exchange.env == "embedded":
            return cls.demo(config=config, **options)
        return cls.live(config, config.exchange.env, **options)

    @property
    def env(self) -> str:
        """Where it trades: ``embedded``, ``demo`` or ``prod``."""
        return self._connection.env if self._connection is not None else "embedded"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the session runs on (None before start()): where widgets hand work."""
        return self._loop

    @property
    def embedded(self) -> EmbeddedExchange | None:
        """A demo session's embedded exchange (``call(fn)`` reads its state), else None."""
        return self._world

    # ------------------------------------------------------------------ life cycle

    def start(self) -> asyncio.Task[None]:
        """Start the engine as tasks in the running loop and return at once (see the
        module doc); the task returned ends when the session stops."""
        global _current
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise SessionError(
                "start() needs a running event loop: call it from a notebook cell or async "
                "code; a script uses run_forever()"
            ) from None
        if self._main is not None and not self._main.done():
            return self._main
        if self.phase != Phase.NEW:
            raise SessionError(
                f"this session is {self.phase}; a session runs once: create a new one "
                "(e.g. Session.demo())"
            )
        previous = _current() if _current is not None else None
        _current = weakref.ref(self)
        self._loop = loop
        self.phase = Phase.STARTING
        self._started_at = time.monotonic()
        self._main = loop.create_task(self._run(previous), name="kmm-session")
        self._main.add_done_callback(self._main_done)
        return self._main

    async def ready(self, timeout: float = 60.0) -> Session:
        """Wait until the engine has started (games found, positions reconciled, books
        subscribed); raises the start's error if it failed."""
        if self._main is None:
            raise SessionError("the session is not started: call start() first")
        started = asyncio.ensure_future(self._ready.wait())
        try:
            done, _ = await asyncio.wait(
                [started, self._main], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            started.cancel()
        if not done:
            raise TimeoutError(f"the session did not start within {timeout:g} s")
        self._raise_if_failed()
        if not self._ready.is_set():
            raise SessionError(f"the session is {self.phase}: it stopped before it was ready")
        return self

    async def until(
        self, predicate: Callable[[], object], timeout: float = 30.0, every: float = 0.1
    ) -> None:
        """Wait (without blocking the loop) until ``predicate()`` is true; TimeoutError
        after ``timeout`` seconds. For notebook cells and tests that watch the market."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self._raise_if_failed()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not true within {timeout:g} s")
            await asyncio.sleep(every)

    async def _run(self, previous: Session | None) -> None:
        live = (Phase.STARTING, Phase.RUNNING)
        if previous is not None and previous is not self and previous.phase in live:
            log.warning("stopping the session started before this one (its orders cancelled)")
            await previous.stop()
        try:
            connection = self._connection
            if self._world is not None:
                connection = self._connection = await asyncio.to_thread(self._world.start)
            if connection is None:  # __init__ refuses this; kept explicit for the type
                raise SessionError("no connection to trade on")
            journal = Journal(self._journal_path)
            self.engine = Engine(
                self.config,
                connection,
                journal=journal,
                sports=self._sports,
                watchdog=self._watchdog,
            )
            await self.engine.start()
        except BaseException:
            if self.engine is not None:
                await self.engine.stop(cancel_orders=False, close_journal=False)
            if self._world is not None:
                await asyncio.to_thread(self._world.stop)
            raise
        self.phase = Phase.RUNNING
        self._ready.set()
        await self._sample_forever()

    def _main_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self.phase not in (Phase.STOPPING, Phase.STOPPED):
            self.phase = Phase.FAILED
            self.error = exc
            log.error("kmm session failed: %s: %s", type(exc).__name__, exc, exc_info=exc)

    async def _sample_forever(self) -> None:
        """The plots' history. A failure here is the display's, not the trading's: it is
        logged and shown in the status (the engine keeps its own guards), and the next
        sample is tried."""
        while True:
            try:
                self._sample()
            except Exception as exc:
                text = f"history sampler: {type(exc).__name__}: {exc}"
                if text != self._sampler_error:
                    log.exception("kmm session: %s", text)
                self._sampler_error = text
            else:
                self._sampler_error = None
            await asyncio.sleep(1.0 / SAMPLE_HZ)

    def _sample(self) -> None:
        engine = self.engine
        if engine is None or self._started_at is None:
            return
        views = self.game_views()
        self.history.record(time.monotonic() - self._started_at, engine.pnl(), views)
        self.history.forget(v.event_ticker for v in views)

    async def stop(self) -> KillReport | None:
        """Stop quoting, cancel our orders (verified), close everything; idempotent. The
        tables stay readable."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        return await asyncio.shield(self._stopping)

    async def _stop(self) -> KillReport | None:
        was = self.phase
        self.phase = Phase.STOPPING
        if self._main is not None and not self._main.done():
            self._main.cancel()
            with contextlib.suppress(BaseException):
                await self._main
        report = None
        try:
            if self.engine is not None:  # idempotent: a failed start has stopped it already
                report = await self.engine.stop(close_journal=False)
        except Exception as exc:  # said, and everything else still closes
            log.exception("kmm session: the engine did not stop cleanly")
            self.error = exc
            was = Phase.FAILED
        finally:
            if self._world is not None:
                await asyncio.to_thread(self._world.stop)
            self._stop_report = report
            self.phase = Phase.STOPPED if was != Phase.FAILED else Phase.FAILED
            for board in self._dashboards:
                board.close()  # after a last frame that shows the stop
        return report

    def run_forever(self, seconds: float | None = None) -> KillReport | None:
        """For scripts: run on a loop of its own (``asyncio.run``) until interrupted or for
        ``seconds``, then stop. In a notebook use ``start()`` instead."""

        async def main() -> KillReport | None:
            self.start()
            try:
                await self.ready()
                if seconds is None:
                    await asyncio.Event().wait()
                else:
                    await asyncio.sleep(seconds)
            finally:
                report = await self.stop()
            return report

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(main())
        raise SessionError("run_forever() owns its loop: in a notebook call start() instead")

    # ------------------------------------------------------------------ checks

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise SessionError(
                f"the session failed: {type(self.error).__name__}: {self.error}"
            ) from self.error

    def _running_engine(self) -> Engine:
        """The engine, after raising what the trader has not seen yet (see the module doc)."""
        self._raise_if_failed()
        if self.phase in (Phase.STOPPING, Phase.STOPPED):
            raise SessionError(f"the session is {self.phase}; create a new one to trade again")
        engine = self.engine
        if engine is None or self.phase != Phase.RUNNING:
            raise SessionError(f"the session is {self.phase}: call start(), then `await s.ready()`")
        failures = engine.failures
        if len(failures) > self._reported:
            what, exc = failures[-1]
            self._reported = len(failures)
            raise SessionError(
                f"{what} failed ({type(exc).__name__}: {exc}); everything is HALTED and our "
                "orders were cancelled; fix the cause, then rearm()"
            ) from exc
        return engine

    # ------------------------------------------------------------------ controls

    def set_params(self, target: str, **params: Any) -> dict[str, tuple[Any, Any]]:
        """Change a game's γ (``gamma``), σ (``sigma``), ``cap`` and quote ``size``, or
        ``A`` and ``k`` of one market (``target`` a market ticker) or of every market of
        the game (``target`` its event ticker). Returns what changed as (old, new)."""
        engine = self._running_engine()
        unknown = sorted(set(params) - set(PARAM_NAMES))
        if unknown:
            raise ConfigError(
                unknown[0], params[unknown[0]], "is not a parameter", ", ".join(PARAM_NAMES)
            )
        if not params:
            raise ValueError(f"set_params needs at least one of {', '.join(PARAM_NAMES)}")
        checked: dict[str, Any] = {}
        for name, value in params.items():
            number = _number(name, value)
            if name in ("size", "cap"):
                if number != int(number):
                    raise ConfigError(name, value, "is not a whole number", "an integer >= 1")
                checked[PARAM_NAMES[name]] = int(number)
            else:
                checked[PARAM_NAMES[name]] = number
        return engine.set_params(target, **checked)

    def override_theo(
        self, target: str, prob: float, *, ttl: float | str = "30m", reason: str
    ) -> Override:
        """Trade on ``prob`` instead of the feed for ``ttl`` (a game: team A's probability;
        a market: its YES), e.g. on breaking news. ``reason`` is journaled."""
        return self._running_engine().override_theo(target, prob, ttl=ttl, reason=reason)

    def clear_override(self, target: str) -> bool:
        """Back to the feed's theo; False if no override was in force."""
        return self._running_engine().clear_override(target)

    def pause(self, game: str) -> None:
        """Stop quoting one game (its orders are cancelled) until :meth:`resume`."""
        self._running_engine().pause(game)

    def resume(self, game: str) -> None:
        self._running_engine().resume(game)

    async def kill(self) -> KillReport:
        """The kill switch: HALTED everywhere, every order cancelled and the cancels
        verified (up to 60 s). Works whatever failed before; :meth:`rearm` to trade again."""
        if self.engine is None or self.phase in (Phase.STOPPING, Phase.STOPPED, Phase.FAILED):
            raise SessionError(
                f"nothing to kill: the session is {self.phase} (a failed start cancels nothing "
                "it adopted: check the exchange's resting orders)"
            )
        return await self.engine.kill()

    def rearm(self) -> list[HaltRecord]:
        """Clear the latched halts (the kill switch, stalls, loss limits, task failures);
        games that started stay stopped."""
        if self.engine is None or self.phase != Phase.RUNNING:
            raise SessionError(f"nothing to rearm: the session is {self.phase}")
        self._reported = self._acknowledged = len(self.engine.failures)
        return self.engine.rearm()

    def submit(self, command: str, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """Run a control on the session's loop from any thread (widget callbacks). The
        future carries its result or its exception; nothing runs on the caller's thread."""
        if not isinstance(command, str) or command not in COMMANDS:
            raise ValueError(f"unknown command {command!r} (have: {', '.join(sorted(COMMANDS))})")
        loop = self._loop
        if loop is None or loop.is_closed():
            raise SessionError("the session is not started: call start() first")
        method: Callable[..., Any] = getattr(self, command)

        async def run() -> Any:
            result = method(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        coro: Coroutine[Any, Any, Any] = run()
        return asyncio.run_coroutine_threadsafe(coro, loop)

    # ------------------------------------------------------------------ views

    def status(self) -> SessionStatus:
        engine = self.engine
        uptime = 0.0 if self._started_at is None else time.monotonic() - self._started_at
        env = self.env
        error = None if self.error is None else f"{type(self.error).__name__}: {self.error}"
        if engine is None:
            return SessionStatus(
                self.phase,
                env,
                "HALTED" if self.error else "–",
                (),
                "–",
                None,
                None,
                0,
                0,
                0,
                0,
                PnL(Decimal(0), Decimal(0), Decimal(0), Decimal(0)),
                None,
                0.0,
                0.0,
                (),
                error,
                None,
                uptime,
            )
        st = engine.status()
        now = utc_now()
        ages = [
            (now - t.as_of).total_seconds()
            for e in engine.games
            if (t := engine.theo.theo(e)) is not None
        ]
        write = engine.rest.limiter.buckets["write"]
        return SessionStatus(
            phase=self.phase,
            env=env,
            state=str(st.state),
            halts=st.halts,
            ws=st.ws,
            data_age=engine.ws.seconds_since_frame() if engine.ws.connected else None,
            theo_age=min(ages) if ages else None,
            games=st.games,
            quoting=st.quoting,
            resting=st.resting,
            fills=st.fills,
            pnl=st.pnl,
            odds_remaining=st.odds_remaining,
            write_tokens=st.write_tokens,
            write_capacity=float(write.limits.capacity),
            failures=tuple(
                f"{what}: {type(exc).__name__}: {exc}"
                for what, exc in engine.failures[self._acknowledged :]
            )
            + ((self._sampler_error,) if self._sampler_error else ()),
            error=error,
            last_kill=engine.last_kill,
            uptime=uptime,
        )

    def game_views(self) -> list[GameView]:
        """Every tracked game, soonest start first."""
        engine = self.engine
        if engine is None:
            return []
        now = utc_now()
        views = [game_view(engine, g, now) for g in engine.games.values()]
        return sorted(views, key=lambda v: (v.start_time, v.event_ticker))

    def param_view(self, game: str) -> ParamView:
        engine = self._engine_for_views()
        return param_view(engine, engine.game(game))

    def _engine_for_views(self) -> Engine:
        if self.engine is None:
            self._raise_if_failed()
            raise SessionError(f"the session is {self.phase}: nothing to show yet")
        return self.engine

    def games(self) -> pd.DataFrame:
        """One row per game: teams, start, state, theo (source, age, override), q and cap."""
        rows = []
        for v in self.game_views():
            rows.append(
                {
                    "game": v.event_ticker,
                    "sport": v.sport,
                    "away (A)": v.teams[0],
                    "home (B)": v.teams[1],
                    "start": v.start_time,
                    "to start (s)": round(v.seconds_to_start),
                    "state": v.state,
                    "halts": ", ".join(v.halts),
                    "theo A": v.theo_a,
                    "feed theo A": v.feed_theo_a,
                    "theo source": v.theo_source,
                    "theo age (s)": v.theo_age,
                    "override until": v.override_until,
                    "q": v.q,
                    "cap": v.cap,
                    "resting": v.resting_orders,
                    "PnL": _money(v.pnl),
                }
            )
        return pd.DataFrame(rows)

    def quotes(self) -> pd.DataFrame:
        """One row per side: what we want, what rests, the best competitor, and why."""
        rows = []
        for v in self.game_views():
            for s in v.sides:
                rows.append(
                    {
                        "game": v.event_ticker,
                        "side": s.label,
                        "ticker": s.ticker,
                        "book side": s.side.value,
                        "want": s.price,
                        "size": s.size,
                        "resting": s.resting,
                        "resting size": s.resting_size,
                        "best other": s.competitor,
                        "reason": s.reason,
                    }
                )
        return pd.DataFrame(rows)

    def positions(self) -> pd.DataFrame:
        """Every market we hold or have traded: position (+ YES, − NO), cost, PnL."""
        engine = self._engine_for_views()
        rows = []
        for h in engine.positions.holdings():
            rows.append(
                {
                    "ticker": h.ticker,
                    "position": h.position,
                    "avg cost": h.avg_cost,
                    "open cost": h.open_cost,
                    "realized": h.realized,
                    "fees": h.fees,
                    "volume": h.volume,
                    "fills": h.fills,
                    "last fill": h.last_fill,
                }
            )
        return pd.DataFrame(rows)

    def fills(self, ticker: str | None = None) -> pd.DataFrame:
        """Every fill journaled (this run and earlier ones on the same journal)."""
        return self._engine_for_views().journal.fills_frame(ticker)

    def pnl(self) -> pd.DataFrame:
        """PnL per game and in total: realized, mark-to-market at theo, fees."""
        engine = self._engine_for_views()
        rows = []
        for g in list(engine.games.values()) + list(engine.settled.values()):
            p = engine.pnl(g.tickers, g)
            rows.append({"game": g.event_ticker, **_pnl_row(p)})
        rows.append({"game": "TOTAL", **_pnl_row(engine.pnl())})
        return pd.DataFrame(rows)

    def halts(self) -> pd.DataFrame:
        """The halt reasons in force: which, for which game (None: all), since, why."""
        engine = self._engine_for_views()
        return pd.DataFrame(
            [
                {
                    "reason": r.reason.value,
                    "state": str(r.reason.state),
                    "game": r.game,
                    "since": r.since,
                    "detail": r.detail,
                }
                for r in engine.halts.records()
            ],
            columns=["reason", "state", "game", "since", "detail"],
        )

    def journal(
        self,
        kind: str | None = None,
        *,
        game: str | None = None,
        since: datetime | None = None,
        limit: int | None = 200,
    ) -> pd.DataFrame:
        """The journal's events (orders, fills, theos, overrides, parameters, halts), the
        newest ``limit`` (None: all), filtered by kind, game and time."""
        return self._engine_for_views().journal.events_frame(
            kind, game=game, since=since, limit=limit
        )

    # ------------------------------------------------------------------ the dashboard

    def dashboard(self) -> Any:
        """The widget dashboard (status, games, parameters, override, kill switch, plots);
        it redraws itself a few times a second while the session runs."""
        from kmm_interactive.ui.dashboard import Dashboard

        if self._loop is None:
            raise SessionError("start() the session before opening its dashboard")
        for old in self._dashboards:  # a re-run cell: one render task, never two
            old.close()
        board = Dashboard(self)
        self._dashboards = [board]
        if self.phase in (Phase.STOPPING, Phase.STOPPED, Phase.FAILED):
            board.render()  # a last look; nothing runs to redraw
        else:
            board.start()
        return board.widget

    def _repr_html_(self) -> str:
        return status_html(self.status())

    def __repr__(self) -> str:
        return f"Session(env={self.env!r}, phase={self.phase!r})"
