"""Hostile payloads against the parsers of what arrives from outside: the REST readers of the
objects we trade on (``kalshi/models.py``), the WebSocket frames' values, and The Odds API
boards down to a theo.

tests/kalshi/test_messages.py already throws random, truncated and mutated frames at the WS
parser and checks that only ``PayloadError`` comes out. What this file adds:

* the REST readers get the same treatment, starting from real payloads that the embedded
  exchange printed (``sim/wire.py``, written independently of the client): any field
  dropped or replaced by any JSON value, by a hostile string ("NaN", "1e999999", "-0.01",
  an off-grid price, ten thousand characters) or by a huge number;
* what a reader *accepts* is checked too, for both REST and WS: no NaN or infinite
  ``Decimal``, no price outside [0, 1], no negative count where the API has none. A
  parser that says nothing about a bad value is worse than one that refuses it;
* the odds side: a mutated board is parsed into an ``OddsBoard`` (every bad event or
  bookmaker skipped and counted in ``problems``) or refused whole (``OddsPayloadError``),
  and whatever survives, priced by ``consensus``, is a theo in (0, 1) summing to 1, or a
  reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm_interactive.kalshi import models
from kmm_interactive.kalshi.messages import parse_frame
from kmm_interactive.kalshi.models import PayloadError
from kmm_interactive.odds.client import OddsBoard, OddsPayloadError, parse_board
from kmm_interactive.pricing.consensus import ConsensusParams, consensus
from kmm_interactive.sim import wire
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.exchange import Exchange, SimMarket, SimOrder
from kmm_interactive.sim.scenario import build_scenario

T0 = 1_750_000_000.0
NOW = datetime.fromtimestamp(T0, UTC)

#: Values no field of Kalshi's may hold, in every JSON type.
HOSTILE_VALUES = st.sampled_from(
    [
        None, True, False, 0, -1, 10**400, -(10**400), 1.5, -0.0,
        "", " ", "NaN", "nan", "Infinity", "-Infinity", "inf", "1e999999", "-1e999999",
        "1E+2", "0x10", "0.5000000001", "0.12345", "-0.01", "1.01", "0", "1", "0.00",
        "-5.00", "12.345", "9" * 400, "x" * 10_000, "\u0000", "é", "2026-13-45T99:99:99Z",
        [], {}, [["0.5", "1"]], {"nested": {"deeper": []}},
    ]
)  # fmt: skip
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
REPLACEMENTS = HOSTILE_VALUES | JSON_VALUES


# --------------------------------------------------------------------------- what was accepted


def values(obj: object, path: str = "") -> Iterator[tuple[str, object]]:
    """Every leaf of a parsed object (dataclass fields, mappings, sequences), by path."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from values(getattr(obj, f.name), f"{path}.{f.name}")
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from values(v, f"{path}[{k!r}]")
    elif isinstance(obj, tuple | list):
        for i, v in enumerate(obj):
            yield from values(v, f"{path}[{i}]")
    else:
        yield path, obj


#: Fields that are prices per contract: within [0, 1] dollars.
UNIT_PRICES = ("price", "yes_bid", "yes_ask", "no_bid", "no_ask")
#: Fields that count contracts, which the API never makes negative.
COUNTS = ("count", "remaining", "filled", "volume", "open_interest", "total_traded", "size")


def assert_sound(parsed: object) -> None:
    """No NaN or infinity anywhere; prices within [0, 1]; counts not negative."""
    for path, v in values(parsed):
        if isinstance(v, Decimal):
            assert v.is_finite(), f"{path} = {v} accepted"
            name = path.rsplit(".", 1)[-1]
            if any(p in name for p in UNIT_PRICES) and not {"fee", "size"} & set(name.split("_")):
                assert 0 <= v <= 1, f"{path} = {v}: a price outside [0, 1] accepted"
            elif any(c in name for c in COUNTS):
                assert v >= 0, f"{path} = {v}: a negative count accepted"
        elif isinstance(v, float):
            assert math.isfinite(v), f"{path} = {v} accepted"


def only_refused_cleanly(parse: Callable[[Any], object], payload: object) -> None:
    """``parse(payload)`` gives a sound object, or a PayloadError that says what; any other
    exception fails the test."""
    try:
        parsed = parse(payload)
    except PayloadError as exc:
        message = str(exc)
    else:
        assert_sound(parsed)
        return
    assert message.strip(), "a PayloadError without a message"
    assert "parser bug" not in message, message
    assert len(message) < 2000, "an error message that repeats a huge payload"


def on_the_wire(payload: object) -> object:
    """``payload`` as the client decodes it off the wire (every non-integer a Decimal)."""
    return models.loads(json.dumps(payload, default=str))


# --------------------------------------------------------------------------- REST payloads


def traded_exchange() -> tuple[Exchange, SimMarket, SimOrder]:
    """A new embedded exchange core where alice rests a bid for 10 and bob sells 4 into it:
    (the exchange, the market, alice's order)."""
    scn = build_scenario("small", seed=4, now=T0, speed=10.0)
    ex = Exchange.from_scenario(scn, VirtualClock(T0))
    ex.open_account("alice")
    ex.open_account("bob")
    market = next(m for m in ex.markets.values() if m.status == "active")
    gtc = {"time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross"}
    order = ex.create_order(
        "alice", ticker=market.ticker, side="bid", price="0.4000", count="10.00", **gtc
    )
    ex.create_order("bob", ticker=market.ticker, side="ask", price="0.4000", count="4.00", **gtc)
    return ex, market, order


@cache
def rest_payloads() -> dict[str, tuple[Callable[[Any], object], dict[str, Any]]]:
    """Real payloads of every REST object we read, printed by the embedded exchange after
    a little trading, each with its reader."""
    ex, market, resting = traded_exchange()
    fill = ex.account("alice").fills[0]
    position = ex.position("alice", market.ticker)
    event = ex.events[market.event_ticker]
    trade = ex.trades[-1]
    ex.determine(market.ticker, "yes")
    ex.settle(market.ticker)
    settlement = ex.account("alice").settlements[0]
    series = ex.series[event.series_ticker]
    return {
        "order": (models.parse_order, wire.order_json(resting)),
        "fill": (models.parse_fill, wire.fill_json(fill)),
        "market": (models.parse_market, wire.market_json(market)),
        "event": (models.parse_event, wire.event_json(ex, event, nested=False)),
        "orderbook": (models.parse_orderbook, wire.orderbook_json(market)),
        "trade": (models.parse_trade, wire.trade_json(trade)),
        "position": (models.parse_market_position, wire.position_json(market.ticker, position, 6)),
        "event position": (
            models.parse_event_position,
            wire.event_position_json(event.event_ticker, [position]),
        ),
        "settlement": (models.parse_settlement, wire.settlement_json(settlement)),
        "series": (models.parse_series, wire.series_json(series)),
        "balance": (models.parse_balance, {"balance": 1000, "portfolio_value": 250}),
        "order ack": (
            models.parse_order_ack,
            {"order_id": resting.order_id, "client_order_id": "c-1", "fill_count": "4.00",
             "remaining_count": "6.00", "average_fill_price": "0.4000",
             "average_fee_paid": "0.0100", "ts_ms": 1_750_000_000_000},
        ),
    }  # fmt: skip


def test_every_real_payload_parses_soundly() -> None:
    """The starting points are valid: a mutation, not the base, is what a refusal is about."""
    for name, (parse, payload) in rest_payloads().items():
        parsed = parse(on_the_wire(payload))
        assert parsed is not None, name
        assert_sound(parsed)


def mutate(payload: Any, data: st.DataObject, replacements: Any) -> Any:
    """A deep copy of ``payload`` with one to three fields (at any depth) dropped or
    replaced."""
    copy = json.loads(json.dumps(payload, default=str))
    targets: list[tuple[Any, Any]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                targets.append((node, k))
                collect(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                targets.append((node, i))
                collect(v)

    collect(copy)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        if not targets:
            break
        where, key = data.draw(st.sampled_from(targets))
        if isinstance(where, dict) and data.draw(st.booleans()):
            where.pop(key, None)
            targets = [t for t in targets if t != (where, key)]
        elif isinstance(where, dict) or key < len(where):
            where[key] = data.draw(replacements)
    return copy


@settings(max_examples=400)
@given(name=st.sampled_from(sorted(rest_payloads())), data=st.data())
def test_a_mutated_rest_payload_is_parsed_soundly_or_refused_saying_what(
    name: str, data: st.DataObject
) -> None:
    parse, payload = rest_payloads()[name]
    only_refused_cleanly(lambda p: parse(on_the_wire(p)), mutate(payload, data, REPLACEMENTS))


@pytest.mark.parametrize("name", sorted(rest_payloads()))
@pytest.mark.parametrize("bad", ["NaN", "Infinity", "1e999999", "-0.01", "1.01"])
def test_a_non_number_in_any_amount_is_refused_naming_the_field(name: str, bad: str) -> None:
    """Every field of the payload that carries a fixed-point amount, set to a value no
    amount may have: the reader refuses, or (a price field it does not read) ignores it —
    never accepts it as a number."""
    parse, payload = rest_payloads()[name]
    amounts = [k for k, v in payload.items() if isinstance(v, str) and _is_amount(v)]
    for key in amounts:
        try:
            parsed = parse(on_the_wire({**payload, key: bad}))
        except PayloadError as exc:
            problem = str(exc)
        else:
            assert_sound(parsed)
            continue
        if bad in ("NaN", "Infinity", "1e999999"):
            assert key in problem, f"{name}.{key} = {bad!r}: {problem} does not name the field"


def _is_amount(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return "." in text


def test_a_reader_refuses_what_is_not_an_object_at_all() -> None:
    for parse, _ in rest_payloads().values():
        for junk in (None, [], "order", 7, Decimal("0.5"), True):
            with pytest.raises(PayloadError, match="expected a JSON object"):
                parse(junk)


# --------------------------------------------------------------------------- WS, what is accepted


@cache
def ws_frames() -> list[str]:
    """Real frames of every channel, printed the way the embedded exchange sends them."""
    ex, market, order = traded_exchange()
    fill = ex.account("alice").fills[0]
    position = ex.position("alice", market.ticker)
    msgs = [
        ("orderbook_delta", wire.ws_book_delta(
            market, "bid", Decimal("0.4000"), 6, T0, use_yes_price=False, client_order_id=None)),
        ("orderbook_snapshot", {"market_ticker": market.ticker, "market_id": "m",
                                **wire.ws_book_levels(market, use_yes_price=False)}),
        ("fill", wire.ws_fill(fill)),
        ("user_order", wire.ws_user_order(order)),
        ("market_position", wire.ws_market_position("alice", market.ticker, position)),
        ("ticker", wire.ws_ticker(market, T0)),
        ("trade", wire.ws_trade(ex.trades[-1])),
    ]  # fmt: skip
    sequenced = {"orderbook_delta", "orderbook_snapshot", "trade"}
    return [
        json.dumps({"type": kind, "sid": 1, **({"seq": 1} if kind in sequenced else {}), "msg": m})
        for kind, m in msgs
    ]


def test_every_real_frame_parses_soundly() -> None:
    for frame in ws_frames():
        assert_sound(parse_frame(frame, yes_prices=False))


@settings(max_examples=400)
@given(frame=st.sampled_from(ws_frames()), data=st.data(), yes_prices=st.booleans())
def test_a_mutated_frame_is_parsed_soundly_or_refused_saying_what(
    frame: str, data: st.DataObject, yes_prices: bool
) -> None:
    mutated = mutate(json.loads(frame), data, REPLACEMENTS)
    only_refused_cleanly(lambda f: parse_frame(json.dumps(f), yes_prices=yes_prices), mutated)


# --------------------------------------------------------------------------- odds boards


def odds_event(
    i: int, home: str = "Boston Celtics", away: str = "Los Angeles Lakers"
) -> dict[str, Any]:
    stamp = (NOW - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    books = [
        ("pinnacle", 1.91, 2.02), ("draftkings", 1.87, 2.05), ("fanduel", 1.89, 2.01),
    ]  # fmt: skip
    return {
        "id": f"e{i:030d}",
        "sport_key": "basketball_nba",
        "sport_title": "NBA",
        "commence_time": (NOW + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
        "home_team": home,
        "away_team": away,
        "bookmakers": [
            {"key": key, "title": key, "last_update": stamp,
             "markets": [{"key": "h2h", "last_update": stamp,
                          "outcomes": [{"name": home, "price": h}, {"name": away, "price": a}]}]}
            for key, h, a in books
        ],
    }  # fmt: skip


ODDS_HOSTILE = HOSTILE_VALUES | st.sampled_from(
    [1.0, 0.5, -2.0, 1e308, 1.0000000001, 1e-308, 10**30, "1.91", "Draw", "Boston Celtics"]
)


def board_or_refusal(data: object) -> OddsBoard | None:
    try:
        return parse_board(data, "basketball_nba", NOW)
    except OddsPayloadError as exc:
        problem = str(exc)
    assert problem.strip()
    return None


@settings(max_examples=300)
@given(data=st.data())
def test_a_mutated_odds_board_is_parsed_with_its_problems_counted_or_refused(
    data: st.DataObject,
) -> None:
    events = [odds_event(0), odds_event(1, "Miami Heat", "Chicago Bulls")]
    raw = mutate(events, data, ODDS_HOSTILE | JSON_VALUES)
    board = board_or_refusal(raw)
    if board is None:
        return
    if isinstance(raw, list):
        # Every event with an id is either read or skipped with a problem naming it.
        accounted = {e.id for e in board.events} | {p.event_id for p in board.problems}
        for item in raw:
            event_id = item.get("id") if isinstance(item, dict) else None
            if isinstance(event_id, str) and event_id.strip():
                assert event_id.strip() in accounted, f"event {event_id!r} neither read nor skipped"
    for event in board.events:
        names = [event.home_team, event.away_team]
        for line in event.bookmakers:
            assert all(math.isfinite(p) and p > 1.0 for p in line.outcomes.values())
        result = consensus(event.book_odds(names), NOW, ConsensusParams(min_books=1))
        if result.probabilities is None:
            assert result.reason
        else:
            assert all(0.0 < p < 1.0 for p in result.probabilities)
            assert math.isclose(math.fsum(result.probabilities), 1.0, abs_tol=1e-9)


@pytest.mark.parametrize(
    ("price", "why"),
    [
        (1.0, "is not decimal odds above 1.0"),
        (0.5, "is not decimal odds above 1.0"),
        (-2.0, "is not decimal odds above 1.0"),
        ("1.91", "is not a number"),
        (None, "is not a number"),
        (True, "is not a number"),
    ],
)
def test_a_bad_price_skips_its_bookmaker_and_says_which_outcome(price: object, why: str) -> None:
    event = odds_event(0)
    event["bookmakers"][1]["markets"][0]["outcomes"][0]["price"] = price
    board = parse_board([event], "basketball_nba", NOW)
    (read,) = board.events
    assert [b.key for b in read.bookmakers] == ["pinnacle", "fanduel"]
    (problem,) = board.problems
    assert problem.bookmaker == "draftkings"
    assert problem.field == "h2h.outcomes[0].price"
    assert why in str(problem)


def test_extreme_but_valid_odds_give_a_theo_inside_zero_one_or_a_reason() -> None:
    event = odds_event(0)
    for book in event["bookmakers"]:
        book["markets"][0]["outcomes"][0]["price"] = 1.0000000001
        book["markets"][0]["outcomes"][1]["price"] = 1e308
    (read,) = parse_board([event], "basketball_nba", NOW).events
    result = consensus(read.book_odds([read.home_team, read.away_team]), NOW)
    assert result.probabilities is None or all(0 < p < 1 for p in result.probabilities)
    assert result.probabilities is not None or "bad odds" in str(result.dropped)


def test_nan_and_infinity_literals_never_reach_a_price() -> None:
    """Python's json accepts NaN and Infinity literals; the odds client's decoder must not
    turn them into prices."""
    event = json.dumps([odds_event(0)]).replace("1.91", "NaN").replace("2.02", "Infinity")
    board = parse_board(json.loads(event), "basketball_nba", NOW)
    (read,) = board.events
    assert "pinnacle" not in [b.key for b in read.bookmakers]
    assert any(p.bookmaker == "pinnacle" for p in board.problems)
