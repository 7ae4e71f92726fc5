"""Error bodies in every shape Kalshi sends, read through the client with a mock transport."""

from __future__ import annotations

import httpx
import pytest

from kmm_interactive.kalshi.errors import (
    AuthFailed,
    KalshiError,
    RateLimited,
    ServerError,
    TransportError,
    error_from_item,
    error_from_response,
)
from kmm_interactive.kalshi.rest import KalshiRest, Retry

BASE = "http://exchange.test/trade-api/v2"


async def _failing_call(status: int, content: bytes) -> KalshiError:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content)

    client = KalshiRest(BASE, transport=httpx.MockTransport(answer), retry=Retry(attempts=1))
    async with client:
        with pytest.raises(KalshiError) as info:
            await client.market("KXNBAGAME-X?secret=1")
    return info.value


@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "message"),
    [
        (
            400,
            b'{"code": "invalid_price", "message": "off grid", "details": "step 0.01"}',
            KalshiError,
            "invalid_price",
            "off grid",
        ),
        (
            409,
            b'{"error": {"code": "order_already_exists", "message": "in use", "details": ""}}',
            KalshiError,
            "order_already_exists",
            "in use",
        ),
        (429, b'{"error": "too many requests"}', RateLimited, "too_many_requests", "too many"),
        (502, b"<html><body>Bad Gateway</body></html>", ServerError, "server_error", "Bad Gate"),
        (503, b"", ServerError, "server_error", "HTTP 503"),
        (401, b'{"code": "unauthorized"}', AuthFailed, "unauthorized", "HTTP 401"),
        (404, b"[1, 2]", KalshiError, "http_404", "[1, 2]"),
        (400, b'{"code": 7, "message": ["x"]}', KalshiError, "http_400", "HTTP 400"),
    ],
)
async def test_every_body_shape(
    status: int, body: bytes, kind: type[KalshiError], code: str, message: str
) -> None:
    error = await _failing_call(status, body)
    assert type(error) is kind
    assert (error.status, error.code) == (status, code)
    assert message in error.message
    text = str(error)
    assert text.startswith("GET /markets/KXNBAGAME-X%3Fsecret%3D1: HTTP")  # path escaped
    assert error.is_transient == (status in (429, 502, 503))


async def test_details_are_kept_and_long_messages_clipped() -> None:
    error = await _failing_call(400, b'{"code": "c", "message": "' + b"m" * 5000 + b'"}')
    assert len(str(error)) < 400
    assert str(error).endswith("…")
    error = await _failing_call(400, b'{"code": "c", "message": "m", "details": {"max": 3}}')
    assert error.details == '{"max": 3}'
    assert "(" in str(error)


async def test_transport_failures_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    for handler, code in ((refuse, "transport"), (slow, "timeout")):
        client = KalshiRest(BASE, transport=httpx.MockTransport(handler), retry=Retry(1))
        async with client:
            with pytest.raises(TransportError) as info:
                await client.exchange_status()
        assert info.value.code == code
        assert info.value.status is None
        assert info.value.is_transient
        assert info.value.timed_out == (code == "timeout")


def test_batch_item_errors() -> None:
    item = error_from_item({"code": "invalid_price", "message": "off"}, method="POST", path="/b")
    assert (item.status, item.code, item.message) == (None, "invalid_price", "off")
    bare = error_from_item("nope", method="POST", path="/b")
    assert (bare.code, bare.message) == ("batch_item_failed", "nope")


def test_repr_and_direct_construction() -> None:
    error = error_from_response(429, b"", method="DELETE", path="/portfolio/events/orders/x")
    assert isinstance(error, RateLimited)
    assert repr(error) == "RateLimited(429, 'too_many_requests', 'HTTP 429')"
