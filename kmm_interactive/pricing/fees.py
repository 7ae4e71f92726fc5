"""Kalshi trading fees: the quadratic taker and maker formulas and their rounding.

Per fill (reference/apis.md §1.7)::

    taker = round_up(0.07   × multiplier × C × P × (1 − P))
    maker = round_up(0.0175 × multiplier × C × P × (1 − P))   only if fee_type is
                                                              quadratic_with_maker_fees

The charged amount is rounded *up* to the member's precision: a cent for ordinary members
(the default here), $0.0001 for direct members. Kalshi refunds accumulated rounding per
order, so for pricing decisions the expected fee per contract is the unrounded formula:
:func:`fee_per_contract` gives that, as a float, for the quoting math.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Final

import numpy as np
from numpy.typing import NDArray

from kmm_interactive.domain import ONE, ZERO, FeeType, SeriesFees, validate_price

TAKER_COEFFICIENT: Final = Decimal("0.07")
MAKER_COEFFICIENT: Final = Decimal("0.0175")
CENT: Final = Decimal("0.01")
DIRECT_MEMBER_PRECISION: Final = Decimal("0.0001")

#: Fee types whose formulas we know; others raise, so that no series is quoted on a guess.
SUPPORTED_FEE_TYPES: Final = frozenset({FeeType.QUADRATIC, FeeType.QUADRATIC_WITH_MAKER_FEES})


class UnsupportedFeeType(ValueError):
    """A series whose fee formula this package does not implement."""


def check_fee_type(fee_type: FeeType | str) -> FeeType:
    """The fee type as a :class:`FeeType`, if its formula is implemented here."""
    allowed = ", ".join(sorted(t.value for t in SUPPORTED_FEE_TYPES))
    try:
        known = FeeType(fee_type)
    except ValueError:
        raise UnsupportedFeeType(f"fee_type {fee_type!r} is unknown (allowed: {allowed})") from None
    if known not in SUPPORTED_FEE_TYPES:
        raise UnsupportedFeeType(
            f"fee_type {known.value!r} is not supported (allowed: {allowed}); "
            "the series cannot be priced"
        )
    return known


def charges_maker_fee(fee_type: FeeType | str) -> bool:
    """Whether resting orders pay a fee on this series (only ``quadratic_with_maker_fees``)."""
    return check_fee_type(fee_type) is FeeType.QUADRATIC_WITH_MAKER_FEES


def _quadratic(
    coefficient: Decimal, price: Decimal, count: Decimal, multiplier: Decimal, rounding: Decimal
) -> Decimal:
    for name, value in (("price", price), ("count", count), ("fee_multiplier", multiplier)):
        if not isinstance(value, Decimal):
            raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
    validate_price(price)
    if count < 0:
        raise ValueError(f"count = {count} must not be negative")
    if multiplier < 0:
        raise ValueError(f"fee_multiplier = {multiplier} must not be negative")
    if rounding <= 0:
        raise ValueError(f"rounding = {rounding} must be positive")
    raw = coefficient * multiplier * count * price * (ONE - price)
    return (raw / rounding).to_integral_value(rounding=ROUND_CEILING) * rounding


def taker_fee(
    price: Decimal,
    count: Decimal,
    fee_multiplier: Decimal = ONE,
    *,
    rounding: Decimal = CENT,
) -> Decimal:
    """Fee in dollars for taking ``count`` contracts at YES price ``price`` in one fill."""
    return _quadratic(TAKER_COEFFICIENT, price, count, fee_multiplier, rounding)


def maker_fee(
    price: Decimal,
    count: Decimal,
    fee_multiplier: Decimal = ONE,
    *,
    fee_type: FeeType | str = FeeType.QUADRATIC_WITH_MAKER_FEES,
    rounding: Decimal = CENT,
) -> Decimal:
    """Fee in dollars when a resting order fills ``count`` contracts at ``price``.

    Zero unless the series' ``fee_type`` is ``quadratic_with_maker_fees``.
    """
    charged = charges_maker_fee(fee_type)
    fee = _quadratic(MAKER_COEFFICIENT, price, count, fee_multiplier, rounding)
    return fee if charged else ZERO


def expected_fee(price: Decimal, *, maker: bool, fees: SeriesFees) -> Decimal:
    """Expected fee per contract at ``price``, exact and unrounded: what a decision prices in.

    Kalshi rounds each fill's fee up and refunds the accumulated rounding per order, so over
    an order's fills the unrounded formula is what a contract costs.
    """
    charged = charges_maker_fee(fees.fee_type)  # also refuses fee types we cannot price
    if maker and not charged:
        return ZERO
    scale = (MAKER_COEFFICIENT if maker else TAKER_COEFFICIENT) * fees.multiplier
    return scale * price * (ONE - price)


def fee_per_contract(
    prices: Sequence[Decimal], *, maker: bool, fees: SeriesFees
) -> NDArray[np.float64]:
    """:func:`expected_fee` at each price, as floats for the quoting math.

    Computed exactly and converted last, so that P and 1 − P get bit-identical fees.
    """
    return np.array(
        [float(expected_fee(p, maker=maker, fees=fees)) for p in prices], dtype=np.float64
    )


@dataclass(frozen=True)
class FillCharge:
    """What one fill does to an account under Kalshi's rounding rules."""

    balance_change: Decimal  # whole units of the member's precision
    fee: Decimal  # the fee reported for the fill: trade fee + rounding − refund
    carried: Decimal  # rounding the order carries toward its next refund


def charge_fill(
    cash_flow: Decimal, trade_fee: Decimal, carried: Decimal = ZERO, *, precision: Decimal = CENT
) -> FillCharge:
    """Kalshi's fee rounding for one fill (reference/apis.md §1.7, "fee rounding").

    ``cash_flow`` is the fill's exact cash (negative when buying), ``trade_fee`` the fee
    already rounded up to $0.0001 (``rounding=DIRECT_MEMBER_PRECISION``). The balance moves
    by the net amount floored to the member's precision; the part floored away is a
    rounding fee, which the order accumulates and refunds in whole units of precision. The
    documented example — three 1-lot buys at $0.055 with a $0.0085 trade fee — gives fees
    of $0.015, $0.005 and $0.015.
    """
    exact = cash_flow - trade_fee
    change = (exact / precision).to_integral_value(rounding=ROUND_FLOOR) * precision
    rounding = exact - change
    carried += rounding
    refund = (carried / precision).to_integral_value(rounding=ROUND_FLOOR) * precision
    carried -= refund
    return FillCharge(change + refund, trade_fee + rounding - refund, carried)
