"""The competition layer on scripted books: bid wars end at ceilings, back-off, walk-down,
hysteresis, and never crossing the other side."""

from __future__ import annotations

import pytest

from kmm_interactive.domain import Side
from kmm_interactive.strategy.competition import Mode, compete

LEVELS = 99  # the cent grid: tick t is (t + 1)¢


def step(
    side: Side, own: int, ceiling: int, other: int | None, opposite: int | None = None
) -> int | None:
    return compete(
        side, own, ceiling, best_other=other, opposite_other=opposite, levels=LEVELS
    ).tick


def test_one_step_of_each_rule() -> None:
    assert step(Side.BID, 44, 49, 45) == 46  # outbid by one tick
    assert step(Side.BID, 44, 49, 48) == 49  # outbid up to the ceiling
    assert step(Side.BID, 44, 49, 49) == 49  # at the ceiling: join
    assert step(Side.BID, 44, 49, 50) == 44  # beyond it: back off to our own price
    assert step(Side.BID, 44, 49, 44) == 45  # level with our own price: outbid


def test_backing_off_stays_off_while_the_winner_walks_down() -> None:
    # The winner walked back down to one tick above our own price: we do not climb again.
    held = compete(
        Side.BID, 44, 49, best_other=45, opposite_other=None, levels=LEVELS, backing_off=True
    )
    assert (held.tick, held.mode) == (44, Mode.BACK_OFF)
    # Once it is gone, our own price is simply our own price again.
    gone = compete(
        Side.BID, 44, 49, best_other=None, opposite_other=None, levels=LEVELS, backing_off=True
    )
    assert (gone.tick, gone.mode) == (44, Mode.OWN)


def test_walk_down_when_the_competitor_leaves() -> None:
    assert step(Side.BID, 44, 49, 47) == 48
    assert step(Side.BID, 44, 49, None) == 44  # gone: back to our own price
    assert step(Side.BID, 44, 49, 40) == 44  # someone far below: our own price


def test_asks_mirror_bids() -> None:
    # An ask at 56¢ (tick 55) with a floor of 51¢ (tick 50); the competitor asks 54¢.
    assert step(Side.ASK, 55, 50, 53) == 52
    assert step(Side.ASK, 55, 50, 50) == 50  # at our floor: join
    assert step(Side.ASK, 55, 50, 48) == 55  # beyond our floor: back off
    assert step(Side.ASK, 55, 50, None) == 55


def test_never_crosses_the_other_side() -> None:
    result = compete(Side.BID, 44, 49, best_other=47, opposite_other=48, levels=LEVELS)
    assert (result.tick, result.mode) == (47, Mode.NO_ROOM)  # 48 would take the ask
    result = compete(Side.ASK, 10, 5, best_other=None, opposite_other=12, levels=LEVELS)
    assert result.tick == 13
    nothing = compete(Side.BID, 0, 3, best_other=None, opposite_other=0, levels=LEVELS)
    assert nothing.tick is None


def test_min_rest_holds_a_safe_price_but_not_an_unsafe_one() -> None:
    held = compete(
        Side.BID, 44, 49, best_other=None, opposite_other=None, levels=LEVELS,
        resting=47, resting_age=0.5, min_rest=2.0,
    )  # fmt: skip
    assert (held.tick, held.mode) == (47, Mode.HOLD)
    moved = compete(
        Side.BID, 44, 49, best_other=None, opposite_other=None, levels=LEVELS,
        resting=47, resting_age=2.5, min_rest=2.0,
    )  # fmt: skip
    assert (moved.tick, moved.mode) == (44, Mode.OWN)
    # A resting price beyond a lowered ceiling moves at once, rested or not.
    unsafe = compete(
        Side.BID, 40, 45, best_other=None, opposite_other=None, levels=LEVELS,
        resting=47, resting_age=0.1, min_rest=2.0,
    )  # fmt: skip
    assert unsafe.tick == 40


def test_own_price_beyond_the_ceiling_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="beyond the ceiling"):
        compete(Side.BID, 50, 49, best_other=None, opposite_other=None, levels=LEVELS)
