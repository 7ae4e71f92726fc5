"""Quote-table solve time: the HJB solver next to the GLFT closed form, measured in one run.

Setup (issue 2): one book on the $0.01 grid (99 price levels), a 64-point τ grid over 6 h,
Q ∈ {50, 100, 200}. Three solvers:

* ``hjb``        the product's discrete HJB (fees in the max, Richardson-extrapolated steps);
* ``glft exact`` the product's GLFT: exp(−Mτ)·w as a positive series in log space, exact in
                 the tails however large k·γ·Q² is (it costs ~ρ·T series terms);
* ``glft eig``   GLFT as usually written: one eigendecomposition, then w(τ) = V e^(−Λτ) Vᵀ w(0).
                 The fastest closed-form evaluation, but it loses the tails (w spans
                 e^(−kγp(1−p)Q²/2)) and so is not used in the product; here only for timing.

Targets: HJB at Q = 200 in <= 20 ms and <= 3x the closed form (``glft eig``, the faster one),
judged on the best of the runs: the solve does the same work every time, so the minimum is
its cost and the spread above it is the machine (this VM's medians wander by 30 %).
Run: ``make bench`` (or ``python bench/bench_pricing.py``); exits 1 if a target is missed.
"""

from __future__ import annotations

import os

# One BLAS thread: the eigendecomposition baseline otherwise competes with itself on two cores
# and its timing wanders; the HJB solver does not use BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import gc
import math
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import benchkit
import numpy as np
from scipy.linalg import eigh_tridiagonal

from kmm_interactive.domain import FeeType, PriceGrid, SeriesFees
from kmm_interactive.pricing.hjb import solve_quote_table
from kmm_interactive.pricing.quote_table import BookInputs, QuoteProblem, snap_ticks

REPEATS = 31
TARGET_MS = 20.0
TARGET_RATIO = 3.0


def problem(q_max: int, game: bool = False) -> QuoteProblem:
    grid = PriceGrid.linear_cent()
    fees = SeriesFees(FeeType.QUADRATIC_WITH_MAKER_FEES)

    def book(theo: float) -> BookInputs:
        return BookInputs(grid=grid, theo=theo, A=0.05, k=0.5, fees=fees)

    return QuoteProblem(
        book_a=book(0.55),
        book_b=book(0.45) if game else None,
        gamma=0.02,
        q_max=q_max,
        sigma=5e-5,
        horizon=6 * 3600.0,
        n_tau=64,
    )


def glft_eigen(p: QuoteProblem) -> np.ndarray:
    """Textbook GLFT table (single book): one eigendecomposition of the symmetric M."""
    book = p.book_a
    k, g = book.k_per_dollar, p.gamma
    eta = book.A * (1 + g / k) ** (-(1 + k / g))
    q = p.q
    values, vectors = eigh_tridiagonal(0.5 * k * g * p.sigma**2 * q**2, np.full(len(q) - 1, -eta))
    log_w0 = -(k / g) * p.terminal_log_phi()
    w0 = np.exp(log_w0 - log_w0.max())
    tau = p.tau_grid()
    w = (vectors @ (np.exp(-np.outer(values - values.min(), tau)) * (vectors.T @ w0)[:, None])).T
    log_w = np.log(np.maximum(w, 1e-300))
    base = math.log1p(g / k) / g
    bid = book.theo - ((log_w[:, :-1] - log_w[:, 1:]) / k + base)
    ask = book.theo + ((log_w[:, 1:] - log_w[:, :-1]) / k + base)
    return np.stack([snap_ticks(book.grid, bid), snap_ticks(book.grid, ask)], axis=-1)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Best and median wall time in milliseconds over REPEATS runs (after one warm-up)."""
    fn()
    runs = []
    gc.disable()
    try:
        for _ in range(REPEATS):
            start = time.perf_counter()
            fn()
            runs.append((time.perf_counter() - start) * 1e3)
    finally:
        gc.enable()
    return min(runs), statistics.median(runs)


def main() -> int:
    print(__doc__.split("\n\n")[0])
    print(f"best / median of {REPEATS} runs, milliseconds; ratios of the best\n")
    header = f"{'Q':>4} {'hjb':>13} {'hjb game':>13} {'glft exact':>13} {'glft eig':>13}"
    print(header + f" {'hjb/exact':>10} {'hjb/eig':>9}")
    results: dict[int, tuple[float, float]] = {}
    for q_max in (50, 100, 200):
        single, game = problem(q_max), problem(q_max, game=True)
        hjb = timed(partial(solve_quote_table, single))
        hjb_game = timed(partial(solve_quote_table, game))
        exact = timed(partial(solve_quote_table, single, "glft"))
        eig = timed(partial(glft_eigen, single))
        results[q_max] = (hjb[0], eig[0])
        cells = " ".join(f"{b:6.1f} /{m:6.1f}" for b, m in (hjb, hjb_game, exact, eig))
        print(f"{q_max:>4} {cells} {hjb[0] / exact[0]:>9.2f}x {hjb[0] / eig[0]:>8.2f}x")
    hjb_ms, eig_ms = results[200]
    ok_time, ok_ratio = hjb_ms <= TARGET_MS, hjb_ms <= TARGET_RATIO * eig_ms
    print(
        f"\ntarget Q=200 HJB <= {TARGET_MS:.0f} ms: best {hjb_ms:.1f} ms -> "
        f"{'met' if ok_time else 'MISSED'}"
    )
    print(
        f"target Q=200 HJB <= {TARGET_RATIO:.0f}x closed form (glft eig): "
        f"{hjb_ms / eig_ms:.2f}x -> {'met' if ok_ratio else 'MISSED'}"
    )
    benchkit.goal(
        "HJB solve Q=200, best", hjb_ms, "ms",
        target=f"<= {TARGET_MS:g} ms", passed=ok_time,
        reference=eig_ms, reference_name="glft eig, best",
    )  # fmt: skip
    benchkit.goal(
        "HJB solve Q=200 vs closed form", hjb_ms, "ms",
        target=f"<= {TARGET_RATIO:g}x glft eig", passed=ok_ratio,
        reference=eig_ms, reference_name="glft eig, best",
    )  # fmt: skip
    return 0 if ok_time and ok_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
