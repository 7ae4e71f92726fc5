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
* Implicit Euler in τ, σ term included. For given prices the step is a tridiagonal system
  in ``y = φ_new / φ_iterate``, diagonally dominant (the chosen prices have non-negative
  gain, and the σ potential is shifted by its maximum), so y > 0 and ψ stays in range for
  any step length: the τ grid can be sparse far from the start, and the quasi-stationary
  profile reached there is exact (the steps are functions of one operator).
* Each step is first tried semi-implicit (prices chosen at its start: one solve), as one
  full step and two half steps. Their difference is the error estimate; if it exceeds about
  one price level, the step is redone with Howard policy iteration (prices consistent with
  the end of the step), and if that still misses, halved. The accepted value is Richardson's
  ψ = 2·ψ_half − ψ_full (second order; in log space it cannot go negative). Table rows read
  prices from the nearest non-decreasing ψ differences (see :meth:`_Stepper.table_row`).
* Right after τ = 0 heavy inventories unwind through theo at the capped rate (see
  MAX_FILL_RATE): a boundary layer that one fully implicit (L-stable) step crosses; then the
  first interval of the τ grid is cut into geometric substeps, where quotes move fastest.
* Work is bounded: a problem that needs more than MAX_WORK, or a step that misses its
  tolerance after MAX_HALVINGS halvings, raises :class:`SolveError` rather than returning a
  table it cannot vouch for. ``diagnostics`` on the table report what the solve took.
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
from kmm_interactive.pricing import closed_form
from kmm_interactive.pricing.fees import fee_per_contract
from kmm_interactive.pricing.quote_table import (
    NO_QUOTE,
    BookInputs,
    QuoteModel,
    QuoteProblem,
    QuoteTable,
)

#: The first τ interval is cut into this many geometric substeps (after the boundary layer).
FIRST_INTERVAL_SUBSTEPS: Final = 16
#: A step is accepted when its estimated error in ψ differences is below this many price
#: levels; one level is γ·(finest tick), the ψ difference between two neighbouring prices.
DEFAULT_TOLERANCE: Final = 0.5
#: Howard policy iterations per step, step halvings, and work per table (linear solves ×
#: inventory levels; a Q = 200 table takes about 1e5, this is a few seconds): beyond these
#: the parameters are too extreme to solve in reasonable time, and the solve says so.
MAX_POLICY_ITERATIONS: Final = 50
MAX_HALVINGS: Final = 16
MAX_WORK: Final = 20_000_000
#: The exponential intensity is capped here (fills per second): a quote deep through theo
#: fills at once whatever the formula says, and uncapped rates (e^(k·100·d) reaches 1e100)
#: would make the implicit systems singular in floating point.
MAX_FILL_RATE: Final = 1e4
#: The boundary layer after τ = 0 (unwinding through theo at up to the capped rate) is
#: crossed in one L-stable step this long: 200 of its time constants.
BOUNDARY_LAYER: Final = 200.0 / MAX_FILL_RATE


class SolveError(ArithmeticError):
    """The HJB table could not be solved to its tolerance within the work allowed."""


_gtsv = lapack.get_lapack_funcs("gtsv", (np.zeros(1),))


def solve_quote_table(
    problem: QuoteProblem,
    model: QuoteModel | str = QuoteModel.HJB,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> QuoteTable:
    """Solve ``problem`` with one of the quoting models (the HJB solver by default).

    ``tolerance`` (HJB only) is the largest error estimate a step may have, in price levels;
    smaller is more accurate and slower (0.1 costs three to five times 0.5).
    """
    try:
        chosen = QuoteModel(model)
    except ValueError:
        allowed = ", ".join(m.value for m in QuoteModel)
        raise ValueError(f"quote model {model!r} is unknown (allowed: {allowed})") from None
    if chosen is QuoteModel.HJB:
        return solve_hjb(problem, tolerance=tolerance)
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
    fee = fee_per_contract(levels, maker=True, fees=book.fees)
    log_rate = np.minimum(math.log(book.A) - book.k_per_dollar * d, math.log(MAX_FILL_RATE))
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
    """One game's HJB steps: the price choice at a given ψ, and implicit steps in τ."""

    def __init__(self, problem: QuoteProblem, tolerance: float) -> None:
        self.n = 2 * problem.q_max + 1
        self.sides = problem.sides
        self.envelopes = [
            _side_envelope(problem.book(side.leg), side.side, problem.gamma) for side in self.sides
        ]
        self.raises = [side.q_sign > 0 for side in self.sides]  # hoisted out of the hot loop
        # The σ term ½γ²σ²q² grows φ; shifting it down by its maximum keeps every implicit
        # system diagonally dominant, and the shift comes back as a constant in ψ.
        potential = 0.5 * (problem.gamma * problem.sigma * problem.q) ** 2
        self.shift = float(potential.max())
        self.headroom = self.shift - potential
        self.ones = np.ones(self.n)
        books = [problem.book(leg) for leg in {side.leg for side in self.sides}]
        finest = min(band.step for book in books for band in book.grid.bands)
        self.level = problem.gamma * float(finest)  # ψ difference between neighbouring prices
        self.tolerance = tolerance * self.level
        self.solves = self.howard_steps = self.halvings = 0
        self.dent = 0.0  # largest dip in ψ differences a table row smoothed, in levels

    def coefficients(self, psi: NDArray[np.float64]) -> _Coefficients:
        """At ψ: each row's total rate, the weights of y_(q+1) and y_(q−1), and the segments
        (chosen prices) of every side."""
        up_dpsi = psi[1:] - psi[:-1]
        diag = np.zeros(self.n)
        upper = np.zeros(self.n - 1)
        lower = np.zeros(self.n - 1)
        segments = []
        down_dpsi = -up_dpsi
        for raises, env in zip(self.raises, self.envelopes, strict=True):
            dpsi = up_dpsi if raises else down_dpsi
            seg = np.searchsorted(env.log_breaks, dpsi)
            weight = np.exp(env.log_slope[seg] + dpsi)
            if raises:  # no raising side at q = Q
                diag[:-1] += env.rate[seg]
                upper += weight
            else:  # no lowering side at q = −Q
                diag[1:] += env.rate[seg]
                lower += weight
            segments.append(seg)
        return diag, upper, lower, segments

    def table_row(self, psi: NDArray[np.float64]) -> NDArray[np.int32]:
        """The quotes at ψ: each side's tick per q (none past the cap).

        Prices are read from the nearest non-decreasing sequence of ψ differences. The exact
        one is non-decreasing (ψ is convex in q, which is what makes bids and asks fall as
        q rises); the extrapolated steps' error can dent it, by less than a price level (the
        step tolerance bounds it; ``dent_levels`` reports the largest), which would
        otherwise make a quote flicker by a tick from one q to the next.
        """
        raw = psi[1:] - psi[:-1]
        up_dpsi = _nondecreasing(raw)
        self.dent = max(self.dent, float(np.max(np.abs(up_dpsi - raw))) / self.level)
        row = np.full((self.n, len(self.sides)), NO_QUOTE, dtype=np.int32)
        for i, (raises, env) in enumerate(zip(self.raises, self.envelopes, strict=True)):
            seg = np.searchsorted(env.log_breaks, up_dpsi if raises else -up_dpsi)
            row[slice(None, -1) if raises else slice(1, None), i] = env.tick[seg]
        return row

    def step(
        self, psi: NDArray[np.float64], dt: float, start: _Coefficients, *, howard: bool
    ) -> tuple[NDArray[np.float64], _Coefficients | None]:
        """One implicit Euler step of length dt from ψ; prices chosen at ψ (``howard=False``)
        or iterated until they are the best prices for the new ψ (``howard=True``).

        Returns the new ψ and, when known, the coefficients at it."""
        coefficients = start
        iterate = psi
        rhs = self.ones  # φ_start / φ_iterate, 1 on the first solve
        self.howard_steps += howard
        for _ in range(MAX_POLICY_ITERATIONS if howard else 1):
            self.solves += 1
            if self.solves * self.n > MAX_WORK:
                raise SolveError(
                    f"the HJB table needs more than {self.solves:,} linear solves for these "
                    "parameters (γ, A, k or q_max too extreme); loosen them or the tolerance"
                )
            diag, upper, lower, segments = coefficients
            *_, y, info = _gtsv(-dt * lower, 1.0 + dt * (self.headroom + diag), -dt * upper, rhs)
            if info != 0:  # pragma: no cover - the system is diagonally dominant
                raise ArithmeticError(f"HJB step: tridiagonal solve failed (LAPACK info {info})")
            ratio: NDArray[np.float64] = y
            iterate = iterate + np.log(ratio)
            if not howard:
                return iterate + dt * self.shift, None
            coefficients = self.coefficients(iterate)
            if all(map(np.array_equal, coefficients[3], segments)):
                break
            rhs = np.exp(psi - iterate)
        return iterate + dt * self.shift, coefficients

    def advance(
        self, psi: NDArray[np.float64], dt: float, start: _Coefficients, depth: int = 0
    ) -> NDArray[np.float64]:
        """ψ after dt from ψ (whose coefficients are ``start``), error held under tolerance."""
        for howard in (False, True):
            full, _ = self.step(psi, dt, start, howard=howard)
            half, middle = self.step(psi, 0.5 * dt, start, howard=howard)
            half, _ = self.step(half, 0.5 * dt, middle or self.coefficients(half), howard=howard)
            gap = half - full
            # Only differences of ψ across q set prices, so that is where error is measured.
            if float(np.max(np.abs(gap[1:] - gap[:-1]))) <= self.tolerance:
                return half + gap  # Richardson: 2·half − full
        if depth >= MAX_HALVINGS:
            raise SolveError(
                f"an HJB step of {dt:.3g} s still misses its tolerance after {depth} halvings; "
                "the parameters are too extreme for this solver"
            )
        self.halvings += 1
        midway = self.advance(psi, 0.5 * dt, start, depth + 1)
        return self.advance(midway, 0.5 * dt, self.coefficients(midway), depth + 1)


def _nondecreasing(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """A non-decreasing sequence within the violations' size of ``values``: the mean of the
    running maximum from the left and the running minimum from the right (both
    non-decreasing, both equal to ``values`` where it already is)."""
    from_left = np.maximum.accumulate(values)
    from_right = np.minimum.accumulate(values[::-1])[::-1]
    result: NDArray[np.float64] = 0.5 * (from_left + from_right)
    return result


def solve_hjb(problem: QuoteProblem, *, tolerance: float = DEFAULT_TOLERANCE) -> QuoteTable:
    """The discrete HJB quote table (see the module doc)."""
    if not (math.isfinite(tolerance) and 0.0 < tolerance <= 1.0):
        raise ValueError(f"tolerance = {tolerance}: must be in (0, 1] price levels")
    stepper = _Stepper(problem, tolerance)
    tau = problem.tau_grid()
    first = np.geomspace(min(BOUNDARY_LAYER, 0.5 * tau[1]), tau[1], FIRST_INTERVAL_SUBSTEPS)
    psi = problem.terminal_log_phi()
    ticks = np.empty((len(tau), stepper.n, len(stepper.sides)), dtype=np.int32)
    ticks[0] = stepper.table_row(psi)
    psi, after = stepper.step(psi, float(first[0]), stepper.coefficients(psi), howard=True)
    here = after or stepper.coefficients(psi)  # after the boundary layer
    for i in range(1, len(tau)):
        for dt in np.diff(first if i == 1 else tau[i - 1 : i + 1]):
            psi = stepper.advance(psi, float(dt), here)
            here = stepper.coefficients(psi)
        ticks[i] = stepper.table_row(psi)
    diagnostics = {
        "solves": stepper.solves,
        "howard_steps": stepper.howard_steps,
        "halvings": stepper.halvings,
        "dent_levels": stepper.dent,
    }
    return QuoteTable(problem, QuoteModel.HJB, tau, ticks, diagnostics)
