"""The competition layer: where one side quotes when others quote the same book.

We start from our own (monopsony) price and look at the best price of everyone else on the
same side, our own size removed. The rule, for a bid (an ask is the mirror image):

* nobody at or above our price: quote our own price. This is also the walk back down when
  a competitor leaves: their best + 1 tick is below our price by then, so max(own price,
  their best + 1 tick) is our own price;
* a competitor at or above our price, and one tick better still within our ceiling:
  outbid them by one tick;
* a competitor exactly at our ceiling: join them there (a shared ceiling);
* a competitor beyond our ceiling: back off to our own price and let them have the top.

A quote never crosses the others' opposite side (it would take, not make).

Hysteresis, so that two bots following rules like these cannot make us spin:

* an order that moved less than ``min_rest`` seconds ago keeps its price while that price
  is still inside the ceiling and does not cross: each of us steps at most once per
  ``min_rest``, and a war between equal ceilings ends, shared, within (ceiling − own price)
  steps;
* after backing off, we stay backed off (``backing_off``) for a while even when the winner
  walks back down to one tick above us: a competitor whose ceiling is above ours would only
  outbid us again, and re-engaging at once would cycle (climb, back off, they walk down,
  climb again). The caller keeps the time it started backing off (see quoter.py).

Prices are integer ticks of the market's grid: "one tick" is the next valid price, and
nothing moves by less than a tick.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kmm_interactive.domain import Side


class Mode(enum.StrEnum):
    OWN = "own price"
    OUTBID = "outbid"
    JOIN = "join at ceiling"
    BACK_OFF = "back off"
    HOLD = "hold (min rest)"
    NO_ROOM = "no room inside the opposite side"


@dataclass(frozen=True)
class Competed:
    """Where a side quotes, and why."""

    tick: int | None
    mode: Mode
    competitor: int | None


def _better(side: Side, a: int, b: int) -> bool:
    """``a`` is strictly more aggressive than ``b`` for ``side``."""
    return a > b if side is Side.BID else a < b


def _step(side: Side, tick: int, n: int = 1) -> int:
    """``n`` ticks more aggressive."""
    return tick + n if side is Side.BID else tick - n


def _crosses(side: Side, tick: int, opposite: int | None) -> bool:
    return opposite is not None and (tick >= opposite if side is Side.BID else tick <= opposite)


def compete(
    side: Side,
    own: int,
    ceiling: int,
    *,
    best_other: int | None,
    opposite_other: int | None,
    levels: int,
    resting: int | None = None,
    resting_age: float | None = None,
    min_rest: float = 0.0,
    backing_off: bool = False,
) -> Competed:
    """The tick to quote on ``side`` (see the module doc).

    ``own`` is our monopsony tick, already inside ``ceiling`` (the most aggressive tick we
    accept); ``best_other`` the others' best tick on this side and ``opposite_other`` on the
    other side (None when empty); ``levels`` the grid's size. ``resting`` is our live
    order's tick and ``resting_age`` the seconds since its price last changed.
    ``backing_off``: we backed off recently; while a competitor is still at or above our
    own price we stay at our own price rather than outbid it again.
    """
    if _better(side, own, ceiling):
        raise ValueError(f"own tick {own} is beyond the ceiling {ceiling} for a {side.value}")
    if best_other is None or _better(side, own, best_other):
        target, mode = own, Mode.OWN
    elif backing_off:
        target, mode = own, Mode.BACK_OFF
    elif not _better(side, _step(side, best_other), ceiling):
        target, mode = _step(side, best_other), Mode.OUTBID
    elif best_other == ceiling:
        target, mode = ceiling, Mode.JOIN
    else:
        target, mode = own, Mode.BACK_OFF
    if _crosses(side, target, opposite_other):
        assert opposite_other is not None
        target, mode = _step(side, opposite_other, -1), Mode.NO_ROOM
    if not 0 <= target < levels:
        return Competed(None, Mode.NO_ROOM, best_other)
    if (
        resting is not None
        and resting != target
        and resting_age is not None
        and resting_age < min_rest
        and not _better(side, resting, ceiling)
        and not _crosses(side, resting, opposite_other)
    ):
        return Competed(resting, Mode.HOLD, best_other)
    return Competed(target, mode, best_other)
