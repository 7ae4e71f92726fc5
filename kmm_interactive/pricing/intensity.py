"""Estimate the fill intensity ``λ(δ) = A·e^(−k·δ)`` of one book (δ in cents from theo).

Two sources, best first:

* **Our own quotes**, weighting by time resting at each distance: bucket i rested
  ``T_i`` seconds at distance ``δ_i`` and took ``n_i`` fills, ``n_i ~ Poisson(T_i·A·e^(−kδ_i))``.
  The maximum-likelihood A is ``Σn / Σ T·e^(−kδ)`` for any k, which leaves one monotone
  equation for k: the exposure-weighted mean distance under the tilt ``e^(−kδ)`` equals the
  fills' mean distance. Standard errors come from the Fisher information.
* **The public trade tape**: a trade ``D`` cents beyond theo (a taker buying YES above
  theo, or selling below it) would have filled a quote of ours at any δ ≤ D. Under the
  model those depths are exponential (geometric on a tick grid) with rate k, and trades
  reaching theo arrive at A per side.

When the data are thin (too few fills or trades, one distance only, or k too uncertain)
the estimate is the sport's prior, with confidence 0 and the reason.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import numpy as np
from numpy.typing import NDArray

from kmm_interactive.domain import Side

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


def trade_depth_cents(yes_price: Decimal, taker_side: Side, theo: float) -> float:
    """How far beyond theo a trade went, from the resting side's point of view, in cents.

    A taker on the bid side (buying YES) lifts resting asks: depth = price − theo. A taker
    on the ask side hits resting bids: depth = theo − price. Negative means the trade
    happened on the taker's good side of theo, where no quote of ours would sit.
    """
    return 100.0 * taker_side.sign * (float(yes_price) - theo)


def fit_trade_tape(
    depth_cents: Sequence[float],
    duration_seconds: float,
    prior: IntensityPrior,
    *,
    tick_cents: float = 1.0,
    sides: int = 2,
    limits: FitLimits | None = None,
) -> IntensityEstimate:
    """Fit A (per side) and k from public trades' depths beyond theo over a window.

    ``tick_cents`` is the grid step the depths sit on (0 for continuous depths); ``sides``
    is how many sides of the book the tape covers (both, normally).
    """
    limits = limits or FitLimits()
    if not (math.isfinite(duration_seconds) and duration_seconds > 0):
        raise ValueError(f"duration_seconds = {duration_seconds}: must be > 0")
    if tick_cents < 0 or sides not in (1, 2):
        raise ValueError("tick_cents must be >= 0 and sides 1 or 2")
    depth = _as_array(depth_cents, "depth_cents")
    reached = depth[depth >= 0.0]
    count = len(reached)
    if count < limits.min_observations:
        return _prior(prior, count, f"{count} trades reached theo, need {limits.min_observations}")
    mean = float(reached.mean())
    if mean <= 0.0:
        return _prior(prior, count, "every trade printed at theo")
    # Exponential depths: k = 1/mean; on a grid of step h, geometric: k = ln(1 + h/mean)/h.
    k = math.log1p(tick_cents / mean) / tick_cents if tick_cents > 0 else 1.0 / mean
    A = count / (sides * duration_seconds)
    return _accept(A, k, k / math.sqrt(count), count, IntensitySource.TAPE, prior, limits)
