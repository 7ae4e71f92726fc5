"""Fixtures for the engine tests (the venue helpers live in tests/kalshikit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kalshikit import Venue, start_venue


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    """The "small" scenario, no agents, Basic rate limits; accounts alice and bob."""
    v = await start_venue()
    try:
        yield v
    finally:
        await v.running.close()
