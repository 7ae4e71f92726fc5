"""Where the simulator reads the time: the wall clock when serving, a virtual one in tests.

Exchange time is Unix epoch seconds as a float. Compression does not bend the clock: a
scenario compressed by ``speed`` schedules its games closer together and scales its flow up
(see scenario.py), so that every timestamp the exchange reports is real wall time and a
client comparing them with its own clock sees the truth.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""
        ...


class WallClock:
    """Real time."""

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """Time that moves only when told to: deterministic runs and tests."""

    def __init__(self, start: float) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards by {seconds} s")
        self._now += seconds
        return self._now

    def set(self, t: float) -> None:
        if t < self._now:
            raise ValueError(f"cannot move a clock back from {self._now} to {t}")
        self._now = float(t)
