"""The per-market intensity tracker: distance buckets (bid and ask sides, through theo, beyond
the maximum), recovery of a known A and k from simulated resting time and fills, thin data,
bad input, forgetting a settled market and the cached estimate."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from kmm_interactive.domain import Side
from kmm_interactive.pricing.intensity import (
    FitLimits,
    IntensityPrior,
    IntensitySource,
    fit_own_quotes,
)
from kmm_interactive.pricing.intensity_tracker import MIN_EXPOSURE, REFIT_GROWTH, IntensityTracker

PRIOR = IntensityPrior(A=0.02, k=0.3)
T = "KXNBAGAME-26DEC04LALBOS-LAL"


def quote_at(side: Side, distance_cents: int, theo: float = 0.5) -> Decimal:
    """The YES price of a quote ``distance_cents`` away from theo on its own side."""
    cents = round(theo * 100) - side.sign * distance_cents
    return Decimal(cents) / 100


def feed(
    tracker: IntensityTracker,
    seconds: np.ndarray,
    fills: np.ndarray,
    ticker: str = T,
    theo: float = 0.5,
) -> None:
    """Bucket d rested seconds[d] (half on each side, in 10 s samples) and took fills[d]."""
    for d, (t, n) in enumerate(zip(seconds, fills, strict=True)):
        for side in (Side.BID, Side.ASK):
            price = quote_at(side, d, theo)
            whole, rest = divmod(float(t) / 2, 10.0)
            for _ in range(int(whole)):
                tracker.observe(ticker, side, price, theo, 10.0)
            tracker.observe(ticker, side, price, theo, rest)
        for i in range(int(n)):
            side = Side.BID if i % 2 else Side.ASK
            tracker.note_fill(ticker, side, quote_at(side, d, theo), theo)


# --------------------------------------------------------------------------- recovery


def test_recovers_known_A_and_k_from_expected_counts() -> None:
    A, k = 0.05, 0.5
    d = np.arange(11)
    seconds = np.full(d.size, 2000.0)
    fills = np.rint(seconds * A * np.exp(-k * d))
    tracker = IntensityTracker()
    feed(tracker, seconds, fills)
    assert tracker.buckets(T)[0][:11] == pytest.approx(tuple(seconds))
    assert tracker.buckets(T)[1][:11] == tuple(int(n) for n in fills)

    est = tracker.estimate(T, PRIOR)
    assert est.source is IntensitySource.OWN_QUOTES
    assert est.A == pytest.approx(A, rel=0.03)
    assert est.k == pytest.approx(k, rel=0.03)
    assert est.observations == fills.sum()
    assert est.confidence > 0.5
    assert est.reason == ""


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_recovers_known_A_and_k_from_poisson_fills(seed: int) -> None:
    A, k = 0.05, 0.5
    rng = np.random.default_rng(seed)
    d = np.arange(15)
    # Uneven resting time, most of it near the touch, as a live quoter has.
    seconds = np.rint(rng.uniform(0.5, 1.5, d.size) * 10_000 / (1 + 0.3 * d))
    fills = rng.poisson(seconds * A * np.exp(-k * d))  # about 1000 fills
    tracker = IntensityTracker()
    feed(tracker, seconds, fills)
    est = tracker.estimate(T, PRIOR)
    assert est.source is IntensitySource.OWN_QUOTES
    assert est.A == pytest.approx(A, rel=0.15)
    assert est.k == pytest.approx(k, rel=0.15)
    assert abs(est.k - k) < 3 * est.relative_se_k * est.k
    # The tracker fits exactly what fit_own_quotes fits on the same counts.
    direct = fit_own_quotes(d.astype(float).tolist(), seconds.tolist(), fills.tolist(), PRIOR)
    assert est.A == pytest.approx(direct.A, rel=1e-9)
    assert est.k == pytest.approx(direct.k, rel=1e-9)


def test_markets_are_kept_apart() -> None:
    A, k = 0.05, 0.5
    d = np.arange(11)
    seconds = np.full(d.size, 2000.0)
    tracker = IntensityTracker()
    feed(tracker, seconds, np.rint(seconds * A * np.exp(-k * d)), ticker="M1")
    feed(tracker, seconds, np.rint(seconds * 2 * A * np.exp(-k * d)), ticker="M2", theo=0.31)
    assert tracker.tickers() == ("M1", "M2")
    assert tracker.estimate("M1", PRIOR).A == pytest.approx(A, rel=0.03)
    assert tracker.estimate("M2", PRIOR).A == pytest.approx(2 * A, rel=0.03)
    assert tracker.estimate("M3", PRIOR).source is IntensitySource.PRIOR


# --------------------------------------------------------------------------- buckets


def test_a_bid_below_and_an_ask_above_theo_share_a_bucket() -> None:
    tracker = IntensityTracker()
    tracker.observe("M", Side.BID, Decimal("0.47"), 0.5, 2.0)
    tracker.observe("M", Side.ASK, Decimal("0.53"), 0.5, 3.0)
    tracker.note_fill("M", Side.BID, Decimal("0.47"), 0.5)
    tracker.note_fill("M", Side.ASK, Decimal("0.53"), 0.5)
    seconds, fills = tracker.buckets("M")
    assert seconds[3] == 5.0
    assert fills[3] == 2
    assert sum(seconds) == 5.0
    assert sum(fills) == 2
    # The wrong convention would put them 3¢ on the other side, i.e. through theo (bucket 0).
    assert seconds[0] == 0.0


def test_distance_rounds_to_the_nearest_cent_and_half_a_cent_away_from_theo() -> None:
    tracker = IntensityTracker()
    tracker.observe("M", Side.BID, Decimal("0.4860"), 0.5, 1.0)  # 1.4¢ → 1
    tracker.observe("M", Side.ASK, Decimal("0.5160"), 0.5, 1.0)  # 1.6¢ → 2
    # theo 0.555 is not exact in binary: 3.5¢ either side must still round alike.
    tracker.observe("M", Side.BID, Decimal("0.52"), 0.555, 10.0)
    tracker.observe("M", Side.ASK, Decimal("0.59"), 0.555, 20.0)
    seconds, _ = tracker.buckets("M")
    assert seconds[1] == 1.0
    assert seconds[2] == 1.0
    assert seconds[4] == 30.0
    assert seconds[3] == 0.0


def test_a_quote_through_theo_counts_at_distance_zero() -> None:
    tracker = IntensityTracker()
    tracker.observe("M", Side.BID, Decimal("0.55"), 0.5, 4.0)  # a bid 5¢ above theo
    tracker.observe("M", Side.ASK, Decimal("0.42"), 0.5, 6.0)  # an ask 8¢ below theo
    tracker.observe("M", Side.BID, Decimal("0.50"), 0.5, 1.0)  # at theo
    tracker.note_fill("M", Side.ASK, Decimal("0.42"), 0.5)
    seconds, fills = tracker.buckets("M")
    assert seconds[0] == 11.0
    assert fills[0] == 1
    assert sum(seconds) == 11.0
    assert tracker.skipped == 0


def test_a_quote_beyond_the_maximum_distance_is_skipped() -> None:
    tracker = IntensityTracker(max_distance_cents=10)
    tracker.observe("M", Side.BID, Decimal("0.30"), 0.5, 5.0)  # 20¢ out
    tracker.note_fill("M", Side.ASK, Decimal("0.61"), 0.5)  # 11¢ out
    assert tracker.skipped == 2
    assert tracker.tickers() == ()
    assert tracker.buckets("M") == ((0.0,) * 11, (0,) * 11)
    tracker.observe("M", Side.ASK, Decimal("0.60"), 0.5, 5.0)  # exactly at the maximum
    seconds, _ = tracker.buckets("M")
    assert len(seconds) == 11
    assert seconds[10] == 5.0
    assert tracker.skipped == 2


def test_buckets_are_bounded_by_the_maximum_distance() -> None:
    tracker = IntensityTracker(max_distance_cents=50)
    for cents in range(1, 100):
        tracker.observe("M", Side.BID, Decimal(cents) / 100, 0.99, 1.0)  # 98¢ … 0¢ out
    seconds, fills = tracker.buckets("M")
    assert len(seconds) == len(fills) == 51
    assert seconds == (1.0,) * 51  # distances 0…50 counted, the 48 beyond skipped
    assert tracker.skipped == 99 - 51


def test_theo_may_be_any_real_probability() -> None:
    tracker = IntensityTracker()
    tracker.observe("M", Side.BID, Decimal("0.47"), np.float64(0.5), 1.0)
    tracker.observe("M", Side.BID, Decimal("0.47"), Fraction(1, 2), 1)  # type: ignore[arg-type]
    assert tracker.buckets("M")[0][3] == 2.0


# --------------------------------------------------------------------------- thin data


def test_a_market_never_seen_gives_the_prior() -> None:
    est = IntensityTracker().estimate("NEW", PRIOR)
    assert (est.A, est.k) == (PRIOR.A, PRIOR.k)
    assert est.source is IntensitySource.PRIOR
    assert est.confidence == 0.0
    assert est.observations == 0


def test_too_few_fills_give_the_prior_with_confidence_zero() -> None:
    d = np.arange(8)
    seconds = np.full(d.size, 500.0)
    fills = np.array([5, 3, 2, 1, 1, 0, 0, 0])  # 12 fills, the default limit is 20
    tracker = IntensityTracker()
    feed(tracker, seconds, fills)
    est = tracker.estimate(T, PRIOR)
    assert (est.A, est.k) == (PRIOR.A, PRIOR.k)
    assert est.source is IntensitySource.PRIOR
    assert est.confidence == 0.0
    assert est.observations == 12
    assert "12 fills" in est.reason
    # The limits are the tracker's own.
    loose = IntensityTracker(limits=FitLimits(min_observations=10, max_relative_se=10.0))
    feed(loose, seconds, fills)
    assert loose.estimate(T, PRIOR).source is IntensitySource.OWN_QUOTES


def test_fills_at_one_distance_only_give_the_prior() -> None:
    tracker = IntensityTracker()
    feed(tracker, np.array([0.0, 0.0, 1000.0]), np.array([0, 0, 40]))
    est = tracker.estimate(T, PRIOR)
    assert est.source is IntensitySource.PRIOR
    assert "one distance" in est.reason


# --------------------------------------------------------------------------- fills without time


def test_a_fill_with_no_resting_time_at_its_distance_does_not_break_the_fit() -> None:
    A, k = 0.05, 0.5
    d = np.arange(11)
    seconds = np.full(d.size, 2000.0)
    fills = np.rint(seconds * A * np.exp(-k * d))
    tracker = IntensityTracker(max_distance_cents=20)
    feed(tracker, seconds, fills)
    tracker.note_fill(T, Side.BID, quote_at(Side.BID, 15), 0.5)  # never rested at 15¢
    est = tracker.estimate(T, PRIOR)
    assert est.source is IntensitySource.OWN_QUOTES
    assert est.observations == fills.sum() + 1
    assert est.A == pytest.approx(A, rel=0.1)
    assert est.k == pytest.approx(k, rel=0.1)
    # The documented choice: the fill is kept, with MIN_EXPOSURE seconds at its distance.
    padded = [*seconds.tolist(), *[0.0] * 4, MIN_EXPOSURE, *[0.0] * 5]
    counts = [*fills.astype(int).tolist(), *[0] * 4, 1, *[0] * 5]
    direct = fit_own_quotes(range(21), padded, counts, PRIOR)
    assert (est.A, est.k) == pytest.approx((direct.A, direct.k), rel=1e-12)
    # The recorded resting time is not altered.
    assert tracker.buckets(T)[0][15] == 0.0


def test_fills_without_any_resting_time_at_all_do_not_raise() -> None:
    tracker = IntensityTracker()
    for i in range(30):
        tracker.note_fill("M", Side.ASK, quote_at(Side.ASK, i % 3), 0.5)
    est = tracker.estimate("M", PRIOR)
    assert est.observations == 30
    assert math.isfinite(est.A)
    assert math.isfinite(est.k)


# --------------------------------------------------------------------------- bad input


def _populated() -> IntensityTracker:
    tracker = IntensityTracker(max_distance_cents=10)
    tracker.observe("M", Side.BID, Decimal("0.47"), 0.5, 2.0)
    tracker.note_fill("M", Side.BID, Decimal("0.47"), 0.5)
    tracker.observe("M", Side.BID, Decimal("0.10"), 0.5, 2.0)  # skipped
    return tracker


def _state(tracker: IntensityTracker) -> tuple[object, ...]:
    return (
        tracker.tickers(),
        tracker.skipped,
        {t: tracker.buckets(t) for t in (*tracker.tickers(), "N")},
        tracker.estimate("M", PRIOR),
    )


BAD_OBSERVATIONS = [
    ("M", Side.BID, Decimal("0.47"), 0.5, -1.0),
    ("M", Side.BID, Decimal("0.47"), 0.5, math.nan),
    ("M", Side.BID, Decimal("0.47"), 0.5, math.inf),
    ("M", Side.BID, Decimal("0.47"), 0.5, True),
    ("N", Side.BID, Decimal("0.47"), 0.0, 1.0),
    ("N", Side.BID, Decimal("0.47"), 1.0, 1.0),
    ("N", Side.BID, Decimal("0.47"), -0.2, 1.0),
    ("N", Side.BID, Decimal("0.47"), math.nan, 1.0),
    ("N", Side.BID, Decimal("0.47"), math.inf, 1.0),
    ("N", Side.BID, Decimal("NaN"), 0.5, 1.0),
    ("N", Side.BID, Decimal("0"), 0.5, 1.0),
    ("N", Side.BID, Decimal("1.2"), 0.5, 1.0),
    ("N", Side.BID, 0.47, 0.5, 1.0),
    ("N", "buy", Decimal("0.47"), 0.5, 1.0),
    ("", Side.BID, Decimal("0.47"), 0.5, 1.0),
]


@pytest.mark.parametrize(("ticker", "side", "price", "theo", "seconds"), BAD_OBSERVATIONS)
def test_bad_observations_raise_and_change_nothing(
    ticker: str, side: Side, price: Decimal, theo: float, seconds: float
) -> None:
    tracker = _populated()
    before = _state(tracker)
    with pytest.raises(ValueError, match=r"must"):
        tracker.observe(ticker, side, price, theo, seconds)
    assert _state(tracker) == before


@pytest.mark.parametrize(
    ("ticker", "side", "price", "theo", "seconds"),
    [case for case in BAD_OBSERVATIONS if case[0] != "M"],  # the seconds do not apply
)
def test_bad_fills_raise_and_change_nothing(
    ticker: str, side: Side, price: Decimal, theo: float, seconds: float
) -> None:
    del seconds
    tracker = _populated()
    before = _state(tracker)
    with pytest.raises(ValueError, match=r"must"):
        tracker.note_fill(ticker, side, price, theo)
    assert _state(tracker) == before


@pytest.mark.parametrize("bad", [0, -5, 101, True, 2.5])
def test_the_maximum_distance_must_be_a_sensible_whole_number(bad: int) -> None:
    with pytest.raises(ValueError, match="max_distance_cents"):
        IntensityTracker(max_distance_cents=bad)


# --------------------------------------------------------------------------- lifecycle


def test_forget_drops_a_market_only() -> None:
    d = np.arange(11)
    seconds = np.full(d.size, 2000.0)
    fills = np.rint(seconds * 0.05 * np.exp(-0.5 * d))
    tracker = IntensityTracker()
    feed(tracker, seconds, fills, ticker="SETTLED")
    feed(tracker, seconds, fills, ticker="LIVE")
    assert tracker.estimate("SETTLED", PRIOR).source is IntensitySource.OWN_QUOTES
    tracker.forget("SETTLED")
    tracker.forget("NEVER-SEEN")  # not an error
    assert tracker.tickers() == ("LIVE",)
    assert sum(tracker.buckets("SETTLED")[0]) == 0.0
    assert tracker.estimate("SETTLED", PRIOR).source is IntensitySource.PRIOR
    assert tracker.estimate("LIVE", PRIOR).source is IntensitySource.OWN_QUOTES


def test_the_estimate_is_cached_until_new_data_arrive() -> None:
    d = np.arange(11)
    seconds = np.full(d.size, 2000.0)
    fills = np.rint(seconds * 0.05 * np.exp(-0.5 * d))
    tracker = IntensityTracker()
    feed(tracker, seconds, fills)
    first = tracker.estimate(T, PRIOR)
    assert tracker.estimate(T, PRIOR) is first
    # A little more resting time (under REFIT_GROWTH of the total) keeps the cached fit...
    total = float(seconds.sum())
    tracker.observe(T, Side.BID, quote_at(Side.BID, 0), 0.5, total * REFIT_GROWTH / 2)
    assert tracker.estimate(T, PRIOR) is first
    # ...more than that refits, and so does any fill or another prior.
    tracker.observe(T, Side.BID, quote_at(Side.BID, 0), 0.5, total * REFIT_GROWTH)
    second = tracker.estimate(T, PRIOR)
    assert second.A < first.A
    tracker.note_fill(T, Side.BID, quote_at(Side.BID, 0), 0.5)
    third = tracker.estimate(T, PRIOR)
    assert third.observations == first.observations + 1
    other = tracker.estimate(T, IntensityPrior(A=1.0, k=1.0))
    assert other is not third
    assert other.A == pytest.approx(third.A)
