import bisect
from decimal import Decimal

import numpy as np
import pytest

from kmm_interactive.domain import PriceGrid, Side
from kmm_interactive.pricing.intensity import (
    FitLimits,
    IntensityPrior,
    IntensitySource,
    TapeTrade,
    fit_own_quotes,
    fit_trade_tape,
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


TAPERED = PriceGrid.from_price_ranges(
    [
        {"start": "0", "end": "0.1", "step": "0.001"},
        {"start": "0.1", "end": "0.9", "step": "0.01"},
        {"start": "0.9", "end": "1", "step": "0.001"},
    ]
)


def simulate_tape(rng, grid, theo, A, k, duration):
    """Takers on each side reach a depth D ~ Exp(k) cents beyond theo, at A per second, and
    print at the deepest level they reach (or on their good side of theo if none)."""
    trades = []
    for taker in (Side.BID, Side.ASK):
        resting = taker.opposite
        gap = [float((Decimal(theo) - p) * resting.sign * 100) for p in grid.levels]
        ladder = sorted((d, p) for d, p in zip(gap, grid.levels, strict=True) if d >= 0)
        depths = [d for d, _ in ladder]
        inside = [p for d, p in zip(gap, grid.levels, strict=True) if d < 0]
        good_side = max(inside) if resting is Side.ASK else min(inside)
        for depth in rng.exponential(1 / k, rng.poisson(A * duration)):
            j = bisect.bisect_right(depths, depth) - 1
            trades.append(TapeTrade(ladder[j][1] if j >= 0 else good_side, taker))
    return trades


@pytest.mark.parametrize(
    ("grid", "theo", "A", "k", "seed"),
    [
        (PriceGrid.linear_cent(), 0.55, 0.05, 0.5, 7),
        (PriceGrid.linear_cent(), 0.553, 0.05, 0.5, 8),  # theo between two levels
        (PriceGrid.linear_cent(), 0.4771, 0.3, 0.2, 9),
        (TAPERED, 0.0523, 0.05, 0.8, 10),  # in the $0.001 band
        (TAPERED, 0.905, 0.1, 0.3, 11),  # astride a band edge
    ],
)
def test_recovers_A_and_k_from_the_tape(grid, theo, A, k, seed):
    rng = np.random.default_rng(seed)
    duration = 40_000.0
    est = fit_trade_tape(
        simulate_tape(rng, grid, theo, A, k, duration), theo, grid, duration, PRIOR
    )
    assert est.source is IntensitySource.TAPE
    assert est.A == pytest.approx(A, rel=0.10)
    assert est.k == pytest.approx(k, rel=0.10)
    assert abs(est.k - k) < 3 * est.relative_se_k * est.k


def test_a_short_or_odd_tape_falls_back_to_the_prior():
    grid = PriceGrid.linear_cent()
    trades = [TapeTrade(Decimal("0.57"), Side.BID), TapeTrade(Decimal("0.50"), Side.BID)]
    est = fit_trade_tape(trades, 0.55, grid, 600.0, PRIOR)
    assert est.source is IntensitySource.PRIOR
    assert "1 trades reached theo" in est.reason  # the second printed below theo
    at_first_level = [TapeTrade(Decimal("0.56"), Side.BID)] * 30
    est = fit_trade_tape(at_first_level, 0.55, grid, 600.0, PRIOR)
    assert "first level past theo" in est.reason
    with pytest.raises(ValueError, match="duration_seconds"):
        fit_trade_tape(trades, 0.55, grid, 0.0, PRIOR)
    bad_print = [TapeTrade(Decimal("0.555"), Side.BID)]
    est = fit_trade_tape(bad_print + trades, 0.55, grid, 600.0, PRIOR)
    assert est.reason == "1 trades reached theo, need 20; 1 off-grid print(s) ignored"
