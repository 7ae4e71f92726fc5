from decimal import Decimal

import numpy as np
import pytest

from kmm_interactive.domain import Side
from kmm_interactive.pricing.intensity import (
    FitLimits,
    IntensityPrior,
    IntensitySource,
    fit_own_quotes,
    fit_trade_tape,
    trade_depth_cents,
)

PRIOR = IntensityPrior(A=0.02, k=0.3)


@pytest.mark.parametrize(("A", "k", "seed"), [(0.05, 0.5, 1), (0.2, 0.25, 2), (0.01, 1.2, 3)])
def test_recovers_A_and_k_from_our_own_fills(A, k, seed):
    rng = np.random.default_rng(seed)
    distances = np.arange(0.0, 8.0, 1.0)  # cents from theo
    # Uneven resting time, as a live quoter has: most of it near the touch.
    seconds = rng.uniform(0.5, 1.5, distances.size) * 1500 / A / (1 + distances)
    fills = rng.poisson(seconds * A * np.exp(-k * distances))
    est = fit_own_quotes(distances, seconds, fills, PRIOR)
    assert est.source is IntensitySource.OWN_QUOTES
    assert est.A == pytest.approx(A, rel=0.10)
    assert est.k == pytest.approx(k, rel=0.10)
    assert abs(est.k - k) < 3 * est.relative_se_k * est.k  # the reported error is honest
    assert 0.5 < est.confidence <= 1.0
    assert est.observations == fills.sum()


def test_more_data_more_confidence():
    rng = np.random.default_rng(5)
    d = np.arange(6.0)

    def estimate(scale):
        seconds = np.full(d.size, scale)
        return fit_own_quotes(d, seconds, rng.poisson(seconds * 0.05 * np.exp(-0.5 * d)), PRIOR)

    assert estimate(2_000).confidence < estimate(200_000).confidence


@pytest.mark.parametrize(
    ("distances", "seconds", "fills", "reason"),
    [
        ([0, 1, 2], [100, 100, 100], [3, 1, 0], "4 fills, need 20"),
        ([1, 1], [500, 500], [20, 20], "one distance only"),
        ([0, 1, 2], [100, 100, 100], [5, 10, 20], "do not fall with distance"),
        ([0, 5], [1000, 1000], [40, 0], "edge of the distances"),
    ],
)
def test_thin_or_odd_data_falls_back_to_the_prior(distances, seconds, fills, reason):
    est = fit_own_quotes(distances, seconds, fills, PRIOR)
    assert (est.A, est.k, est.source, est.confidence) == (0.02, 0.3, IntensitySource.PRIOR, 0.0)
    assert reason in est.reason


def test_uncertain_k_falls_back_to_the_prior():
    est = fit_own_quotes([0, 1], [100, 100], [12, 9], PRIOR, FitLimits(min_observations=5))
    assert est.source is IntensitySource.PRIOR
    assert "too uncertain" in est.reason


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same length"):
        fit_own_quotes([0, 1], [1], [0, 0], PRIOR)
    with pytest.raises(ValueError, match="not be negative"):
        fit_own_quotes([0, 1], [1, -1], [0, 0], PRIOR)
    with pytest.raises(ValueError, match="no resting time"):
        fit_own_quotes([0, 1, 2], [0, 10, 10], [30, 1, 1], PRIOR)
    with pytest.raises(ValueError, match="finite"):
        fit_own_quotes([0, float("nan")], [1, 1], [0, 0], PRIOR)
    with pytest.raises(ValueError, match="both must be > 0"):
        IntensityPrior(A=0.0, k=0.5)


def test_trade_depth_is_measured_from_the_resting_side():
    # A taker buying YES at 0.58 with theo 0.55 would have lifted our ask up to 3 cents out.
    assert trade_depth_cents(Decimal("0.58"), Side.BID, 0.55) == pytest.approx(3.0)
    assert trade_depth_cents(Decimal("0.51"), Side.ASK, 0.55) == pytest.approx(4.0)
    assert trade_depth_cents(Decimal("0.53"), Side.BID, 0.55) < 0


@pytest.mark.parametrize(("A", "k", "seed"), [(0.05, 0.5, 7), (0.3, 0.2, 8)])
def test_recovers_A_and_k_from_the_tape(A, k, seed):
    rng = np.random.default_rng(seed)
    duration = 50_000.0
    theo = 0.55
    trades = []
    for side in (Side.BID, Side.ASK):
        n = rng.poisson(A * duration)
        # Depth beyond theo, on the cent grid: P(D >= d) = e^(−k·d) for whole cents d.
        depth = np.floor(rng.exponential(1.0 / k, n))
        # Some takers trade on their good side of theo: they must not count.
        inside = -rng.integers(1, 4, rng.poisson(0.2 * n))
        for d in np.concatenate([depth, inside]):
            price = Decimal(str(round(theo + side.sign * d / 100, 2)))
            trades.append(trade_depth_cents(price, side, theo))
    est = fit_trade_tape(trades, duration, PRIOR, tick_cents=1.0)
    assert est.source is IntensitySource.TAPE
    assert est.A == pytest.approx(A, rel=0.10)
    assert est.k == pytest.approx(k, rel=0.10)


def test_a_short_tape_falls_back_to_the_prior():
    est = fit_trade_tape([1.0, 2.0, -1.0], 600.0, PRIOR)
    assert est.source is IntensitySource.PRIOR
    assert "2 trades reached theo" in est.reason
    with pytest.raises(ValueError, match="duration_seconds"):
        fit_trade_tape([1.0], 0.0, PRIOR)
