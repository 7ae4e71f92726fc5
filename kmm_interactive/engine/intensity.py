"""Per market: how long our quotes rested at each distance from theo, and the fills they took
there; A and k fitted on demand (``pricing.intensity.fit_own_quotes``).

Distances are whole cents from theo on the quote's own side (a YES bid at P sits
``(theo − P)·100`` below, an ask ``(P − theo)·100`` above), rounded to the nearest cent. A
quote at or through theo counts at distance 0 (it is as close as a quote can be); one beyond
``max_distance_cents`` is not counted (``skipped``): so far out, its fills are news, not flow.

A fill at a distance where no resting time was recorded (the order rested between two
samples) gets the smallest exposure a sample can carry, so that the fit never sees fills
without time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from kmm_interactive.domain import Side
from kmm_interactive.pricing.intensity import (
    FitLimits,
    IntensityEstimate,
    IntensityPrior,
    fit_own_quotes,
)

#: The exposure given to a bucket that has a fill but no recorded resting time (seconds).
MIN_EXPOSURE = 0.25


@dataclass
class _Market:
    seconds: np.ndarray
    fills: np.ndarray
    cached: dict[IntensityPrior, IntensityEstimate] = field(default_factory=dict)


class IntensityTracker:
    """See the module doc."""

    def __init__(self, *, limits: FitLimits | None = None, max_distance_cents: int = 50) -> None:
        if isinstance(max_distance_cents, bool) or not 1 <= max_distance_cents <= 100:
            raise ValueError(f"max_distance_cents = {max_distance_cents}: must be 1 to 100")
        self.limits = limits or FitLimits()
        self.max_distance = max_distance_cents
        self.skipped = 0
        self._markets: dict[str, _Market] = {}

    def _bucket(self, side: Side, price: Decimal, theo_yes: float) -> int | None:
        if not (isinstance(theo_yes, float | int) and 0.0 < theo_yes < 1.0):
            raise ValueError(f"theo {theo_yes!r}: must be a probability strictly inside (0, 1)")
        if not isinstance(price, Decimal) or not price.is_finite():
            raise ValueError(f"price {price!r}: must be a finite Decimal")
        distance = (theo_yes - float(price)) * 100.0 * side.sign
        bucket = max(0, round(distance))
        return bucket if bucket <= self.max_distance else None

    def _market(self, ticker: str) -> _Market:
        m = self._markets.get(ticker)
        if m is None:
            size = self.max_distance + 1
            m = self._markets[ticker] = _Market(np.zeros(size), np.zeros(size, dtype=np.int64))
        return m

    def observe(
        self, ticker: str, side: Side, price: Decimal, theo_yes: float, seconds: float
    ) -> None:
        """``seconds`` of one quote resting at ``price`` while theo was ``theo_yes``."""
        if not (isinstance(seconds, float | int) and math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds {seconds!r}: must be a finite number >= 0")
        bucket = self._bucket(side, price, theo_yes)
        if bucket is None:
            self.skipped += 1
            return
        m = self._market(ticker)
        m.seconds[bucket] += seconds
        m.cached.clear()

    def note_fill(self, ticker: str, side: Side, price: Decimal, theo_yes: float) -> None:
        """One fill (one arrival) of our quote at ``price`` while theo was ``theo_yes``."""
        bucket = self._bucket(side, price, theo_yes)
        if bucket is None:
            self.skipped += 1
            return
        m = self._market(ticker)
        m.fills[bucket] += 1
        m.cached.clear()

    def estimate(self, ticker: str, prior: IntensityPrior) -> IntensityEstimate:
        """A and k from the market's own quotes (``prior`` with the reason while thin)."""
        m = self._markets.get(ticker)
        if m is None:
            return fit_own_quotes([], [], [], prior, self.limits)
        found = m.cached.get(prior)
        if found is None:
            seconds = np.where((m.fills > 0) & (m.seconds <= 0), MIN_EXPOSURE, m.seconds)
            distance = np.arange(len(seconds), dtype=np.float64)
            found = fit_own_quotes(
                distance.tolist(), seconds.tolist(), m.fills.tolist(), prior, self.limits
            )
            m.cached[prior] = found
        return found

    def forget(self, ticker: str) -> None:
        self._markets.pop(ticker, None)

    def tickers(self) -> tuple[str, ...]:
        return tuple(self._markets)
