"""Shared test settings and fixtures: hypothesis runs deterministically and without
per-example deadlines (CI machines are slow and shared); ``venue`` is the embedded exchange
on loopback for the client and engine tests (its helpers live in tests/kalshikit.py). The
artifact guard (tests/artifact_guard.py) checks everything the run leaves for demo keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import settings
from kalshikit import Venue, start_venue

pytest_plugins = ["artifact_guard"]

settings.register_profile("kmm", deadline=None, derandomize=True, max_examples=150)
settings.load_profile("kmm")


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    """The "small" scenario, no agents, Basic rate limits; accounts alice and bob."""
    v = await start_venue()
    try:
        yield v
    finally:
        await v.running.close()
