import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kmm_interactive.pricing.devig import DevigMethod, devig

METHODS = [m.value for m in DevigMethod]


@st.composite
def books(draw, outcomes=st.sampled_from([2, 3]), margin=st.floats(0.0, 0.12)):
    """Decimal odds of a book: fair probabilities plus a margin spread in proportion."""
    n = draw(outcomes)
    weights = draw(st.lists(st.floats(0.05, 1.0), min_size=n, max_size=n))
    m = draw(margin)
    implied = [w / sum(weights) * (1.0 + m) for w in weights]
    assume(max(implied) < 0.99)  # odds above 1.01: a real book's shortest price
    return [1.0 / p for p in implied]


def test_reference_values_from_the_shin_package():
    # mberk/shin README: calculate_implied_probabilities([2.6, 2.4, 4.3]) and ([1.5, 2.74]).
    expected = [0.37299406033208965, 0.4047794109200184, 0.2222265287474275]
    assert devig([2.6, 2.4, 4.3], "shin") == pytest.approx(expected, abs=1e-10)
    assert devig([1.5, 2.74], "shin") == pytest.approx([0.6508515815085157, 0.3491484184914841])


def test_multiplicative_by_hand():
    implied = [1 / 1.5, 1 / 2.7]
    assert devig([1.5, 2.7]) == pytest.approx([p / sum(implied) for p in implied])


def additive_fails(odds):
    implied = [1 / o for o in odds]
    share = (sum(implied) - 1) / len(implied)
    return any(not 0 < p - share < 1 for p in implied)


@pytest.mark.parametrize("method", METHODS)
@given(odds=books())
def test_sums_to_one_and_preserves_order(method, odds):
    if method == "additive" and additive_fails(odds):  # long shots: it must say so
        with pytest.raises(ValueError, match=r"outside \(0, 1\)"):
            devig(odds, method)
        return
    probs = devig(odds, method)
    assert math.fsum(probs) == pytest.approx(1.0, abs=1e-12)
    assert all(0.0 < p < 1.0 for p in probs)
    for i in range(len(odds)):
        for j in range(len(odds)):
            if odds[i] < odds[j] * (1 - 1e-9):  # shorter odds, higher probability
                assert probs[i] > probs[j]


@given(odds=books(margin=st.just(0.0)))
def test_methods_agree_when_the_margin_is_zero(odds):
    results = [devig(odds, m) for m in METHODS]
    for other in results[1:]:
        assert other == pytest.approx(results[0], abs=1e-9)


@given(odds=books(outcomes=st.just(2)))
def test_shin_equals_additive_for_two_outcomes(odds):
    try:
        additive = devig(odds, "additive")
    except ValueError:
        assume(False)
    assert devig(odds, "shin") == pytest.approx(additive, abs=1e-9)


def test_negative_margin_is_handled():
    # Best prices across exchanges can sum below 1; every method still returns a distribution.
    for method in METHODS:
        probs = devig([2.1, 2.05], method)
        assert math.fsum(probs) == pytest.approx(1.0)
        assert probs[0] < probs[1]


@pytest.mark.parametrize(
    ("odds", "message"),
    [
        ([1.9], "2 or 3 outcomes, got 1"),
        ([2.0, 2.0, 3.0, 9.0], "2 or 3 outcomes, got 4"),
        ([1.0, 3.0], r"odds\[0\] = 1.0: decimal odds must be finite and > 1"),
        ([0.5, 3.0], "must be finite and > 1"),
        ([float("nan"), 2.0], "must be finite and > 1"),
        ([float("inf"), 2.0], "must be finite and > 1"),
        (["2.0", 2.0], "is not a number"),
        ([1e6, 1e6], "booksum of 0.000"),
        ([1e300, 1.5], "booksum of 0.667"),
        ([1.2, 1.2], "booksum of 1.667"),
    ],
)
def test_bad_odds(odds, message):
    with pytest.raises(ValueError, match=message):
        devig(odds)


def test_unknown_method_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: multiplicative, additive, power, shin"):
        devig([1.9, 1.9], "magic")
