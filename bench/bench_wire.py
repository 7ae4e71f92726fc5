"""WS book feed cost: ``orderbook_delta`` frames parsed and applied to local books, on one core.

Frames are what the simulator's WebSocket sends (``sim/wire.py`` renderers, with the
``type``/``sid``/``seq`` envelope of ``sim/ws.py``) for agent trading on the "small"
scenario (10 minutes at speed 10: the books are still live at the end), NO levels in NO-leg
prices (``use_yes_price`` false: the conversion to a YES ask is part of the cost).
Measured side by side in one run, over the same frames:

* ``json.loads``        bare decoding (the floor any parser pays; a reference, not ours);
* ``parse_frame``       decoding plus validation into a typed :class:`BookDelta`;
* ``parse + apply``     that plus :meth:`OrderBook.apply_delta` on the market's book.

Throughput is the best of several passes over all frames (the books are reset to the same
snapshot before each); the per-frame p50/p99 come from timing each frame of one more pass.
After the timing the books are checked against the exchange's own books, so the number is
for work that gives the right answer.

Target (issue 4): >= 20,000 deltas/s parsed and applied. Printed as met or SHORT; the exit
status is non-zero only if the benchmark itself fails.
Run: ``make bench`` (or ``python bench/bench_wire.py``).
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable

import benchkit

from kmm_interactive.domain import Side
from kmm_interactive.kalshi.book import OrderBook
from kmm_interactive.kalshi.messages import BookDelta, BookSnapshot, parse_frame
from kmm_interactive.kalshi.models import BookLevels
from kmm_interactive.sim import wire
from kmm_interactive.sim.agents import Simulation
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.exchange import BookChange, Exchange, ExchangeEvent, cc_to_count
from kmm_interactive.sim.scenario import build_scenario

T0 = 1_750_000_000.0
SIM_SECONDS = 600.0  # scenario time at speed 10: the games are still trading at the end
PASSES = 7
TARGET = 20_000.0
YES_PRICES = False


def record() -> tuple[Exchange, dict[str, str], list[str]]:
    """The exchange after the run, a snapshot frame per market at the start, and the deltas."""
    scn = build_scenario("small", seed=4, now=T0, speed=10.0)
    ex = Exchange.from_scenario(scn, VirtualClock(T0))
    snapshots = {
        ticker: json.dumps(
            {
                "type": "orderbook_snapshot",
                "sid": 1,
                "seq": 1,
                "msg": wire.ws_book_levels(m, use_yes_price=YES_PRICES),
            },
            separators=(",", ":"),
        )
        for ticker, m in ex.markets.items()
    }
    frames: list[str] = []

    def on_event(e: ExchangeEvent) -> None:
        if isinstance(e, BookChange):
            msg = wire.ws_book_delta(
                ex.markets[e.ticker], e.book_side, e.price, e.delta, e.ts,
                use_yes_price=YES_PRICES, client_order_id=e.client_order_id,
            )  # fmt: skip
            body = {"type": "orderbook_delta", "sid": 1, "seq": len(frames) + 2, "msg": msg}
            frames.append(json.dumps(body, separators=(",", ":")))

    ex.listeners.append(on_event)
    Simulation(scn, ex, seed=3).run_until(T0 + SIM_SECONDS)
    return ex, snapshots, frames


def fresh_books(snapshots: dict[str, str]) -> dict[str, OrderBook]:
    books = {}
    for ticker, text in snapshots.items():
        event = parse_frame(text, yes_prices=YES_PRICES)
        assert isinstance(event, BookSnapshot)
        books[ticker] = OrderBook.from_levels(ticker, event.book)
    return books


def best_rate(run: Callable[[], None], n: int, reset: Callable[[], None]) -> float:
    """Frames per second of the fastest of PASSES passes (after one warm-up pass)."""
    best = float("inf")
    for i in range(PASSES + 1):
        reset()
        gc.disable()
        try:
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
        finally:
            gc.enable()
        if i:
            best = min(best, elapsed)
    return n / best


def main() -> int:
    print(__doc__.split("\n\n")[0])
    ex, snapshots, frames = record()
    n = len(frames)
    sizes = [len(f) for f in frames]
    print(
        f"{n} orderbook_delta frames over {len(snapshots)} markets, "
        f"{statistics.mean(sizes):.0f} bytes on average; best of {PASSES} passes\n"
    )
    books = fresh_books(snapshots)

    def reset() -> None:
        books.clear()
        books.update(fresh_books(snapshots))

    def decode_only() -> None:
        for f in frames:
            json.loads(f)

    def parse_only() -> None:
        for f in frames:
            parse_frame(f, yes_prices=YES_PRICES)

    def parse_and_apply() -> None:
        for f in frames:
            e = parse_frame(f, yes_prices=YES_PRICES)
            assert isinstance(e, BookDelta)
            books[e.ticker].apply_delta(e.side, e.price, e.delta, ts=e.ts)

    rates = {
        "json.loads": best_rate(decode_only, n, reset),
        "parse_frame": best_rate(parse_only, n, reset),
        "parse + apply": best_rate(parse_and_apply, n, reset),
    }

    # Per-frame cost of parse + apply, each frame timed on its own (timer overhead included).
    reset()
    costs: list[float] = []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for f in frames:
            start = clock()
            e = parse_frame(f, yes_prices=YES_PRICES)
            assert isinstance(e, BookDelta)
            books[e.ticker].apply_delta(e.side, e.price, e.delta, ts=e.ts)
            costs.append((clock() - start) / 1000)
    finally:
        gc.enable()
    costs.sort()
    p50, p99 = costs[len(costs) // 2], costs[int(len(costs) * 0.99)]

    for ticker, m in ex.markets.items():
        truth = BookLevels(
            *(
                tuple((m.grid.price(t), cc_to_count(c)) for t, c in m.book.depth(side))
                for side in ("bid", "ask")
            )
        )
        book = books[ticker]
        if book != OrderBook.from_levels(ticker, truth) or book.stale:
            raise RuntimeError(f"{ticker}: the local book does not match the exchange: {book}")
    print(f"{'':14} {'frames/s':>10} {'µs/frame':>9} {'x json.loads':>13}")
    floor = rates["json.loads"]
    for name, rate in rates.items():
        print(f"{name:14} {rate:>10,.0f} {1e6 / rate:>9.2f} {floor / rate:>12.2f}x")
    print(f"\nparse + apply per frame: p50 {p50:.1f} µs, p99 {p99:.1f} µs, max {costs[-1]:.1f} µs")
    depth = ", ".join(
        f"{len(b.levels(Side.BID))}x{len(b.levels(Side.ASK))}" for b in books.values()
    )
    print(f"books match the exchange after the run (bid x ask levels at the end: {depth})")
    measured = rates["parse + apply"]
    verdict = "met" if measured >= TARGET else "SHORT"
    print(f"\ntarget >= {TARGET:,.0f} deltas/s parsed + applied: {measured:,.0f} -> {verdict}")
    benchkit.goal(
        "orderbook_delta parse + apply", measured, "deltas/s",
        target=f">= {TARGET:,.0f} deltas/s", passed=measured >= TARGET,
        reference=floor, reference_name="json.loads alone, same frames",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
