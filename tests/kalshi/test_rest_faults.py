"""The REST client under the embedded exchange's faults: 5xx, 429 bursts, timeouts, lies."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from kalshikit import NBA, Venue, eventually, start_venue

from kmm_interactive.domain import Side
from kmm_interactive.kalshi.auth import KalshiAuth
from kmm_interactive.kalshi.errors import ServerError, TransportError
from kmm_interactive.kalshi.ratelimit import RateLimiter
from kmm_interactive.kalshi.rest import CreateStatus, KalshiRest, OrderRequest, Retry

D = Decimal
FAST = Retry(attempts=10, base_delay=0.002, max_delay=0.02)


def bid(price: str, count: str = "5", **extra: object) -> OrderRequest:
    return OrderRequest(NBA, Side.BID, D(price), D(count), **extra)  # type: ignore[arg-type]


def orders_with(venue: Venue, client_order_id: str) -> list[str]:
    """Order ids on the exchange carrying ``client_order_id`` (the truth, not the client's)."""
    account = venue.exchange.account("alice")
    return [o.order_id for o in account.orders.values() if o.client_order_id == client_order_id]


async def test_5xx_is_retried_until_it_succeeds(venue: Venue) -> None:
    venue.faults.set(rest_5xx=0.5)
    async with KalshiRest(venue.rest_url, venue.alice, retry=FAST) as client:
        markets = await client.markets(page_size=1)
        created = await client.create_order(bid("0.30"))
        assert created.order_id is not None
        cancelled = await client.cancel_order(created.order_id)
    assert venue.faults.counts["rest_5xx"] > 0
    assert [m.ticker for m in markets] == list(venue.exchange.markets)
    assert created.status is CreateStatus.CREATED
    assert orders_with(venue, created.client_order_id) == [created.order_id]  # created once
    assert cancelled.describes_request
    assert list(venue.exchange.live_orders("alice")) == []


async def test_amend_is_not_repeated_after_a_5xx(venue: Venue) -> None:
    async with KalshiRest(venue.rest_url, venue.alice, retry=FAST) as client:
        created = await client.create_order(bid("0.30"))
        assert created.order_id is not None
        venue.faults.set(rest_5xx=1.0)
        with pytest.raises(ServerError) as info:
            await client.amend_order(
                created.order_id, ticker=NBA, side=Side.BID, price=D("0.31"), count=D(5)
            )
    assert info.value.is_transient
    assert info.value.status == 503
    assert venue.faults.counts["rest_5xx"] == 1  # one attempt only


async def test_5xx_to_the_end_makes_a_create_unknown(venue: Venue) -> None:
    venue.faults.set(rest_5xx=1.0)
    async with KalshiRest(venue.rest_url, venue.alice, retry=Retry(2, 0.001, 0.001)) as client:
        single = await client.create_order(bid("0.30"))
        batch = await client.batch_create([bid("0.31"), bid("0.32")])
    assert [r.status for r in (single, *batch)] == [CreateStatus.UNKNOWN] * 3
    assert isinstance(single.error, ServerError)


async def test_a_create_applied_but_answered_503_comes_back_created_via_409(
    venue: Venue,
) -> None:
    """The first attempt reaches the exchange and is applied, but the client sees a 503; the
    retry with the same client_order_id draws 409, and the order is looked up."""
    real = httpx.AsyncHTTPTransport()
    swallowed: list[str] = []

    class AppliedThen503(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await real.handle_async_request(request)
            if request.method == "POST" and not swallowed:
                await response.aread()
                swallowed.append(response.content.decode())
                return httpx.Response(503, json={"error": {"code": "service_unavailable"}})
            return response

    async with KalshiRest(
        venue.rest_url, venue.alice, retry=FAST, transport=AppliedThen503()
    ) as client:
        result = await client.create_order(bid("0.30"))
    assert swallowed
    assert '"order_id"' in swallowed[0]
    assert result.status is CreateStatus.CREATED, result.error
    assert result.order is not None
    assert result.order.remaining == 5
    assert orders_with(venue, result.client_order_id) == [result.order_id]


async def test_a_timed_out_create_is_unknown_then_resolved(venue: Venue) -> None:
    """The latency fault holds the request past the client's timeout; the exchange applies
    it anyway (the retry, with the same client_order_id, is refused as a duplicate), so the
    create that was reported UNKNOWN resolves to exactly one resting order."""
    venue.faults.set(latency=1.0, latency_rate=1.0)
    retry = Retry(attempts=2, base_delay=0.001, max_delay=0.001)
    async with KalshiRest(venue.rest_url, venue.alice, timeout=0.25, retry=retry) as client:
        result = await client.create_order(bid("0.30"))
    assert result.status is CreateStatus.UNKNOWN  # never REJECTED: it may be resting
    assert isinstance(result.error, TransportError)
    assert result.error.timed_out
    # On a loaded machine the retry can reach the exchange after the client gave up on it.
    await eventually(lambda: venue.faults.counts["latency"] >= 2, "the retry to be held too", 2.0)
    venue.faults.clear()
    await asyncio.sleep(1.2)  # until the held requests have been dealt with
    async with KalshiRest(venue.rest_url, venue.alice) as patient:
        order = await patient.resolve_by_client_order_id(NBA, result.client_order_id)
    assert order is not None
    assert order.is_resting
    assert orders_with(venue, result.client_order_id) == [order.order_id]


async def test_a_create_applied_but_timed_out_is_unknown_then_resolved(venue: Venue) -> None:
    real = httpx.AsyncHTTPTransport()

    class AppliedThenTimeout(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await real.handle_async_request(request)
            if request.method == "POST":
                await response.aclose()
                raise httpx.ReadTimeout("read timed out", request=request)
            return response

    retry = Retry(attempts=1)
    async with KalshiRest(
        venue.rest_url, venue.alice, retry=retry, transport=AppliedThenTimeout()
    ) as client:
        result = await client.create_order(bid("0.30"))
        assert result.status is CreateStatus.UNKNOWN
        order = await client.resolve_by_client_order_id(NBA, result.client_order_id)
    assert order is not None
    assert order.is_resting
    assert order.price == D("0.30")
    assert orders_with(venue, result.client_order_id) == [order.order_id]


async def burn_read_bucket(venue: Venue) -> None:
    """Spend alice's read tokens at the exchange behind the client's back, until a 429."""
    auth = KalshiAuth(venue.alice)
    async with httpx.AsyncClient(base_url=venue.rest_url, auth=auth) as raw:
        for _ in range(100):
            if (await raw.get("/exchange/status")).status_code == 429:
                return
    pytest.fail("the exchange never ran out of read tokens")


async def test_after_a_429_nothing_is_sent_into_an_empty_bucket(venue: Venue) -> None:
    """Another process has emptied the account's read bucket, so the client's first wave
    (sent at once, on its own full bucket) is refused. After that first 429 the client
    must pace itself by the exchange's refill: every request draws at most one 429 and then
    succeeds. A client that believes it has a far bigger budget keeps retrying into the
    empty bucket, so the assertion can fail."""

    async def hammer(venue: Venue, limiter: RateLimiter) -> tuple[int, int]:
        await burn_read_bucket(venue)
        before = venue.server.stats.rejected_rate
        async with KalshiRest(venue.rest_url, venue.alice, retry=FAST, limiter=limiter) as c:
            results = await asyncio.gather(
                *(c.exchange_status() for _ in range(10)), return_exceptions=True
            )
        failed = sum(isinstance(r, Exception) for r in results)
        return venue.server.stats.rejected_rate - before, failed

    rejected, failed = await hammer(venue, RateLimiter.for_tier("basic"))
    assert failed == 0
    assert 1 <= rejected <= 10  # the first wave only
    control = await start_venue()
    try:
        rejected, _ = await hammer(control, RateLimiter.for_tier("prestige"))
    finally:
        await control.running.close()
    assert rejected > 10


async def test_a_burst_of_429s_is_waited_out(venue: Venue) -> None:
    venue.faults.set(burst_429=0.2)
    async with KalshiRest(venue.rest_url, venue.alice, retry=FAST) as client:
        status = await client.exchange_status()
    assert status.trading_active
    assert venue.faults.counts["burst_429"] > 0


async def test_random_429s_are_retried_and_create_once(venue: Venue) -> None:
    venue.faults.set(rest_429=0.5)
    async with KalshiRest(venue.rest_url, venue.alice, retry=FAST) as client:
        results = [await client.create_order(bid(f"0.{p}")) for p in range(20, 26)]
    assert venue.faults.counts["rest_429"] > 0
    assert all(r.status is CreateStatus.CREATED for r in results)
    for r in results:
        assert orders_with(venue, r.client_order_id) == [r.order_id]


async def test_a_lying_cancel_answer_is_flagged_not_trusted(venue: Venue) -> None:
    async with KalshiRest(venue.rest_url, venue.alice) as client:
        keep = await client.create_order(bid("0.20"))
        drop = await client.create_order(bid("0.21"))
        assert keep.order_id is not None
        assert drop.order_id is not None
        venue.faults.set(lying_cancel=1.0)
        change = await client.cancel_order(drop.order_id)
    assert venue.faults.counts["lying_cancel"] == 1
    assert change.order_id == drop.order_id  # what we asked about …
    assert change.reported is not None
    assert not change.describes_request
    statuses = {o.order_id: o.status for o in venue.exchange.account("alice").orders.values()}
    assert statuses == {keep.order_id: "resting", drop.order_id: "canceled"}
