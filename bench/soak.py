"""The soak: the live engine on 200 games for 30 minutes, watched for anything that grows
without bound.

Setup: the embedded exchange in its own process (``kmm sim``, agents on, the Prime tier so
that rate limits are not what is measured), its day compressed so that the games' starts
fall across the whole run (every game is set up at the start, and games stop, finish and
settle all along); the engine here, with its watchdog and a journal on disk, as a notebook
would run it. Every ``--sample`` seconds it records:

* the process's resident memory (VmRSS), the asyncio task count and the games still tracked;
* the journal's size on disk (database + WAL) and its rows (events, order states, fills);
* the event loop's lag: a task asks to sleep 0.1 s and measures how late it wakes;
* fills, order writes, order records kept, and the engine's failures.

Criteria for "no unbounded growth" (each reported with :func:`benchkit.goal`):

* **Memory**: over the second half of the run, RSS grows by at most 5 % of what it was at
  the half (and the fitted slope is shown in MB/h). The first half holds the set-up of every
  game and the busiest trading; past it, what is still growing is a leak.
* **Tasks**: at every sample, tasks ≤ 10 × games tracked + 40 (a game has its own task,
  at most a batch of creates, one of cancels, an amend per side and a solve per inventory
  in flight; the engine has a dozen of its own): tasks that outlive their games break it,
  most plainly once no game is left.
* **Journal**: bytes on disk per row ≤ 1,000 (rows grow with trading, as they must; the bytes
  each costs must not).
* **Loop lag**: p99 ≤ 250 ms (a widget's callback waits at most that long for the loop).
* **Failures**: none.

Run: ``make soak`` (30 min, 200 games; ``--record`` writes the figures into
bench/RESULTS.md); ``python bench/soak.py --minutes 2 --games 40`` is a quick smoke run.
Exits 1 if a criterion is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchkit

#: The scenario's starts fall between these (scenario seconds after its origin).
FIRST_START, LAST_START = 1200.0, 4 * 3600.0
MEMORY_GROWTH = 0.05
TASKS_PER_GAME, TASKS_BASE = 10, 40
BYTES_PER_ROW = 1000.0
LAG_P99 = 0.25
LAG_PERIOD = 0.1


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the engine started
    rss_mb: float
    tasks: int
    games: int
    journal_bytes: int
    journal_rows: int
    fills: int
    writes: int
    order_records: int
    lag_p50: float
    lag_p99: float
    lag_max: float
    failures: int


def _bounded(kind: type[float] | type[int], lo: float, hi: float, what: str) -> Any:
    """An argparse type: a number of ``kind`` in [lo, hi], or an error that says so."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            noun = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"{text!r} is not a {noun}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text}: {what} must be in {lo:g} … {hi:g}")
        return value

    return parse


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def journal_size(path: Path) -> tuple[int, int]:
    """Bytes on disk (database + WAL) and rows written, read on a connection of its own."""
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = sum(
            int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("events", "order_events", "fills")
        )
    return size, rows


async def soak(
    info: dict[str, str], seconds: float, every: float, journal: Path, speed: float
) -> list[Sample]:
    from kmm_interactive.config import load_config
    from kmm_interactive.engine.journal import Journal
    from kmm_interactive.engine.runtime import Engine
    from kmm_interactive.launch import compressed, connection_from_info

    config = compressed(load_config(None), speed)
    engine = Engine(config, connection_from_info(info), journal=Journal(journal))
    lags: list[float] = []

    async def measure_lag() -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_PERIOD)
            lags.append(loop.time() - asked - LAG_PERIOD)

    samples: list[Sample] = []
    await engine.start()
    began = time.monotonic()
    lag_task = asyncio.create_task(measure_lag())
    try:
        while (elapsed := time.monotonic() - began) < seconds:
            await asyncio.sleep(min(every, seconds - elapsed))
            window, lags[:] = sorted(lags), []
            size, rows = journal_size(journal)
            status = engine.status()
            samples.append(
                Sample(
                    t=time.monotonic() - began,
                    rss_mb=rss_mb(),
                    tasks=len(asyncio.all_tasks()),
                    games=sum(not g.finished for g in engine.games.values()),
                    journal_bytes=size,
                    journal_rows=rows,
                    fills=status.fills,
                    writes=sum(engine.orders.stats.writes.values()),
                    order_records=len(engine.orders._orders),
                    lag_p50=_quantile(window, 0.5),
                    lag_p99=_quantile(window, 0.99),
                    lag_max=window[-1] if window else math.nan,
                    failures=status.failures,
                )
            )
            s = samples[-1]
            print(
                f"{s.t:6.0f} s  rss {s.rss_mb:6.1f} MB  tasks {s.tasks:4d}  games {s.games:3d}"
                f"  journal {s.journal_bytes / 1e6:6.2f} MB / {s.journal_rows:7d} rows"
                f"  fills {s.fills:6d}  lag p99 {s.lag_p99 * 1000:6.1f} ms",
                flush=True,
            )
    finally:
        lag_task.cancel()
        await engine.stop()
    return samples


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _slope_per_hour(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return math.nan
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return statistics.linear_regression(xs, ys).slope * 3600


def judge(samples: list[Sample]) -> list[tuple[str, float, str, str, bool]]:
    """The criteria of the module doc: (goal, measured, unit, target, passed)."""
    half = [s for s in samples if s.t >= samples[-1].t / 2]
    at_half, end = half[0].rss_mb, samples[-1].rss_mb
    growth = (end - at_half) / at_half
    slope = _slope_per_hour([(s.t, s.rss_mb) for s in half])
    over = [s for s in samples if s.tasks > TASKS_PER_GAME * s.games + TASKS_BASE]
    worst_tasks = max(s.tasks - TASKS_PER_GAME * s.games for s in samples)
    last = samples[-1]
    per_row = last.journal_bytes / max(last.journal_rows, 1)
    lag_p99 = max(s.lag_p99 for s in samples if not math.isnan(s.lag_p99))
    return [
        ("RSS growth over the second half", growth * 100, "%",
         f"<= {MEMORY_GROWTH:.0%} (slope {slope:+.1f} MB/h)", growth <= MEMORY_GROWTH),
        (f"tasks beyond {TASKS_PER_GAME} per tracked game (max)", worst_tasks, "tasks",
         f"<= {TASKS_BASE} at every sample", not over),
        ("journal bytes per row", per_row, "B", f"<= {BYTES_PER_ROW:g} B",
         per_row <= BYTES_PER_ROW),
        ("event-loop lag p99 (worst sample)", lag_p99 * 1000, "ms", f"<= {LAG_P99 * 1000:g} ms",
         lag_p99 <= LAG_P99),
        ("engine failures", last.failures, "", "0", last.failures == 0),
    ]  # fmt: skip


def markdown(samples: list[Sample], verdicts: list[tuple[str, float, str, str, bool]],
             games: int, minutes: float, speed: float) -> str:  # fmt: skip
    rows = ["| goal | measured | target | result |", "| --- | ---: | --- | --- |"]
    rows += [
        f"| {name} | {benchkit.fmt(value)} {unit} | {target} | {'pass' if ok else 'SHORT'} |"
        for name, value, unit, target, ok in verdicts
    ]
    step = max(len(samples) // 12, 1)
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    table = [
        "| t (s) | RSS (MB) | tasks | games | journal (MB) | rows | fills | order records "
        "| lag p50 / p99 / max (ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    table += [
        f"| {s.t:.0f} | {s.rss_mb:.1f} | {s.tasks} | {s.games} | {s.journal_bytes / 1e6:.2f} "
        f"| {s.journal_rows} | {s.fills} | {s.order_records} | {s.lag_p50 * 1000:.1f} / "
        f"{s.lag_p99 * 1000:.1f} / {s.lag_max * 1000:.1f} |"
        for s in shown
    ]
    return (
        f"{games} games for {minutes:g} min (the day compressed {speed:.1f}x, starts spread "
        f"over the run), the exchange in its own process (Prime tier).\n\n"
        + "\n".join(rows)
        + "\n\nSamples:\n\n"
        + "\n".join(table)
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes",
        type=_bounded(float, 1, 600, "minutes"),
        default=30.0,
        help="how long (default 30)",
    )
    parser.add_argument(
        "--games",
        type=_bounded(int, 1, 1000, "games"),
        default=200,
        help="how many games (default 200)",
    )
    parser.add_argument(
        "--sample",
        type=_bounded(float, 1, 600, "the sample interval (s)"),
        default=None,
        help="seconds between samples (default: 1/60 of the run, at least 5)",
    )
    parser.add_argument("--record", action="store_true", help="write the figures to RESULTS.md")
    args = parser.parse_args(argv)  # fmt: skip
    seconds = args.minutes * 60
    every = args.sample or max(seconds / 60, 5.0)
    # The last game starts at 90 % of the run: stops, finishes and settlements fall across it.
    speed = LAST_START / (0.9 * seconds)
    proc, info = benchkit.start_exchange(seed=21, speed=speed, games=args.games)
    try:
        with tempfile.TemporaryDirectory(prefix="kmm-soak-") as d:
            samples = asyncio.run(soak(info, seconds, every, Path(d) / "journal.sqlite", speed))
    finally:
        proc.terminate()
        proc.wait(30)
    verdicts = judge(samples)
    for name, value, unit, target, ok in verdicts:
        benchkit.goal(name, value, unit, target=target, passed=ok)
    if args.record:
        text = markdown(samples, verdicts, args.games, args.minutes, speed)
        benchkit.record_section("soak", "Soak (`make soak`)", text)
        print(f"recorded in {benchkit.RESULTS_MD}")
    return 0 if all(v[-1] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
