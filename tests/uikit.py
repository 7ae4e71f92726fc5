"""Helpers for the session and dashboard tests: a demo session on a small scenario."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from kmm_interactive.config import load_config
from kmm_interactive.session import Session
from kmm_interactive.sim.embedded import DEMO_USER
from kmm_interactive.sim.exchange import cc_to_count

#: The shipped defaults (what the quickstart runs), compressed by Session.demo.
SETTINGS_CONFIG = load_config(None)


@contextlib.asynccontextmanager
async def demo_session(seed: int = 5, games: int = 3, **options: object) -> AsyncIterator[Session]:
    """A started, ready demo session on ``games`` games; stopped on the way out."""
    s = Session.demo(seed=seed, games=games, config=SETTINGS_CONFIG, **options)  # type: ignore[arg-type]
    s.start()
    try:
        await s.ready(timeout=60)
        yield s
    finally:
        await s.stop()


def exchange_quotes(s: Session, prefix: str = "") -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """The demo account's resting orders as the exchange has them: (ticker, book side) →
    (price, remaining), for tickers starting with ``prefix``."""
    world = s.embedded
    assert world is not None

    def read(sim: Any) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
        return {
            (o.ticker, o.book_side): (o.price, cc_to_count(o.remaining))
            for o in sim.exchange.live_orders(DEMO_USER)
            if o.ticker.startswith(prefix)
        }

    result: dict[tuple[str, str], tuple[Decimal, Decimal]] = world.call(read)
    return result


def params_in_force(s: Session, game: str) -> tuple[object, ...]:
    """A game's parameters as set (not the estimates, which move with every fill)."""
    v = s.param_view(game)
    return (v.gamma, v.sigma, v.cap, v.quote_size, v.A, v.k)
