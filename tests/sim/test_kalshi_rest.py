"""The embedded exchange over real HTTP: shapes per the spec, auth, rate limits, faults."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from jsonschema import Draft202012Validator
from simkit import World, sign, validate_rest

from kmm_interactive.sim.server import start_kalshi_server

GTC = {"time_in_force": "good_till_canceled", "self_trade_prevention_type": "maker"}


def order(
    ticker: str, side: str, price: str, count: str = "10", **extra: object
) -> dict[str, object]:
    return {"ticker": ticker, "side": side, "price": price, "count": count, **GTC, **extra}


# The V2 order responses postdate the vendored OpenAPI 3.13.0; these schemas are written from
# reference/apis.md §1.4.2 (openapi v3.28 fragments) so their shapes are still pinned down.
FP = {"type": "string", "pattern": r"^-?\d+\.\d{2}$"}
DOLLARS = {"type": "string", "pattern": r"^\d+\.\d{4,6}$"}
CREATE_V2 = {
    "type": "object",
    "required": ["order_id", "client_order_id", "fill_count", "remaining_count", "ts_ms"],
    "properties": {
        "order_id": {"type": "string"},
        "client_order_id": {"type": "string"},
        "fill_count": FP,
        "remaining_count": FP,
        "average_fill_price": DOLLARS,
        "average_fee_paid": DOLLARS,
        "ts_ms": {"type": "integer"},
    },
}
CANCEL_V2 = {
    "type": "object",
    "required": ["order_id", "client_order_id", "reduced_by", "ts_ms"],
    "properties": {"reduced_by": FP, "ts_ms": {"type": "integer"}},
}
DECREASE_V2 = {
    "type": "object",
    "required": ["order_id", "client_order_id", "remaining_count", "ts_ms"],
    "properties": {"remaining_count": FP},
}


async def _trade(world: World, price: str = "0.45") -> tuple[str, str]:
    """Alice rests a bid, Bob hits half of it; returns (alice's order id, ticker)."""
    t = world.nba
    status, created = await world.alice.call(
        "POST", "/portfolio/events/orders", order(t, "bid", price)
    )
    assert status == 201, created
    status, hit = await world.bob.call(
        "POST",
        "/portfolio/events/orders",
        order(t, "ask", price, "4", time_in_force="immediate_or_cancel"),
    )
    assert status == 201, hit
    assert hit["fill_count"] == "4.00"
    return created["order_id"], t


# --------------------------------------------------------------------------- spec shapes


async def test_market_data_validates_against_the_spec(world: World) -> None:
    await _trade(world)
    a = world.alice
    checks = [
        (await a.get("/series", category="Sports"), "GetSeriesListResponse"),
        (await a.get("/series/KXNBAGAME"), "GetSeriesResponse"),
        (await a.get("/events", with_nested_markets=True), "GetEventsResponse"),
        (await a.get(f"/events/{world.epl_event}"), "GetEventResponse"),
        (await a.get("/markets", limit=2), "GetMarketsResponse"),
        (await a.get(f"/markets/{world.nba}"), "GetMarketResponse"),
        (await a.get(f"/markets/{world.nba}/orderbook"), "GetMarketOrderbookResponse"),
        (await a.get("/markets/orderbooks", tickers=world.nba), "GetMarketOrderbooksResponse"),
        (await a.get("/markets/trades", ticker=world.nba), "GetTradesResponse"),
        (await a.get("/exchange/status"), "ExchangeStatus"),
    ]
    for (status, body), schema in checks:
        assert status == 200, body
        validate_rest(body, schema)
    (_, events), (_, series) = checks[2][0], checks[0][0]
    assert all(len(e["markets"]) >= 2 for e in events["events"])
    assert {s["fee_type"] for s in series["series"]} == {"quadratic", "quadratic_with_maker_fees"}
    epl = (await a.get(f"/events/{world.epl_event}"))[1]
    assert [m["ticker"].rsplit("-", 1)[1] for m in epl["markets"]][-1] == "TIE"
    market = checks[5][0][1]["market"]
    assert market["price_ranges"] == [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}]
    assert market["status"] == "active"


async def test_portfolio_validates_against_the_spec(world: World) -> None:
    order_id, ticker = await _trade(world)
    a = world.alice
    status, group = await a.call(
        "POST", "/portfolio/order_groups/create", {"contracts_limit_fp": "50"}
    )
    assert status == 201
    validate_rest(group, "CreateOrderGroupResponse")
    checks = [
        (await a.get("/portfolio/orders"), "GetOrdersResponse"),
        (await a.get(f"/portfolio/orders/{order_id}"), "GetOrderResponse"),
        (await a.get("/portfolio/positions"), "GetPositionsResponse"),
        (await a.get("/portfolio/fills"), "GetFillsResponse"),
        (await a.get("/portfolio/balance"), "GetBalanceResponse"),
        (await a.get("/portfolio/order_groups"), "GetOrderGroupsResponse"),
        (
            await a.get(f"/portfolio/order_groups/{group['order_group_id']}"),
            "GetOrderGroupResponse",
        ),
        (await a.get("/account/limits"), "GetAccountApiLimitsResponse"),
    ]
    for (status, body), schema in checks:
        assert status == 200, body
        validate_rest(body, schema)
    positions = checks[2][0][1]
    assert positions["market_positions"][0]["position_fp"] == "4.00"
    assert positions["market_positions"][0]["market_exposure_dollars"] == "1.8000"
    fill = checks[3][0][1]["fills"][0]
    assert (fill["book_side"], fill["is_taker"], fill["yes_price_dollars"]) == (
        "bid",
        False,
        "0.4500",
    )
    assert fill["fee_cost"] == "0.0200"  # maker fee: 0.0175 × 4 × 0.45 × 0.55 = 0.0173 → 2¢
    one = checks[1][0][1]["order"]
    assert (one["status"], one["fill_count_fp"], one["remaining_count_fp"]) == (
        "resting",
        "4.00",
        "6.00",
    )
    balance = checks[4][0][1]
    # Available: 4 bought at 0.45 and a 2¢ fee, and the 6 still resting hold 6 × 0.45 plus
    # the largest fee they could pay (0.07 × 6 × 0.2475 → 11¢) and rounding: 600 fills of
    # 0.01 at most, $0.0001 each, and a cent.
    assert balance["balance"] == 100000 - 180 - 2 - (270 + 11 + 6 + 1)
    assert balance["portfolio_value"] == 100000 - 2
    # Settlement: the game resolves and the holder is paid a dollar a contract.
    ex = world.exchange
    ex.determine(ticker, "yes")
    ex.settle(ticker)
    status, settlements = await a.get("/portfolio/settlements")
    assert status == 200
    validate_rest(settlements, "GetSettlementsResponse")
    s = settlements["settlements"][0]
    assert (s["market_result"], s["yes_count_fp"], s["revenue"]) == ("yes", "4.00", 400)
    status, market = await a.get(f"/markets/{ticker}")
    validate_rest(market, "GetMarketResponse")
    assert (market["market"]["status"], market["market"]["result"]) == ("finalized", "yes")


async def test_orderbook_levels_ascend_with_the_best_last(world: World) -> None:
    t = world.nba
    for side, price in [("bid", "0.40"), ("bid", "0.42"), ("ask", "0.47"), ("ask", "0.50")]:
        assert (await world.alice.call("POST", "/portfolio/events/orders", order(t, side, price)))[
            0
        ] == 201
    _, body = await world.bob.get(f"/markets/{t}/orderbook")
    book = body["orderbook_fp"]
    assert book["yes_dollars"] == [["0.4000", "10.00"], ["0.4200", "10.00"]]
    assert book["no_dollars"] == [["0.5000", "10.00"], ["0.5300", "10.00"]]  # NO bids = 1 − asks
    _status, body = await world.bob.get(f"/markets/{t}/orderbook", depth=1)
    assert body["orderbook_fp"] == {
        "yes_dollars": [["0.4200", "10.00"]],
        "no_dollars": [["0.5300", "10.00"]],
    }


async def test_cursor_pagination_walks_every_market_once(world: World) -> None:
    seen, cursor, pages = [], "", 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        status, body = await world.alice.get("/markets", **params)
        assert status == 200
        seen += [m["ticker"] for m in body["markets"]]
        pages += 1
        cursor = body["cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(world.exchange.markets)
    assert pages == 3
    assert (await world.alice.get("/markets", limit=0))[0] == 400
    status, body = await world.alice.get("/markets", cursor="!!")
    assert status == 400
    assert "cursor" in body["message"]


# --------------------------------------------------------------------------- V2 orders


async def test_v2_order_endpoints(world: World) -> None:
    a, t = world.alice, world.nba
    status, created = await a.call(
        "POST", "/portfolio/events/orders", order(t, "bid", "0.40", client_order_id="c1")
    )
    assert status == 201
    Draft202012Validator(CREATE_V2).validate(created)
    oid = created["order_id"]
    # Duplicate client_order_id: 409 order_already_exists (nested error body, as seen live).
    status, body = await a.call(
        "POST", "/portfolio/events/orders", order(t, "bid", "0.40", client_order_id="c1")
    )
    assert (status, body["error"]["code"]) == (409, "order_already_exists")
    amend = {"ticker": t, "side": "bid", "price": "0.41", "count": "12"}
    status, amended = await a.call(
        "POST", f"/portfolio/events/orders/{oid}/amend", amend | {"updated_client_order_id": "c2"}
    )
    assert status == 200, amended
    assert (amended["client_order_id"], amended["remaining_count"]) == ("c2", "12.00")
    status, dec = await a.call(
        "POST", f"/portfolio/events/orders/{oid}/decrease", {"reduce_by": "2"}
    )
    assert status == 200
    Draft202012Validator(DECREASE_V2).validate(dec)
    assert dec["remaining_count"] == "10.00"
    status, body = await a.call(
        "POST", f"/portfolio/events/orders/{oid}/decrease", {"reduce_by": "1", "reduce_to": "1"}
    )
    assert status == 400
    assert "exactly one" in body["error"]["message"]
    status, cancelled = await a.call("DELETE", f"/portfolio/events/orders/{oid}", market_ticker=t)
    assert status == 200
    Draft202012Validator(CANCEL_V2).validate(cancelled)
    assert (cancelled["order_id"], cancelled["reduced_by"]) == (oid, "10.00")
    status, again = await a.call("DELETE", f"/portfolio/events/orders/{oid}")
    assert (status, again["reduced_by"]) == (200, "0.00")
    status, body = await a.call("DELETE", "/portfolio/events/orders/nope")
    assert (status, body["error"]["code"]) == (404, "not_found")
    # Batches: per-item results and errors.
    status, batch = await a.call(
        "POST", "/portfolio/events/orders/batched",
        {"orders": [order(t, "bid", "0.30"), order(t, "bid", "0.305"), order(t, "ask", "0.70")]},
    )  # fmt: skip
    assert status == 201
    results = batch["orders"]
    assert [r["error"] is None for r in results] == [True, False, True]
    assert results[1]["error"]["code"] == "invalid_price"
    status, batch_cancel = await a.call(
        "DELETE", "/portfolio/events/orders/batched",
        {"orders": [{"order_id": results[0]["order_id"]}, {"order_id": "missing"}]},
    )  # fmt: skip
    assert status == 200
    assert [r["error"] is None for r in batch_cancel["orders"]] == [True, False]
    status, all_cancelled = await a.call("DELETE", "/portfolio/events/orders")
    assert status == 200
    assert [r["order_id"] for r in all_cancelled["orders"]] == [results[2]["order_id"]]
    assert not list(world.exchange.live_orders("alice"))


async def test_crossing_create_reports_its_fills(world: World) -> None:
    t = world.nba
    await world.bob.call("POST", "/portfolio/events/orders", order(t, "ask", "0.52", "5"))
    status, created = await world.alice.call(
        "POST",
        "/portfolio/events/orders",
        order(t, "bid", "0.55", "8", time_in_force="immediate_or_cancel"),
    )
    assert status == 201
    assert (created["fill_count"], created["remaining_count"]) == ("5.00", "0.00")
    assert created["average_fill_price"] == "0.5200"
    assert created["average_fee_paid"] == "0.0180"  # 0.07 × 5 × 0.52 × 0.48 = 0.0874 → 9¢ / 5


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"side": "bid", "price": "0.5", "count": "1", **GTC}, "missing required field 'ticker'"),
        ({"ticker": "X", "side": "buy", "price": "0.5", "count": "1", **GTC}, "not found"),
        ({"side": "yes", "price": "0.5", "count": "1", **GTC}, "side 'yes'"),
        ({"side": "bid", "price": "1.5", "count": "1", **GTC}, "between 0 and 1"),
        ({"side": "bid", "price": "0.5", "count": "0", **GTC}, "must be positive"),
        ({"side": "bid", "price": "0.5", "count": "1.001", **GTC}, "more than 2 decimals"),
        (
            {"side": "bid", "price": "0.5", "count": "1", "self_trade_prevention_type": "maker"},
            "time_in_force",
        ),
        (
            {"side": "bid", "price": "0.5", "count": "1", **GTC, "time_in_force": "day"},
            "time_in_force 'day'",
        ),
        ({"side": "bid", "price": True, "count": "1", **GTC}, "wrong type"),
        ({"side": "bid", "price": ["0.5"], "count": "1", **GTC}, "wrong type"),
    ],
)
async def test_bad_orders_say_what_is_wrong(
    world: World, body: dict[str, object], fragment: str
) -> None:
    body = (
        {"ticker": world.nba, **body}
        if "ticker" not in body and "missing" not in fragment
        else body
    )
    status, reply = await world.alice.call("POST", "/portfolio/events/orders", body)
    assert status in (400, 404)
    assert fragment in reply["error"]["message"]
    assert not list(world.exchange.live_orders("alice"))


async def test_v1_order_writes_are_gone(world: World) -> None:
    status, body = await world.alice.call("POST", "/portfolio/orders", {"ticker": world.nba})
    assert (status, body["code"]) == (410, "deprecated_v1_order_endpoint")


async def test_order_group_limit_cancels_the_group(world: World) -> None:
    a, t = world.alice, world.nba
    _, group = await a.call(
        "POST", "/portfolio/order_groups/create", {"contracts_limit_fp": "5.00"}
    )
    gid = group["order_group_id"]
    for price in ("0.40", "0.41"):
        await a.call("POST", "/portfolio/events/orders", order(t, "bid", price, order_group_id=gid))
    await world.bob.call(
        "POST",
        "/portfolio/events/orders",
        order(t, "ask", "0.41", "5", time_in_force="immediate_or_cancel"),
    )
    status, body = await a.get(f"/portfolio/order_groups/{gid}")
    assert (body["is_auto_cancel_enabled"], body["orders"]) == (False, [])
    status, body = await a.call(
        "POST", "/portfolio/events/orders", order(t, "bid", "0.40", order_group_id=gid)
    )
    assert (status, body["error"]["code"]) == (400, "order_group_limit_reached")
    assert (await a.call("PUT", f"/portfolio/order_groups/{gid}/reset", {}))[0] == 200
    assert (
        await a.call(
            "POST", "/portfolio/events/orders", order(t, "bid", "0.40", order_group_id=gid)
        )
    )[0] == 201


# --------------------------------------------------------------------------- auth


async def _raw(
    world: World, headers: dict[str, str], path: str = "/trade-api/v2/portfolio/balance"
) -> tuple[int, dict[str, object]]:
    async with world.session.get(world.running.url + path, headers=headers) as r:
        return r.status, await r.json()


async def test_auth_accepts_a_good_signature_and_ignores_the_query(world: World) -> None:
    a = world.alice
    headers = sign(a.key, a.key_id, "GET", "/trade-api/v2/portfolio/orders")
    async with world.session.get(
        world.running.url + "/trade-api/v2/portfolio/orders?limit=5", headers=headers
    ) as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("tamper", "fragment"),
    [
        ("wrong_path", "signature does not match"),
        ("wrong_method", "signature does not match"),
        ("query_signed", "signature does not match"),
        ("seconds", "looks like seconds"),
        ("stale", "away from the server clock"),
        ("future", "away from the server clock"),
        ("wrong_key", "signature does not match"),
        ("unknown_key", "unknown API key"),
        ("missing", "missing header"),
        ("garbage", "not base64"),
    ],
)
async def test_auth_refuses_what_kalshi_refuses(world: World, tamper: str, fragment: str) -> None:
    a, b = world.alice, world.bob
    path = "/trade-api/v2/portfolio/balance"
    now = int(time.time() * 1000)
    headers = {
        "wrong_path": sign(a.key, a.key_id, "GET", "/trade-api/v2/portfolio/fills"),
        "wrong_method": sign(a.key, a.key_id, "POST", path),
        "query_signed": sign(a.key, a.key_id, "GET", path + "?limit=5"),
        "seconds": sign(a.key, a.key_id, "GET", path, now // 1000),
        "stale": sign(a.key, a.key_id, "GET", path, now - 120_000),
        "future": sign(a.key, a.key_id, "GET", path, now + 120_000),
        "wrong_key": sign(b.key, a.key_id, "GET", path),
        "unknown_key": sign(a.key, "nobody", "GET", path),
        "missing": {},
        "garbage": {**sign(a.key, a.key_id, "GET", path), "KALSHI-ACCESS-SIGNATURE": "%%%"},
    }[tamper]
    status, body = await _raw(world, headers)
    assert status == 401
    assert fragment in str(body["message"])
    assert world.server.stats.rejected_auth == 1


async def test_market_data_reads_need_no_key_but_a_bad_signature_still_fails(world: World) -> None:
    path = f"/trade-api/v2/markets/{world.nba}/orderbook"
    assert (await _raw(world, {}, path))[0] == 200
    a = world.alice
    bad = sign(a.key, a.key_id, "GET", "/trade-api/v2/markets")
    assert (await _raw(world, bad, path))[0] == 401
    assert (await _raw(world, {}, "/trade-api/v2/portfolio/orders"))[0] == 401


async def test_a_replayed_request_is_refused(world: World) -> None:
    a = world.alice
    headers = sign(a.key, a.key_id, "GET", "/trade-api/v2/portfolio/balance")
    assert (await _raw(world, headers))[0] == 200
    status, body = await _raw(world, headers)
    assert status == 401
    assert "replayed" in str(body["message"])


async def test_websocket_handshake_needs_a_signature(world: World) -> None:
    url = world.running.url + "/trade-api/ws/v2"
    async with world.session.get(url, headers={"Upgrade": "websocket"}) as r:
        assert r.status == 401
    a = world.alice
    bad = sign(a.key, a.key_id, "GET", "/trade-api/v2/portfolio/balance")
    with pytest.raises(Exception, match="401"):
        await world.session.ws_connect(url, headers=bad)
    ws = await a.ws()
    await ws.close()


# --------------------------------------------------------------------------- rate limits


async def test_a_read_burst_beyond_the_bucket_gets_429(world: World) -> None:
    # Basic read: 200 tokens/s, 400 capacity, 10 per call → about 40 calls, then 429.
    results = await asyncio.gather(*(world.alice.get("/exchange/status") for _ in range(60)))
    statuses = [s for s, _ in results]
    assert 38 <= statuses.count(200) <= 46
    refused = [b for s, b in results if s == 429]
    assert refused
    assert all(b == {"error": "too many requests"} for b in refused)
    # Buckets are per account: Bob is unaffected.
    assert (await world.bob.get("/exchange/status"))[0] == 200


async def test_a_batch_that_does_not_fit_is_refused_whole(world: World) -> None:
    # Basic write bucket holds 100 tokens = 10 creates; 11 must be refused, none applied.
    batch = {"orders": [order(world.nba, "bid", f"0.{10 + i}") for i in range(11)]}
    status, body = await world.alice.call("POST", "/portfolio/events/orders/batched", batch)
    assert (status, body) == (429, {"error": "too many requests"})
    assert not list(world.exchange.live_orders("alice"))
    batch["orders"] = batch["orders"][:10]
    status, body = await world.alice.call("POST", "/portfolio/events/orders/batched", batch)
    assert status == 201
    assert all(r["error"] is None for r in body["orders"])
    # The bucket is now empty: even a 2-token cancel waits for the refill.
    status, _ = await world.alice.call(
        "DELETE", f"/portfolio/events/orders/{body['orders'][0]['order_id']}"
    )
    assert status == 429
    await asyncio.sleep(0.05)
    status, _ = await world.alice.call(
        "DELETE", f"/portfolio/events/orders/{body['orders'][0]['order_id']}"
    )
    assert status == 200


# --------------------------------------------------------------------------- faults


async def test_rest_faults_fire_only_when_switched_on(world: World) -> None:
    a = world.alice
    for _ in range(20):
        assert (await a.get("/exchange/status"))[0] == 200
    assert not world.faults.counts
    world.faults.set(rest_5xx=1.0)
    status, body = await a.call("POST", "/portfolio/events/orders", order(world.nba, "bid", "0.40"))
    assert status == 503
    assert body["error"]["code"] == "service_unavailable"
    assert not list(world.exchange.live_orders("alice"))  # refused before it was applied
    world.faults.set(rest_5xx=0.0, burst_429=5.0)
    assert (await a.get("/exchange/status"))[0] == 429
    world.faults.set(burst_429=0.0, latency=0.2)
    started = time.monotonic()
    assert (await a.get("/exchange/status"))[0] == 200
    assert time.monotonic() - started >= 0.2
    counts = world.faults.counts
    assert (counts["rest_5xx"], counts["burst_429"], counts["latency"]) == (1, 1, 1)


async def test_cancel_faults_lie_or_do_nothing_as_switched(world: World) -> None:
    a, t = world.alice, world.nba
    ids = [
        (await a.call("POST", "/portfolio/events/orders", order(t, "bid", p)))[1]["order_id"]
        for p in ("0.30", "0.31")
    ]
    world.faults.set(cancel_not_applied=1)
    status, body = await a.call("DELETE", f"/portfolio/events/orders/{ids[0]}")
    assert (status, body["order_id"], body["reduced_by"]) == (200, ids[0], "10.00")
    assert world.exchange.account("alice").orders[ids[0]].live  # acknowledged, not applied
    world.faults.set(lying_cancel=1.0)
    status, body = await a.call("DELETE", f"/portfolio/events/orders/{ids[0]}")
    assert status == 200
    assert body["order_id"] != ids[0]
    assert not world.exchange.account("alice").orders[ids[0]].live  # … but the cancel happened
    assert (world.faults.counts["cancel_not_applied"], world.faults.counts["lying_cancel"]) == (
        1,
        1,
    )


async def test_admin_endpoint_switches_faults_and_refuses_bad_values(world: World) -> None:
    url = world.running.url + "/admin/faults"
    async with world.session.post(url, json={"rest_5xx": 0.5}) as r:
        assert r.status == 200
        assert (await r.json())["settings"]["rest_5xx"] == 0.5
    async with world.session.post(url, json={"rest_5xx": 2}) as r:
        assert r.status == 400
        assert "probability" in (await r.json())["message"]
    async with world.session.post(url, json={"bogus": 1}) as r:
        assert r.status == 400
        assert "unknown fault" in (await r.json())["message"]
    async with world.session.post(url, json={"latency": 10**400}) as r:
        assert r.status == 400
        assert "too large" in (await r.json())["message"]
    async with world.session.post(url, data="[" * 100_000 + "]" * 100_000) as r:
        assert r.status == 400
    assert world.faults.settings.rest_5xx == 0.5


async def test_servers_bind_loopback_only(world: World) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        await start_kalshi_server(world.server, host="0.0.0.0")


async def test_balance_is_exact_cents(world: World) -> None:
    await _trade(world, "0.45")
    _, body = await world.bob.get("/portfolio/balance")
    # Bob sold YES at 0.45 = bought NO at 0.55: 4 × 0.55 = 2.20, taker fee 0.07 × 4 × .2475 → 7¢.
    assert body["balance"] == 100000 - 220 - 7
    assert Decimal(body["balance_dollars"]) == Decimal("997.73")


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"count": "1e999990"}, "not a plain decimal number"),
        ({"count": "9" * 80}, "not a plain decimal number"),
        ({"count": "9" * 20}, "too large"),
        ({"count": 3}, "wrong type"),
        ({"price": "NaN"}, "not a plain decimal number"),
        ({"price": "0.45", "count": "١"}, "not a plain decimal number"),
        ({"expiration_time": 10**30}, "within 10 years"),
        ({"client_order_id": "x" * 1000}, "1 to 64 characters"),
        ({"ticker": {"a": [1, 2]}}, "wrong type"),
        ({"post_only": "yes"}, "wrong type"),
    ],
)
async def test_hostile_orders_get_a_clear_400_fast_and_change_nothing(
    world: World, change: dict[str, object], fragment: str
) -> None:
    started = time.monotonic()
    body = order(world.nba, "bid", "0.45") | change
    status, reply = await world.alice.call("POST", "/portfolio/events/orders", body)
    assert time.monotonic() - started < 5.0  # it used to stall the loop for a minute
    assert status == 400, reply
    assert fragment in reply["error"]["message"]
    assert not list(world.exchange.live_orders("alice"))
    # The server is still serving.
    assert (await world.alice.get("/portfolio/orders"))[0] == 200


async def test_a_hostile_batch_item_fails_alone(world: World) -> None:
    batch = {"orders": [order(world.nba, "bid", "0.30"), order(world.nba, "bid", "0.31", "1e99")]}
    status, body = await world.alice.call("POST", "/portfolio/events/orders/batched", batch)
    assert status == 201
    first, second = body["orders"]
    assert first["error"] is None
    assert second["error"]["code"] == "invalid_parameters"
    assert len(list(world.exchange.live_orders("alice"))) == 1


async def test_non_ascii_digits_in_the_timestamp_are_refused(world: World) -> None:
    a = world.alice
    headers = sign(a.key, a.key_id, "GET", "/trade-api/v2/portfolio/balance")
    headers["KALSHI-ACCESS-TIMESTAMP"] = "²" * 13
    status, body = await _raw(world, headers)
    assert status == 401
    assert "milliseconds" in str(body["message"])


async def test_group_limits_are_whole_contracts(world: World) -> None:
    create = "/portfolio/order_groups/create"
    for body in ({"contracts_limit_fp": "2.5"}, {"contracts_limit_fp": "1e5000"}, {}):
        assert (await world.alice.call("POST", create, body))[0] == 400
    status, body = await world.alice.call(
        "POST", create, {"contracts_limit": 5, "contracts_limit_fp": "6.00"}
    )
    assert (status, "disagree" in body["message"]) == (400, True)
    assert (await world.alice.call("POST", create, {"contracts_limit": 5}))[0] == 201


async def test_cancel_all_costs_one_cancel_however_many_rest(world: World) -> None:
    # Basic write bucket: 100 tokens. Sixty resting orders would cost 120 at 2 each; cancel-all
    # is billed as one cancel, as /account/endpoint_costs says, so it always gets through.
    ex = world.exchange
    for i in range(60):
        ex.create_order(
            "alice", ticker=world.nba, side="bid", price=f"0.{10 + i % 30:02d}", count="1", **GTC
        )
    _, costs = await world.alice.get("/account/endpoint_costs")
    listed = {(c["method"], c["path"]): c["cost"] for c in costs["endpoint_costs"]}
    assert listed[("DELETE", "/trade-api/v2/portfolio/events/orders")] == 2
    status, body = await world.alice.call("DELETE", "/portfolio/events/orders")
    assert status == 200
    assert len(body["orders"]) == 60


async def test_paging_fills_is_not_shifted_by_new_fills(world: World) -> None:
    ex, t = world.exchange, world.nba
    ioc = {"time_in_force": "immediate_or_cancel", "self_trade_prevention_type": "maker"}

    def one_fill() -> None:
        ex.create_order("bob", ticker=t, side="ask", price="0.50", count="1", **GTC)
        ex.create_order("alice", ticker=t, side="bid", price="0.50", count="1", **ioc)

    for _ in range(5):
        one_fill()
    _, first = await world.alice.get("/portfolio/fills", limit=2)
    one_fill()  # a new fill arrives between two pages, at the front of the list
    seen = [f["fill_id"] for f in first["fills"]]
    cursor = first["cursor"]
    while cursor:
        _, page = await world.alice.get("/portfolio/fills", limit=2, cursor=cursor)
        seen += [f["fill_id"] for f in page["fills"]]
        cursor = page["cursor"]
    assert len(seen) == len(set(seen)) == 5  # the five older fills, once each


async def test_queue_positions_count_the_contracts_ahead(world: World) -> None:
    t = world.nba
    world.exchange.create_order("bob", ticker=t, side="bid", price="0.40", count="7", **GTC)
    _, mine = await world.alice.call(
        "POST", "/portfolio/events/orders", order(t, "bid", "0.40", "3")
    )
    status, one = await world.alice.get(f"/portfolio/orders/{mine['order_id']}/queue_position")
    assert status == 200
    validate_rest(one, "GetOrderQueuePositionResponse")
    assert one["queue_position_fp"] == "7.00"
    status, many = await world.alice.get("/portfolio/orders/queue_positions", market_tickers=t)
    validate_rest(many, "GetOrderQueuePositionsResponse")
    assert [(q["order_id"], q["queue_position_fp"]) for q in many["queue_positions"]] == [
        (mine["order_id"], "7.00")
    ]
    assert (await world.alice.get("/portfolio/orders/queue_positions"))[0] == 400


async def test_batch_cancel_accepts_the_deprecated_ids_form(world: World) -> None:
    _, made = await world.alice.call(
        "POST", "/portfolio/events/orders", order(world.nba, "bid", "0.40")
    )
    status, body = await world.alice.call(
        "DELETE", "/portfolio/events/orders/batched", {"ids": [made["order_id"]]}
    )
    assert status == 200
    assert body["orders"][0]["reduced_by"] == "10.00"
