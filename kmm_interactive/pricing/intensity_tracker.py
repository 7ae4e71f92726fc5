"""Count, per market, how long our quotes rested at each distance from theo and the fills
they took there, and fit A and k from those counts on demand
(``pricing.intensity.fit_own_quotes``).

Conventions:

* **Distance** is in whole cents from theo on the quote's own side: a YES bid at P sits
  ``(theo − P)·100`` below theo, an ask ``(P − theo)·100`` above. It is rounded to the
  nearest cent, a half cent away from theo (float noise below 10⁻⁶ ¢ is ignored first, so
  a bid and an ask the same distance from theo always share a bucket).
* A quote **at or through theo** (distance < 0) counts at distance 0: it is as close as a
  quote can be, and its time and fills stay together in one bucket.
* A quote **beyond** ``max_distance_cents`` is not counted at all (only the ``skipped``
  counter rises): so far out, its fills are news, not flow, and the buckets stay bounded.
* A **fill with no resting time** at its distance (the order was placed and filled between
  two samples of the monitor) keeps its fill and gets :data:`MIN_EXPOSURE` seconds, half a
  4 Hz monitor tick, so the fit never sees fills without time. The fill is real flow;
  dropping it would bias A down.

Each market caches its last estimate (for one prior; another prior refits). A new fill
always refits; new resting time refits only once the market's total has grown by more than
:data:`REFIT_GROWTH` (1 %) since the last fit, so an estimate leaves out at most that share of
the resting time, and ``estimate`` stays cheap when it is called several times a second for
hundreds of markets (a full fit costs about 0.6 ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from numbers import Real
from typing import Final

from kmm_interactive.domain import Side
from kmm_interactive.pricing.intensity import (
    FitLimits,
    IntensityEstimate,
    IntensityPrior,
    fit_own_quotes,
)

#: Seconds of exposure given to a bucket that has fills but no recorded resting time.
MIN_EXPOSURE: Final = 0.125
#: Refit once the resting time has grown by this share since the last fit (fills always refit).
REFIT_GROWTH: Final = 0.01
#: The largest distance that can be tracked (a price and theo both lie inside (0, 1)).
MAX_TRACKED_CENTS: Final = 100


@dataclass(frozen=True)
class _Fit:
    prior: IntensityPrior
    estimate: IntensityEstimate
    seconds: float  # the market's total resting time when it was fitted


@dataclass
class _Market:
    """One market's buckets: index = distance in cents."""

    seconds: list[float]
    fills: list[int]
    total_seconds: float = 0.0
    fit: _Fit | None = None  # the last fit (one prior only: a new prior refits)


def _check_ticker(ticker: str) -> None:
    if not isinstance(ticker, str) or not ticker:
        raise ValueError(f"ticker {ticker!r}: must be a non-empty string")


class IntensityTracker:
    """Per market: how long our quotes rested at each distance from theo, and the fills they
    took there; fits A and k on demand (``pricing.intensity.fit_own_quotes``).

    Conventions are in the module doc. Bad input raises ``ValueError`` and changes nothing.
    """

    def __init__(self, *, limits: FitLimits | None = None, max_distance_cents: int = 50) -> None:
        if (
            not isinstance(max_distance_cents, int)
            or isinstance(max_distance_cents, bool)
            or not 1 <= max_distance_cents <= MAX_TRACKED_CENTS
        ):
            raise ValueError(
                f"max_distance_cents = {max_distance_cents!r}: must be a whole number "
                f"from 1 to {MAX_TRACKED_CENTS}"
            )
        self.limits: Final = limits or FitLimits()
        self.max_distance_cents: Final = max_distance_cents
        #: Observations and fills beyond ``max_distance_cents``, not counted.
        self.skipped = 0
        self._markets: dict[str, _Market] = {}

    # ------------------------------------------------------------------ recording

    def _bucket(self, side: Side, price: Decimal, theo_yes: float) -> int | None:
        """The distance bucket of a quote, None beyond the maximum; ValueError on bad input."""
        if not isinstance(side, Side):
            raise ValueError(f"side {side!r}: must be Side.BID or Side.ASK")
        if not isinstance(price, Decimal) or not (price.is_finite() and 0 < price < 1):
            raise ValueError(f"price {price!r}: must be a Decimal strictly between 0 and 1")
        if (
            not isinstance(theo_yes, Real)
            or isinstance(theo_yes, bool)
            or not 0.0 < float(theo_yes) < 1.0  # also refuses NaN
        ):
            raise ValueError(f"theo_yes {theo_yes!r}: must be a probability strictly in (0, 1)")
        distance = (float(theo_yes) - float(price)) * 100.0 * side.sign
        bucket = max(0, math.floor(round(distance, 6) + 0.5))
        return bucket if bucket <= self.max_distance_cents else None

    def _market(self, ticker: str) -> _Market:
        market = self._markets.get(ticker)
        if market is None:
            size = self.max_distance_cents + 1
            market = self._markets[ticker] = _Market([0.0] * size, [0] * size)
        return market

    def observe(
        self, ticker: str, side: Side, price: Decimal, theo_yes: float, seconds: float
    ) -> None:
        """Add ``seconds`` of one quote resting at ``price`` while theo was ``theo_yes``."""
        _check_ticker(ticker)
        if (
            not isinstance(seconds, Real)
            or isinstance(seconds, bool)
            or not (math.isfinite(seconds) and seconds >= 0)
        ):
            raise ValueError(f"seconds {seconds!r}: must be a finite number >= 0")
        bucket = self._bucket(side, price, theo_yes)
        if bucket is None:
            self.skipped += 1
            return
        if seconds == 0:
            return
        market = self._market(ticker)
        market.seconds[bucket] += float(seconds)
        market.total_seconds += float(seconds)

    def note_fill(self, ticker: str, side: Side, price: Decimal, theo_yes: float) -> None:
        """Count one fill (one arrival) of our quote at ``price`` while theo was ``theo_yes``."""
        _check_ticker(ticker)
        bucket = self._bucket(side, price, theo_yes)
        if bucket is None:
            self.skipped += 1
            return
        market = self._market(ticker)
        market.fills[bucket] += 1
        market.fit = None

    # ------------------------------------------------------------------ reading

    def estimate(self, ticker: str, prior: IntensityPrior) -> IntensityEstimate:
        """A and k from the market's own quotes; ``prior``, with the reason, while thin."""
        market = self._markets.get(ticker)
        if market is None:
            return fit_own_quotes([], [], [], prior, self.limits)
        fit = market.fit
        if (
            fit is not None
            and fit.prior == prior
            and market.total_seconds <= fit.seconds * (1.0 + REFIT_GROWTH)
        ):
            return fit.estimate
        seconds = [
            MIN_EXPOSURE if n > 0 and t <= 0 else t
            for t, n in zip(market.seconds, market.fills, strict=True)
        ]
        estimate = fit_own_quotes(range(len(seconds)), seconds, market.fills, prior, self.limits)
        market.fit = _Fit(prior, estimate, market.total_seconds)
        return estimate

    def buckets(self, ticker: str) -> tuple[tuple[float, ...], tuple[int, ...]]:
        """Resting seconds and fills per distance 0…``max_distance_cents`` (zeros if unseen)."""
        market = self._markets.get(ticker)
        if market is None:
            size = self.max_distance_cents + 1
            return (0.0,) * size, (0,) * size
        return tuple(market.seconds), tuple(market.fills)

    def forget(self, ticker: str) -> None:
        """Drop a market's data (it settled); unknown tickers are fine."""
        self._markets.pop(ticker, None)

    def tickers(self) -> tuple[str, ...]:
        """The markets with data, in the order first seen."""
        return tuple(self._markets)
