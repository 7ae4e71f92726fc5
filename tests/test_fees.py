from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmm_interactive.domain import FeeType, SeriesFees
from kmm_interactive.pricing.fees import (
    DIRECT_MEMBER_PRECISION,
    UnsupportedFeeType,
    fee_per_contract,
    maker_fee,
    taker_fee,
)

D = Decimal
prices = st.integers(1, 9999).map(lambda n: D(n) / 10000)
counts = st.integers(0, 100_000).map(lambda n: D(n) / 100)


def test_reference_values():
    assert taker_fee(D("0.50"), D(100)) == D("1.75")
    assert maker_fee(D("0.50"), D(100)) == D("0.44")  # 0.4375 rounded up
    assert taker_fee(D("0.50"), D(1)) == D("0.02")  # 0.0175 rounded up
    assert taker_fee(D("0.50"), D(0)) == D(0)


def test_direct_member_rounding_and_multiplier():
    assert maker_fee(D("0.50"), D(100), rounding=DIRECT_MEMBER_PRECISION) == D("0.4375")
    assert taker_fee(D("0.055"), D(1), rounding=DIRECT_MEMBER_PRECISION) == D("0.0037")
    assert taker_fee(D("0.50"), D(100), D("0.5")) == D("0.88")  # 0.875 up


def test_maker_fee_only_on_maker_fee_series():
    assert maker_fee(D("0.50"), D(100), fee_type=FeeType.QUADRATIC) == D(0)
    # The wire gives strings: they must mean the same as the enum, never a silent zero.
    assert maker_fee(D("0.50"), D(100), fee_type="quadratic_with_maker_fees") == D("0.44")
    assert maker_fee(D("0.50"), D(100), fee_type="quadratic") == D(0)
    with pytest.raises(UnsupportedFeeType, match="'mystery' is unknown"):
        maker_fee(D("0.50"), D(1), fee_type="mystery")
    with pytest.raises(UnsupportedFeeType, match="'flat' is not supported"):
        fee_per_contract([D("0.5")], maker=False, fees=SeriesFees(FeeType.FLAT))
    assert SeriesFees("quadratic_with_maker_fees").fee_type is FeeType.QUADRATIC_WITH_MAKER_FEES
    with pytest.raises(ValueError, match="fee_multiplier = -1"):
        SeriesFees(multiplier=D(-1))
    with pytest.raises(UnsupportedFeeType, match="'flat' is not supported"):
        maker_fee(D("0.50"), D(1), fee_type=FeeType.FLAT)


@given(prices, counts, counts)
def test_monotone_in_count(price, c1, c2):
    low, high = sorted((c1, c2))
    assert taker_fee(price, low) <= taker_fee(price, high)
    assert maker_fee(price, low) <= maker_fee(price, high)


@given(prices, counts)
def test_symmetric_in_price(price, count):
    assert taker_fee(price, count) == taker_fee(1 - price, count)
    assert maker_fee(price, count) == maker_fee(1 - price, count)


@given(prices, counts)
def test_rounded_up_to_the_cent(price, count):
    exact = D("0.07") * count * price * (1 - price)
    fee = taker_fee(price, count)
    assert fee >= exact
    assert fee - exact < D("0.01")
    assert fee % D("0.01") == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"price": D(0), "count": D(1)}, ValueError, "strictly between 0 and 1"),
        ({"price": D(1), "count": D(1)}, ValueError, "strictly between 0 and 1"),
        ({"price": D("0.5"), "count": D(-1)}, ValueError, "must not be negative"),
        ({"price": 0.5, "count": D(1)}, TypeError, "price must be a Decimal"),
        ({"price": D("0.5"), "count": 3}, TypeError, "count must be a Decimal"),
    ],
)
def test_bad_inputs(kwargs, error, message):
    with pytest.raises(error, match=message):
        taker_fee(**kwargs)


def test_fee_per_contract_is_the_unrounded_formula():
    levels = [D("0.01"), D("0.50"), D("0.99")]
    maker = fee_per_contract(levels, maker=True, fees=SeriesFees(FeeType.QUADRATIC_WITH_MAKER_FEES))
    np.testing.assert_allclose(maker, [0.0175 * 0.01 * 0.99, 0.004375, 0.0175 * 0.99 * 0.01])
    assert maker[0] == maker[2]  # bit-identical for P and 1 − P
    assert not fee_per_contract(levels, maker=True, fees=SeriesFees()).any()
    taker = fee_per_contract(levels, maker=False, fees=SeriesFees())
    np.testing.assert_allclose(
        fee_per_contract(levels, maker=False, fees=SeriesFees(multiplier=D("0.5"))), taker / 2
    )
    assert taker[1] == pytest.approx(0.0175)


def test_fill_rounding_follows_kalshis_worked_example() -> None:
    # reference/apis.md §1.7: three 1-lot buys at $0.055 with a $0.0085 trade fee each.
    from kmm_interactive.pricing.fees import charge_fill

    carried, fees, changes = Decimal(0), [], []
    for _ in range(3):
        charge = charge_fill(Decimal("-0.055"), Decimal("0.0085"), carried)
        carried = charge.carried
        fees.append(charge.fee)
        changes.append(charge.balance_change)
    assert fees == [Decimal("0.015"), Decimal("0.005"), Decimal("0.015")]
    assert changes == [Decimal("-0.07"), Decimal("-0.06"), Decimal("-0.07")]
    # A sale floors the proceeds: 0.555 received less a 0.0175 fee is 0.5375 → 0.53.
    sale = charge_fill(Decimal("0.555"), Decimal("0.0175"))
    assert (sale.balance_change, sale.fee) == (Decimal("0.53"), Decimal("0.0250"))
