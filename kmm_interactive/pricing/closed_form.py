"""The textbook quoting models, behind the same QuoteTable interface as the HJB solver.

All three price continuously and snap to the nearest tick. None of them knows about fees
or the tick grid; that is what the HJB solver adds.

* **GLFT** (Guéant, Lehalle, Fernandez-Tapia 2013), exact finite-horizon solution with our
  binary terminal condition: ``w = φ^(−k/γ)`` solves ``∂τ w = −M w`` with M tridiagonal
  (``(kγσ²/2)·q²`` on the diagonal, ``−η`` beside it, ``η = A(1+γ/k)^(−(1+k/γ))`` per side),
  and ``δ* = (1/k)·ln(w_q/w_(q±1)) + (1/γ)·ln(1 + γ/k)``. w spans thousands of orders of
  magnitude across q (ln w(0) ≈ −(kγ/2)·p(1−p)·q²), so ``exp(−Mτ)·w`` is evaluated as
  ``e^(−cτ)·Σ (τB)^n/n!·w`` with ``B = cI − M ≥ 0``: every term is positive and is summed in
  log space, so nothing cancels and nothing leaves floating range. It needs one k for
  all books (the change of variables does).
* **Avellaneda–Stoikov 2008**: reservation ``r = p − q·γ·v`` and spread
  ``γ·v + (2/γ)·ln(1 + γ/k)`` with ``v = min(σ²τ, p(1−p))``: a binary contract's remaining
  variance never exceeds p(1−p). With σ = 0 it does not skew at all.
* **Linear skew**: ``r = p − θ·(q − q*)`` and half-spread ``1/k``, the monopsony optimum of
  ``λ(δ)·δ``; θ defaults to γ·p(1−p).

Units follow quote_table: k is per cent in the inputs and per dollar in these formulas.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import NDArray

from kmm_interactive.domain import GameSide, Leg, Side
from kmm_interactive.pricing.quote_table import (
    NO_QUOTE,
    QuoteModel,
    QuoteProblem,
    QuoteTable,
    snap_ticks,
)

#: A series term below this fraction of the running sum no longer changes it.
_NEGLIGIBLE_LOG: Final = math.log(1e-17)
#: Series terms × inventory levels (at least 400: a term costs about 15 µs up to Q = 200),
#: about ten seconds; beyond it the solve would stall a notebook.
MAX_SERIES_WORK: Final = 250_000_000


def solve(problem: QuoteProblem, model: QuoteModel) -> QuoteTable:
    tau = problem.tau_grid()
    if model is QuoteModel.GLFT:
        prices = _glft_prices(problem, tau)
    elif model is QuoteModel.AVELLANEDA_STOIKOV:
        prices = _avellaneda_stoikov_prices(problem, tau)
    elif model is QuoteModel.LINEAR_SKEW:
        prices = _linear_skew_prices(problem, tau)
    else:
        raise ValueError(f"{model.value} is not a closed-form model")
    return QuoteTable(problem, model, tau, _table(problem, prices))


def _table(problem: QuoteProblem, prices: dict[GameSide, NDArray[np.float64]]) -> NDArray[np.int32]:
    """Snap each side's (τ, q) prices, then switch off the sides that would pass the cap."""
    sides = problem.sides
    ticks = np.stack(
        [snap_ticks(problem.book(s.leg).grid, prices[s]) for s in sides], axis=-1
    ).astype(np.int32)
    for i, side in enumerate(sides):
        ticks[:, -1 if side.q_sign > 0 else 0, i] = NO_QUOTE
    return ticks


# ----------------------------------------------------------------------------- GLFT


def _glft_prices(
    problem: QuoteProblem, tau: NDArray[np.float64]
) -> dict[GameSide, NDArray[np.float64]]:
    books = [problem.book_a] + ([problem.book_b] if problem.book_b else [])
    if len({b.k for b in books}) > 1:
        raise ValueError(
            f"the GLFT closed form needs one k for every book (got {[b.k for b in books]}); "
            "use the HJB model for books with different k"
        )
    gamma, k = problem.gamma, books[0].k_per_dollar

    def log_eta(A: float) -> float:
        return math.log(A) - (1.0 + k / gamma) * math.log1p(gamma / k)

    sides = problem.sides
    log_up = np.logaddexp.reduce([log_eta(problem.book(s.leg).A) for s in sides if s.q_sign > 0])
    log_down = np.logaddexp.reduce([log_eta(problem.book(s.leg).A) for s in sides if s.q_sign < 0])
    diag = 0.5 * k * gamma * problem.sigma**2 * problem.q**2

    spectral_bound = float(diag.max()) + math.exp(log_up) + math.exp(log_down)
    terms = spectral_bound * float(tau[-1]) + len(tau) * 20
    if _series_work(terms, len(problem.q)) > MAX_SERIES_WORK:
        raise ValueError(
            f"the exact GLFT solution needs about {terms:,.0f} series terms over "
            f"{len(problem.q)} inventories for these parameters; use the HJB model"
        )
    log_w = np.empty((len(tau), len(problem.q)))
    log_w[0] = -(k / gamma) * problem.terminal_log_phi()
    for i in range(1, len(tau)):
        log_w[i] = _log_expm_action(log_w[i - 1], tau[i] - tau[i - 1], log_up, log_down, diag)

    base = math.log1p(gamma / k) / gamma
    delta_up = (log_w[:, :-1] - log_w[:, 1:]) / k + base  # rows q = −Q … Q−1
    delta_down = (log_w[:, 1:] - log_w[:, :-1]) / k + base  # rows q = −Q+1 … Q
    pad = np.full((len(tau), 1), np.nan)
    prices = {}
    for side in sides:
        theo = problem.book(side.leg).theo
        if side.q_sign > 0:
            delta = np.concatenate([delta_up, pad], axis=1)
        else:
            delta = np.concatenate([pad, delta_down], axis=1)
        prices[side] = theo - delta if side.side is Side.BID else theo + delta
    return prices


def _series_work(terms: float, levels: int) -> float:
    """Cost of the GLFT series in term-levels: a term costs at least as much as 400 levels."""
    return terms * max(levels, 400)


def _log_expm_action(
    log_v: NDArray[np.float64],
    dt: float,
    log_up: float,
    log_down: float,
    diag: NDArray[np.float64],
) -> NDArray[np.float64]:
    """ln(exp(−M·dt)·v) from ln v, for M = diag − up·(shift to q+1) − down·(shift to q−1)."""
    c = float(diag.max())
    log_b_diag = np.log(
        np.maximum(c - diag, 0.0), where=c - diag > 0, out=np.full_like(diag, -np.inf)
    )
    spectral_bound = c + math.exp(log_up) + math.exp(log_down)
    minus_inf = np.array([-np.inf])
    total = log_v.copy()
    term = log_v.copy()
    n = 0
    while True:
        n += 1
        up = np.concatenate([log_up + term[1:], minus_inf])
        down = np.concatenate([minus_inf, log_down + term[:-1]])
        term = np.logaddexp(np.logaddexp(log_b_diag + term, up), down) + math.log(dt / n)
        total = np.logaddexp(total, term)
        # Past the Poisson peak (n > bound·dt) the terms only shrink.
        if n > spectral_bound * dt and float(np.max(term - total)) < _NEGLIGIBLE_LOG:
            result: NDArray[np.float64] = total - c * dt
            return result
        if _series_work(n, len(log_v)) > MAX_SERIES_WORK:  # pragma: no cover - checked before
            raise ArithmeticError("GLFT series did not converge")


# ----------------------------------------------------------------------------- A-S and linear


def _reservation_prices(
    problem: QuoteProblem,
    shift: NDArray[np.float64],
    half_spread: dict[Leg, NDArray[np.float64]],
) -> dict[GameSide, NDArray[np.float64]]:
    """Quotes around each book's reservation price ``theo − leg.sign·shift``."""
    prices = {}
    for side in problem.sides:
        book = problem.book(side.leg)
        reservation = book.theo - side.leg.sign * shift
        half = half_spread[side.leg]
        prices[side] = reservation - half if side.side is Side.BID else reservation + half
    return prices


def _avellaneda_stoikov_prices(
    problem: QuoteProblem, tau: NDArray[np.float64]
) -> dict[GameSide, NDArray[np.float64]]:
    p, gamma = problem.p, problem.gamma
    variance = np.minimum(problem.sigma**2 * tau, p * (1.0 - p))[:, None]  # (τ, 1)
    shift = problem.q[None, :] * gamma * variance
    half = {
        leg: np.broadcast_to(
            0.5 * gamma * variance + math.log1p(gamma / problem.book(leg).k_per_dollar) / gamma,
            shift.shape,
        )
        for leg in {side.leg for side in problem.sides}
    }
    return _reservation_prices(problem, shift, half)


def _linear_skew_prices(
    problem: QuoteProblem, tau: NDArray[np.float64]
) -> dict[GameSide, NDArray[np.float64]]:
    p = problem.p
    theta = problem.theta if problem.theta is not None else problem.gamma * p * (1.0 - p)
    shape = (len(tau), len(problem.q))
    shift = np.broadcast_to(theta * (problem.q - problem.q_target), shape)
    half = {
        leg: np.full(shape, 1.0 / problem.book(leg).k_per_dollar)
        for leg in {side.leg for side in problem.sides}
    }
    return _reservation_prices(problem, shift, half)
