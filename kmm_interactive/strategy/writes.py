"""The requote rule: how one resting order is changed into the quote wanted on its side.

* another price → amend (the order keeps its id);
* the same price and less size than rests → decrease (keeps queue priority);
* the same price and more size than the order was placed for (the trader raised the size,
  or room under the cap came back), or what rests has fallen below ``refill_below`` × the
  wanted size (fills ate it) → amend the size up;
* otherwise leave it: a partly filled order is not topped up after every fill.

Creating and cancelling (no order, or no quote wanted) are the order manager's.

**Growing writes wait** (:func:`grows`, :func:`may_grow`): a write that can add to what may
fill (a create, an amend that tops up or moves to more size than rests) goes out only when
no write of the game is in flight and none that shrinks is planned with it. Otherwise a
create could land before the cancel sent beside it, and every resting order filling at once
could pass the cap that ``decide`` sized them for.

Pure: the live engine and the virtual-clock lab both requote by these rules.
"""

from __future__ import annotations

import enum
from decimal import Decimal


class WriteKind(enum.StrEnum):
    CREATE = "create"
    AMEND = "amend"
    DECREASE = "decrease"
    CANCEL = "cancel"


def side_change(
    price: Decimal,
    size: Decimal,
    order_price: Decimal,
    remaining: Decimal,
    count: Decimal,
    refill_below: float,
) -> WriteKind | None:
    """The write that turns a resting order (at ``order_price``, ``remaining`` of the
    ``count`` it was placed for) into the wanted ``price`` and ``size`` (above 0): AMEND,
    DECREASE, or None to leave it (see the module doc)."""
    if order_price != price:
        return WriteKind.AMEND
    if remaining > size:
        return WriteKind.DECREASE
    if size > count or remaining < size * Decimal(repr(refill_below)):
        return WriteKind.AMEND
    return None


def grows(kind: WriteKind, size: Decimal, order_price: Decimal | None, price: Decimal,
          remaining: Decimal) -> bool:  # fmt: skip
    """Whether a write can add to what may fill: a create, or an amend that tops the size up
    (same price) or moves to a larger size than rests."""
    if kind is WriteKind.CREATE:
        return True
    return kind is WriteKind.AMEND and (order_price == price or size > remaining)


def may_grow(shrinking_planned: bool, all_settled: bool) -> bool:
    """Whether this round's growing writes may go out (see the module doc)."""
    return not shrinking_planned and all_settled
