"""Token buckets on a fake clock: costs, waiting, draining after a 429, reconfiguring."""

from __future__ import annotations

import asyncio

import pytest

from kmm_interactive.kalshi.models import PayloadError, parse_endpoint_costs
from kmm_interactive.kalshi.ratelimit import TIERS, BucketLimits, RateLimiter, TokenBucket


class FakeTime:
    """A clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if len(self.slept) > 1000:
            raise AssertionError("still sleeping after 1000 naps: it would wait forever")
        self.now += seconds
        await asyncio.sleep(0)


def limiter(t: FakeTime, tier: str = "basic") -> RateLimiter:
    return RateLimiter.for_tier(tier, clock=t.clock, sleep=t.sleep)


def test_tiers_follow_the_published_table() -> None:
    read, write = TIERS["basic"]
    assert (read.refill_rate, read.capacity, write.refill_rate, write.capacity) == (
        200,
        400,
        100,
        100,
    )
    read, write = TIERS["advanced"]
    assert (read.capacity, write.capacity) == (600, 600)
    read, write = TIERS["prestige"]
    assert (read.refill_rate, write.refill_rate, write.capacity) == (10000, 8000, 16000)
    with pytest.raises(ValueError, match="unknown"):
        RateLimiter.for_tier("gold")


def test_costs_and_buckets() -> None:
    rl = limiter(FakeTime())
    assert rl.cost("POST", "/portfolio/events/orders") == 10
    assert rl.cost("DELETE", "/portfolio/events/orders/abc-123") == 2
    assert rl.cost("DELETE", "/trade-api/v2/portfolio/events/orders/batched") == 2
    assert rl.cost("GET", "/portfolio/events/orders/abc") == 10
    assert rl.bucket_of("POST", "/portfolio/events/orders/x/amend") == "write"
    assert rl.bucket_of("PUT", "/portfolio/order_groups/g/reset") == "write"
    assert rl.bucket_of("GET", "/portfolio/order_groups") == "read"
    assert rl.bucket_of("GET", "/markets") == "read"


async def test_waits_for_tokens_instead_of_overdrawing() -> None:
    t = FakeTime()
    rl = limiter(t)
    for _ in range(10):  # the 100-token write bucket holds ten creates
        await rl.acquire("POST", "/portfolio/events/orders")
    assert t.slept == []
    await rl.acquire("POST", "/portfolio/events/orders")
    assert sum(t.slept) == pytest.approx(0.1)  # 10 tokens at 100/s
    await rl.acquire("GET", "/markets")  # the read bucket is separate and still full
    assert sum(t.slept) == pytest.approx(0.1)


async def test_a_batch_waits_for_all_its_tokens_and_an_oversized_one_is_refused() -> None:
    t = FakeTime()
    rl = limiter(t)
    await rl.acquire("POST", "/portfolio/events/orders/batched", items=5)
    await rl.acquire("POST", "/portfolio/events/orders/batched", items=10)
    assert sum(t.slept) == pytest.approx(0.5)  # 50 left; 100 needed
    with pytest.raises(ValueError, match="split the batch"):
        await rl.acquire("POST", "/portfolio/events/orders/batched", items=11)


async def test_drain_after_a_429_makes_the_next_request_wait() -> None:
    t = FakeTime()
    rl = limiter(t)
    ticket = await rl.acquire("GET", "/markets")
    ticket.bucket.drain()
    await rl.acquire("GET", "/markets")
    assert sum(t.slept) == pytest.approx(10 / 200)


async def test_settle_takes_back_refill_a_full_bucket_never_had() -> None:
    t = FakeTime()
    bucket = TokenBucket(BucketLimits(100, 100), clock=t.clock, sleep=t.sleep)
    tickets = [await bucket.acquire(10) for _ in range(3)]
    t.now += 0.05  # answers after 50 ms: the exchange may have billed them only now
    for ticket in tickets:
        bucket.settle(ticket)
    # Client view without settling: 70 + 5 refilled. The exchange's bucket sat full for up
    # to 50 ms, so at worst it holds 70; the 5 tokens are taken back once, not three times.
    assert bucket.level() == pytest.approx(70)


async def test_settle_takes_back_no_more_than_the_request_cost() -> None:
    """A create that took 10 s to time out: at worst the exchange billed it at the very end,
    into a full bucket, so it is short by that create's 10 tokens, not 10 s of refill."""
    t = FakeTime()
    rl = limiter(t)
    ticket = await rl.acquire("POST", "/portfolio/events/orders")
    t.now += 10.0
    ticket.bucket.settle(ticket)
    assert ticket.bucket.level() == pytest.approx(90)
    await rl.acquire("DELETE", "/portfolio/events/orders/abc")  # the next cancel goes at once
    assert t.slept == []


async def test_cancels_go_before_queued_writes_but_cannot_starve_them() -> None:
    t = FakeTime()
    rl = limiter(t)  # Basic write bucket: 100 tokens, 100/s
    await rl.acquire("POST", "/portfolio/events/orders/batched", items=10)  # empty now
    order: list[str] = []

    async def send(name: str, method: str, path: str, items: int = 1) -> None:
        await rl.acquire(method, path, items)
        order.append(name)

    batch = send("batch", "POST", "/portfolio/events/orders/batched", 10)
    cancels = [send(f"c{i}", "DELETE", f"/portfolio/events/orders/o{i}") for i in range(60)]
    await asyncio.gather(batch, *cancels)
    # 50 cancels (one bucket: 100 tokens) go before the waiting batch; then it is its turn.
    assert order == [f"c{i}" for i in range(50)] + ["batch"] + [f"c{i}" for i in range(50, 60)]
    assert rl.is_cancel("DELETE", "/trade-api/v2/portfolio/events/orders/batched")
    assert not rl.is_cancel("DELETE", "/portfolio/order_groups/g")


async def test_a_waiter_that_can_no_longer_fit_is_told_so() -> None:
    t = FakeTime()
    bucket = TokenBucket(BucketLimits(100, 100), clock=t.clock, sleep=t.sleep)
    await bucket.acquire(100)
    waiting = asyncio.create_task(bucket.acquire(100))
    await asyncio.sleep(0)  # it is asleep, waiting for the refill
    bucket.reconfigure(BucketLimits(10, 50))
    with pytest.raises(ValueError, match="can never fit"):
        await waiting


async def test_waiters_are_served_in_order() -> None:
    t = FakeTime()
    bucket = TokenBucket(BucketLimits(10, 10), clock=t.clock, sleep=t.sleep)
    await bucket.acquire(10)
    order: list[int] = []

    async def take(i: int, cost: float) -> None:
        await bucket.acquire(cost)
        order.append(i)

    await asyncio.gather(take(0, 10), take(1, 1), take(2, 5))
    assert order == [0, 1, 2]  # the big request is not starved by the small ones


async def test_configure_keeps_what_was_spent() -> None:
    t = FakeTime()
    rl = limiter(t)
    await rl.acquire("POST", "/portfolio/events/orders", items=4)  # 40 of 100 spent
    rl.configure(
        BucketLimits(300, 600),
        BucketLimits(300, 600),
        default_cost=12,
        costs={("delete", "/trade-api/v2/portfolio/events/orders/{order_id}"): 3},
    )
    assert rl.buckets["write"].level() == pytest.approx(560)
    assert rl.cost("DELETE", "/portfolio/events/orders/xyz") == 3
    assert rl.cost("DELETE", "/portfolio/events/orders/batched") == 3  # the template matches
    assert rl.cost("POST", "/portfolio/events/orders") == 12
    with pytest.raises(ValueError, match="positive"):
        BucketLimits(0, 10)


def test_costs_below_one_token_are_refused() -> None:
    rl = limiter(FakeTime())
    with pytest.raises(ValueError, match="at least 1"):
        rl.configure(*TIERS["basic"], costs={("DELETE", "/portfolio/events/orders/batched"): 0})
    with pytest.raises(ValueError, match="at least 1"):
        rl.configure(*TIERS["basic"], default_cost=-10)
    assert rl.cost("DELETE", "/portfolio/events/orders/batched") == 2  # nothing changed
    assert rl.default_cost == 10
    row = {"method": "DELETE", "path": "/portfolio/events/orders/batched", "cost": 0}
    with pytest.raises(PayloadError, match="at least 1"):
        parse_endpoint_costs({"default_cost": 10, "endpoint_costs": [row]})
