"""Restart: the engine's process is killed mid-run (SIGKILL: nothing is cleaned up), then a new
engine starts on the same journal against the same exchange. Positions and PnL continue,
no order is duplicated, and nothing rests that the engine does not know."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from enginekit import SETTINGS, engine_config, positions, resting, until

from kmm_interactive.engine.journal import Journal
from kmm_interactive.engine.runtime import Engine
from kmm_interactive.kalshi.rest import KalshiRest
from kmm_interactive.launch import EmbeddedExchange, connection_from_info
from kmm_interactive.ledger import PositionBook


def toml(settings: dict[str, dict[str, object]]) -> str:
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def journaled_fills(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        try:
            return int(db.execute("SELECT count(*) FROM fills").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


async def test_a_killed_engine_restarts_on_its_journal_without_losing_anything(
    tmp_path: Path,
) -> None:
    world = EmbeddedExchange(seed=9, speed=30.0, n_games=3)
    try:
        world.start()
        details = tmp_path / "exchange.json"
        details.write_text(json.dumps(world.info))
        config = tmp_path / "kmm.toml"
        config.write_text(toml(SETTINGS))
        journal = tmp_path / "journal.sqlite"
        first = subprocess.Popen(
            [sys.executable, "-m", "kmm_interactive", "run", "--config", str(config),
             "--connect", str(details), "--journal", str(journal), "--seconds", "120"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            await until(lambda: journaled_fills(journal) >= 10, 45, "ten journaled fills")
            await until(lambda: len(resting(world)) >= 4, 10, "orders resting")
        finally:
            os.kill(first.pid, signal.SIGKILL)  # abrupt: no cancels, no goodbye
            first.wait(10)
        assert first.returncode == -signal.SIGKILL
        orphans = {o.order_id: o.client_order_id for o in resting(world)}
        assert orphans, "the killed engine left orders resting (as a crash would)"

        engine = Engine(engine_config(), connection_from_info(world.info), journal=Journal(journal))
        try:
            await engine.start()
            # The killed run's orders were taken over: every one still resting is known.
            assert engine.orders.stats.adopted >= 1
            for order_id, cid in orphans.items():
                if order_id in {o.order_id for o in resting(world)}:
                    known = engine.orders.find(order_id=order_id)
                    assert known or engine.orders.find(client_order_id=cid)
            await asyncio.sleep(3.0)  # trade a little on the recovered state
            live = resting(world)
            assert live
            per_side = Counter((o.ticker, o.side) for o in live)
            assert max(per_side.values()) == 1, per_side  # no duplicate orders
            unknown = [
                o
                for o in live
                if engine.orders.find(order_id=o.order_id) is None
                # a create whose answer is still on its way is known by its client id
                and engine.orders.find(client_order_id=o.client_order_id) is None
            ]
            assert unknown == []  # nothing rests that the engine does not know
            assert engine.failures == []
            assert len(engine.journal.runs()) == 2
            tickers = [t for g in engine.games.values() for t in g.tickers]
        finally:
            await engine.stop()  # cancels everything: nothing fills any more
        assert resting(world) == []
        # Positions and PnL continued: equal to the exchange's positions, and to what every
        # fill the exchange has gives when rebuilt from scratch.
        assert {t: engine.positions.holding(t).position for t in tickers} == positions(
            world, tickers
        )
        everything = PositionBook()
        async with KalshiRest(
            world.info["rest_url"], connection_from_info(world.info).signer
        ) as rest:
            for fill in sorted(await rest.fills(), key=lambda f: (f.ts, f.fill_id)):
                everything.apply_fill(fill)
        for t in tickers:
            ours, rebuilt = engine.positions.holding(t), everything.holding(t)
            assert (ours.realized, ours.open_cost) == (rebuilt.realized, rebuilt.open_cost), t
    finally:
        world.stop()


def test_run_refuses_connection_details_it_cannot_read(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kmm_interactive", "run", "--connect", str(tmp_path / "nope.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "--connect" in out.stderr
    assert "not readable JSON" in out.stderr
