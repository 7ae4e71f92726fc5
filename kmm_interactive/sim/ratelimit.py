"""Kalshi's token-bucket rate limits: a read and a write bucket per account and tier.

Costs (reference/apis.md §1.8): 10 tokens per request, 2 per cancel; batches are billed per
item and the whole batch must fit in the bucket at once, or all of it is refused. A refused
request changes nothing and gets 429 ``{"error": "too many requests"}`` with no Retry-After.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

Bucket = Literal["read", "write"]
DEFAULT_COST: Final = 10
CANCEL_COST: Final = 2


@dataclass(frozen=True)
class Tier:
    name: str
    read_rate: int
    write_rate: int
    read_capacity: int
    write_capacity: int


def _tier(name: str, read: int, write: int, read_seconds: int, write_seconds: int) -> Tier:
    return Tier(name, read, write, read * read_seconds, write * write_seconds)


# Write buckets above Basic and Basic/Advanced read buckets hold 2 s of budget; the others 1 s.
TIERS: Final = {
    t.name: t
    for t in (
        _tier("basic", 200, 100, 2, 1),
        _tier("advanced", 300, 300, 2, 2),
        _tier("expert", 600, 600, 1, 2),
        _tier("premier", 1000, 1000, 1, 2),
        _tier("paragon", 2000, 2000, 1, 2),
        _tier("prime", 4000, 4000, 1, 2),
        _tier("prestige", 10000, 8000, 1, 2),
    )
}


class TokenBucket:
    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._at = clock()

    def level(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def take(self, cost: float) -> bool:
        """Take ``cost`` tokens if all of them are there; otherwise take none."""
        if self.level() < cost:
            return False
        self._tokens -= cost
        return True


class RateLimiter:
    """Buckets per account, created on first use at the account's tier."""

    def __init__(self, tier: str = "basic", clock: Callable[[], float] = time.monotonic) -> None:
        if tier not in TIERS:
            raise ValueError(f"tier {tier!r} is unknown (allowed: {', '.join(TIERS)})")
        self.tier = TIERS[tier]
        self._clock = clock
        self._buckets: dict[tuple[str, Bucket], TokenBucket] = {}

    def bucket(self, user_id: str, kind: Bucket) -> TokenBucket:
        key = (user_id, kind)
        if key not in self._buckets:
            rate = self.tier.read_rate if kind == "read" else self.tier.write_rate
            cap = self.tier.read_capacity if kind == "read" else self.tier.write_capacity
            self._buckets[key] = TokenBucket(rate, cap, self._clock)
        return self._buckets[key]

    def allow(self, user_id: str, kind: Bucket, cost: int) -> bool:
        return self.bucket(user_id, kind).take(cost)

    def limits_json(self) -> dict[str, object]:
        t = self.tier
        return {
            "usage_tier": t.name,
            # The spec's flat integers, and the nested objects the live server returns.
            "read_limit": t.read_rate,
            "write_limit": t.write_rate,
            "read": {"refill_rate": t.read_rate, "bucket_capacity": t.read_capacity},
            "write": {"refill_rate": t.write_rate, "bucket_capacity": t.write_capacity},
            "grants": [],
        }
