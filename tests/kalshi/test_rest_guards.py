"""The REST client's guards: arguments refused before anything is sent, answers that cannot be
believed, listings with one bad row, batches whose chunks fail, and ids reused for another
order. Against the embedded exchange where it can say it, a scripted transport where the
answer has to be malformed on purpose."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from kalshikit import NBA, Venue

from kmm_interactive.domain import Side
from kmm_interactive.kalshi.errors import KalshiError, TransportError
from kmm_interactive.kalshi.models import PayloadError
from kmm_interactive.kalshi.rest import CreateStatus, KalshiRest, OrderRequest, Retry

D = Decimal
BASE = "http://127.0.0.1:9/trade-api/v2"
ONCE = Retry(attempts=1)
FAST = Retry(attempts=3, base_delay=0.001, max_delay=0.001)


class Script:
    """A transport that answers from a function and records every request it saw."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answer(request)

    def client(self, retry: Retry = ONCE, **extra: Any) -> KalshiRest:
        return KalshiRest(BASE, transport=httpx.MockTransport(self), retry=retry, **extra)


def reply(status: int, body: object) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _request: httpx.Response(status, json=body)


@pytest.mark.parametrize("order_id", ["", ".", "..", "a/b", "a?b", "x" * 200])
async def test_an_order_id_that_could_change_the_path_is_refused_unsent(order_id: str) -> None:
    # "." would turn DELETE /portfolio/events/orders/. into the cancel-all.
    script = Script(reply(200, {}))
    async with script.client() as client:
        with pytest.raises(ValueError, match="order id"):
            await client.cancel_order(order_id)
        with pytest.raises(ValueError, match="order id"):
            await client.decrease_order(order_id, reduce_to=D(0))
        with pytest.raises(ValueError, match="order id"):
            await client.batch_cancel([("good-id", None), (order_id, None)])
    assert script.seen == []


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (OrderRequest(NBA, Side.BID, D("1"), D(1)), "price"),
        (OrderRequest(NBA, Side.BID, D("0"), D(1)), "price"),
        (OrderRequest(NBA, Side.BID, D("0.1234567"), D(1)), "price"),
        (OrderRequest(NBA, Side.BID, D("0.5"), D(0)), "positive"),
        (OrderRequest(NBA, Side.BID, D("0.5"), D("-2")), "negative"),
        (
            OrderRequest(NBA, Side.BID, D("0.5"), D(1), expiration_time=datetime(2030, 1, 1)),
            "time zone",
        ),
    ],
)
async def test_a_bad_create_is_a_value_error_and_nothing_goes_out(
    request_: OrderRequest, message: str
) -> None:
    script = Script(reply(201, {"order_id": "o1"}))
    async with script.client() as client:
        with pytest.raises(ValueError, match=message):
            await client.create_order(request_)
        with pytest.raises(ValueError, match=message):
            await client.batch_create([OrderRequest(NBA, Side.BID, D("0.5"), D(1)), request_])
    assert script.seen == []


async def test_a_404_without_a_not_found_code_is_not_taken_as_already_gone() -> None:
    page = Script(lambda _r: httpx.Response(404, text="<html>no such page</html>"))
    async with page.client() as client:
        with pytest.raises(KalshiError) as info:
            await client.cancel_order("o1")
    assert info.value.status == 404
    gone = Script(reply(404, {"code": "not_found", "message": "order not found"}))
    async with gone.client() as client:
        change = await client.cancel_order("o1")
    assert change.already_gone
    assert change.reduced_by is None


async def test_a_cancel_answered_after_an_ambiguous_attempt_is_flagged() -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json={"order_id": "o1"})])
    script = Script(lambda _r: next(answers))
    async with script.client(FAST) as client:
        change = await client.cancel_order("o1")
    assert len(script.seen) == 2
    assert change.ambiguous_retry
    assert change.describes_request
    assert change.reduced_by is None  # the first attempt may have taken the size off


async def test_one_bad_market_is_left_out_and_counted_but_a_bad_order_fails_the_list(
    venue: Venue,
) -> None:
    async with KalshiRest(venue.rest_url, venue.alice) as honest:
        real = await honest.markets()
    body = {"markets": [{"ticker": "BROKEN"}], "cursor": ""}
    script = Script(reply(200, body))
    async with script.client() as client:
        assert await client.markets() == []
        assert client.skipped["/markets"] == 1
        script.answer = reply(200, {"orders": [{"order_id": "o1"}], "cursor": ""})
        with pytest.raises(PayloadError):
            await client.orders()
    assert len(real) == len(venue.exchange.markets)


async def test_a_failing_batch_cancel_chunk_keeps_the_other_chunks_results() -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        ids = [o["order_id"] for o in json.loads(request.content)["orders"]]
        if "b1" in ids:
            return httpx.Response(500)
        return httpx.Response(
            200, json={"orders": [{"order_id": i, "reduced_by": "1"} for i in ids]}
        )

    script = Script(answer)
    async with script.client(max_batch=2) as client:
        changes = await client.batch_cancel([("a1", None), ("a2", None), ("b1", NBA)])
    assert calls == 2
    assert [c.order_id for c in changes] == ["a1", "a2", "b1"]
    assert [c.reduced_by for c in changes[:2]] == [D(1), D(1)]
    assert changes[2].error is not None
    assert changes[2].reported is None


async def test_a_client_order_id_in_use_by_another_order_is_rejected(
    venue: Venue,
) -> None:
    async with KalshiRest(venue.rest_url, venue.alice) as client:
        first = await client.create_order(
            OrderRequest(NBA, Side.BID, D("0.30"), D(2), client_order_id="mine-1")
        )
        again = await client.create_order(
            OrderRequest(NBA, Side.BID, D("0.30"), D(2), client_order_id="mine-1")
        )
        other = await client.create_order(
            OrderRequest(NBA, Side.BID, D("0.31"), D(2), client_order_id="mine-1")
        )
    assert first.status is CreateStatus.CREATED
    assert not first.already_existed
    # Resending the same create to settle an UNKNOWN finds the order it made.
    assert again.status is CreateStatus.CREATED
    assert again.already_existed
    assert again.order_id == first.order_id
    # The same id for a different price is refused, and the order under it is shown.
    assert other.status is CreateStatus.REJECTED
    assert other.order is not None
    assert other.order.order_id == first.order_id
    assert len(list(venue.exchange.live_orders("alice"))) == 1


async def test_an_unreadable_create_answer_is_unknown_not_failed() -> None:
    script = Script(lambda _r: httpx.Response(201, text="{not json"))
    async with script.client() as client:
        result = await client.create_order(OrderRequest(NBA, Side.BID, D("0.5"), D(1)))
    assert result.status is CreateStatus.UNKNOWN
    # A confirmed create stays confirmed although one optional field is garbled.
    script.answer = reply(201, {"order_id": "o9", "fill_count": "lots", "remaining_count": "1"})
    async with script.client() as client:
        result = await client.create_order(OrderRequest(NBA, Side.BID, D("0.5"), D(1)))
    assert (result.status, result.order_id, result.fill_count) == (CreateStatus.CREATED, "o9", None)
    assert result.remaining_count == D(1)


async def test_a_transport_error_does_not_carry_the_signed_request() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with Script(refuse).client() as client:
        with pytest.raises(TransportError) as info:
            await client.exchange_status()
    seen: list[BaseException] = []
    error: BaseException | None = info.value
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    assert [type(e) for e in seen] == [TransportError]
