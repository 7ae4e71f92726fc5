"""Client-side token buckets that mirror Kalshi's, so requests wait instead of drawing a 429.

Kalshi bills each request from one of two buckets per account (reference/apis.md §1.8):
*write* for order create/amend/decrease/cancel and order groups, *read* for everything
else. A request costs 10 tokens unless ``GET /account/endpoint_costs`` says otherwise
(cancels cost 2); batch items are each billed and the whole batch must fit in the bucket at
once. The tier sets each bucket's refill rate and capacity; :meth:`RateLimiter.configure`
applies what ``GET /account/limits`` reports.

Failure semantics: :meth:`TokenBucket.acquire` waits until the tokens are there and raises
``ValueError`` for a cost the bucket can never hold (a batch to split), also when the bucket
is reconfigured smaller while the request waits. Waiters are served first come, first
served, except that cancels go before other queued writes (taking risk off must not wait
behind a full-bucket batch), by at most one bucket of tokens per waiting write, so a batch is
never starved. :meth:`TokenBucket.drain` empties a bucket after a 429, so every request
queued behind it waits for a refill; the clock and the sleep are injectable for tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

BucketName = Literal["read", "write"]
DEFAULT_COST: Final = 10
#: Kalshi's published non-default costs; ``/account/endpoint_costs`` replaces them.
KNOWN_COSTS: Final[Mapping[tuple[str, str], int]] = {
    ("DELETE", "/portfolio/events/orders/{order_id}"): 2,
    ("DELETE", "/portfolio/events/orders/batched"): 2,
    ("DELETE", "/portfolio/events/orders"): 2,
}
_CANCEL_PREFIX: Final = "/portfolio/events/orders"
_WRITE_PREFIXES: Final = (
    _CANCEL_PREFIX,
    "/portfolio/order_groups",
    "/portfolio/orders",
)
_API_PREFIX: Final = "/trade-api/v2"


@dataclass(frozen=True)
class BucketLimits:
    """One bucket: tokens refilled per second and the most it holds (the burst)."""

    refill_rate: float
    capacity: float

    def __post_init__(self) -> None:
        if not (self.refill_rate > 0 and self.capacity > 0):
            raise ValueError(f"{self}: refill_rate and capacity must be positive")


def _tier(read: int, write: int, read_seconds: int, write_seconds: int) -> tuple[BucketLimits, ...]:
    return BucketLimits(read, read * read_seconds), BucketLimits(write, write * write_seconds)


#: (read, write) per tier. Write buckets above Basic and the Basic/Advanced read buckets
#: hold 2 s of budget, the others 1 s.
TIERS: Final[Mapping[str, tuple[BucketLimits, ...]]] = {
    "basic": _tier(200, 100, 2, 1),
    "advanced": _tier(300, 300, 2, 2),
    "expert": _tier(600, 600, 1, 2),
    "premier": _tier(1000, 1000, 1, 2),
    "paragon": _tier(2000, 2000, 1, 2),
    "prime": _tier(4000, 4000, 1, 2),
    "prestige": _tier(10000, 8000, 1, 2),
}


def _check_cost(cost: int, what: str) -> int:
    # A zero cost would make a request free here and a batch size infinite.
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
        raise ValueError(f"{what}: cost {cost!r} must be a whole number of tokens, at least 1")
    return cost


@dataclass(frozen=True)
class Ticket:
    """Tokens taken for one request: the bucket, how many, its level before, and when."""

    bucket: TokenBucket
    cost: float
    level: float
    sent: float


@dataclass(eq=False)
class _Waiter:
    """A request waiting for tokens; ``overtaken`` counts the cancels' tokens served first."""

    cost: float
    overtaken: float = 0.0


class TokenBucket:
    """An async token bucket that starts full.

    The exchange bills a request when it arrives, a little after the client took the
    tokens; while both buckets are below capacity that delay changes nothing, but a full
    bucket stops refilling, so :meth:`settle` corrects for it once the answer is back.
    """

    def __init__(
        self,
        limits: BucketLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._tokens = limits.capacity
        self._at = clock()
        self._settled_to = self._at
        self._urgent: deque[_Waiter] = deque()  # cancels
        self._normal: deque[_Waiter] = deque()
        self._changed = asyncio.Event()  # replaced each time the queue's head may change

    def level(self) -> float:
        now = self._clock()
        self._tokens = min(
            self.limits.capacity, self._tokens + (now - self._at) * self.limits.refill_rate
        )
        self._at = now
        return self._tokens

    def _fits(self, cost: float) -> None:
        if cost > self.limits.capacity:
            raise ValueError(
                f"a request costing {cost:g} tokens can never fit a bucket of "
                f"{self.limits.capacity:g}; split the batch"
            )

    def _head(self) -> _Waiter | None:
        """Who takes tokens next: the oldest cancel, unless the oldest other request has
        already been overtaken by a bucket's worth of cancels; then that request."""
        urgent, normal = self._urgent, self._normal
        if urgent and (not normal or normal[0].overtaken + urgent[0].cost <= self.limits.capacity):
            return urgent[0]
        return normal[0] if normal else None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def acquire(self, cost: float, *, urgent: bool = False) -> Ticket:
        """Wait for ``cost`` tokens and take them; ``urgent`` (cancels) goes before the other
        waiters, within the bound in the module doc."""
        me = _Waiter(cost)
        queue = self._urgent if urgent else self._normal
        queue.append(me)
        try:
            while True:
                self._fits(cost)  # the bucket may have been reconfigured smaller meanwhile
                if self._head() is not me:
                    changed = self._changed
                    await changed.wait()
                    continue
                level = self.level()
                if level >= cost:
                    break
                # The head sleeps for its deficit; if a cancel arrives meanwhile it takes
                # its tokens first and the head sleeps again for what is then missing.
                await self._sleep((cost - level) / self.limits.refill_rate)
            self._tokens -= cost
            if urgent and self._normal:
                self._normal[0].overtaken += cost
            return Ticket(self, cost, level, self._at)
        finally:
            queue.remove(me)
            self._notify()

    def settle(self, ticket: Ticket) -> None:
        """The answer came back: the exchange billed the request somewhere between sending
        and now. Its bucket may have sat full until then, so the refill that would have
        overflowed the capacity in between never happened; take it back. That is at most the
        request's own cost (billed late, the exchange's bucket was full just before, so it
        is short by no more than the cost), and each stretch of time is taken back once,
        however many requests were in flight across it."""
        now = self._clock()
        rate = self.limits.refill_rate
        overflow = ticket.level + (now - ticket.sent) * rate - self.limits.capacity
        lost = min(overflow, ticket.cost, (now - max(ticket.sent, self._settled_to)) * rate)
        self._settled_to = max(self._settled_to, now)
        if lost > 0:
            self.level()
            self._tokens -= lost

    def drain(self) -> None:
        """The exchange said 429: assume its bucket is empty and wait for the refill."""
        self.level()
        self._tokens = min(self._tokens, 0.0)

    def reconfigure(self, limits: BucketLimits) -> None:
        # What was spent and not yet refilled stays spent; the rest of the new bucket is full.
        deficit = self.limits.capacity - self.level()
        self.limits = limits
        self._tokens = limits.capacity - deficit
        self._notify()  # a waiter that can no longer fit must hear it, not wait forever


def _template_match(template: str, path: str) -> bool:
    want, got = template.strip("/").split("/"), path.strip("/").split("/")
    return len(want) == len(got) and all(
        w == g or (w.startswith("{") and w.endswith("}")) for w, g in zip(want, got, strict=True)
    )


def api_path(path: str) -> str:
    """A path relative to the API root (``/trade-api/v2`` removed if present)."""
    return path[len(_API_PREFIX) :] if path.startswith(_API_PREFIX + "/") else path


class RateLimiter:
    """The read and write buckets of one API key, and what each request costs."""

    def __init__(
        self,
        read: BucketLimits,
        write: BucketLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.buckets: dict[BucketName, TokenBucket] = {
            "read": TokenBucket(read, clock=clock, sleep=sleep),
            "write": TokenBucket(write, clock=clock, sleep=sleep),
        }
        self.default_cost: int = DEFAULT_COST
        self.costs: dict[tuple[str, str], int] = dict(KNOWN_COSTS)

    @classmethod
    def for_tier(
        cls,
        tier: str = "basic",
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> RateLimiter:
        if tier not in TIERS:
            raise ValueError(f"tier {tier!r} is unknown (allowed: {', '.join(TIERS)})")
        read, write = TIERS[tier]
        return cls(read, write, clock=clock, sleep=sleep)

    @staticmethod
    def is_cancel(method: str, path: str) -> bool:
        """A single, batch or cancel-all order cancel: served before other queued writes."""
        return method.upper() == "DELETE" and api_path(path).startswith(_CANCEL_PREFIX)

    @staticmethod
    def bucket_of(method: str, path: str) -> BucketName:
        path = api_path(path)
        if method.upper() != "GET" and path.startswith(_WRITE_PREFIXES):
            return "write"
        return "read"

    def cost(self, method: str, path: str) -> int:
        """Tokens one request (or one batch item) costs."""
        method, path = method.upper(), api_path(path).rstrip("/")
        exact = self.costs.get((method, path))
        if exact is not None:
            return exact
        for (m, template), cost in self.costs.items():
            if m == method and _template_match(template, path):
                return cost
        return self.default_cost

    def capacity(self, bucket: BucketName) -> float:
        return self.buckets[bucket].limits.capacity

    async def acquire(self, method: str, path: str, items: int = 1) -> Ticket:
        """Wait for the tokens of one request (``items`` batch items); settle the ticket
        when the answer comes back, or drain its bucket on a 429. Cancels go first."""
        bucket = self.buckets[self.bucket_of(method, path)]
        return await bucket.acquire(
            self.cost(method, path) * items, urgent=self.is_cancel(method, path)
        )

    def configure(
        self,
        read: BucketLimits,
        write: BucketLimits,
        *,
        default_cost: int | None = None,
        costs: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """Apply ``/account/limits`` (buckets) and ``/account/endpoint_costs`` (costs).
        A cost below 1 token is a ``ValueError`` and changes nothing."""
        if default_cost is not None:
            _check_cost(default_cost, "default_cost")
        checked = (
            {
                (m.upper(), api_path(p).rstrip("/")): _check_cost(c, f"{m} {p}")
                for (m, p), c in costs.items()
            }
            if costs is not None
            else None
        )
        self.buckets["read"].reconfigure(read)
        self.buckets["write"].reconfigure(write)
        if default_cost is not None:
            self.default_cost = default_cost
        if checked is not None:
            self.costs = checked
