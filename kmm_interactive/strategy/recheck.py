"""When a game's odds should be rechecked at once: the adverse-selection rule (the seed: "we
also pull odds on a per event basis when inventory skews dramatically ... or fills burst").

* **Skew** (:func:`skew_reason`): the inventory ``|q|`` has climbed into a new *skew level*
  (:func:`skew_level`: one level per ``recheck_skew`` of the cap, so with the default 0.5 a
  recheck at half the cap and another at the cap). A level is rechecked once; only a skew
  that grows, or one that comes back after the inventory fell below the first level, asks
  again. Rechecking a skew that has not changed tells nothing new: until 2026-12 the rule
  fired every ``recheck_min_interval`` while a game stayed skewed, about fifty pulls a game
  in the lab's competition day, each one costing Odds-API credits and a second of
  reduce-only quoting.
* **Burst** (:func:`burst_reason`): ``recheck_fills`` fills within ``recheck_window`` of the
  newest that all move the inventory the same way: informed flow after news takes one side,
  ordinary two-way flow does not. :func:`recent_one_way` keeps the fills a burst can still
  be made of and counts them.

Pure: the live theo service and the virtual-clock lab both call these; no I/O, no clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from kmm_interactive.config import TheoConfig


def _check_cap(cap: int) -> None:
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValueError(f"cap = {cap!r}: must be a whole number of contracts, 1 or more")


def skew_level(q: Decimal, cap: int, config: TheoConfig) -> int:
    """How many ``recheck_skew × cap`` steps ``|q|`` has climbed: 0 below the first."""
    _check_cap(cap)
    return int(abs(q) // (Decimal(repr(config.recheck_skew)) * cap))


def skew_reason(q: Decimal, cap: int, checked: int, config: TheoConfig) -> str | None:
    """Why the skew asks for a recheck, or None: ``q`` is in a skew level above ``checked``,
    the highest level rechecked since the inventory was last below the first one."""
    if skew_level(q, cap, config) <= checked:
        return None
    return f"|q| = {abs(q)} ≥ {config.recheck_skew:g} × cap {cap}"


def burst_reason(one_way_fills: int, config: TheoConfig) -> str | None:
    """Why a burst asks for a recheck, or None: ``one_way_fills`` (see
    :func:`recent_one_way`) reached ``recheck_fills``."""
    if one_way_fills >= config.recheck_fills:
        return f"{one_way_fills} one-way fills in {config.recheck_window:g} s"
    return None


def recent_one_way(
    fills: Sequence[tuple[datetime, int]], at: datetime, direction: int, config: TheoConfig
) -> tuple[list[tuple[datetime, int]], int]:
    """Add a fill at ``at`` moving the inventory up (``direction`` +1) or down (−1) to the
    kept ``fills`` (time, direction), in time order; return the fills to keep (the last
    ``recheck_fills`` within ``recheck_window`` of the newest: a burst needs no more) and
    how many one-way fills they make (their number if all move the same way, else 0).
    ``fills`` is not changed. Raises ``ValueError`` for a naive time or another direction."""
    if at.tzinfo is None:
        raise ValueError(f"a fill time must be timezone-aware, got {at.isoformat()}")
    if direction not in (1, -1):
        raise ValueError(f"direction = {direction!r}: must be +1 or -1")
    kept = list(fills)
    bisect.insort(kept, (at, direction))
    cutoff = kept[-1][0] - timedelta(seconds=config.recheck_window)
    kept = [f for f in kept[-config.recheck_fills :] if f[0] >= cutoff]
    one_way = len({d for _, d in kept}) == 1
    return kept, len(kept) if one_way else 0
