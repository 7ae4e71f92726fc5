"""Start the whole embedded world inside a running event loop: exchange, agents, odds feed.

``await start_embedded(seed=7)`` draws a scenario, opens a demo account with a throwaway RSA
key (written to a private temporary directory), starts the Kalshi-compatible server and
the Odds-API server on 127.0.0.1, and runs the agents on the wall clock. It returns at once
with an :class:`EmbeddedSim` that holds the URLs and credentials; ``await sim.close()``
stops everything and deletes the key.

This is what the session's demo mode and the integration tests use; ``kmm sim`` runs the
same thing from a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Final

from kmm_interactive.sim.agents import AgentConfig, Simulation
from kmm_interactive.sim.auth import DemoKey, Verifier, write_demo_key
from kmm_interactive.sim.clock import WallClock
from kmm_interactive.sim.exchange import Exchange
from kmm_interactive.sim.faults import Faults
from kmm_interactive.sim.odds_server import OddsFeed, OddsServer, start_odds_server
from kmm_interactive.sim.ratelimit import RateLimiter
from kmm_interactive.sim.scenario import Scenario, build_scenario
from kmm_interactive.sim.server import (
    API,
    WS_PATH,
    KalshiServer,
    RunningServer,
    start_kalshi_server,
)

log = logging.getLogger(__name__)
DEMO_USER: Final = "demo-trader"
DEMO_BALANCE: Final = Decimal(10_000)
TICK_SECONDS: Final = 0.05  # how often the agents catch up with the wall clock


@dataclass
class EmbeddedSim:
    """A running embedded exchange and odds feed (see the module docstring)."""

    scenario: Scenario
    exchange: Exchange
    simulation: Simulation
    faults: Faults
    feed: OddsFeed
    key: DemoKey
    odds_api_key: str
    _kalshi: RunningServer = field(repr=False)
    _odds: OddsServer = field(repr=False)
    _key_dir: Path = field(repr=False)
    _driver: asyncio.Task[None] = field(repr=False)
    server: KalshiServer = field(repr=False)
    closed: bool = False

    @property
    def rest_url(self) -> str:
        return f"{self._kalshi.url}{API}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._kalshi.port}{WS_PATH}"

    @property
    def odds_url(self) -> str:
        return self._odds.url

    @property
    def admin_url(self) -> str:
        return f"{self._kalshi.url}/admin"

    def connection_info(self) -> dict[str, str]:
        """What a client needs (``kmm sim --json`` prints exactly this)."""
        return {
            "rest_url": self.rest_url,
            "ws_url": self.ws_url,
            "odds_url": self.odds_url,
            "odds_api_key": self.odds_api_key,
            "key_id": self.key.key_id,
            "private_key_path": str(self.key.private_key_path),
        }

    def __repr__(self) -> str:
        return (
            f"EmbeddedSim(scenario={self.scenario.name!r}, seed={self.scenario.seed}, "
            f"games={len(self.scenario.games)}, rest_url={self.rest_url!r}, closed={self.closed})"
        )

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            try:
                await self._kalshi.close()
            finally:
                await self._odds.close()
        finally:
            shutil.rmtree(self._key_dir, ignore_errors=True)


async def _drive(simulation: Simulation, clock: WallClock) -> None:
    while True:
        try:
            simulation.advance_to(clock.now())
        except Exception:  # an agent bug must not stop the market; it is logged
            log.exception("embedded exchange: agent step failed")
        await asyncio.sleep(TICK_SECONDS)


async def start_embedded(
    *,
    seed: int = 7,
    scenario: str = "default",
    speed: float = 30.0,
    n_games: int | None = None,
    agents: AgentConfig | None = None,
    tier: str = "basic",
    balance: Decimal = DEMO_BALANCE,
    kalshi_port: int = 0,
    odds_port: int = 0,
) -> EmbeddedSim:
    """Start everything in the running loop and return at once (see the module doc)."""
    asyncio.get_running_loop()  # fail early, with Python's own message, outside a loop
    clock = WallClock()
    scn = build_scenario(scenario, seed=seed, now=clock.now(), speed=speed, n_games=n_games)
    exchange = Exchange.from_scenario(scn, clock)
    exchange.open_account(DEMO_USER, balance)
    faults = Faults(seed)
    key_dir = Path(tempfile.mkdtemp(prefix="kmm-demo-key-"))
    kalshi: RunningServer | None = None
    try:
        key = write_demo_key(key_dir, str(uuid.UUID(int=secrets.randbits(128), version=4)))
        verifier = Verifier()
        verifier.register(key.key_id, key.public_key, DEMO_USER)
        server = KalshiServer(exchange, verifier, faults=faults, limiter=RateLimiter(tier))
        simulation = Simulation(scn, exchange, agents or AgentConfig(), seed=seed)
        simulation.advance_to(clock.now())
        odds_key = secrets.token_hex(16)
        feed = OddsFeed(scn, clock, seed=seed)
        kalshi = await start_kalshi_server(server, port=kalshi_port)
        odds = await start_odds_server(feed, api_key=odds_key, faults=faults, port=odds_port)
    except BaseException:  # nothing started may outlive a failed start, least of all the key
        if kalshi is not None:
            await kalshi.close()
        shutil.rmtree(key_dir, ignore_errors=True)
        raise
    driver = asyncio.create_task(_drive(simulation, clock), name="kmm-embedded-agents")
    log.info("embedded exchange on %s (%d games, speed %g)", kalshi.url, len(scn.games), speed)
    return EmbeddedSim(
        scenario=scn,
        exchange=exchange,
        simulation=simulation,
        faults=faults,
        feed=feed,
        key=key,
        odds_api_key=odds_key,
        _kalshi=kalshi,
        _odds=odds,
        _key_dir=key_dir,
        _driver=driver,
        server=server,
    )


def uptime_summary(sim: EmbeddedSim, started: float) -> str:
    ex = sim.exchange
    return (
        f"{time.monotonic() - started:.0f} s up, {len(ex.trades)} trades, "
        f"{len(sim.server.hub.connections)} WS clients, {sim.server.stats.requests} requests"
    )
