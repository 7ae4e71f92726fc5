"""The embedded exchange refuses what Kalshi refuses, on REST (writes included) and on the
WebSocket upgrade: no signature, a stale or future timestamp, a wrong signature, an unknown
key, and the same signature twice. tests/sim/test_kalshi_rest.py covers the REST reads; this
adds the upgrade, writes, and replays that change the query. A refused request changes
nothing."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yarl
from kalshikit import NBA, Venue, new_signer

from kmm_interactive.kalshi.auth import KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, Signer

WS = "/trade-api/ws/v2"
ORDERS = "/trade-api/v2/portfolio/events/orders"
BALANCE = "/trade-api/v2/portfolio/balance"
Headers = dict[str, str]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def upgrade(headers: Headers) -> Headers:
    """A WebSocket upgrade request's headers, around ``headers``."""
    return {
        **headers,
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }


def now_ms() -> int:
    return int(time.time() * 1000)


def tampered(venue: Venue, how: str, method: str, path: str) -> Headers:
    alice: Signer = venue.alice
    good = alice.headers(method, path)
    return {
        "unsigned": {},
        "no key header": {k: v for k, v in good.items() if k != KEY_HEADER},
        "no timestamp": {k: v for k, v in good.items() if k != TIMESTAMP_HEADER},
        "no signature": {k: v for k, v in good.items() if k != SIGNATURE_HEADER},
        "stale": alice.headers(method, path, now_ms() - 31_000),
        "future": alice.headers(method, path, now_ms() + 31_000),
        "seconds": alice.headers(method, path, now_ms() // 1000),
        "another key's signature": {
            **venue.bob.headers(method, path),
            KEY_HEADER: alice.key_id,
        },
        "unknown key": new_signer("key-nobody").headers(method, path),
        "another path": alice.headers(method, BALANCE if path != BALANCE else ORDERS),
        "another method": alice.headers("POST" if method != "POST" else "GET", path),
        "another timestamp": {**good, TIMESTAMP_HEADER: str(int(good[TIMESTAMP_HEADER]) + 1)},
        "garbage signature": {**good, SIGNATURE_HEADER: "%%%"},
        "truncated signature": {**good, SIGNATURE_HEADER: good[SIGNATURE_HEADER][:40]},
    }[how]


REFUSALS = {
    "unsigned": "missing header",
    "no key header": "missing header",
    "no timestamp": "missing header",
    "no signature": "missing header",
    "stale": "away from the server clock",
    "future": "away from the server clock",
    "seconds": "looks like seconds",
    "another key's signature": "signature does not match",
    "unknown key": "unknown API key",
    "another path": "signature does not match",
    "another method": "signature does not match",
    "another timestamp": "signature does not match",
    "garbage signature": "not base64",
    "truncated signature": "signature does not match",
}


async def _send(
    http: aiohttp.ClientSession, venue: Venue, method: str, path: str, headers: Headers, **kw: Any
) -> tuple[int, Any]:
    async with http.request(method, venue.running.url + path, headers=headers, **kw) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None


# --------------------------------------------------------------------------- the upgrade


@pytest.mark.parametrize("how", sorted(REFUSALS))
async def test_the_websocket_upgrade_refuses_a_bad_signature(
    venue: Venue, http: aiohttp.ClientSession, how: str
) -> None:
    headers = tampered(venue, how, "GET", WS)
    status, body = await _send(http, venue, "GET", WS, upgrade(headers))
    assert status == 401
    assert REFUSALS[how] in body["message"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await http.ws_connect(venue.running.url + WS, headers=tampered(venue, how, "GET", WS))
    assert caught.value.status == 401
    assert venue.server.stats.rejected_auth == 2
    assert not venue.server.hub.connections


async def test_an_upgrade_signature_works_once(venue: Venue, http: aiohttp.ClientSession) -> None:
    headers = venue.alice.headers("GET", WS)
    ws = await http.ws_connect(venue.running.url + WS, headers=headers)
    try:
        # Replayed while the first socket is open, and after it closed: refused both times.
        status, body = await _send(http, venue, "GET", WS, upgrade(headers))
        assert (status, "replayed" in body["message"]) == (401, True)
    finally:
        await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await http.ws_connect(venue.running.url + WS, headers=headers)
    assert caught.value.status == 401
    # A REST request cannot use it either (another path), nor it a REST signature.
    assert (await _send(http, venue, "GET", BALANCE, headers))[0] == 401
    rest = venue.alice.headers("GET", BALANCE)
    assert (await _send(http, venue, "GET", WS, upgrade(rest)))[0] == 401
    ws = await http.ws_connect(venue.running.url + WS, headers=venue.alice.headers("GET", WS))
    await ws.close()  # a fresh signature still works


async def test_the_upgrade_ignores_the_query_but_a_replay_with_another_query_is_refused(
    venue: Venue, http: aiohttp.ClientSession
) -> None:
    headers = venue.alice.headers("GET", WS)
    ws = await http.ws_connect(venue.running.url + WS + "?a=1", headers=headers)
    await ws.close()
    status, body = await _send(http, venue, "GET", WS + "?a=2", upgrade(headers))
    assert status == 401
    assert "replayed" in body["message"]


# --------------------------------------------------------------------------- REST writes


def _order(cid: str) -> dict[str, str]:
    return {
        "ticker": NBA, "side": "bid", "price": "0.20", "count": "5", "client_order_id": cid,
        "time_in_force": "good_till_canceled", "self_trade_prevention_type": "maker",
    }  # fmt: skip


def _orders(venue: Venue) -> list[str]:
    return sorted(o.order_id for o in venue.exchange.live_orders("alice"))


@pytest.mark.parametrize("how", sorted(REFUSALS))
async def test_a_badly_signed_order_is_refused_and_changes_nothing(
    venue: Venue, http: aiohttp.ClientSession, how: str
) -> None:
    balance = venue.exchange.account("alice").balance
    headers = tampered(venue, how, "POST", ORDERS) | {"Content-Type": "application/json"}
    status, body = await _send(http, venue, "POST", ORDERS, headers, data=json.dumps(_order("c")))
    assert status == 401
    assert REFUSALS[how] in json.dumps(body)
    assert _orders(venue) == []
    assert venue.exchange.account("alice").balance == balance


async def test_a_replayed_order_is_refused_and_not_placed_twice(
    venue: Venue, http: aiohttp.ClientSession
) -> None:
    headers = venue.alice.headers("POST", ORDERS) | {"Content-Type": "application/json"}
    status, created = await _send(
        http, venue, "POST", ORDERS, headers, data=json.dumps(_order("a"))
    )
    assert status == 201
    placed = _orders(venue)
    assert placed == [created["order_id"]]
    # The same request again, and the same signature over another body (it signs no body).
    for body in (_order("a"), _order("b")):
        status, refused = await _send(http, venue, "POST", ORDERS, headers, data=json.dumps(body))
        assert status == 401
        assert "replayed" in json.dumps(refused)
    assert _orders(venue) == placed
    # A replayed cancel does not cancel twice either: the second is refused outright.
    path = f"{ORDERS}/{created['order_id']}"
    cancel = venue.alice.headers("DELETE", path)
    assert (await _send(http, venue, "DELETE", path, cancel))[0] == 200
    assert (await _send(http, venue, "DELETE", path, cancel))[0] == 401
    assert _orders(venue) == []


async def test_a_replay_with_another_query_is_refused(
    venue: Venue, http: aiohttp.ClientSession
) -> None:
    path = "/trade-api/v2/portfolio/orders"
    headers = venue.alice.headers("GET", path)
    assert (await _send(http, venue, "GET", path + "?limit=1", headers))[0] == 200
    status, body = await _send(http, venue, "GET", path + "?limit=2", headers)
    assert (status, "replayed" in body["message"]) == (401, True)


async def test_a_signed_market_data_read_is_checked_too(
    venue: Venue, http: aiohttp.ClientSession
) -> None:
    path = f"/trade-api/v2/markets/{NBA}/orderbook"
    headers = venue.alice.headers("GET", path)
    assert (await _send(http, venue, "GET", path, headers))[0] == 200
    assert (await _send(http, venue, "GET", path, headers))[0] == 401  # replayed
    stale = venue.alice.headers("GET", path, now_ms() - 60_000)
    assert (await _send(http, venue, "GET", path, stale))[0] == 401
    assert (await _send(http, venue, "GET", path, {}))[0] == 200  # unsigned: public


PRIVATE_BY_ANOTHER_WAY: list[tuple[str, str]] = [
    ("GET", "/trade-api/v2/markets/../portfolio/balance"),
    ("GET", "/trade-api/v2/markets/%2E%2E/portfolio/balance"),
    ("GET", "/trade-api/v2/markets%2F..%2Fportfolio/balance"),
    ("GET", "/trade-api/v2/events/..%2F..%2Fv2/portfolio/balance"),
    ("GET", "/trade-api/v2/series/../portfolio/orders"),
    ("GET", "/trade-api/v2/exchange/../portfolio/positions"),
    ("GET", "/trade-api/v2//portfolio/balance"),
    ("GET", "/trade-api/v2/markets/../ws/v2"),
    ("HEAD", BALANCE),
    ("POST", "/trade-api/v2/markets/../portfolio/events/orders"),
]


@pytest.mark.parametrize(("method", "path"), PRIVATE_BY_ANOTHER_WAY)
async def test_no_unsigned_way_round_to_a_private_endpoint(
    venue: Venue, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    url = yarl.URL(venue.running.url + path, encoded=True)  # sent exactly as written
    async with http.request(method, url, data=json.dumps(_order("x"))) as r:
        assert r.status in (401, 404, 405), await r.text()
    assert _orders(venue) == []
