"""WS frame parsing: every AsyncAPI example of the channels we use, both NO-price conventions,
exact numbers, hostile frames, fuzzing, and a cross-check against what the simulator prints."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from speckit import SPECS

from kmm_interactive.domain import Side
from kmm_interactive.kalshi.messages import (
    MAX_FRAME_CHARS,
    BookDelta,
    BookSnapshot,
    ErrorMsg,
    EventFeeUpdateMsg,
    EventLifecycleMsg,
    FillMsg,
    LifecycleMsg,
    Message,
    Ok,
    PositionMsg,
    Subscribed,
    TickerMsg,
    TradeMsg,
    UnknownMsg,
    Unsubscribed,
    UserOrderMsg,
    parse_frame,
)
from kmm_interactive.kalshi.models import PayloadError
from kmm_interactive.sim import wire
from kmm_interactive.sim.agents import Simulation
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.exchange import (
    BookChange,
    Exchange,
    ExchangeEvent,
    FillEvent,
    LifecycleEvent,
    OrderEvent,
    PositionEvent,
    TradeEvent,
    cc_to_count,
)
from kmm_interactive.sim.scenario import build_scenario

D = Decimal
T0 = 1_750_000_000.0


_NUMBER = re.compile(r'"@@number (-?[0-9.Ee+]+)@@"')


def dumps(frame: Any) -> str:
    """JSON text; a ``Decimal`` is written as a bare JSON number ("0.56" becomes 0.56)."""

    def number(value: object) -> str:
        if isinstance(value, Decimal):
            return f"@@number {value}@@"
        raise TypeError(type(value).__name__)

    return _NUMBER.sub(r"\1", json.dumps(frame, separators=(",", ":"), default=number))


def parse(frame: Any, *, yes_prices: bool = False) -> Message:
    return parse_frame(dumps(frame), yes_prices=yes_prices)


def at(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, UTC)


# --------------------------------------------------------------------------- the spec's examples


@cache
def spec_examples() -> dict[str, list[dict[str, Any]]]:
    """Example payloads by ``components.messages`` name, from the vendored AsyncAPI."""
    doc = yaml.safe_load((SPECS / "kalshi-asyncapi.yaml").read_text())
    return {
        name: [e["payload"] for e in message.get("examples", [])]
        for name, message in doc["components"]["messages"].items()
    }


def only_example(name: str, index: int = 0) -> Any:
    return parse_frame(dumps(spec_examples()[name][index]), yes_prices=False)


#: What each example of a channel we use must parse to: (message name, index) -> check.
EXPECTED: dict[tuple[str, int], Message] = {
    ("subscribedResponse", 0): Subscribed(1, "orderbook_delta", 1),
    ("unsubscribedResponse", 0): Unsubscribed(102, 2, 7),
    ("okResponse", 0): Ok(123, 456, 222, ("MARKET-1", "MARKET-2", "MARKET-3")),
    ("listSubscriptionsResponse", 0): Ok(
        3, None, None, None, (("orderbook_delta", 1), ("ticker", 2), ("fill", 3))
    ),
    ("errorResponse", 0): ErrorMsg(123, 7, "Unknown subscription ID", None),
    ("errorResponse", 1): ErrorMsg(124, 8, "Unknown channel name", None),
    ("errorResponse", 2): ErrorMsg(125, 2, "Params required", None),
    ("errorResponse", 3): ErrorMsg(126, 9, "Authentication required", None),
    ("errorResponse", 4): ErrorMsg(127, 14, "Market Ticker required", None),
    ("orderbookDelta", 0): BookDelta(
        2, 3, "FED-23DEC-T3.00", Side.BID, D("0.96"), D("-54"), at(1669149841000)
    ),
    ("trade", 0): TradeMsg(
        11,
        2,
        "d91bc706-ee49-470d-82d8-11418bda6fed",
        "HIGHNY-22DEC23-B53.5",
        D("0.36"),
        D(136),
        Side.ASK,
        at(1669149841000),
    ),
    ("ticker", 0): TickerMsg(
        11,
        "FED-23DEC-T3.00",
        D("0.45"),
        D("0.53"),
        at(1669149841000),
        yes_bid_size=D(300),
        yes_ask_size=D(150),
        last_price=D("0.48"),
        volume=D(33896),
        open_interest=D(20422),
    ),
    ("marketPosition", 0): PositionMsg(
        14, "FED-23DEC-T3.00", D(100), D(50), D(10), D(1), volume=D(15)
    ),
    ("eventLifecycle", 0): EventLifecycleMsg(
        5,
        8,
        "KXQUICKSETTLE-26JAN25H2150",
        "KXQUICKSETTLE",
        "What will 1+1 equal on Jan 25 at 21:50?",
    ),
    ("eventFeeUpdate", 0): EventFeeUpdateMsg(5, 9, "KXBTCD-26MAY2018", "quadratic", D(1)),
    ("eventFeeUpdate", 1): EventFeeUpdateMsg(5, 10, "KXBTCD-26MAY2018", None, None),
}


@pytest.mark.parametrize(("name", "index"), sorted(EXPECTED))
def test_spec_example_parses_to_the_expected_event(name: str, index: int) -> None:
    assert only_example(name, index) == EXPECTED[(name, index)]


#: The AsyncAPI messages of the channels we subscribe to, and the command replies.
OUR_MESSAGES = (
    "subscribedResponse", "unsubscribedResponse", "okResponse", "listSubscriptionsResponse",
    "errorResponse", "orderbookSnapshot", "orderbookDelta", "ticker", "trade", "fill",
    "marketLifecycleV2", "marketMetadataUpdated", "eventLifecycle", "eventFeeUpdate",
    "marketPosition", "userOrder",
)  # fmt: skip
#: Messages whose examples are checked field by field in their own tests below.
OWN_TESTS = ("orderbookSnapshot", "fill", "userOrder", "marketLifecycleV2", "marketMetadataUpdated")


def test_every_spec_example_of_our_channels_is_covered() -> None:
    """Fails when the vendored spec gains an example that nothing here checks."""
    examples = spec_examples()
    table = {
        (name, i)
        for name in OUR_MESSAGES
        if name not in OWN_TESTS
        for i in range(len(examples[name]))
    }
    assert table == set(EXPECTED)
    for name in OUR_MESSAGES:
        for payload in examples[name]:
            event = parse_frame(dumps(payload), yes_prices=False)
            assert not isinstance(event, UnknownMsg), name
            body = payload.get("msg")
            inner = body.get("sid") if isinstance(body, dict) else None
            assert event.sid == payload.get("sid", inner)
            assert event.seq == payload.get("seq")


@pytest.mark.parametrize(
    ("yes_prices", "asks"),
    [
        (False, ((D("0.46"), D(20)), (D("0.44"), D(146)))),  # NO-leg 0.54 is a YES ask at 0.46
        (True, ((D("0.54"), D(20)), (D("0.56"), D(146)))),
    ],
)
def test_spec_snapshot_in_both_price_conventions(
    yes_prices: bool, asks: tuple[tuple[Decimal, Decimal], ...]
) -> None:
    event = parse_frame(dumps(spec_examples()["orderbookSnapshot"][0]), yes_prices=yes_prices)
    assert isinstance(event, BookSnapshot)
    assert (event.sid, event.seq, event.ticker, event.id, event.ts) == (
        2,
        2,
        "FED-23DEC-T3.00",
        None,
        None,
    )
    assert event.book.bids == ((D("0.08"), D(300)), (D("0.22"), D(333)))
    assert event.book.asks == asks


def test_spec_fill_and_user_order() -> None:
    fill = only_example("fill")
    assert isinstance(fill, FillMsg)
    assert (fill.sid, fill.seq, fill.ticker, fill.post_position) == (
        13,
        None,
        "HIGHNY-22DEC23-B53.5",
        D(500),
    )
    f = fill.fill
    assert (f.fill_id, f.order_id, f.client_order_id) == (
        "d91bc706-ee49-470d-82d8-11418bda6fed",
        "ee587a1c-8b87-4dcf-b721-9f6f790619fa",
        "my-order-1",
    )
    assert (f.side, f.price, f.count, f.fee, f.is_taker) == (
        Side.BID,
        D("0.75"),
        D(278),
        D("0.01"),
        True,
    )
    assert fill.ts == f.ts == at(1671899397000)

    order = only_example("userOrder")
    assert isinstance(order, UserOrderMsg)
    o = order.order
    assert (order.sid, order.seq, order.ticker) == (22, None, "FED-23DEC-T3.00")
    assert (o.order_id, o.client_order_id, o.side, o.price, o.status) == (
        "ee587a1c-8b87-4dcf-b721-9f6f790619fa",
        "my-order-1",
        Side.BID,
        D("0.35"),
        "resting",
    )
    assert (o.filled, o.remaining, o.initial, o.order_group_id) == (D(0), D(10), D(10), "og_123")
    assert order.ts == at(1733047200000)  # no last_updated_ts_ms yet: created_ts_ms


def test_spec_lifecycle_examples() -> None:
    created = only_example("marketLifecycleV2", 0)
    assert isinstance(created, LifecycleMsg)
    assert (created.sid, created.seq, created.ticker, created.event_type) == (
        13,
        3,
        "INXD-23SEP14-B4487",
        "created",
    )
    assert created.open_ts == datetime.fromtimestamp(1694635200, UTC)
    assert created.close_ts == datetime.fromtimestamp(1694721600, UTC)
    assert (created.price_level_structure, created.event_ticker) == ("linear_cent", "INXD-23SEP14")
    assert created.ts is None

    restructured = only_example("marketLifecycleV2", 1)
    assert isinstance(restructured, LifecycleMsg)
    assert restructured.event_type == "price_level_structure_updated"
    assert restructured.price_ranges is not None
    assert restructured.price_ranges.levels[:2] == (D("0.001"), D("0.002"))

    for index in (0, 1):
        meta = only_example("marketMetadataUpdated", index)
        assert isinstance(meta, LifecycleMsg)
        assert (meta.event_type, meta.seq) == ("metadata_updated", 5 + index)


def test_channels_we_do_not_parse_are_unknown_with_sid_and_seq() -> None:
    event = only_example("orderGroupUpdates")
    assert event == UnknownMsg("order_group_updates", 21, 7)
    assert parse({"type": "something_new"}) == UnknownMsg("something_new", None, None)
    # A malformed sid on an unknown type is not our business: it just is not reported.
    assert parse({"type": "x", "sid": "3", "seq": -1}) == UnknownMsg("x", None, None)


# --------------------------------------------------------------------------- conventions


def delta_frame(**msg: Any) -> dict[str, Any]:
    body = {
        "market_ticker": "KX-T",
        "market_id": "m-1",
        "price_dollars": "0.3000",
        "delta_fp": "5.00",
        "side": "no",
        "ts_ms": 1_750_000_000_123,
        **msg,
    }
    return {"type": "orderbook_delta", "sid": 4, "seq": 9, "msg": body}


@pytest.mark.parametrize(
    ("side", "yes_prices", "book_side", "yes_price"),
    [
        ("yes", False, Side.BID, D("0.3")),
        ("yes", True, Side.BID, D("0.3")),
        ("no", False, Side.ASK, D("0.7")),  # NO bid at 0.30 = YES ask at 0.70
        ("no", True, Side.ASK, D("0.3")),  # already a YES price
    ],
)
def test_delta_price_conventions(
    side: str, yes_prices: bool, book_side: Side, yes_price: Decimal
) -> None:
    for _ in range(2):  # the second parse takes the cached fast path: same answer
        event = parse(delta_frame(side=side), yes_prices=yes_prices)
        assert isinstance(event, BookDelta)
        assert (event.side, event.price, event.delta) == (book_side, yes_price, D(5))
        assert event.ts == datetime(2025, 6, 15, 15, 6, 40, 123000, tzinfo=UTC)


def test_json_numbers_parse_exactly() -> None:
    event = parse(delta_frame(price_dollars=D("0.56"), delta_fp=-54, side="yes"))
    assert isinstance(event, BookDelta)
    assert (event.price, event.delta) == (D("0.56"), D(-54))
    assert str(event.price) == "0.56"  # not 0.5600000000000000532907051820075...
    text = dumps(delta_frame()).replace('"0.3000"', "0.1").replace('"5.00"', "2.25")
    event = parse_frame(text, yes_prices=True)
    assert isinstance(event, BookDelta)
    assert (event.price, event.delta) == (D("0.1"), D("2.25"))
    snapshot = (
        '{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"market_ticker":"T",'
        '"market_id":"m","yes_dollars_fp":[[0.08,300],[0.22,"1.5"]]}}'
    )
    book = parse_frame(snapshot, yes_prices=False)
    assert isinstance(book, BookSnapshot)
    assert book.book.bids == ((D("0.08"), D(300)), (D("0.22"), D("1.5")))
    assert book.book.asks == ()


def test_delta_details() -> None:
    mine = parse(delta_frame(client_order_id="c-1"))
    assert isinstance(mine, BookDelta)
    assert mine.client_order_id == "c-1"
    old = parse({**delta_frame(ts_ms=None, ts="2022-11-22T20:44:01Z")})
    assert isinstance(old, BookDelta)
    assert old.ts == datetime(2022, 11, 22, 20, 44, 1, tzinfo=UTC)
    bare = parse(delta_frame(ts_ms=None))
    assert isinstance(bare, BookDelta)
    assert bare.ts is None
    fractional = parse(delta_frame(delta_fp="-0.01"))
    assert isinstance(fractional, BookDelta)
    assert fractional.delta == D("-0.01")


def test_snapshot_reply_to_get_snapshot_carries_the_command_id() -> None:
    frame = {"type": "orderbook_snapshot", "id": 12, "sid": 3, "seq": 40, "msg": {}}
    frame["msg"] = {"market_ticker": "T", "market_id": "m"}  # both sides empty
    event = parse(frame)
    assert isinstance(event, BookSnapshot)
    assert (event.id, event.book.bids, event.book.asks) == (12, (), ())


def test_ticker_empty_sides_and_no_trade_are_none() -> None:
    msg = {
        "market_ticker": "T",
        "market_id": "m",
        "price_dollars": "0.0000",
        "yes_bid_dollars": "0.0000",
        "yes_ask_dollars": "1.0000",
        "ts_ms": 1_750_000_000_000,
    }
    event = parse({"type": "ticker", "sid": 2, "msg": msg})
    assert isinstance(event, TickerMsg)
    assert (event.yes_bid, event.yes_ask, event.last_price, event.seq) == (None, None, None, None)


def test_trade_taker_side_from_legacy_fields() -> None:
    msg = {
        "trade_id": "t",
        "market_ticker": "T",
        "yes_price_dollars": "0.4",
        "count_fp": "1.00",
        "taker_side": "yes",
        "ts": 1_750_000_000,
    }
    event = parse({"type": "trade", "sid": 1, "seq": 1, "msg": msg})
    assert isinstance(event, TradeMsg)
    assert (event.taker_side, event.ts) == (Side.BID, datetime.fromtimestamp(1_750_000_000, UTC))
    del msg["taker_side"]
    event = parse({"type": "trade", "sid": 1, "seq": 2, "msg": msg})
    assert isinstance(event, TradeMsg)
    assert event.taker_side is None


def test_error_with_subscription_scope_and_zero_id() -> None:
    frame = {"type": "error", "id": 0, "sid": 5, "seq": 77, "msg": {"code": 25, "msg": "x"}}
    assert parse(frame) == ErrorMsg(None, 25, "x", 5, 77)


# --------------------------------------------------------------------------- hostile frames


def snapshot_frame(**msg: Any) -> dict[str, Any]:
    body = {"market_ticker": "T", "market_id": "m", **msg}
    return {"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": body}


GOOD_DELTA = dumps(delta_frame())

HOSTILE: list[tuple[str, str | bytes, str]] = [
    ("truncated", GOOD_DELTA[:40], "frame: not valid JSON"),
    ("empty", "", "frame: not valid JSON"),
    ("bad utf-8", b'{"type":"\xff"}', "frame: not valid JSON"),
    ("list", "[1, 2]", "expected a JSON object, got list"),
    ("string", '"orderbook_delta"', "expected a JSON object, got str"),
    ("null", "null", "expected a JSON object, got NoneType"),
    ("no type", '{"sid": 1}', "frame: type must be a string, got NoneType"),
    ("type not text", '{"type": ["ok"]}', "frame: type must be a string, got list"),
    ("NaN literal", GOOD_DELTA.replace('"sid":4', '"sid":NaN'), "NaN is not a number JSON"),
    ("Infinity literal", GOOD_DELTA.replace('"0.3000"', "Infinity"), "Infinity is not a number"),
    ("deep nesting", "[" * 200_000, "frame: not valid JSON"),
    ("huge integer", GOOD_DELTA.replace('"seq":9', '"seq":' + "9" * 5000), "not valid JSON"),
    ("oversized", " " * (MAX_FRAME_CHARS + 1), "more than"),
]


def _delta_with(**msg: Any) -> str:
    return dumps(delta_frame(**msg))


def _frame_with(**envelope: Any) -> str:
    return dumps({**delta_frame(), **envelope})


HOSTILE += [
    ("price NaN", _delta_with(price_dollars="NaN"), "price_dollars = 'NaN' is not a plain"),
    ("price Infinity", _delta_with(price_dollars="Infinity"), "is not a plain decimal"),
    ("price 1e999999 text", _delta_with(price_dollars="1e999999"), "is not a plain decimal"),
    ("price 1e999999 number", GOOD_DELTA.replace('"0.3000"', "1e999999"), "too large"),
    ("price zero", _delta_with(price_dollars="0.0000"), "strictly between 0 and 1"),
    ("price one", _delta_with(price_dollars="1.0000"), "strictly between 0 and 1"),
    ("price negative", _delta_with(price_dollars="-0.5"), "strictly between 0 and 1"),
    ("price 7 decimals", _delta_with(price_dollars="0.1234567"), "more than 6 decimals"),
    ("price bool", _delta_with(price_dollars=True), "price_dollars must be a string"),
    ("price list", _delta_with(price_dollars=["0.5"]), "price_dollars must be a string"),
    ("delta 3 decimals", _delta_with(delta_fp="1.234"), "delta_fp = '1.234' has more than 2"),
    ("delta text", _delta_with(delta_fp="five"), "delta_fp = 'five' is not a plain"),
    ("side", _delta_with(side="bid"), "orderbook_delta.msg.side = 'bid' (allowed: yes, no)"),
    ("side missing", _delta_with(side=None), "orderbook_delta.msg.side = 'None'"),
    ("price missing", _delta_with(price_dollars=None), "orderbook_delta.msg: missing price"),
    ("ticker type", _delta_with(market_ticker=7), "market_ticker must be a string, not int"),
    ("ts_ms text", _delta_with(ts_ms="soon"), "orderbook_delta.msg.ts_ms = 'soon'"),
    ("ts_ms huge", _delta_with(ts_ms=10**17), "is not a representable time"),
    ("msg missing", _frame_with(msg=None), "orderbook_delta.msg: expected a JSON object"),
    ("msg list", _frame_with(msg=[]), "orderbook_delta.msg: expected a JSON object, got list"),
    ("sid text", _frame_with(sid="4"), "orderbook_delta.sid must be an integer >= 1"),
    ("sid bool", _frame_with(sid=True), "orderbook_delta.sid must be an integer >= 1"),
    ("sid missing", _frame_with(sid=None), "orderbook_delta: missing sid"),
    ("seq zero", _frame_with(seq=0), "orderbook_delta.seq must be an integer >= 1"),
    ("seq fraction", _frame_with(seq=D("1.5")), "orderbook_delta.seq must be an integer"),
    (
        "negative size",
        dumps(snapshot_frame(yes_dollars_fp=[["0.40", "-1.00"]])),
        "orderbook_snapshot.msg.yes_dollars_fp[0] = '-1.00' must not be negative",
    ),
    (
        "snapshot price 0",
        dumps(snapshot_frame(no_dollars_fp=[["0", "1.00"]])),
        "no_dollars_fp[0] price = 0 must lie strictly between 0 and 1",
    ),
    (
        "snapshot side not a list",
        dumps(snapshot_frame(yes_dollars_fp={})),
        "yes_dollars_fp: expected a JSON array, got dict",
    ),
    (
        "snapshot level shape",
        dumps(snapshot_frame(yes_dollars_fp=[["0.40", "1.00", "x"]])),
        "yes_dollars_fp[0]: a level is [price, count]",
    ),
    (
        "snapshot repeated price",
        dumps(snapshot_frame(no_dollars_fp=[["0.40", "1.00"], ["0.4000", "2.00"]])),
        "no_dollars_fp: the same price appears twice",
    ),
    ("snapshot no ticker", dumps(snapshot_frame(market_ticker=None)), "missing market_ticker"),
    (
        "error code text",
        dumps({"type": "error", "msg": {"code": "7", "msg": "x"}}),
        "error.msg.code must be an integer",
    ),
    (
        "subscribed without sid",
        dumps({"type": "subscribed", "id": 1, "msg": {"channel": "fill"}}),
        "subscribed.msg: missing sid",
    ),
    ("ok bad list", dumps({"type": "ok", "id": 3, "msg": [{"sid": 1}]}), "ok.msg[0]: missing"),
    ("ok bad tickers", dumps({"type": "ok", "msg": {"market_tickers": [1]}}), "tickers[0]"),
    ("command id negative", dumps({"type": "ok", "id": -1}), "ok.id must be an integer >= 0"),
    (
        "fill of nothing",
        dumps(
            {
                "type": "fill",
                "sid": 1,
                "msg": {
                    "trade_id": "t",
                    "order_id": "o",
                    "market_ticker": "T",
                    "book_side": "bid",
                    "yes_price_dollars": "0.5",
                    "count_fp": "0.00",
                    "is_taker": False,
                    "ts_ms": 1,
                },
            }
        ),
        "count 0.00 must be positive",
    ),
    (
        "ticker bid above 1",
        dumps(
            {
                "type": "ticker",
                "sid": 1,
                "msg": {"market_ticker": "T", "yes_bid_dollars": "1.5", "yes_ask_dollars": "1"},
            }
        ),
        "ticker.msg.yes_bid_dollars = 1.5 must lie between 0 and 1",
    ),
    (
        "lifecycle bad grid",
        dumps(
            {
                "type": "market_lifecycle_v2",
                "sid": 1,
                "seq": 1,
                "msg": {
                    "market_ticker": "T",
                    "event_type": "price_level_structure_updated",
                    "price_ranges": [{"start": "0", "end": "1", "step": "0.3"}],
                },
            }
        ),
        "price_ranges: price_ranges[0]: step 0.3 does not divide",
    ),
    (
        "position text",
        dumps({"type": "market_position", "sid": 1, "msg": {"market_ticker": "T"}}),
        "market_position.msg: missing position_fp",
    ),
]


@pytest.mark.parametrize(
    ("frame", "message"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_frames_raise_a_payload_error_that_says_what(
    frame: str | bytes, message: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_frame(frame, yes_prices=False)
    assert message in str(caught.value)
    assert "parser bug" not in str(caught.value)


def test_a_hostile_delta_does_not_poison_the_fast_path() -> None:
    """Only whole valid frames feed the caches; a bad one next to a cached price still fails."""
    parse_frame(GOOD_DELTA, yes_prices=False)
    with pytest.raises(PayloadError, match="delta_fp"):
        parse_frame(_delta_with(delta_fp="1.234"), yes_prices=False)
    with pytest.raises(PayloadError, match="sid"):
        parse_frame(_frame_with(sid=0), yes_prices=False)
    with pytest.raises(PayloadError, match="side"):
        parse_frame(_delta_with(side="maybe"), yes_prices=False)
    with pytest.raises(PayloadError, match="client_order_id"):
        parse_frame(_delta_with(client_order_id=5), yes_prices=False)


# --------------------------------------------------------------------------- fuzz


def _expect_only_payload_errors(text: str | bytes, yes_prices: bool) -> None:
    try:
        event = parse_frame(text, yes_prices=yes_prices)
    except PayloadError as exc:
        problem = str(exc)
    else:
        assert event.sid is None or (isinstance(event.sid, int) and event.sid >= 1)
        return
    assert "parser bug" not in problem, problem  # a check missing in the parser


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["NaN", "Infinity", "-0", "1e999999", "0.5", "0.5000", "-3.00", "yes", "no", "bid", ""]
    )
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)

SAMPLE_FRAMES = [
    payload
    for name in ("orderbookDelta", *OUR_MESSAGES)  # the hot path twice as often
    for payload in spec_examples()[name]
]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200), st.booleans())
def test_fuzz_random_text(text: str | bytes, yes_prices: bool) -> None:
    _expect_only_payload_errors(text, yes_prices)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLE_FRAMES), st.data())
def test_fuzz_truncated_frames(payload: dict[str, Any], data: st.DataObject) -> None:
    text = dumps(payload)
    cut = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    with pytest.raises(PayloadError):
        parse_frame(text[:cut], yes_prices=False)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(SAMPLE_FRAMES), st.data(), st.booleans())
def test_fuzz_mutated_fields(payload: dict[str, Any], data: st.DataObject, yes: bool) -> None:
    """Any field of a real frame replaced by any JSON value, or dropped: a Message or a
    PayloadError, nothing else."""
    frame = json.loads(dumps(payload))
    targets: list[tuple[dict[str, Any], str]] = [(frame, k) for k in frame]
    if isinstance(frame.get("msg"), dict):
        targets += [(frame["msg"], k) for k in frame["msg"]]
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        where, key = data.draw(st.sampled_from(targets))
        if data.draw(st.booleans()):
            where.pop(key, None)
        else:
            where[key] = data.draw(JSON_VALUES)
    _expect_only_payload_errors(dumps(frame), yes)


# --------------------------------------------------------------------------- against the simulator


class Renderer:
    """Frames as sim/ws.py would send them for every exchange event: one sid per channel,
    a seq on the sequenced ones; each paired with a check of what we must read back."""

    SEQUENCED = frozenset({"orderbook_delta", "trade", "market_lifecycle_v2"})

    def __init__(self, ex: Exchange, *, use_yes_price: bool) -> None:
        self.ex, self.use_yes_price = ex, use_yes_price
        self.sids: dict[str, int] = {}
        self.seqs: dict[str, int] = {}
        self.frames: list[tuple[str, Callable[[Message], None]]] = []

    def put(self, channel: str, kind: str, msg: dict[str, Any], check: Callable[..., None]) -> None:
        sid = self.sids.setdefault(channel, len(self.sids) + 1)
        frame: dict[str, Any] = {"type": kind, "sid": sid, "msg": msg}
        if channel in self.SEQUENCED:
            self.seqs[channel] = frame["seq"] = self.seqs.get(channel, 0) + 1
        self.frames.append((json.dumps(frame), check))

    def __call__(self, event: ExchangeEvent) -> None:
        ex = self.ex
        if isinstance(event, BookChange):
            m = ex.markets[event.ticker]
            msg = wire.ws_book_delta(
                m, event.book_side, event.price, event.delta, event.ts,
                use_yes_price=self.use_yes_price, client_order_id=event.client_order_id,
            )  # fmt: skip

            def delta(e: Message, ev: BookChange = event) -> None:
                assert isinstance(e, BookDelta)
                assert (e.ticker, e.side.value, e.price) == (ev.ticker, ev.book_side, ev.price)
                assert (e.delta, e.client_order_id) == (cc_to_count(ev.delta), ev.client_order_id)
                assert e.ts == datetime.fromtimestamp(round(ev.ts * 1000) / 1000, UTC)

            self.put("orderbook_delta", "orderbook_delta", msg, delta)
            self.put("ticker", "ticker", wire.ws_ticker(m, event.ts), self._ticker(m))
        elif isinstance(event, TradeEvent):
            t = event.trade

            def trade(e: Message) -> None:
                assert isinstance(e, TradeMsg)
                assert (e.trade_id, e.ticker, e.price) == (t.trade_id, t.ticker, t.price)
                assert (e.count, e.taker_side) == (cc_to_count(t.count), Side(t.taker_book_side))

            self.put("trade", "trade", wire.ws_trade(t), trade)
        elif isinstance(event, FillEvent):
            f = event.fill

            def fill(e: Message) -> None:
                assert isinstance(e, FillMsg)
                got = e.fill
                assert (got.fill_id, got.order_id, got.ticker) == (f.fill_id, f.order_id, f.ticker)
                assert (got.side.value, got.price, got.fee) == (f.book_side, f.price, f.fee)
                assert (got.count, got.is_taker) == (cc_to_count(f.count), f.is_taker)
                assert e.post_position == cc_to_count(f.post_position)

            self.put("fill", "fill", wire.ws_fill(f), fill)
        elif isinstance(event, OrderEvent):
            msg = wire.ws_user_order(event.order)
            snapshot = (
                event.order.order_id,
                event.order.status,
                cc_to_count(event.order.remaining),
            )

            def order(e: Message) -> None:
                assert isinstance(e, UserOrderMsg)
                assert (e.order.order_id, e.order.status, e.order.remaining) == snapshot
                assert e.ts is not None

            self.put("user_orders", "user_order", msg, order)
        elif isinstance(event, PositionEvent):
            p = ex.position(event.user_id, event.ticker)
            msg = wire.ws_market_position(event.user_id, event.ticker, p)
            expected = (event.ticker, cc_to_count(p.position), p.fees)

            def position(e: Message) -> None:
                assert isinstance(e, PositionMsg)
                assert (e.ticker, e.position, e.fees) == expected

            self.put("market_positions", "market_position", msg, position)
        elif isinstance(event, LifecycleEvent):
            msg = {"market_ticker": event.ticker, "event_type": event.event_type}
            msg.update(event.fields)

            def lifecycle(e: Message, ev: LifecycleEvent = event) -> None:
                assert isinstance(e, LifecycleMsg)
                assert (e.ticker, e.event_type) == (ev.ticker, ev.event_type)
                values = dict(ev.fields)
                if "result" in values:
                    assert e.result == values["result"]
                    assert e.settlement_value == D(str(values["settlement_value"]))
                if "is_deactivated" in values:
                    assert e.is_deactivated is values["is_deactivated"]

            self.put("market_lifecycle_v2", "market_lifecycle_v2", msg, lifecycle)

    @staticmethod
    def _ticker(m: Any) -> Callable[[Message], None]:
        bid, _, ask, _ = wire.top_of_book(m)

        def check(e: Message) -> None:
            assert isinstance(e, TickerMsg)
            assert e.yes_bid == (bid or None)
            assert e.yes_ask == (ask if ask < 1 else None)

        return check


def sim_frames(*, use_yes_price: bool, seconds: float = 1800.0) -> Renderer:
    scn = build_scenario("small", seed=4, now=T0, speed=10.0)
    ex = Exchange.from_scenario(scn, VirtualClock(T0))
    renderer = Renderer(ex, use_yes_price=use_yes_price)
    ex.listeners.append(renderer)
    Simulation(scn, ex, seed=3).run_until(T0 + seconds)
    return renderer


@pytest.mark.parametrize("use_yes_price", [False, True])
def test_we_read_what_the_simulator_writes(use_yes_price: bool) -> None:
    renderer = sim_frames(use_yes_price=use_yes_price)
    kinds: set[str] = set()
    last_seq: dict[int, int] = {}
    for text, check in renderer.frames:
        event = parse_frame(text, yes_prices=use_yes_price)
        check(event)
        kinds.add(type(event).__name__)
        if event.seq is not None:
            assert event.seq == last_seq.get(event.sid or 0, 0) + 1
            last_seq[event.sid or 0] = event.seq
    assert kinds >= {"BookDelta", "TickerMsg", "TradeMsg", "FillMsg", "UserOrderMsg"}
    assert {"PositionMsg", "LifecycleMsg"} <= kinds
