"""Fault injection for the embedded exchange and odds feed, switchable while they run.

Every fault is off by default and fires only when switched on; each firing is counted under
its name, so a test can assert that the fault it meant to exercise actually happened.
Switch faults from Python (``faults.set(rest_5xx=0.05)``) or over HTTP
(``POST /admin/faults`` with the same names as JSON; ``GET /admin/faults`` reports settings
and counts).

Faults (name: setting):

* ``ws_drop``: seconds between forced WebSocket disconnects (0 = never).
* ``seq_gap``: probability that a sequenced WS frame is skipped (its seq number is burnt).
* ``duplicate_frame``: probability that a WS frame is sent twice.
* ``malformed_frame``: probability that a garbage text frame is sent before a real one.
* ``rest_5xx``: probability that a REST call fails with 503 before it is applied.
* ``rest_429``: probability that a REST call is refused with 429 before it is applied.
* ``burst_429``: seconds left of a burst during which every REST call gets 429
  (set it to start a burst).
* ``latency``: seconds added before answering each REST call, with probability
  ``latency_rate``.
* ``lying_cancel``: probability that a cancel's response describes another order
  (the cancel itself is applied correctly, as on Kalshi).
* ``cancel_not_applied``: number of upcoming cancels acknowledged but not applied.
* ``odds_outage``: the odds feed answers 503 to everything while true.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final


@dataclass
class FaultSettings:
    ws_drop: float = 0.0
    seq_gap: float = 0.0
    duplicate_frame: float = 0.0
    malformed_frame: float = 0.0
    rest_5xx: float = 0.0
    rest_429: float = 0.0
    burst_429: float = 0.0
    latency: float = 0.0
    latency_rate: float = 1.0
    lying_cancel: float = 0.0
    cancel_not_applied: int = 0
    odds_outage: bool = False


PROBABILITIES: Final = frozenset(
    {"seq_gap", "duplicate_frame", "malformed_frame", "rest_5xx", "rest_429", "lying_cancel",
     "latency_rate"}
)  # fmt: skip
SECONDS: Final = {"ws_drop": 86400.0, "burst_429": 3600.0, "latency": 60.0}
NAMES: Final = tuple(f.name for f in fields(FaultSettings))


class FaultError(ValueError):
    """A fault setting that is not known or out of range."""


class Faults:
    """The switchboard: settings, a seeded random source, and a counter per fault."""

    def __init__(self, seed: int = 0) -> None:
        self.settings = FaultSettings()
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(f"faults-{seed}")
        self._burst_until = 0.0

    def set(self, **values: Any) -> None:
        """Change settings; all are validated before any is applied."""
        checked = {name: _check(name, value) for name, value in values.items()}
        for name, value in checked.items():
            if name == "burst_429":
                self._burst_until = time.monotonic() + float(value)
            setattr(self.settings, name, value)

    def clear(self) -> None:
        self.settings = FaultSettings()
        self._burst_until = 0.0

    def roll(self, name: str) -> bool:
        """True (and counted) if the probability fault ``name`` fires now."""
        p = float(getattr(self.settings, name))
        if p > 0 and self._rng.random() < p:
            self.counts[name] += 1
            return True
        return False

    def in_429_burst(self) -> bool:
        if time.monotonic() < self._burst_until:
            self.counts["burst_429"] += 1
            return True
        return False

    def latency(self) -> float:
        """Seconds to delay this REST call (0 when the fault does not fire)."""
        if self.settings.latency > 0 and self.roll("latency_rate"):
            self.counts["latency"] += 1
            return self.settings.latency
        return 0.0

    def take_cancel_not_applied(self) -> bool:
        if self.settings.cancel_not_applied > 0:
            self.settings.cancel_not_applied -= 1
            self.counts["cancel_not_applied"] += 1
            return True
        return False

    def odds_down(self) -> bool:
        if self.settings.odds_outage:
            self.counts["odds_outage"] += 1
            return True
        return False

    def report(self) -> dict[str, Any]:
        out = {name: getattr(self.settings, name) for name in NAMES}
        out["burst_429"] = max(0.0, self._burst_until - time.monotonic())
        return {"settings": out, "counts": dict(self.counts)}

    def update_from_json(self, body: Mapping[str, Any]) -> None:
        if not isinstance(body, Mapping):
            raise FaultError("the body must be a JSON object of fault settings")
        self.set(**dict(body))


def _check(name: str, value: Any) -> float | int | bool:
    if name not in NAMES:
        raise FaultError(f"unknown fault {name!r} (allowed: {', '.join(NAMES)})")
    if name == "odds_outage":
        if not isinstance(value, bool):
            raise FaultError("odds_outage must be true or false")
        return value
    if name == "cancel_not_applied":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1000:
            raise FaultError("cancel_not_applied must be a whole number from 0 to 1000")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"{name} must be a number, got {value!r:.40}")
    try:
        value = float(value)
    except OverflowError:
        raise FaultError(f"{name} is far too large") from None
    if not math.isfinite(value):
        raise FaultError(f"{name} must be a finite number, got {value!r}")
    if name in PROBABILITIES and not 0 <= value <= 1:
        raise FaultError(f"{name} is a probability: 0 to 1, got {value}")
    if name in SECONDS and not 0 <= value <= SECONDS[name]:
        raise FaultError(f"{name} is in seconds: 0 to {SECONDS[name]:g}, got {value}")
    return float(value)
