"""The REST client against the embedded exchange over loopback, checked against the exchange's
own state; and its parsers against the vendored OpenAPI spec and hostile payloads."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import yaml
from kalshikit import EPL, EPL_EVENT, NBA, NBA_EVENT, Venue, new_signer, start_venue
from speckit import SPECS, validate_rest

from kmm_interactive.domain import FeeType, Side
from kmm_interactive.kalshi.auth import SIGNATURE_HEADER
from kmm_interactive.kalshi.errors import AuthFailed, KalshiError
from kmm_interactive.kalshi.models import (
    PayloadError,
    loads,
    parse_account_limits,
    parse_balance,
    parse_event_position,
    parse_fill,
    parse_market,
    parse_market_position,
    parse_order,
    parse_series,
    parse_settlement,
    parse_trade,
)
from kmm_interactive.kalshi.rest import CreateStatus, KalshiRest, OrderRequest
from kmm_interactive.sim.exchange import cc_to_count

D = Decimal


@pytest.fixture
async def alice(venue: Venue) -> AsyncIterator[KalshiRest]:
    async with KalshiRest(venue.rest_url, venue.alice) as client:
        yield client


@pytest.fixture
async def bob(venue: Venue) -> AsyncIterator[KalshiRest]:
    async with KalshiRest(venue.rest_url, venue.bob) as client:
        yield client


def bid(price: str, count: str = "10", ticker: str = NBA, **extra: Any) -> OrderRequest:
    return OrderRequest(ticker, Side.BID, D(price), D(count), **extra)


def ask(price: str, count: str = "10", ticker: str = NBA, **extra: Any) -> OrderRequest:
    return OrderRequest(ticker, Side.ASK, D(price), D(count), **extra)


def live(venue: Venue, user: str) -> dict[str, Any]:
    """The user's resting orders by client_order_id, from the exchange itself."""
    return {o.client_order_id: o for o in venue.exchange.live_orders(user)}


# --------------------------------------------------------------------------- discovery


async def test_exchange_status_and_series_fees(venue: Venue, alice: KalshiRest) -> None:
    status = await alice.exchange_status()
    assert status.exchange_active
    assert status.trading_active
    listed = {s.ticker: s for s in await alice.series_list(category="Sports")}
    assert set(listed) == set(venue.exchange.series)
    for ticker, truth in venue.exchange.series.items():
        assert listed[ticker].fees == truth.fees
        assert (await alice.series(ticker)).fees == truth.fees
    assert listed["KXNBAGAME"].fees.fee_type is FeeType.QUADRATIC_WITH_MAKER_FEES


async def test_events_and_markets_page_through_without_loss_or_repeats(
    venue: Venue, alice: KalshiRest
) -> None:
    ex = venue.exchange
    before = venue.server.stats.requests
    events = await alice.events(with_nested_markets=True, page_size=1)
    assert venue.server.stats.requests - before == len(ex.events)  # one page per event
    assert [e.event_ticker for e in events] == list(ex.events)
    for e in events:
        assert [m.ticker for m in e.markets] == ex.events[e.event_ticker].markets
        assert e.mutually_exclusive

    before = venue.server.stats.requests
    markets = await alice.markets(page_size=2)
    assert venue.server.stats.requests - before == 3  # 5 markets in pages of 2
    assert [m.ticker for m in markets] == list(ex.markets)
    for m in markets:
        truth = ex.markets[m.ticker]
        assert m.grid == truth.grid
        assert m.event_ticker == truth.event_ticker
        assert m.yes_sub_title == truth.yes_sub_title
        assert m.status == "active"
        assert m.close_time.timestamp() == pytest.approx(truth.close_time, abs=0.001)
        assert m.yes_bid is None
        assert m.yes_ask is None

    epl = await alice.markets(series_ticker="KXEPLGAME", status="open", page_size=1)
    assert [m.ticker for m in epl] == [t for t in ex.markets if t.startswith("KXEPLGAME")]
    one = await alice.event(EPL_EVENT)
    assert [m.ticker for m in one.markets] == ex.events[EPL_EVENT].markets
    assert (await alice.market(NBA)).ticker == NBA


async def test_pagination_guard_refuses_to_truncate(alice: KalshiRest) -> None:
    seen = []

    async def walk() -> None:
        pages = alice.paginate("/markets", "markets", parse_market, page_size=1, max_pages=2)
        async for m in pages:
            seen.append(m.ticker)

    with pytest.raises(KalshiError, match="more than 2 pages") as info:
        await walk()
    assert info.value.code == "too_many_pages"
    assert len(seen) == 2


async def test_orderbook_equals_the_exchange_book(
    venue: Venue, alice: KalshiRest, bob: KalshiRest
) -> None:
    for price, count in (("0.40", "3"), ("0.41", "2.5"), ("0.41", "1")):
        assert (await alice.create_order(bid(price, count))).status is CreateStatus.CREATED
    for price, count in (("0.55", "4"), ("0.60", "7")):
        assert (await bob.create_order(ask(price, count))).status is CreateStatus.CREATED
    market = venue.exchange.markets[NBA]
    truth_bids = sorted((market.grid.price(t), cc_to_count(n)) for t, n in market.book.depth("bid"))
    truth_asks = sorted((market.grid.price(t), cc_to_count(n)) for t, n in market.book.depth("ask"))
    book = await alice.orderbook(NBA)
    assert sorted(book.bids) == truth_bids == [(D("0.40"), D(3)), (D("0.41"), D("3.5"))]
    assert sorted(book.asks) == truth_asks == [(D("0.55"), D(4)), (D("0.60"), D(7))]
    books = await alice.orderbooks([NBA, EPL])
    assert books[NBA] == book
    assert books[EPL].bids == ()
    assert books[EPL].asks == ()
    top = await alice.market(NBA)
    assert (top.yes_bid, top.yes_bid_size, top.yes_ask, top.yes_ask_size) == (
        D("0.41"),
        D("3.5"),
        D("0.55"),
        D(4),
    )


# --------------------------------------------------------------------------- orders


async def test_create_amend_decrease_cancel_round_trip(venue: Venue, alice: KalshiRest) -> None:
    created = await alice.create_order(bid("0.40", "10"))
    assert created.status is CreateStatus.CREATED, created.error
    assert created.fill_count == 0
    assert created.remaining_count == 10
    truth = live(venue, "alice")[created.client_order_id]
    assert truth.order_id == created.order_id
    assert truth.price == D("0.40")
    oid = created.order_id
    assert oid is not None

    amended = await alice.amend_order(oid, ticker=NBA, side=Side.BID, price=D("0.42"), count=D(12))
    assert amended.describes_request
    assert amended.reported is not None
    assert (truth.price, cc_to_count(truth.remaining)) == (D("0.42"), D(12))

    cut = await alice.decrease_order(oid, reduce_to=D(5))
    assert cut.reported is not None
    assert cut.reported.remaining_count == 5
    await alice.decrease_order(oid, reduce_by=D("1.5"))
    assert cc_to_count(truth.remaining) == D("3.5")

    fetched = await alice.order(oid)
    assert (fetched.price, fetched.remaining, fetched.side) == (D("0.42"), D("3.5"), Side.BID)
    assert fetched.client_order_id == created.client_order_id
    assert fetched.is_resting

    cancelled = await alice.cancel_order(oid, market_ticker=NBA)
    assert cancelled.describes_request
    assert cancelled.reported is not None
    assert cancelled.reported.reduced_by == D("3.5")
    assert truth.status == "canceled"
    again = await alice.cancel_order(oid)  # idempotent: nothing left to take off
    assert again.reported is not None
    assert again.reported.reduced_by == 0
    gone = await alice.cancel_order("no-such-order")
    assert gone.already_gone
    assert gone.reported is None
    assert [o.order_id for o in await alice.orders(ticker=NBA, status="canceled")] == [oid]


async def test_refusals_are_rejected_with_the_exchange_error(alice: KalshiRest) -> None:
    off_grid = await alice.create_order(bid("0.405"))
    assert off_grid.status is CreateStatus.REJECTED
    assert off_grid.error is not None
    assert isinstance(off_grid.error, KalshiError)
    assert (off_grid.error.status, off_grid.error.code) == (400, "invalid_price")
    first = await alice.create_order(bid("0.30", client_order_id="mine-1"))
    assert first.status is CreateStatus.CREATED
    assert first.client_order_id == "mine-1"
    reused = await alice.create_order(bid("0.31", client_order_id="mine-1"))
    assert reused.status is CreateStatus.REJECTED  # a first-try 409 is the caller's reuse
    assert isinstance(reused.error, KalshiError)
    assert reused.error.code == "order_already_exists"
    broke = await alice.create_order(bid("0.50", "100000"))
    assert broke.status is CreateStatus.REJECTED
    assert isinstance(broke.error, KalshiError)
    assert broke.error.code == "insufficient_balance"
    with pytest.raises(ValueError, match="strictly between"):
        await alice.create_order(bid("1.00"))
    with pytest.raises(KalshiError) as info:
        await alice.amend_order("nope", ticker=NBA, side=Side.BID, price=D("0.5"), count=D(1))
    assert info.value.status == 404


async def test_batch_create_batch_cancel_and_cancel_all(venue: Venue, alice: KalshiRest) -> None:
    prices = [f"0.{p:02d}" for p in range(10, 22)]  # 12 creates: more than one Basic batch
    requests = [bid(p, "1") for p in prices] + [bid("0.125", "1")]  # the last is off grid
    before = venue.server.stats.requests
    results = await alice.batch_create(requests)
    assert venue.server.stats.requests - before == 2  # 10 per batch fit a 100-token bucket
    assert [r.status for r in results] == [CreateStatus.CREATED] * 12 + [CreateStatus.REJECTED]
    assert isinstance(results[-1].error, KalshiError)
    assert results[-1].error.code == "invalid_price"
    resting = live(venue, "alice")
    assert set(resting) == {r.client_order_id for r in results[:12]}
    for r in results[:12]:
        assert resting[r.client_order_id].order_id == r.order_id

    targets = [(r.order_id, NBA) for r in results[:5] if r.order_id] + [("no-such-order", None)]
    changes = await alice.batch_cancel(targets)
    assert [c.order_id for c in changes] == [t[0] for t in targets]
    assert all(c.describes_request for c in changes[:5])
    assert changes[5].already_gone
    assert set(live(venue, "alice")) == {r.client_order_id for r in results[5:12]}

    acks = await alice.cancel_all()
    assert {a.order_id for a in acks} == {r.order_id for r in results[5:12]}
    assert live(venue, "alice") == {}


async def test_fills_positions_trades_balance_and_settlement(
    venue: Venue, alice: KalshiRest, bob: KalshiRest
) -> None:
    maker = await alice.create_order(bid("0.45", "10"))
    taker = await bob.create_order(ask("0.45", "4", time_in_force="immediate_or_cancel"))
    assert taker.status is CreateStatus.CREATED
    assert (taker.fill_count, taker.remaining_count, taker.average_fill_price) == (
        D(4),
        D(0),
        D("0.45"),
    )
    assert taker.average_fee_paid is not None
    assert taker.average_fee_paid > 0

    (alice_fill,) = await alice.fills(ticker=NBA)
    (bob_fill,) = await bob.fills()
    assert (alice_fill.side, alice_fill.price, alice_fill.count) == (Side.BID, D("0.45"), D(4))
    assert alice_fill.order_id == maker.order_id
    assert not alice_fill.is_taker
    assert (bob_fill.side, bob_fill.is_taker) == (Side.ASK, True)
    truth_fees = {f.fill_id: f.fee for f in venue.exchange.account("bob").fills}
    assert bob_fill.fee == truth_fees[bob_fill.fill_id]

    positions = await alice.positions()
    (mine,) = positions.markets
    assert (mine.ticker, mine.position) == (NBA, D(4))
    assert mine.last_updated is not None
    assert [e.event_ticker for e in positions.events] == [NBA_EVENT]
    (theirs,) = (await bob.positions(count_filter=["position"])).markets
    assert theirs.position == D(-4) == cc_to_count(venue.exchange.position("bob", NBA).position)

    (trade,) = await alice.trades(ticker=NBA)
    assert (trade.price, trade.count, trade.taker_side) == (D("0.45"), D(4), Side.ASK)
    assert maker.order_id is not None
    assert (await alice.queue_positions(market_tickers=[NBA])) == {maker.order_id: D(0)}
    balance = await alice.balance()
    assert balance.balance == venue.exchange.account("alice").available

    await alice.cancel_all()
    venue.exchange.determine(NBA, "yes")
    venue.exchange.settle(NBA)
    (won,) = await alice.settlements()
    (lost,) = await bob.settlements(ticker=NBA)
    assert (won.market_result, won.yes_count, won.revenue, won.value) == ("yes", D(4), D(4), D(1))
    assert (lost.no_count, lost.revenue) == (D(4), D(0))
    assert (await alice.positions()).markets == ()  # settled markets drop out
    assert (await alice.balance()).balance == venue.exchange.account("alice").available


async def test_order_groups(venue: Venue, alice: KalshiRest) -> None:
    gid = await alice.create_order_group(D(5))
    group = await alice.order_group(gid)
    assert (group.group_id, group.contracts_limit, group.auto_cancel_enabled) == (gid, D(5), True)
    created = await alice.create_order(bid("0.30", "2", order_group_id=gid))
    assert created.status is CreateStatus.CREATED
    assert (await alice.order_group(gid)).order_ids == (created.order_id,)
    await alice.set_order_group_limit(gid, D(7))
    assert (await alice.order_group(gid)).contracts_limit == D(7)
    await alice.trigger_order_group(gid)
    assert not (await alice.order_group(gid)).auto_cancel_enabled
    assert live(venue, "alice") == {}  # triggering cancelled the group's orders
    await alice.reset_order_group(gid)
    assert [g.group_id for g in await alice.order_groups()] == [gid]
    await alice.delete_order_group(gid)
    assert await alice.order_groups() == []
    with pytest.raises(KalshiError) as info:
        await alice.order_group(gid)
    assert info.value.status == 404
    with pytest.raises(ValueError, match="whole number"):
        await alice.create_order_group(D("2.5"))


async def test_account_limits_configure_the_buckets() -> None:
    venue = await start_venue(tier="advanced")
    try:
        async with KalshiRest(venue.rest_url, venue.alice) as client:
            limits = await client.configure_rate_limits()
            assert limits.usage_tier == "advanced"
            assert (limits.write.refill_rate, limits.write.capacity) == (300, 600)
            assert client.limiter.capacity("write") == 600
            assert client.limiter.cost("DELETE", "/portfolio/events/orders/abc") == 2
            assert client.limiter.cost("POST", "/portfolio/events/orders") == 10
            results = await client.batch_create([bid(f"0.{p}", "1") for p in range(10, 70)])
            assert all(r.status is CreateStatus.CREATED for r in results)  # 60 fit one batch
    finally:
        await venue.running.close()


async def test_unsigned_client_reads_market_data_only(venue: Venue) -> None:
    async with KalshiRest(venue.rest_url) as anonymous:
        assert len(await anonymous.markets()) == len(venue.exchange.markets)
        with pytest.raises(AuthFailed) as info:
            await anonymous.balance()
        assert info.value.status == 401
        assert not info.value.is_transient


async def test_keys_never_leak(venue: Venue, caplog: pytest.LogCaptureFixture) -> None:
    """No signature, key id beyond its prefix, or key text in reprs, errors or DEBUG logs."""
    sent: list[str] = []

    class Recording(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(request.headers[SIGNATURE_HEADER])
            return await super().handle_async_request(request)

    caplog.set_level(logging.DEBUG)
    stranger = new_signer("key-stranger-0123456789")
    texts = []
    for signer in (venue.alice, stranger):
        async with KalshiRest(venue.rest_url, signer, transport=Recording()) as client:
            texts.append(repr(client))
            try:
                await client.create_order(bid("0.30"))
                await client.balance()
            except KalshiError as exc:
                texts += [str(exc), repr(exc)]
    assert len(sent) >= 3
    assert any("unauthorized" in t for t in texts)
    everything = caplog.text + "\n".join(texts)
    assert any(r.name == "kmm_interactive.kalshi.rest" for r in caplog.records)  # it logged
    for signature in sent:
        assert signature not in everything
    assert "PRIVATE KEY" not in everything
    assert "key-stranger-0123456789" not in everything
    assert SIGNATURE_HEADER not in everything


def test_base_urls() -> None:
    assert KalshiRest("demo").base_url.endswith("demo.kalshi.co/trade-api/v2")
    assert KalshiRest("prod").base_url == "https://external-api.kalshi.com/trade-api/v2"
    with pytest.raises(ValueError, match="demo"):
        KalshiRest("staging")
    with pytest.raises(ValueError, match="trade-api"):
        KalshiRest("http://127.0.0.1:1/")


# --------------------------------------------------------------------------- the spec's examples


@functools.cache
def _spec() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SPECS / "kalshi-openapi-3.13.0.yaml").read_text())
    return doc["components"]["schemas"]


def example(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """An instance of a spec schema built from the spec's ``example`` values (the fixed-point
    dollars "0.5600" and count "10.00", Settlement's fee "0.3400"), with plain defaults for
    the fields that have none; checked against the spec before it is used."""
    schemas = _spec()

    def build(node: dict[str, Any]) -> Any:
        if "$ref" in node:
            target = schemas[node["$ref"].rsplit("/", 1)[-1]]
            return node.get("example", build(target))
        if "example" in node:
            return node["example"]
        if "enum" in node:
            return node["enum"][0]
        kind = node.get("type")
        if kind == "string":
            return "2026-11-21T12:00:00Z" if node.get("format") == "date-time" else "X-1"
        if kind in ("integer", "number"):
            return 1
        if kind == "boolean":
            return False
        if kind == "array":
            return []
        return {}

    schema = schemas[name]
    out = {p: build(schema["properties"][p]) for p in schema.get("required", [])}
    out.update(overrides or {})
    validate_rest(out, name)
    return out


LINEAR_CENT = [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}]


def test_spec_examples_parse() -> None:
    market = parse_market(example("Market", {"price_ranges": LINEAR_CENT, "status": "active"}))
    assert (market.yes_bid, market.volume, market.grid.levels[0]) == (D("0.56"), D(10), D("0.01"))
    order = parse_order(example("Order", {"side": "no", "action": "buy"}))
    assert (order.side, order.price, order.remaining, order.fees) == (
        Side.ASK,
        D("0.56"),
        D(10),
        D("1.12"),
    )
    # created_time is optional in 3.13 but always sent; parse_fill needs it (or ts_ms).
    fill = parse_fill(
        example(
            "Fill",
            {
                "side": "yes",
                "action": "buy",
                "is_taker": True,
                "created_time": "2026-11-21T12:00:00Z",
            },
        )
    )
    assert (fill.side, fill.count, fill.fee) == (Side.BID, D(10), D("0.56"))
    position = parse_market_position(example("MarketPosition"))
    assert (position.position, position.exposure) == (D(10), D("0.56"))
    assert parse_event_position(example("EventPosition")).total_cost == D("0.56")
    settlement = parse_settlement(example("Settlement", {"revenue": 1234}))
    assert (settlement.revenue, settlement.fee_cost) == (D("12.34"), D("0.34"))
    trade = parse_trade(example("Trade", {"taker_side": "no"}))
    assert (trade.taker_side, trade.price) == (Side.ASK, D("0.56"))
    series = parse_series(example("Series", {"fee_type": "quadratic", "fee_multiplier": D("0.5")}))
    assert series.fees.multiplier == D("0.5")
    balance = parse_balance(example("GetBalanceResponse", {"balance": 12345}))
    assert balance.balance == D("123.45")
    old = parse_account_limits(example("GetAccountApiLimitsResponse", {"read_limit": 20}))
    assert (old.read.refill_rate, old.read.capacity) == (20, 20)


# --------------------------------------------------------------------------- hostile payloads


GOOD_MARKET = example("Market", {"price_ranges": LINEAR_CENT, "status": "active"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"yes_bid_dollars": "NaN"}, "yes_bid_dollars"),
        ({"yes_bid_dollars": "Infinity"}, "yes_bid_dollars"),
        ({"volume_fp": "1e999999"}, "volume_fp"),
        ({"volume_fp": "9" * 40}, "volume_fp"),
        ({"volume_fp": 1.5}, "volume_fp"),  # a float lost exactness before it got here
        ({"yes_bid_size_fp": "-3.00"}, "negative"),
        ({"ticker": 7}, "ticker"),
        ({"close_time": "yesterday"}, "close_time"),
        ({"price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0"}]}, "step"),
        ({"price_ranges": "linear_cent"}, "price_ranges"),
        ({"open_time": None}, "missing open_time"),
    ],
)
def test_hostile_market_payloads_raise_payload_error(change: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_market({**GOOD_MARKET, **change})


@pytest.mark.parametrize(
    ("parse", "payload", "message"),
    [
        (parse_settlement, {**example("Settlement"), "revenue": "12.5"}, "revenue"),
        (parse_settlement, {**example("Settlement"), "revenue": True}, "revenue"),
        (parse_balance, {"balance": 10**30, "portfolio_value": 0}, "balance"),
        (parse_market_position, {**example("MarketPosition"), "position_fp": "1.001"}, "decimals"),
        (parse_account_limits, {"read": {"refill_rate": -1, "bucket_capacity": 5}}, "positive"),
        (parse_series, {**example("Series"), "fee_type": "percent"}, "fee_type"),
        (parse_trade, {**example("Trade"), "taker_side": "maybe"}, "taker"),
    ],
)
def test_hostile_payloads_raise_payload_error(parse: Any, payload: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse(payload)


def test_json_numbers_stay_exact() -> None:
    data = loads(b'{"balance_dollars": 0.1, "balance": 10, "portfolio_value": 30}')
    assert parse_balance(data).balance == D("0.1")  # not 0.1000000000000000055…
