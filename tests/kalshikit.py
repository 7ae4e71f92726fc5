"""Helpers for the client and engine tests: the embedded exchange on loopback with two funded
accounts.

The client is tested over real HTTP and WebSockets against ``sim/``, which was written from
the same documentation independently of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kmm_interactive.kalshi.auth import Signer
from kmm_interactive.sim.auth import Verifier
from kmm_interactive.sim.clock import WallClock
from kmm_interactive.sim.exchange import Exchange
from kmm_interactive.sim.faults import Faults
from kmm_interactive.sim.ratelimit import RateLimiter
from kmm_interactive.sim.scenario import build_scenario
from kmm_interactive.sim.server import (
    API,
    WS_PATH,
    KalshiServer,
    RunningServer,
    start_kalshi_server,
)

#: The scenario's "now", fixed once per test run: tickers carry the game's date, so every
#: venue of a run lists the same tickers whatever the day (the first game starts 20 min on).
SCENARIO_NOW: Final = time.time()


def _small_tickers() -> tuple[str, str, str, str]:
    """(NBA market, NBA event, EPL market, EPL event) of the "small" scenario, seed 3."""
    games = {g.sport.series: g for g in build_scenario("small", seed=3, now=SCENARIO_NOW).games}
    nba, epl = games["KXNBAGAME"], games["KXEPLGAME"]
    return nba.outcomes[0].ticker, nba.event_ticker, epl.outcomes[0].ticker, epl.event_ticker


NBA, NBA_EVENT, EPL, EPL_EVENT = _small_tickers()


@dataclass
class Venue:
    """A running exchange, its fault switchboard, and signers for two accounts."""

    exchange: Exchange
    server: KalshiServer
    running: RunningServer
    faults: Faults
    alice: Signer
    bob: Signer

    @property
    def rest_url(self) -> str:
        return f"{self.running.url}{API}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.running.port}{WS_PATH}"


async def start_venue(tier: str = "basic", scenario: str = "small", seed: int = 3) -> Venue:
    clock = WallClock()
    scn = build_scenario(scenario, seed=seed, now=SCENARIO_NOW, speed=1.0)
    exchange = Exchange.from_scenario(scn, clock)
    verifier = Verifier()
    signers = []
    for user in ("alice", "bob"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        exchange.open_account(user, Decimal(1000))
        verifier.register(f"key-{user}", key.public_key(), user)
        signers.append(Signer(f"key-{user}", key))
    faults = Faults(seed=1)
    server = KalshiServer(exchange, verifier, faults=faults, limiter=RateLimiter(tier))
    running = await start_kalshi_server(server)
    return Venue(exchange, server, running, faults, signers[0], signers[1])


def new_signer(key_id: str = "key-nobody") -> Signer:
    """A signer with a fresh key that no venue knows."""
    return Signer(key_id, rsa.generate_private_key(public_exponent=65537, key_size=2048))


async def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (bounded) until ``check()`` holds; fail with ``what`` if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for: {what}")
        await asyncio.sleep(0.01)
