"""The discrete-tick HJB quote table, and the one entry point for every quoting model.

With wealth x, inventory q (team-A contracts) and theo p, the value is
``u = −exp(−γ(x + q·p))·φ(τ, q)`` and φ solves, for τ = time to start::

    ∂τ φ_q = − Σ_sides max(0, max_prices λ(d)·(φ_q − e^(−γ·e)·φ_(q±1))) + ½γ²σ²q²·φ_q
    φ_q(0) = p·e^(−γq(1−p)) + (1−p)·e^(γqp)

Each side (bid A and ask B raise q; ask A and bid B lower it) maximises over every price of
its own book's grid, at signed distance d from that book's theo (positive = on our side of
theo), with fill intensity ``λ(d) = A·e^(−k·d)`` (d in cents) and edge ``e = d − fee(price)``
(dollars). The intensity depends on what takers see, the price's distance from theo; our
fee only cuts our edge. With heavy inventory the reducing side may price through theo: the
model pays edge to cut risk, as the seed's break-even ceilings do.

How it is solved
* In log space, ψ = ln φ (φ overflows for large q or γ).
* For fixed prices, a side's gain ``λ·(1 − e^(−γe)·x)`` with ``x = e^(ψ_(q±1) − ψ_q)`` is a
  line in x, so the best price is read off the upper envelope of a few lines (built once
  per solve, then a binary search per q): exact for the discrete grid and fees, and cheap.
* Each step is semi-implicit: prices are chosen at the start of the step, then the linear
  system for ``y = φ_new / φ_start`` is solved. It is tridiagonal and diagonally dominant
  (the chosen prices have non-negative gain), so y > 0 and ψ stays in range for any step
  length: the τ grid can be sparse far from the start. The σ term is added exactly after
  the step (splitting).
* Local Richardson extrapolation (one full step, two half steps, ψ = 2·ψ_half − ψ_full)
  makes the scheme second order, which keeps it within a tick of the GLFT closed form
  even on $0.0001 grids; being in log space, the extrapolation cannot go negative.
* Quotes move fastest right after τ = 0 (the terminal condition has a kink in time), so
  the first interval of the τ grid is cut into geometric substeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import lapack

from kmm_interactive.domain import Side
from kmm_interactive.pricing.fees import fee_per_contract
from kmm_interactive.pricing.quote_table import (
    CENTS_PER_DOLLAR,
    NO_QUOTE,
    BookInputs,
    QuoteModel,
    QuoteProblem,
    QuoteTable,
)

#: The first τ interval is cut into this many geometric substeps, the first of them this
#: fraction of the interval long.
FIRST_INTERVAL_SUBSTEPS: Final = 16
FIRST_SUBSTEP_FRACTION: Final = 1e-4

_gtsv = lapack.get_lapack_funcs("gtsv", (np.zeros(1),))


def solve_quote_table(
    problem: QuoteProblem, model: QuoteModel | str = QuoteModel.HJB
) -> QuoteTable:
    """Solve ``problem`` with one of the quoting models (the HJB solver by default)."""
    from kmm_interactive.pricing import closed_form

    try:
        chosen = QuoteModel(model)
    except ValueError:
        allowed = ", ".join(m.value for m in QuoteModel)
        raise ValueError(f"quote model {model!r} is unknown (allowed: {allowed})") from None
    if chosen is QuoteModel.HJB:
        return solve_hjb(problem)
    return closed_form.solve(problem, chosen)


@dataclass(frozen=True)
class _Envelope:
    """Upper envelope of one side's gain lines over x > 0, plus the no-quote line.

    Segment i holds for ``log_breaks[i−1] <= ln x < log_breaks[i]``.
    """

    log_breaks: NDArray[np.float64]
    rate: NDArray[np.float64]  # λ of the segment's price (0 for no quote)
    log_slope: NDArray[np.float64]  # ln(λ·e^(−γe)) (−inf for no quote)
    tick: NDArray[np.int32]  # the price's tick (NO_QUOTE for no quote)


def _side_envelope(book: BookInputs, side: Side, gamma: float) -> _Envelope:
    levels = book.grid.levels
    theo = Decimal(book.theo)
    # Distance from theo in exact arithmetic, so that p = 0.5 mirrors bit for bit.
    d = np.array([float((theo - p) * side.sign) for p in levels])
    fee = fee_per_contract(
        levels, maker=True, fee_type=book.fee_type, fee_multiplier=book.fee_multiplier
    )
    log_rate = math.log(book.A) - book.k * CENTS_PER_DOLLAR * d
    log_slope = log_rate - gamma * (d - fee)
    return _upper_envelope(np.exp(log_rate), log_slope, np.arange(len(levels), dtype=np.int32))


def _upper_envelope(
    rate: NDArray[np.float64], log_slope: NDArray[np.float64], ticks: NDArray[np.int32]
) -> _Envelope:
    """Convex-hull trick for ``max(0, max_j rate_j − slope_j·x)`` over x > 0."""
    slope = np.exp(log_slope)
    # Steepest line first; among equal slopes only the highest intercept can matter.
    order = np.lexsort((-rate, -slope))
    lines: list[tuple[float, float, int]] = []  # (intercept, slope, tick)
    for a, s, t in zip(
        rate[order].tolist(), slope[order].tolist(), ticks[order].tolist(), strict=True
    ):
        if not lines or s != lines[-1][1]:
            lines.append((a, s, t))
    lines.append((0.0, 0.0, NO_QUOTE))  # flattest of all: never quote once gains go negative

    def cross(l1: tuple[float, float, int], l2: tuple[float, float, int]) -> float:
        return (l1[0] - l2[0]) / (l1[1] - l2[1])

    hull: list[tuple[float, float, int]] = []
    for line in lines:
        while len(hull) >= 2 and cross(hull[-2], line) <= cross(hull[-2], hull[-1]):
            hull.pop()
        hull.append(line)
    breaks = [cross(hull[i], hull[i + 1]) for i in range(len(hull) - 1)]
    # Segments that end at x <= 0 are never used for a ratio of positive numbers.
    first = next(i for i, b in enumerate([*breaks, np.inf]) if b > 0.0)
    hull, breaks = hull[first:], breaks[first:]
    return _Envelope(
        log_breaks=np.log(np.array(breaks, dtype=np.float64)),
        rate=np.array([h[0] for h in hull], dtype=np.float64),
        log_slope=np.array([np.log(h[1]) if h[1] > 0 else -np.inf for h in hull]),
        tick=np.array([h[2] for h in hull], dtype=np.int32),
    )


#: Per q: total fill rate, weight of y_(q+1), weight of y_(q−1); and each side's segments.
_Coefficients = tuple[
    NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], list[NDArray[np.intp]]
]


class _Stepper:
    """One game's HJB steps: price choice at a given ψ and the semi-implicit step."""

    def __init__(self, problem: QuoteProblem) -> None:
        self.n = 2 * problem.q_max + 1
        self.sides = problem.sides
        self.envelopes = [
            _side_envelope(problem.book(side.leg), side.side, problem.gamma) for side in self.sides
        ]
        self.variance_rate = 0.5 * (problem.gamma * problem.sigma * problem.q) ** 2

    def coefficients(self, psi: NDArray[np.float64]) -> _Coefficients:
        """At ψ: each row's total rate, the weights of y_(q+1) and y_(q−1), and the segments
        (chosen prices) of every side."""
        up_dpsi = psi[1:] - psi[:-1]
        diag = np.zeros(self.n)
        upper = np.zeros(self.n - 1)
        lower = np.zeros(self.n - 1)
        segments = []
        for side, env in zip(self.sides, self.envelopes, strict=True):
            dpsi = up_dpsi if side.q_sign > 0 else -up_dpsi
            seg = np.searchsorted(env.log_breaks, dpsi)
            weight = np.exp(env.log_slope[seg] + dpsi)
            if side.q_sign > 0:  # no raising side at q = Q
                diag[:-1] += env.rate[seg]
                upper += weight
            else:  # no lowering side at q = −Q
                diag[1:] += env.rate[seg]
                lower += weight
            segments.append(seg)
        return diag, upper, lower, segments

    def ticks(self, segments: list[NDArray[np.intp]]) -> NDArray[np.int32]:
        """One table row: each side's tick per q (none past the cap)."""
        row = np.full((self.n, len(self.sides)), NO_QUOTE, dtype=np.int32)
        for i, (side, env, seg) in enumerate(
            zip(self.sides, self.envelopes, segments, strict=True)
        ):
            row[slice(None, -1) if side.q_sign > 0 else slice(1, None), i] = env.tick[seg]
        return row

    def step(
        self,
        psi: NDArray[np.float64],
        dt: float,
        coefficients: _Coefficients,
    ) -> NDArray[np.float64]:
        diag, upper, lower, _ = coefficients
        *_, y, info = _gtsv(-dt * lower, 1.0 + dt * diag, -dt * upper, np.ones(self.n))
        if info != 0:  # pragma: no cover - the system is diagonally dominant
            raise ArithmeticError(f"HJB step: tridiagonal solve failed (LAPACK info {info})")
        ratio: NDArray[np.float64] = y
        return psi + np.log(ratio) + dt * self.variance_rate

    def extrapolated_step(self, psi: NDArray[np.float64], dt: float) -> NDArray[np.float64]:
        start = self.coefficients(psi)
        full = self.step(psi, dt, start)
        half = self.step(psi, 0.5 * dt, start)
        half = self.step(half, 0.5 * dt, self.coefficients(half))
        extrapolated: NDArray[np.float64] = 2.0 * half - full
        return extrapolated


def solve_hjb(problem: QuoteProblem) -> QuoteTable:
    """The discrete HJB quote table (see the module doc)."""
    stepper = _Stepper(problem)
    tau = problem.tau_grid()
    first = np.concatenate(
        ([0.0], np.geomspace(tau[1] * FIRST_SUBSTEP_FRACTION, tau[1], FIRST_INTERVAL_SUBSTEPS))
    )
    psi = problem.terminal_log_phi()
    ticks = np.empty((len(tau), stepper.n, len(stepper.sides)), dtype=np.int32)
    ticks[0] = stepper.ticks(stepper.coefficients(psi)[3])
    for i in range(1, len(tau)):
        substeps = first if i == 1 else tau[i - 1 : i + 1]
        for dt in np.diff(substeps):
            psi = stepper.extrapolated_step(psi, float(dt))
        ticks[i] = stepper.ticks(stepper.coefficients(psi)[3])
    return QuoteTable(problem, QuoteModel.HJB, tau, ticks)
