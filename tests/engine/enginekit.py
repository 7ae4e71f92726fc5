"""Helpers for the engine's integration tests: the embedded world on its own thread, an engine
trading it, and the exchange's own view of the demo account (the truth to compare with)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from kmm_interactive.config import Config, config_from_mapping
from kmm_interactive.engine.journal import Journal
from kmm_interactive.engine.runtime import Engine
from kmm_interactive.launch import EmbeddedExchange
from kmm_interactive.sim.embedded import DEMO_USER
from kmm_interactive.sim.exchange import cc_to_count

#: Compressed for tests: games start seconds apart, so the stop at the start is seen.
SETTINGS: dict[str, dict[str, Any]] = {
    "risk": {"start_buffer": "5s", "order_group_contracts": 5000, "stale_book_after": "5s"},
    "refresh": {"positions": "2s", "odds": "60s"},
    "quoting": {"min_rest": "0.5s", "back_off_hold": "5s"},
    "theo": {"max_age": "120s", "recheck_min_interval": "5s", "recheck_window": "3s"},
}


def engine_config(**changes: dict[str, Any]) -> Config:
    merged = {k: dict(v) for k, v in SETTINGS.items()}
    for section, values in changes.items():
        merged.setdefault(section, {}).update(values)
    return config_from_mapping(merged)


@dataclass(frozen=True)
class Resting:
    order_id: str
    client_order_id: str
    ticker: str
    side: str
    price: Decimal
    remaining: Decimal
    updated: float


def resting(world: EmbeddedExchange) -> list[Resting]:
    """The demo account's live orders, as the exchange has them."""

    def read(sim: Any) -> list[Resting]:
        return [
            Resting(o.order_id, o.client_order_id, o.ticker, o.book_side, o.price,
                    cc_to_count(o.remaining), o.updated)
            for o in sim.exchange.live_orders(DEMO_USER)
        ]  # fmt: skip

    result: list[Resting] = world.call(read)
    return result


def positions(world: EmbeddedExchange, tickers: list[str]) -> dict[str, Decimal]:
    def read(sim: Any) -> dict[str, Decimal]:
        return {t: cc_to_count(sim.exchange.position(DEMO_USER, t).position) for t in tickers}

    result: dict[str, Decimal] = world.call(read)
    return result


def order_updates(world: EmbeddedExchange) -> dict[str, tuple[str, float]]:
    """Every order of the demo account: order id → (status, last update time)."""

    def read(sim: Any) -> dict[str, tuple[str, float]]:
        orders = sim.exchange.account(DEMO_USER).orders.values()
        return {o.order_id: (o.status, o.updated) for o in orders}

    result: dict[str, tuple[str, float]] = world.call(read)
    return result


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def trading(
    path: Path,
    *,
    seed: int = 5,
    n_games: int = 4,
    speed: float = 30.0,
    config: Config | None = None,
    **engine_options: Any,
) -> AsyncIterator[tuple[EmbeddedExchange, Engine]]:
    """An embedded exchange on its own thread and an engine trading it (journal in ``path``)."""
    world = EmbeddedExchange(seed=seed, speed=speed, n_games=n_games)
    try:
        connection = world.start()
        engine = Engine(
            config or engine_config(),
            connection,
            journal=Journal(path / "journal.sqlite"),
            **engine_options,
        )
        try:
            await engine.start()
            yield world, engine
        finally:
            await engine.stop()
    finally:
        world.stop()


def quoted_sides(world: EmbeddedExchange) -> set[tuple[str, str]]:
    return {(o.ticker, o.side) for o in resting(world)}
