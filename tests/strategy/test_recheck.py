"""The odds recheck rule: an inventory skew, or a burst of one-way fills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kmm_interactive.config import Seconds, TheoConfig
from kmm_interactive.strategy.recheck import (
    burst_reason,
    recent_one_way,
    skew_level,
    skew_reason,
)

T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_skew_asks_once_per_level_and_a_burst_by_its_count() -> None:
    cfg = TheoConfig()  # recheck_skew 0.5: levels at 50 % and 100 % of the cap
    assert [skew_level(Decimal(q), 100, cfg) for q in (0, 49, -50, 99, 100, -100)] == [
        0, 0, 1, 1, 2, 2,
    ]  # fmt: skip
    assert skew_reason(Decimal(60), 100, 0, cfg) == "|q| = 60 ≥ 0.5 × cap 100"
    assert skew_reason(Decimal(-50), 100, 0, cfg) == "|q| = 50 ≥ 0.5 × cap 100"
    assert skew_reason(Decimal(60), 100, 1, cfg) is None  # level 1 was rechecked already
    assert skew_reason(Decimal(100), 100, 1, cfg) is not None  # the skew grew to the cap
    assert skew_reason(Decimal("-49.99"), 100, 0, cfg) is None
    assert burst_reason(3, cfg) is None
    assert burst_reason(4, cfg) == "4 one-way fills in 60 s"
    tight = TheoConfig(recheck_skew=0.25, recheck_fills=2, recheck_window=Seconds(30.0))
    assert skew_level(Decimal(15), 20, tight) == 3
    assert skew_reason(Decimal(5), 20, 0, tight) == "|q| = 5 ≥ 0.25 × cap 20"
    assert burst_reason(2, tight) == "2 one-way fills in 30 s"
    with pytest.raises(ValueError, match="cap = 0: must be a whole number"):
        skew_level(Decimal(0), 0, cfg)


def test_recent_one_way_keeps_the_last_fills_within_the_window() -> None:
    cfg = TheoConfig()  # 4 fills within 60 s
    kept: list[tuple[datetime, int]] = []
    counts = []
    for seconds in (0, 30, 61, 62):  # the fill at 0 falls out of the window of the one at 61
        kept, n = recent_one_way(kept, at(seconds), +1, cfg)
        counts.append(n)
    assert counts == [1, 2, 2, 3]
    assert kept == [(at(30), 1), (at(61), 1), (at(62), 1)]
    kept, n = recent_one_way(kept, at(63), +1, cfg)
    assert n == 4
    kept, n = recent_one_way(kept, at(64), +1, cfg)  # no more than recheck_fills are kept
    assert (len(kept), n) == (4, 4)
    assert kept[0] == (at(61), 1)


def test_mixed_directions_make_no_burst_and_input_is_not_changed() -> None:
    cfg = TheoConfig()
    before = [(at(0), 1), (at(1), 1), (at(2), 1)]
    kept, n = recent_one_way(before, at(3), -1, cfg)
    assert n == 0
    assert kept == [*before, (at(3), -1)]
    assert len(before) == 3
    # A late fill is put in time order; the window runs from the newest.
    kept, n = recent_one_way([(at(10), 1)], at(5), 1, cfg)
    assert (kept, n) == ([(at(5), 1), (at(10), 1)], 2)


def test_recent_one_way_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        recent_one_way([], datetime(2026, 1, 1), 1, TheoConfig())
    with pytest.raises(ValueError, match="direction = 0"):
        recent_one_way([], T0, 0, TheoConfig())
