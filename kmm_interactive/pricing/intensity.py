"""Estimate the fill intensity ``λ(δ) = A·e^(−k·δ)`` of one book (δ in cents from theo).

Two sources, best first:

* **Our own quotes**, weighting by time resting at each distance: bucket i rested
  ``T_i`` seconds at distance ``δ_i`` and took ``n_i`` fills, ``n_i ~ Poisson(T_i·A·e^(−kδ_i))``.
  The maximum-likelihood A is ``Σn / Σ T·e^(−kδ)`` for any k, which leaves one monotone
  equation for k: the exposure-weighted mean distance under the tilt ``e^(−kδ)`` equals the
  fills' mean distance. Standard errors come from the Fisher information.
* **The public trade tape**: a trade ``D`` cents beyond theo (a taker buying YES above
  theo, or selling below it) would have filled a quote of ours at any δ ≤ D. Under the
  model those depths are exponential with rate k and trades reaching theo arrive at A per
  side; prices on a grid only bound D between two levels, and the fit uses exactly that.

When the data are thin (too few fills or trades, one distance only, or k too uncertain)
the estimate is the sport's prior, with confidence 0 and the reason.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import numpy as np
from numpy.typing import NDArray

from kmm_interactive.domain import PriceGrid, Side

#: The largest k (per cent) a fit may return; fills that fall faster sit at the touch only.
MAX_FIT_K: Final = 20.0


class IntensitySource(enum.StrEnum):
    OWN_QUOTES = "own_quotes"
    TAPE = "tape"
    PRIOR = "prior"


@dataclass(frozen=True)
class IntensityPrior:
    """The sport profile's A (fills per second at theo) and k (per cent)."""

    A: float
    k: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.A) and self.A > 0 and math.isfinite(self.k) and self.k > 0):
            raise ValueError(f"intensity prior A = {self.A}, k = {self.k}: both must be > 0")


@dataclass(frozen=True)
class IntensityEstimate:
    """A and k with where they came from and how far to trust them (confidence in [0, 1])."""

    A: float
    k: float
    source: IntensitySource
    observations: int
    relative_se_k: float
    confidence: float
    reason: str = ""


@dataclass(frozen=True)
class FitLimits:
    """When data count as thin."""

    min_observations: int = 20
    #: Beyond this relative standard error of k the prior is used instead.
    max_relative_se: float = 0.5


def _prior(prior: IntensityPrior, observations: int, reason: str) -> IntensityEstimate:
    return IntensityEstimate(
        prior.A, prior.k, IntensitySource.PRIOR, observations, math.inf, 0.0, reason
    )


def _accept(
    A: float,
    k: float,
    se_k: float,
    observations: int,
    source: IntensitySource,
    prior: IntensityPrior,
    limits: FitLimits,
) -> IntensityEstimate:
    rse = se_k / k
    if not rse <= limits.max_relative_se:
        return _prior(prior, observations, f"k too uncertain (relative s.e. {rse:.2f})")
    confidence = 1.0 - rse / limits.max_relative_se
    return IntensityEstimate(A, k, source, observations, rse, confidence)


def _as_array(values: Sequence[float], name: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be a flat sequence of finite numbers")
    return array


def fit_own_quotes(
    distance_cents: Sequence[float],
    seconds: Sequence[float],
    fills: Sequence[int],
    prior: IntensityPrior,
    limits: FitLimits | None = None,
) -> IntensityEstimate:
    """Fit A and k from our own resting time and fills per distance (see the module doc)."""
    limits = limits or FitLimits()
    d = _as_array(distance_cents, "distance_cents")
    t = _as_array(seconds, "seconds")
    n = _as_array(fills, "fills")
    if not len(d) == len(t) == len(n):
        raise ValueError("distance_cents, seconds and fills must have the same length")
    if np.any(t < 0) or np.any(n < 0):
        raise ValueError("resting seconds and fill counts must not be negative")
    total = int(n.sum())
    exposed = t > 0
    if total < limits.min_observations:
        return _prior(prior, total, f"{total} fills, need {limits.min_observations}")
    if np.any(n[~exposed] > 0):
        raise ValueError("fills recorded at a distance with no resting time")
    d, t, n = d[exposed], t[exposed], n[exposed]
    if np.unique(d).size < 2:
        return _prior(prior, total, "quotes rested at one distance only")
    target = float(n @ d) / total

    def tilted_mean(k: float) -> float:  # falls as k grows
        w = t * np.exp(-k * (d - d.min()))
        return float(w @ d / w.sum())

    lo, hi = 0.0, MAX_FIT_K
    if target >= tilted_mean(lo):
        return _prior(prior, total, "fills do not fall with distance")
    if target <= tilted_mean(hi):
        return _prior(prior, total, "fills sit at the edge of the distances quoted")
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tilted_mean(mid) > target else (lo, mid)
    k = 0.5 * (lo + hi)
    A = total / float(t @ np.exp(-k * d))
    mu = t * A * np.exp(-k * d)
    # Fisher information for (ln A, k): Σ μ·[[1, −δ], [−δ, δ²]].
    info = np.array([[mu.sum(), -(mu @ d)], [-(mu @ d), mu @ (d * d)]])
    se_k = math.sqrt(float(np.linalg.inv(info)[1, 1]))
    return _accept(A, k, se_k, total, IntensitySource.OWN_QUOTES, prior, limits)


@dataclass(frozen=True)
class TapeTrade:
    """One public trade: its YES price and the book side its taker was on."""

    yes_price: Decimal
    taker_side: Side


def _ladder(grid: PriceGrid, theo: Decimal, resting: Side) -> dict[int, float]:
    """Distance from theo (cents) of each level of one resting side at or beyond theo."""
    sign = resting.sign  # a resting bid sits below theo, a resting ask above
    return {
        tick: float((theo - price) * sign * 100)
        for tick, price in enumerate(grid.levels)
        if (theo - price) * sign >= 0
    }


def fit_trade_tape(
    trades: Sequence[TapeTrade],
    theo: float,
    grid: PriceGrid,
    duration_seconds: float,
    prior: IntensityPrior,
    limits: FitLimits | None = None,
) -> IntensityEstimate:
    """Fit A (per side) and k from the public trades of one market over a window.

    A taker lifting asks at price P would have filled a resting ask of ours anywhere from
    theo up to P, so each trade tells how deep beyond theo the flow reached. Prices sit on
    the grid, so a trade at level j only says the depth lies in [d_j, d_(j+1)): the fit
    maximises that interval likelihood (exact also on tapered grids and when theo falls
    between levels). A side's first level d0 is reached at rate A·e^(−k·d0).
    """
    limits = limits or FitLimits()
    if not (math.isfinite(duration_seconds) and duration_seconds > 0):
        raise ValueError(f"duration_seconds = {duration_seconds}: must be > 0")
    exact_theo = Decimal(theo)
    on_grid = []
    for trade in trades:
        try:
            on_grid.append((grid.tick(trade.yes_price), trade.taker_side))
        except ValueError:
            continue  # an off-grid or out-of-range print is bad data, not flow
    skipped = len(trades) - len(on_grid)
    low: list[float] = []  # depth of the trade's level beyond the side's first level
    width: list[float] = []  # up to the next level (inf at the last)
    reached = {Side.BID: 0, Side.ASK: 0}
    first_depth: dict[Side, float] = {}
    for resting in (Side.BID, Side.ASK):
        ladder = _ladder(grid, exact_theo, resting)
        depths = sorted(ladder.values())
        if not depths:
            continue
        first_depth[resting] = depths[0]
        following = dict(zip(depths, [*depths[1:], math.inf], strict=True))
        for tick, taker_side in on_grid:
            if taker_side is not resting.opposite:
                continue
            depth = ladder.get(tick)
            if depth is None:
                continue  # printed on the taker's good side of theo: no quote of ours there
            reached[resting] += 1
            low.append(depth - depths[0])
            width.append(following[depth] - depth)
    count = len(low)
    note = f"{skipped} off-grid print(s) ignored" if skipped else ""
    if count < limits.min_observations:
        reason = f"{count} trades reached theo, need {limits.min_observations}"
        return _prior(prior, count, "; ".join(filter(None, [reason, note])))
    a, w = np.array(low), np.array(width)
    finite = np.isfinite(w)

    wf = w[finite]

    def slope(k: float) -> float:  # d(log-likelihood)/dk, falling in k
        # w / (e^(kw) − 1), written so that it cannot overflow for wide gaps.
        return float(-a.sum() + np.sum(wf * np.exp(-k * wf) / -np.expm1(-k * wf)))

    lo, hi = 1e-6, MAX_FIT_K
    if slope(lo) <= 0:
        return _prior(prior, count, "trades do not thin out with depth")
    if slope(hi) >= 0:
        return _prior(prior, count, "every trade printed at the first level past theo")
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if slope(mid) > 0 else (lo, mid)
    k = 0.5 * (lo + hi)
    information = float(np.sum(wf * wf * np.exp(-k * wf) / np.expm1(-k * wf) ** 2))
    # Each side reaches its first level at A·e^(−k·d0): the joint maximum-likelihood A.
    exposure = duration_seconds * sum(math.exp(-k * d0) for d0 in first_depth.values())
    A = sum(reached.values()) / exposure
    se_k = 1.0 / math.sqrt(information) if information > 0 else math.inf
    estimate = _accept(A, k, se_k, count, IntensitySource.TAPE, prior, limits)
    return dataclasses.replace(estimate, reason="; ".join(filter(None, [estimate.reason, note])))
