"""Fixtures for the embedded exchange: a live server on loopback with two signed accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
from simkit import SignedClient, World, test_keys

from kmm_interactive.sim.auth import Verifier
from kmm_interactive.sim.clock import WallClock
from kmm_interactive.sim.exchange import Exchange
from kmm_interactive.sim.faults import Faults
from kmm_interactive.sim.ratelimit import RateLimiter
from kmm_interactive.sim.scenario import build_scenario
from kmm_interactive.sim.server import KalshiServer, start_kalshi_server


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """A server over the "small" scenario with two funded accounts and no agents."""
    clock = WallClock()
    scenario = build_scenario("small", seed=3, now=clock.now(), speed=1.0)
    exchange = Exchange.from_scenario(scenario, clock)
    verifier = Verifier()
    alice_key, bob_key = test_keys()
    for user, key in (("alice", alice_key), ("bob", bob_key)):
        exchange.open_account(user, Decimal(1000))
        verifier.register(f"key-{user}", key.public_key(), user)
    faults = Faults(seed=1)
    server = KalshiServer(exchange, verifier, faults=faults, limiter=RateLimiter("basic"))
    running = await start_kalshi_server(server)
    session = aiohttp.ClientSession()
    try:
        yield World(
            exchange,
            server,
            running,
            faults,
            SignedClient(session, running.url, "key-alice", alice_key),
            SignedClient(session, running.url, "key-bob", bob_key),
            session,
        )
    finally:
        await session.close()
        await running.close()
