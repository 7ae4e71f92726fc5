"""The chaos run: the engine against the embedded exchange with every fault on at once, and the
figures that say nothing was lost.

One seeded run, in this order (wall seconds; :data:`SHORT` is the form ``make test`` runs,
:data:`FULL` the one ``make chaos`` runs):

1. The embedded exchange starts on its own thread with the standing faults on, for the whole
   run: a WebSocket drop every 30 s, seq gaps, duplicated and malformed frames, 5 % REST
   5xx, 1 % 429s, 200 ms latency spikes, cancels whose answer describes another order; and,
   every few seconds, a 2 s burst of 429s and a cancel acknowledged but not applied.
2. Engine 1 trades it as a separate process (``kmm run``) on journal J, and is killed
   (SIGKILL: no cancel, no goodbye) two seconds before the first game's stop
   (start − ``risk.start_buffer``), its orders resting.
3. It stays dead past that game's start: the exchange must take its orders off by itself
   (their expiry).
4. Engine 2 starts in this process on J. Restart check: once the engine's fills are the
   exchange's (by fill id), its positions, cash and PnL must equal the exchange's.
5. An odds-feed outage longer than ``theo.max_age``: the games must stop on their stale
   theo, and quote again once the feed is back.
6. Early in the outage, a 10 s blocking call on the event loop (``time.sleep``, as a
   notebook cell would): the watchdog's thread must cancel everything within
   ``risk.loop_stall_after`` (+ one cancel round trip); the trader rearms.
7. The kill switch, with every cancel lying and the next three not applied: nothing may
   rest at the exchange within 60 s.
8. Stop. Every fill at the exchange must be in the journal, once.

A :class:`Monitor` thread reads the exchange's own state ten times a second all along (it
keeps reading while the engine's loop is blocked), for the figures that hold at every
moment: never two orders of ours on one side of a market, never an inventory beyond its
cap (nor the worst case, every resting order of one direction filling), never an order
resting once its game has started.

Each :class:`Figure` names the fault counts behind it and requires them above zero: a run in
which a fault never fired cannot pass. The faults that act on resting orders (the outage, the
stall, the kill) wait a bounded while for some to rest before they fire.
``python tests/chaos/chaos.py`` (``make chaos``) runs the full form, prints the table and exits
1 when a figure fails; ``--record`` also writes the table into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from kmm_interactive.config import Config, load_config
from kmm_interactive.engine.journal import Journal
from kmm_interactive.engine.runtime import Engine
from kmm_interactive.launch import EmbeddedExchange, connection_from_info
from kmm_interactive.sim.embedded import DEMO_BALANCE, DEMO_USER
from kmm_interactive.sim.exchange import cc_to_count
from kmm_interactive.strategy.halts import HaltReason

ROOT: Final = Path(__file__).resolve().parents[2]
ZERO: Final = Decimal(0)

#: The faults on for the whole run (names of kmm_interactive.sim.faults).
STANDING_FAULTS: Final[Mapping[str, float]] = {
    "ws_drop": 30.0,
    "seq_gap": 0.02,
    "duplicate_frame": 0.02,
    "malformed_frame": 0.02,
    "rest_5xx": 0.05,
    "rest_429": 0.01,
    "latency": 0.2,
    "latency_rate": 0.05,
    "lying_cancel": 0.2,
}
#: Seconds between 429 bursts (each ``BURST_SECONDS`` long) and between unapplied cancels.
BURST_EVERY: Final = 12.0
BURST_SECONDS: Final = 2.0
UNAPPLIED_EVERY: Final = 8.0
#: What a cancel-all takes beyond the watchdog's limit: its detection poll and a round trip.
CANCEL_ROUND_TRIP: Final = 1.5
KILL_LIMIT: Final = 60.0
#: How long a fault that needs resting orders waits for some (theos stay fresh meanwhile:
#: the stall still falls inside ``theo.max_age`` of the outage's start).
RESTING_WITHIN: Final = 20.0


@dataclass(frozen=True)
class ChaosPlan:
    """How long each part of the run lasts (wall seconds) and what it trades."""

    name: str
    seed: int
    games: int
    speed: float
    trade_before_outage: float
    outage: float
    stall_into_outage: float
    stall: float
    theo_max_age: str
    odds_refresh: str
    resume_within: float
    trade_before_kill: float

    def settings(self) -> dict[str, dict[str, Any]]:
        """The engine's configuration (both engines read the same file)."""
        return {
            # The injected 429 bursts alone refuse every call for a sixth of the run, which
            # can take the failed share of calls past the default 25 % and halt everything
            # for a minute: right in production, but then no fault below would find an order
            # to act on. That halt has its own tests; here it trips only when half fail.
            "risk": {"start_buffer": "5s", "order_group_contracts": 5000,
                     "stale_book_after": "5s", "max_rest_error_rate": 0.5},
            "refresh": {"positions": "2s", "odds": self.odds_refresh},
            "quoting": {"min_rest": "0.5s", "back_off_hold": "5s"},
            "theo": {"max_age": self.theo_max_age, "recheck_min_interval": "5s",
                     "recheck_window": "3s"},
        }  # fmt: skip


SHORT: Final = ChaosPlan(
    name="short", seed=5, games=6, speed=30.0, trade_before_outage=6.0, outage=70.0,
    stall_into_outage=4.0, stall=10.0, theo_max_age="60s", odds_refresh="10s",
    resume_within=15.0, trade_before_kill=2.0,
)  # fmt: skip
FULL: Final = ChaosPlan(
    name="full", seed=5, games=10, speed=30.0, trade_before_outage=60.0, outage=180.0,
    stall_into_outage=30.0, stall=10.0, theo_max_age="60s", odds_refresh="30s",
    resume_within=45.0, trade_before_kill=60.0,
)  # fmt: skip
PLANS: Final = {plan.name: plan for plan in (SHORT, FULL)}


# --------------------------------------------------------------------------- the exchange's view


@dataclass(frozen=True)
class LiveOrder:
    order_id: str
    client_order_id: str
    ticker: str
    side: str  # "bid" | "ask", on the YES book
    remaining: Decimal


@dataclass(frozen=True)
class GameInfo:
    """A game as the exchange has it: its markets (a two-team game's are one inventory,
    the first team's YES long; a three-way game's are three), its start and its cap."""

    event: str
    tickers: tuple[str, ...]
    start: float
    cap: int

    @property
    def two_team(self) -> bool:
        return len(self.tickers) == 2


@dataclass(frozen=True)
class Snapshot:
    t: float
    orders: tuple[LiveOrder, ...]
    positions: Mapping[str, Decimal]


def duplicate_sides(orders: Sequence[LiveOrder]) -> list[str]:
    """Orders beyond the first of ours on one side of one market (their ids)."""
    seen: set[tuple[str, str]] = set()
    extra = []
    for o in sorted(orders, key=lambda o: o.order_id):
        if (o.ticker, o.side) in seen:
            extra.append(o.order_id)
        seen.add((o.ticker, o.side))
    return extra


def late_orders(orders: Sequence[LiveOrder], starts: Mapping[str, float], now: float) -> list[str]:
    """Orders resting in a market whose game has started."""
    return [o.order_id for o in orders if now >= starts[o.ticker]]


def exposures(
    game: GameInfo, positions: Mapping[str, Decimal], orders: Sequence[LiveOrder]
) -> list[tuple[Decimal, Decimal]]:
    """(|q|, worst case) of each of the game's inventories: q is the first team's YES
    position less the second's (a three-way game: each market's own); the worst case is q
    after every resting order of one direction filled."""
    units = [game.tickers] if game.two_team else [(t,) for t in game.tickers]
    out = []
    for unit in units:
        sign = {t: (1 if i == 0 else -1) for i, t in enumerate(unit)}
        q = sum((sign[t] * positions.get(t, ZERO) for t in unit), ZERO)
        up = down = ZERO
        for o in orders:
            if o.ticker in sign:
                raises = sign[o.ticker] * (1 if o.side == "bid" else -1) > 0
                if raises:
                    up += o.remaining
                else:
                    down += o.remaining
        out.append((abs(q), max(q + up, down - q)))
    return out


@dataclass
class Watch:
    """What the monitor found: the worst of each figure and the resting count over time."""

    samples: int = 0
    duplicates: set[str] = field(default_factory=set)
    late: set[str] = field(default_factory=set)
    max_q_over_cap: float = 0.0
    max_worst_over_cap: float = 0.0
    cap_breaches: list[str] = field(default_factory=list)
    resting: list[tuple[float, int, Counter[str]]] = field(default_factory=list)
    started: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


class Monitor:
    """Reads the exchange's own state on a thread of its own (see the module doc)."""

    def __init__(self, world: EmbeddedExchange, games: Sequence[GameInfo], period: float = 0.1):
        self.world = world
        self.games = list(games)
        self.period = period
        self.watch = Watch()
        self._starts = {t: g.start for g in games for t in g.tickers}
        self._tickers = sorted(self._starts)
        self._game_of = {t: g.event for g in games for t in g.tickers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kmm-chaos-monitor", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def snapshot(self) -> Snapshot:
        tickers = self._tickers

        def read(sim: Any) -> Snapshot:
            orders = tuple(
                LiveOrder(o.order_id, o.client_order_id, o.ticker, o.book_side,
                          cc_to_count(o.remaining))
                for o in sim.exchange.live_orders(DEMO_USER)
            )  # fmt: skip
            positions = {
                t: cc_to_count(sim.exchange.position(DEMO_USER, t).position) for t in tickers
            }
            return Snapshot(time.time(), orders, positions)

        result: Snapshot = self.world.call(read)
        return result

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check(self.snapshot())
            except Exception as exc:  # a figure must not die quietly with its thread
                self.watch.errors.append(repr(exc))
            self._stop.wait(self.period)

    def check(self, snap: Snapshot) -> None:
        w = self.watch
        with self._lock:
            w.samples += 1
            w.duplicates.update(duplicate_sides(snap.orders))
            w.late.update(late_orders(snap.orders, self._starts, snap.t))
            w.started.update(g.event for g in self.games if snap.t >= g.start)
            for g in self.games:
                for q, worst in exposures(g, snap.positions, snap.orders):
                    w.max_q_over_cap = max(w.max_q_over_cap, float(q) / g.cap)
                    w.max_worst_over_cap = max(w.max_worst_over_cap, float(worst) / g.cap)
                    if q > g.cap:
                        w.cap_breaches.append(f"{g.event} |q| {q} > {g.cap}")
            per_game = Counter(self._game_of[o.ticker] for o in snap.orders)
            w.resting.append((snap.t, len(snap.orders), per_game))

    def resting_after(self, since: float) -> list[tuple[float, int, Counter[str]]]:
        with self._lock:
            return [r for r in self.watch.resting if r[0] >= since]

    def latest(self) -> int:
        with self._lock:
            return self.watch.resting[-1][1] if self.watch.resting else 0


async def _until_resting(monitor: Monitor, timeout: float) -> int:
    """Wait (bounded) until some order of ours rests at the exchange, and say how many: a
    fault that acts on resting orders fires when there are some (the engine may hold off for
    a while on its own, say halted on its REST error rate). Still none is a figure's "fault
    never fired", not a wait without end."""
    deadline = time.monotonic() + timeout
    while monitor.latest() == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return monitor.latest()


def _quoting(samples: Sequence[tuple[float, int, Counter[str]]]) -> Counter[str]:
    """Orders resting per game at the first of ``samples`` (none if there is none)."""
    return Counter(samples[0][2]) if samples else Counter()


def first_flat(samples: Sequence[tuple[float, int, Counter[str]]]) -> float | None:
    """When nothing rested from then on (None if something still rests at the end)."""
    flat = None
    for t, n, _ in samples:
        flat = (t if flat is None else flat) if n == 0 else None
    return flat


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Figure:
    """One promise, measured: ``value`` against ``limit``, and the faults it was measured
    under (each must have fired at least once)."""

    name: str
    value: float
    limit: float
    faults: Mapping[str, float]
    detail: str = ""

    @property
    def faults_fired(self) -> bool:
        return all(n > 0 for n in self.faults.values())

    @property
    def ok(self) -> bool:
        return math.isfinite(self.value) and self.value <= self.limit and self.faults_fired

    def row(self) -> tuple[str, str, str, str, str]:
        faults = ", ".join(f"{k} {_num(v)}" for k, v in self.faults.items())
        verdict = "pass" if self.ok else ("FAULT NEVER FIRED" if not self.faults_fired else "FAIL")
        return (self.name, _num(self.value), f"<= {_num(self.limit)}", faults, verdict)


def _num(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    return f"{v:g}" if v == int(v) else f"{v:.2f}"


@dataclass
class ChaosReport:
    plan: ChaosPlan
    figures: list[Figure]
    faults: dict[str, int]
    seconds: float
    notes: list[str]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.figures)

    def table(self) -> str:
        head = ("figure", "value", "limit", "faults behind it (count)", "result")
        rows = [head, *(f.row() for f in self.figures)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def markdown(self) -> str:
        head = ("figure", "value", "limit", "faults behind it (count)", "result")
        rows = [head, ("---", "---:", "---", "---", "---"), *(f.row() for f in self.figures)]
        table = "\n".join("| " + " | ".join(r) + " |" for r in rows)
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        notes = "".join(f"- {n}\n" for n in self.notes)
        return (
            f"`{self.plan.name}` plan, seed {self.plan.seed}, {self.plan.games} games at "
            f"{self.plan.speed:g}x, {self.seconds:.0f} s; "
            f"{sum(f.ok for f in self.figures)} of {len(self.figures)} figures pass.\n\n"
            f"{table}\n\nEvery fault that fired (the exchange's counts): {faults}.\n\n{notes}"
        )


# --------------------------------------------------------------------------- the run


def _toml(settings: Mapping[str, Mapping[str, Any]]) -> str:
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _journaled_fills(path: Path) -> int:
    import sqlite3

    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return int(db.execute("SELECT count(*) FROM fills").fetchone()[0])
    except sqlite3.Error:
        return 0


def _games(world: EmbeddedExchange, config: Config) -> list[GameInfo]:
    def read(sim: Any) -> list[tuple[str, tuple[str, ...], float, str]]:
        return [
            (g.event_ticker, tuple(o.ticker for o in g.outcomes), g.start, g.sport.key)
            for g in sim.scenario.games
        ]

    return [
        GameInfo(event, tickers, start, config.sports[sport].cap)
        for event, tickers, start, sport in world.call(read)
    ]


class _FaultDriver:
    """The standing faults, and the 429 bursts and unapplied cancels on their schedules
    (a thread: they keep coming while the engine's loop is blocked)."""

    def __init__(self, world: EmbeddedExchange) -> None:
        self.world = world
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kmm-chaos-faults", daemon=True)

    def start(self) -> None:
        self.world.call(lambda sim: sim.faults.set(**STANDING_FAULTS))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        began = time.monotonic()
        next_burst, next_unapplied = BURST_EVERY / 2, UNAPPLIED_EVERY / 2
        while not self._stop.wait(0.25):
            t = time.monotonic() - began
            if t >= next_burst:
                self.world.call(lambda sim: sim.faults.set(burst_429=BURST_SECONDS))
                next_burst += BURST_EVERY
            if t >= next_unapplied:
                self.world.call(
                    lambda sim: sim.faults.set(
                        cancel_not_applied=sim.faults.settings.cancel_not_applied + 1
                    )
                )
                next_unapplied += UNAPPLIED_EVERY


def _counts(world: EmbeddedExchange) -> Counter[str]:
    counts: Counter[str] = world.call(lambda sim: Counter(sim.faults.counts))
    return counts


@dataclass
class _Accounts:
    """The engine's and the exchange's books, read at one moment: fill ids, and per market
    the position and its PnL so far as cash (what was realized less what the open claims
    cost, fees inside both: the exchange keeps its fees beside, so they are taken off its
    side)."""

    engine_fills: set[str]
    exchange_fills: set[str]
    engine: dict[str, tuple[Decimal, Decimal]]
    exchange: dict[str, tuple[Decimal, Decimal]]
    engine_cash: Decimal
    exchange_cash: Decimal

    def mismatches(self) -> list[str]:
        out = []
        for t in sorted(set(self.engine) | set(self.exchange)):
            mine, theirs = self.engine.get(t, (ZERO, ZERO)), self.exchange.get(t, (ZERO, ZERO))
            if mine[0] != theirs[0]:
                out.append(f"{t} position {mine[0]} vs {theirs[0]}")
            if mine[1] != theirs[1]:
                out.append(f"{t} PnL as cash {mine[1]} vs {theirs[1]}")
        if self.engine_cash != self.exchange_cash:
            out.append(f"cash {self.engine_cash} vs {self.exchange_cash}")
        return out


def _accounts(engine: Engine, world: EmbeddedExchange, tickers: Sequence[str]) -> _Accounts:
    """Both books, with no await in between: the engine's cannot change meanwhile (its loop
    is this one), and the exchange's is read in one call on its own thread."""
    fills = engine.journal.fills()
    holdings = {h.ticker: h for h in engine.positions.holdings()}

    def read(sim: Any) -> tuple[set[str], dict[str, tuple[Decimal, Decimal]], Decimal]:
        ex = sim.exchange
        ids = {f.fill_id for f in ex.account(DEMO_USER).fills}
        books = {}
        due = ZERO
        for t in tickers:
            p = ex.position(DEMO_USER, t)
            held, cash = cc_to_count(p.position), p.realized - p.cost - p.fees
            market = ex.market(t)
            if market.status == "determined" and held:
                # The engine settles at the result; the exchange pays a little later.
                won = held if market.result == "yes" else -held
                payout = max(won, ZERO)
                held, cash, due = ZERO, cash + payout, due + payout
            books[t] = (held, cash)
        return ids, books, ex.balance(DEMO_USER) + due

    ids, books, balance = world.call(read)
    ours = {t: (h.position, h.realized - h.open_cost) for t, h in holdings.items() if t in tickers}
    return _Accounts(
        engine_fills={f.fill_id for f in fills},
        exchange_fills=ids,
        engine={t: ours.get(t, (ZERO, ZERO)) for t in tickers},
        exchange=books,
        engine_cash=sum((h.realized - h.open_cost for h in holdings.values()), ZERO),
        exchange_cash=balance - DEMO_BALANCE,
    )


async def _consistent_accounts(
    engine: Engine,
    world: EmbeddedExchange,
    tickers: Sequence[str],
    timeout: float = 15.0,
    *,
    settle: bool = False,
) -> tuple[_Accounts, int]:
    """Both books at a moment when the engine has every fill the exchange has (a fill on its
    way over the WebSocket is not a mismatch) and, with ``settle``, agrees with it (the last
    settlements may take the engine a reconciliation to learn); and how many reads that
    took."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        accounts = _accounts(engine, world, tickers)
        caught_up = accounts.engine_fills == accounts.exchange_fills
        if (caught_up and not (settle and accounts.mismatches())) or time.monotonic() > deadline:
            return accounts, tries
        await asyncio.sleep(0.2)


async def run_chaos(
    plan: ChaosPlan, workdir: Path, out: Callable[[str], None] = print
) -> ChaosReport:
    """One chaos run (module doc) in ``workdir``; returns the figures (does not assert)."""
    began = time.monotonic()
    config_path = workdir / "chaos.toml"
    config_path.write_text(_toml(plan.settings()))
    config = load_config(config_path)
    journal_path = workdir / "journal.sqlite"
    if journal_path.exists():
        raise FileExistsError(f"{journal_path} exists: a chaos run starts on a new journal")
    notes: list[str] = []
    world = EmbeddedExchange(seed=plan.seed, speed=plan.speed, n_games=plan.games)
    world.start()
    faults = _FaultDriver(world)
    monitor: Monitor | None = None
    engine: Engine | None = None
    try:
        details = workdir / "exchange.json"
        details.write_text(json.dumps(world.info))
        games = _games(world, config)
        tickers = [t for g in games for t in g.tickers]
        monitor = Monitor(world, games)
        monitor.start()
        faults.start()
        first = min(games, key=lambda g: g.start)
        buffer = config.risk.start_buffer

        # 2. Engine 1, in its own process, killed before the first game's stop.
        out(f"chaos ({plan.name}): engine 1 trades {len(games)} games in its own process")
        log1 = (workdir / "engine1.log").open("wb")
        first_engine = subprocess.Popen(
            [sys.executable, "-m", "kmm_interactive", "run", "--config", str(config_path),
             "--connect", str(details), "--journal", str(journal_path), "--seconds", "3600"],
            stdout=log1, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            kill_at = first.start - buffer - 2.0
            await asyncio.sleep(max(kill_at - time.time(), 0))
        finally:
            os.kill(first_engine.pid, signal.SIGKILL)
            first_engine.wait(10)
            log1.close()
        killed_at = time.time()
        orphans = monitor.latest()
        fills_before_kill = _journaled_fills(journal_path)
        out(f"  killed with {orphans} orders resting, {fills_before_kill} fills journaled")

        # 3. Dead past the first start; 4. engine 2 on the same journal.
        await asyncio.sleep(max(first.start + 1.0 - time.time(), 0))
        started_while_down = sum(1 for g in games if killed_at < g.start <= time.time())
        engine = Engine(config, connection_from_info(world.info), journal=Journal(journal_path))
        await engine.start()
        restart, tries = await _consistent_accounts(engine, world, tickers)
        restart_mismatches = restart.mismatches()
        if restart.engine_fills != restart.exchange_fills:
            restart_mismatches.append("the engine's fills never caught up with the exchange's")
        out(f"  restarted: {engine.orders.stats.adopted} orders adopted, books compared "
            f"after {tries} read(s): {restart_mismatches or 'equal'}")  # fmt: skip

        # 5. The odds feed goes down for longer than a theo may age; 6. meanwhile, a
        # blocking call on the loop.
        await asyncio.sleep(plan.trade_before_outage)
        await _until_resting(monitor, RESTING_WITHIN)
        outage_began = time.time()
        resume_by = outage_began + plan.outage + plan.resume_within
        affected = [
            g for g in games if g.start - buffer > resume_by + 5.0 and g.event in engine.games
        ]
        quoting_before = _quoting(monitor.resting_after(outage_began - 1.0))
        out(f"  odds feed down for {plan.outage:g} s ({len(affected)} games affected)")
        world.call(lambda sim: sim.faults.set(odds_outage=True))
        await asyncio.sleep(plan.stall_into_outage)
        resting_before_stall = await _until_resting(monitor, RESTING_WITHIN)
        stalled_at = time.time()
        out(f"  blocking the loop for {plan.stall:g} s with {resting_before_stall} resting")
        time.sleep(plan.stall)  # the blocking cell: the engine freezes, the watchdog does not
        stall_flat = first_flat(
            [r for r in monitor.resting_after(stalled_at) if r[0] <= stalled_at + plan.stall]
        )
        stall_seconds = math.inf if stall_flat is None else stall_flat - stalled_at
        await asyncio.sleep(0.5)
        stall_latched = HaltReason.LOOP_STALL in engine.halts.reasons(None)
        engine.rearm()
        await asyncio.sleep(max(outage_began + plan.outage - time.time(), 0))
        world.call(lambda sim: sim.faults.set(odds_outage=False))
        outage_ended = time.time()
        await asyncio.sleep(plan.resume_within)
        stopped_by = outage_began + config.theo.max_age + 2.0
        during = [r for r in monitor.resting_after(stopped_by) if r[0] <= outage_ended]
        after = monitor.resting_after(outage_ended)
        stale = _stale_theo_halts(engine, outage_began)
        stopped = [g.event for g in affected if g.event in stale
                   and during and all(r[2][g.event] == 0 for r in during)]  # fmt: skip
        resumed = [g for g in stopped if any(r[2][g] > 0 for r in after)]
        out(f"  stopped on stale theo: {len(stopped)}, quoting again: {len(resumed)}")

        # 7. The kill switch, every cancel lying, the next three not applied.
        await asyncio.sleep(plan.trade_before_kill)
        resting_before_kill = await _until_resting(monitor, RESTING_WITHIN)
        before_kill = _counts(world)
        world.call(lambda sim: sim.faults.set(lying_cancel=1.0, cancel_not_applied=3))
        pressed = time.time()
        report = await engine.kill()
        await asyncio.sleep(1.0)
        kill_flat = first_flat(monitor.resting_after(pressed))
        kill_seconds = math.inf if kill_flat is None or not report.ok else kill_flat - pressed
        during_kill = _counts(world) - before_kill
        out(f"  kill: {report.detail} ({kill_seconds:.2f} s to nothing resting)")

        # 8. Account for every fill (nothing rests, so nothing fills: the engine may take
        # its time to learn of the last ones, and of settlements), then stop.
        faults.stop()
        world.call(lambda sim: sim.faults.clear())
        final, _ = await _consistent_accounts(engine, world, tickers, 20.0, settle=True)
        await engine.stop()
        failures = [f"{name}: {exc!r}" for name, exc in engine.failures]
        monitor.stop()
        counts = _counts(world)
        settled = world.call(
            lambda sim: sum(sim.exchange.market(t).status in ("determined", "finalized")
                            for t in tickers)
        )  # fmt: skip
    finally:
        faults.stop()
        if monitor is not None:
            monitor.stop()
        if engine is not None:
            await engine.stop()
        world.stop()

    w = monitor.watch
    if w.errors:
        notes.append(f"the monitor failed {len(w.errors)} time(s): {w.errors[:3]}")
    if failures:
        notes.append(f"engine failures: {failures}")
    if restart_mismatches:
        notes.append(f"at restart: {restart_mismatches}")
    if final.mismatches():
        notes.append(f"at the end: {final.mismatches()}")
    if w.duplicates:
        notes.append(f"duplicate orders: {sorted(w.duplicates)}")
    if w.late:
        notes.append(f"orders resting after their game's start: {sorted(w.late)}")
    if w.cap_breaches:
        notes.append(f"cap breaches: {w.cap_breaches[:5]}")
    notes.append(
        f"peaks: |q| / cap {w.max_q_over_cap:.2f}, worst case (q + one direction resting) / "
        f"cap {w.max_worst_over_cap:.2f}; {w.samples} monitor samples; fills: "
        f"{len(final.exchange_fills)} ({fills_before_kill} by engine 1); markets with a "
        f"result at the end: {settled} of {len(tickers)}"
    )
    lost = len(final.exchange_fills - final.engine_fills)
    unknown = len(final.engine_fills - final.exchange_fills)
    wire = {k: counts[k] for k in ("ws_drop", "seq_gap", "duplicate_frame", "malformed_frame")}
    rest = {k: counts[k] for k in ("rest_5xx", "rest_429", "burst_429", "latency")}
    cancels = {k: counts[k] for k in ("lying_cancel", "cancel_not_applied")}
    figures = [
        Figure("fills lost (exchange's not in the journal)", lost, 0,
               {"fills": len(final.exchange_fills), **wire, "process kills": 1}),
        Figure("fills journaled that the exchange never made", unknown, 0,
               {"fills": len(final.engine_fills), "duplicate_frame": counts["duplicate_frame"]}),
        Figure("duplicate orders (two of ours on one side)", len(w.duplicates), 0,
               {**rest, **cancels, "restarts": 1}),
        Figure("inventory-cap breaches (|q| > cap)", len(w.cap_breaches), 0,
               {"fills": len(final.exchange_fills), "samples": w.samples}),
        Figure("worst case (q + resting one way) / cap", round(w.max_worst_over_cap, 2), 1.0,
               {"fills": len(final.exchange_fills), "samples": w.samples, **cancels}),
        Figure("orders resting after their game's start", len(w.late), 0,
               {"games started": len(w.started), "started while the engine was dead":
                started_while_down, "orders orphaned by the kill": orphans}),
        Figure("restart: positions, cash, PnL mismatches", len(restart_mismatches), 0,
               {"process kills": 1, "orders orphaned": orphans,
                "fills by engine 1": fills_before_kill}),
        Figure("end: positions, cash, PnL mismatches", len(final.mismatches()), 0,
               {"fills": len(final.exchange_fills)}),
        Figure("loop stall: seconds to nothing resting", round(stall_seconds, 2),
               config.risk.loop_stall_after + CANCEL_ROUND_TRIP,
               {"stalls": 1, "resting before": resting_before_stall,
                "stall latched": int(stall_latched)}),
        Figure("kill switch: seconds to nothing resting", round(kill_seconds, 2), KILL_LIMIT,
               {"kill presses": 1, "resting before": resting_before_kill,
                "lying_cancel": during_kill["lying_cancel"],
                "cancel_not_applied": during_kill["cancel_not_applied"]}),
        Figure("odds outage: affected games not stopped on stale theo",
               len(affected) - len(stopped), 0,
               {"odds_outage": counts["odds_outage"], "games affected": len(affected),
                "quoting before": sum(1 for g in affected if quoting_before[g.event] > 0)}),
        Figure("odds outage: stopped games not quoting again", len(stopped) - len(resumed), 0,
               {"games stopped": len(stopped)}),
        Figure("engine failures", len(failures), 0, {"fills": len(final.exchange_fills)}),
    ]  # fmt: skip
    return ChaosReport(plan, figures, dict(counts), time.monotonic() - began, notes)


def _stale_theo_halts(engine: Engine, since: float) -> set[str]:
    """Games the engine put in HALTED for a stale theo since ``since`` (its journal)."""
    states = engine.journal.events_frame("state", since=datetime.fromtimestamp(since, UTC))
    return {
        row["game"]
        for _, row in states.iterrows()
        if row["data"]["state"] == "HALTED" and HaltReason.STALE_THEO.value in row["data"]["halts"]
    }


# --------------------------------------------------------------------------- make chaos


RESULTS_MD: Final = ROOT / "bench" / "RESULTS.md"


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="kmm-chaos-") as d:
        yield Path(d)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chaos", description="The chaos run (see tests/chaos/chaos.py's doc)."
    )
    parser.add_argument("--plan", choices=sorted(PLANS), default="full")
    parser.add_argument("--seed", type=int, default=None, help="the scenario's seed")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the journal and logs")
    parser.add_argument("--record", action="store_true", help="write the table to RESULTS.md")
    args = parser.parse_args(argv)
    plan = PLANS[args.plan]
    if args.seed is not None:
        plan = replace(plan, seed=args.seed)
    with _workdir(args.workdir) as workdir:
        report = asyncio.run(run_chaos(plan, workdir))
    print(report.table())
    for note in report.notes:
        print(f"- {note}")
    print(f"chaos ({plan.name}): {'PASS' if report.ok else 'FAIL'} in {report.seconds:.0f} s")
    if args.record:
        sys.path.insert(0, str(ROOT / "bench"))
        import benchkit

        benchkit.record_section("chaos", "Chaos run (`make chaos`)", report.markdown())
        print(f"recorded in {RESULTS_MD.relative_to(ROOT)}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
