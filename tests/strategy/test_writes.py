"""The requote rule on one resting order: amend, decrease, top up, or leave it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kmm_interactive.strategy.writes import WriteKind, side_change

D = Decimal


@pytest.mark.parametrize(
    ("price", "size", "order_price", "remaining", "count", "expected"),
    [
        # Another price: amend, whatever the sizes.
        ("0.45", 25, "0.44", 25, 25, WriteKind.AMEND),
        ("0.45", 10, "0.44", 25, 25, WriteKind.AMEND),
        # The same price and less wanted than rests: decrease.
        ("0.44", 10, "0.44", 25, 25, WriteKind.DECREASE),
        # More than the order was placed for: amend the size up.
        ("0.44", 30, "0.44", 25, 25, WriteKind.AMEND),
        # Fills ate it below refill_below × size (12 < 0.5 × 25): top up.
        ("0.44", 25, "0.44", 12, 25, WriteKind.AMEND),
        # Partly filled but not below the refill level (13 ≥ 12.5): leave it.
        ("0.44", 25, "0.44", 13, 25, None),
        # Exactly what is wanted: leave it.
        ("0.44", 25, "0.44", 25, 25, None),
    ],
)
def test_side_change(
    price: str, size: int, order_price: str, remaining: int, count: int, expected: WriteKind | None
) -> None:
    got = side_change(D(price), D(size), D(order_price), D(remaining), D(count), 0.5)
    assert got is expected


def test_refill_below_zero_never_tops_up_and_one_always_does() -> None:
    partly = (D("0.44"), D(25), D("0.44"), D(1), D(25))
    assert side_change(*partly, 0.0) is None
    assert side_change(*partly, 1.0) is WriteKind.AMEND
