"""Where the engine trades, and the headless run.

* :func:`live_connection`: Kalshi's demo or production hosts (``exchange.env`` or given),
  the API key id and private key from the environment variables the configuration names,
  the Odds API key from its variable (without one, games trade on manual theos only).
  Production needs ``confirm_prod=True`` (``True`` itself, not another true-ish value),
  whether ``prod`` is given or read from the configuration: it is never a default. ``demo``
  pointed at a production host (``*.kalshi.com``) is refused rather than trading real money
  unconfirmed.
* :func:`connection_from_info`: an exchange ``kmm sim`` started on this machine; details
  naming any other host are refused.
* :class:`EmbeddedExchange`: the embedded exchange and odds feed on 127.0.0.1, on a thread
  of their own (so a blocked event loop stalls the engine, not the exchange, and the
  watchdog can still cancel), with a throwaway demo key; :func:`compressed` fits a
  configuration to its compressed time.
* :func:`run_headless`: the engine for a while, a status line every few seconds, and a
  summary at the end (``kmm run``, ``make demo-headless``).

Failure semantics: a missing or unreadable key is a ``CredentialsError`` (or ``ValueError``)
naming the variable to set; nothing is started half-way. An unconfirmed production run is a
``ValueError`` raised before any key is read or any host is contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

from kmm_interactive.config import KALSHI_ENDPOINTS, Config, Seconds
from kmm_interactive.engine.guard import KillReport
from kmm_interactive.engine.journal import Journal
from kmm_interactive.engine.runtime import Connection, Engine
from kmm_interactive.kalshi.auth import Signer
from kmm_interactive.sim.threaded import ThreadedEmbedded

#: Hosts an exchange started by ``kmm sim`` (or a test) can be on: this machine only.
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


def _is_production_host(url: str) -> bool:
    """Kalshi's production hosts are under kalshi.com (the demo ones under demo.kalshi.co)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    return host == "kalshi.com" or host.endswith(".kalshi.com")


def live_connection(
    config: Config,
    env: str | None = None,
    *,
    confirm_prod: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Connection:
    """Kalshi's ``demo`` or ``prod`` hosts with keys from the environment (module doc)."""
    env = env or config.exchange.env
    if env not in KALSHI_ENDPOINTS:
        raise ValueError(f"env {env!r}: a live connection is to 'demo' or 'prod'")
    if env == "prod" and confirm_prod is not True:  # True itself: not "no", 1 or "false"
        raise ValueError(
            "env 'prod' trades real money: confirm it explicitly "
            "(confirm_prod=True; --confirm-prod on the command line)"
        )
    endpoints = config.exchange.endpoints()
    if endpoints is None or config.exchange.env != env:
        endpoints = KALSHI_ENDPOINTS[env]
    if env == "demo" and any(_is_production_host(u) for u in (endpoints.rest, endpoints.ws)):
        raise ValueError(
            "env 'demo' points at a production host (exchange.rest_url / ws_url under "
            "kalshi.com): production is env 'prod', confirmed explicitly"
        )
    variables = os.environ if environ is None else environ
    signer = Signer.from_env(
        config.exchange.key_id_env, config.exchange.private_key_path_env, environ=variables
    )
    odds_key = variables.get(config.odds.api_key_env, "").strip() or None
    return Connection(
        env,
        endpoints.rest,
        endpoints.ws,
        signer,
        config.odds.base_url if odds_key else None,
        odds_key,
    )


def compressed(config: Config, speed: float) -> Config:
    """``config`` for the embedded world run ``speed`` times faster than life: the durations
    that describe the market's pace (the stop before a start, how long odds stay good, how
    often they are pulled, the recheck windows) shrink by ``speed``, and the order group's
    contracts per 15 s grow by it, each within its own allowed range. Wall-clock settings
    (rests, backoffs, timeouts, the watchdog) stay as they are."""
    if not speed > 0:
        raise ValueError(f"speed = {speed}: must be above zero")
    theo, risk, refresh = config.theo, config.risk, config.refresh
    odds = Seconds(max(refresh.odds / speed, 10.0))
    return dataclasses.replace(
        config,
        risk=dataclasses.replace(
            risk,
            start_buffer=Seconds(risk.start_buffer / speed),
            order_group_contracts=min(int(risk.order_group_contracts * speed), 1_000_000),
        ),
        refresh=dataclasses.replace(refresh, odds=odds),
        theo=dataclasses.replace(
            theo,
            max_age=Seconds(max(theo.max_age / speed, 60.0, odds)),
            recheck_window=Seconds(max(theo.recheck_window / speed, 1.0)),
            recheck_min_interval=Seconds(theo.recheck_min_interval / speed),
        ),
    )


def connection_from_info(info: Mapping[str, str], env: str = "embedded") -> Connection:
    """A connection from the details ``kmm sim --json`` prints (an exchange started
    elsewhere: another terminal, or a test that must outlive the engine's process). Its
    URLs must be on this machine (``ValueError`` otherwise): Kalshi's own hosts are reached
    through :func:`live_connection`, which holds the production gate."""
    missing = sorted({"rest_url", "ws_url", "key_id", "private_key_path"} - set(info))
    if missing:
        raise ValueError(f"connection details lack {', '.join(missing)} (see `kmm sim --json`)")
    for name in ("rest_url", "ws_url", "odds_url"):
        url = info.get(name)
        host = urlsplit(url).hostname if isinstance(url, str) else None
        if url is not None and host not in _LOOPBACK_HOSTS:
            raise ValueError(
                f"connection details: {name} is on {host or 'no host'!r}, not this machine; "
                "they describe an exchange `kmm sim` started here (Kalshi's hosts: env demo "
                "or prod)"
            )
    signer = Signer.from_pem_file(info["key_id"], info["private_key_path"])
    return Connection(
        env, info["rest_url"], info["ws_url"], signer, info.get("odds_url"),
        info.get("odds_api_key"),
    )  # fmt: skip


class EmbeddedExchange:
    """The embedded exchange and odds feed on their own thread (see the module doc)."""

    def __init__(self, *, seed: int = 7, speed: float = 30.0, **options: Any) -> None:
        self._world = ThreadedEmbedded(seed=seed, speed=speed, **options)
        self._info: dict[str, str] = {}

    def start(self) -> Connection:
        self._info = self._world.start()
        return connection_from_info(self._info)

    @property
    def info(self) -> dict[str, str]:
        """What ``kmm sim --json`` would print for this exchange (it includes the odds key)."""
        return dict(self._info)

    def call(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(sim)`` on the exchange's thread (to read or change its state safely)."""
        return self._world.call(fn)

    def stop(self) -> None:
        self._world.stop()

    def __enter__(self) -> EmbeddedExchange:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class RunSummary:
    seconds: float
    games: int
    skipped: int
    fills: int
    realized: str
    total: str
    halts: tuple[str, ...]
    stop_report: KillReport | None
    failures: tuple[str, ...]

    def lines(self) -> list[str]:
        ok = self.stop_report is None or self.stop_report.ok
        left = self.stop_report.resting_left if self.stop_report else 0
        return [
            f"ran {self.seconds:.0f} s on {self.games} games ({self.skipped} skipped)",
            f"fills {self.fills}, realized PnL {self.realized}, total PnL {self.total}",
            f"halts at the end: {', '.join(self.halts) or 'none'}",
            f"orders left resting at stop: {left} ({'verified' if ok else 'NOT verified'})",
            *(f"task failed: {f}" for f in self.failures),
        ]


async def run_headless(
    config: Config,
    connection: Connection,
    *,
    seconds: float | None,
    journal_path: str | Path | None = None,
    status_every: float = 5.0,
    sports: tuple[str, ...] | None = None,
    out: Callable[[str], None] = print,
) -> RunSummary:
    """Run the engine for ``seconds`` (None: until interrupted), printing a status line
    every ``status_every`` seconds and returning the summary."""
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    engine = Engine(config, connection, journal=Journal(journal_path), sports=sports)
    report = None
    try:
        await engine.start()
        out(
            f"trading {len(engine.games)} games on {connection.env} ({len(engine.skipped)} skipped)"
        )
        while not stop.is_set():
            left = None if seconds is None else seconds - (time.monotonic() - started)
            if left is not None and left <= 0:
                break
            wait = status_every if left is None else min(status_every, left)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            out(engine.status().line())
    finally:
        report = await engine.stop()
    status = engine.status()
    return RunSummary(
        seconds=time.monotonic() - started,
        games=len(engine.games) + len(engine.settled),
        skipped=len(engine.skipped),
        fills=status.fills,
        realized=f"{status.pnl.realized:+.2f}",
        total=f"{status.pnl.total:+.2f}",
        halts=tuple(sorted({h.reason.value for h in status.halts})),
        stop_report=report,
        failures=tuple(f"{name}: {exc}" for name, exc in engine.failures),
    )
