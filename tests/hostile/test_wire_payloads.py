"""Hostile values, field by field, against the wire parsers: what each field must refuse,
what it must read, and what the refusal must say.

tests/kalshi/test_messages.py throws random, truncated and mutated frames at the WS parser
and checks that nothing but ``PayloadError`` comes out; tests/hostile/test_payloads.py
mutates real REST and WS payloads and checks that what is *accepted* is finite and in range,
and fuzzes an odds board. Neither says, for a given field and a given bad value, whether the
parser must refuse it. This file does, with an oracle written from the API's rules (money
and counts are fixed-point: ASCII digits, at most one point, at most 6 decimals for dollars
and 2 for counts; a price lies strictly inside (0, 1); an integer field takes a JSON
integer or an integral plain-decimal string; sid and seq are JSON integers >= 1):

* every field of every WS frame type we parse, and of every REST object we read, set to
  each value of a fixed hostile list (null, [], {}, true, 10**400, "NaN", "Infinity",
  "-inf", "1e999", "", " 0.5", "0.5000000001", "-0.01", "1.01", "0", "1", non-ASCII digits,
  "1_000", ten thousand characters, ...), or dropped: the parser refuses exactly what the
  oracle refuses, with a PayloadError that names the field ("missing <field>" when it is
  absent), and otherwise reads exactly the value the oracle reads (no silent defaults, no
  rounding); the same with several fields at once (hypothesis), including the cross-field
  rule a fill has (a refund of $1 a contract or more);
* random numeric-looking strings (signs, exponents, whitespace, commas, non-ASCII digits)
  in price, count and integer fields, against the same oracle, through both the WS fast
  path (its caches of validated strings) and the checked readers;
* unknown frame types and hostile ``type`` values: an ``UnknownMsg`` or a PayloadError
  naming ``type``; randomly corrupted frame bytes: a PayloadError or a frame whose values
  are all in range;
* the order book fed through the parser with a mix of valid, hostile-but-parseable
  (negative deltas, crossing levels, off-grid prices, other tickers) and refused frames:
  a refused frame never changes the book, a level never goes negative or silently crosses
  (each is counted and marks the book stale), against a model of what was accepted;
* The Odds API boards: out-of-range or zone-less commence_time / last_update, duplicated
  outcomes (also after trimming), unknown or extra team names, duplicated bookmakers,
  missing bookmakers / markets / outcomes, any price value against the decimal-odds rule;
  each is a problem on the board naming the event, bookmaker and field;
* the matcher's input (:meth:`KalshiGame.from_markets`) with hostile market objects, and
  :func:`match_games` with arbitrary team names: a ValueError naming the event, or every
  game accounted for once.
"""

from __future__ import annotations

import copy
import enum
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kmm_interactive.domain import Side
from kmm_interactive.kalshi import models
from kmm_interactive.kalshi.book import OrderBook
from kmm_interactive.kalshi.messages import (
    BookDelta,
    BookSnapshot,
    UnknownMsg,
    parse_frame,
)
from kmm_interactive.kalshi.models import PayloadError
from kmm_interactive.odds.client import OddsPayloadError, parse_board
from kmm_interactive.odds.matching import KalshiGame, MatchParams, match_games, team_score

D = Decimal
Path = tuple[str | int, ...]


# =========================================================================== the oracle


class _Sentinel(enum.Enum):
    REFUSED = "refused"  # a PayloadError naming the field
    MISSING = "missing"  # a PayloadError saying "missing <field>"
    UNCHECKED = "unchecked"  # a non-empty list: what it reads as is its items' business


REFUSED = _Sentinel.REFUSED
MISSING = _Sentinel.MISSING
UNCHECKED = _Sentinel.UNCHECKED

#: A fixed-point value as the API writes it: ASCII digits, at most one point.
_PLAIN = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def plain_number(value: Any) -> Decimal | None:
    """The value of a number field under the project's rule: a JSON integer or exact JSON
    number, or a plain ASCII decimal string (surrounding whitespace allowed, at most 64
    characters); None for anything else (bools, floats, NaN, exponents, words)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= 64 and _PLAIN.fullmatch(text):
            return Decimal(text)
    return None


def _decimals(n: Decimal) -> int:
    exponent = n.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def fixed(value: Any, places: int) -> Decimal | None:
    """A fixed-point amount with at most ``places`` decimals, below 10**15 in magnitude."""
    n = plain_number(value)
    if n is None or (n and n.adjusted() >= 15) or _decimals(n) > places:
        return None
    return n


def whole(value: Any) -> int | None:
    """An integer field: a JSON integer or an integral plain decimal, below 10**18."""
    n = plain_number(value)
    if n is None or n != n.to_integral_value() or abs(n) >= 10**18:
        return None
    return int(n)


def _when(seconds: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})?"
)


def rfc3339(text: str) -> datetime | None:
    """An RFC 3339 time (no zone: UTC), or None."""
    found = _RFC3339.fullmatch(text.strip())
    if found is None:
        return None
    *parts, fraction, zone = found.groups()
    year, month, day, hour, minute, second = map(int, parts)
    offset = timedelta(0)
    if zone and zone != "Z":
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:])) * (
            -1 if zone[0] == "-" else 1
        )
    micro = int((fraction or "0").ljust(6, "0"))
    try:
        return datetime(year, month, day, hour, minute, second, micro, timezone(offset))
    except ValueError:
        return None


class K(enum.Enum):
    """What a field holds, i.e. which rule the oracle applies."""

    PRICE = "price strictly inside (0, 1), <= 6 decimals"
    UNIT = "price in [0, 1], <= 6 decimals"
    DOLLARS = "dollars, any sign, <= 6 decimals"
    NONNEG = "dollars >= 0"
    RATE = "a number > 0 (read as a float)"
    COUNT = "count >= 0, <= 2 decimals"
    POSITIVE = "count > 0"
    SIGNED = "signed count"
    INTEGER = "integer"
    CENTS = "integer cents, read as dollars"
    TOKENS = "integer >= 1"
    SECONDS = "Unix seconds"
    MS = "Unix milliseconds"
    TIME = "RFC 3339, or Unix seconds / ms"
    INDEX = "JSON integer >= 1 (sid, seq)"
    JSON_INT = "any JSON integer"
    FLAG = "true or false"
    TEXT = "a string of at most 4096 characters"
    LABEL = "a string, clipped to 1024 characters"
    CHOICE = "one of the allowed strings"
    LIST = "a JSON array (null: empty)"


_FIXED: dict[K, tuple[int, Callable[[Decimal], bool]]] = {
    K.PRICE: (6, lambda n: 0 < n < 1),
    K.UNIT: (6, lambda n: 0 <= n <= 1),
    K.DOLLARS: (6, lambda _: True),
    K.NONNEG: (6, lambda n: n >= 0),
    K.RATE: (6, lambda n: n > 0),
    K.COUNT: (2, lambda n: n >= 0),
    K.POSITIVE: (2, lambda n: n > 0),
    K.SIGNED: (2, lambda _: True),
}


def read(kind: K, value: Any, allowed: tuple[str, ...] = ()) -> Any:
    """What a field of ``kind`` holding ``value`` (not null) must read as, or REFUSED."""
    if kind in _FIXED:
        places, inside = _FIXED[kind]
        n = fixed(value, places)
        if n is None or not inside(n):
            return REFUSED
        return float(n) if kind is K.RATE else n
    if kind in (K.INTEGER, K.CENTS, K.TOKENS, K.SECONDS, K.MS):
        i = whole(value)
        if i is None or (kind is K.TOKENS and i < 1):
            return REFUSED
        if kind is K.CENTS:
            return Decimal(i) / 100
        if kind in (K.SECONDS, K.MS):
            return _when(i / 1000 if kind is K.MS else i) or REFUSED
        return i
    if kind is K.TIME:
        if isinstance(value, str) and not re.fullmatch(r"-*\d+", value.strip()):
            return rfc3339(value) or REFUSED
        i = whole(value)
        if i is None:
            return REFUSED
        return _when(i / 1000 if abs(i) >= 100_000_000_000 else i) or REFUSED
    if kind is K.INDEX:
        return value if type(value) is int and value >= 1 else REFUSED
    if kind is K.JSON_INT:
        return value if type(value) is int else REFUSED
    if kind is K.FLAG:
        return value if isinstance(value, bool) else REFUSED
    if kind is K.TEXT:
        return value if isinstance(value, str) and len(value) <= models.MAX_TEXT else REFUSED
    if kind is K.LABEL:
        return value[: models.MAX_LABEL] if isinstance(value, str) else REFUSED
    if kind is K.CHOICE:
        return value if isinstance(value, str) and value in allowed else REFUSED
    assert kind is K.LIST
    if isinstance(value, list):
        return UNCHECKED if value else ()
    return REFUSED


def _same(x: Any) -> Any:
    return x


@dataclass(frozen=True)
class F:
    """One field of a payload: where it is, what it holds, where its value ends up.

    ``none`` is what null (or the key dropped) means: "missing" (refused, saying so),
    "absent" (the ``default`` value) or "refused" (a bad value, e.g. inside a book level).
    ``empty_absent``: "" reads as null (the ``optional`` readers), else "" is a value.
    ``names``: what a refusal must mention (default: the field's key).
    """

    path: Path
    kind: K
    get: Callable[[Any], Any]
    none: str = "missing"
    default: Any = None
    shown: Callable[[Any], Any] = _same
    allowed: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    empty_absent: bool | None = None
    #: A refused value reads as None instead (the lenient order ack).
    lenient: bool = False

    @property
    def label(self) -> str:
        return ".".join(map(str, self.path))

    @property
    def mentions(self) -> tuple[str, ...]:
        if self.names:
            return self.names
        keys = [p for p in self.path if isinstance(p, str)]
        if isinstance(self.path[-1], int):  # a book level: "yes_dollars_fp[0]"
            return (f"{keys[-1]}[{self.path[-2]}]",)
        return (keys[-1],)

    def expect(self, value: Any) -> Any:
        empty_absent = self.empty_absent
        if empty_absent is None:  # the optional() readers; a list is never ""
            empty_absent = self.none == "absent" and self.kind is not K.LIST
        if value is None or (isinstance(value, str) and value == "" and empty_absent):
            return {"missing": MISSING, "absent": self.default, "refused": REFUSED}[self.none]
        got = read(self.kind, value, self.allowed)
        if got is REFUSED:
            return None if self.lenient else REFUSED
        return got if got is UNCHECKED else self.shown(got)


def opt(path: Path, kind: K, get: Callable[[Any], Any], default: Any = None, **kw: Any) -> F:
    """An optional field (``optional`` reader: null or "" is ``default``)."""
    return F(path, kind, get, none="absent", default=default, **kw)


# --------------------------------------------------------------------------- hostile values


@dataclass(frozen=True)
class Hostile:
    label: str
    value: Any


HOSTILE: tuple[Hostile, ...] = tuple(
    Hostile(label, value)
    for label, value in [
        ("null", None), ("empty list", []), ("empty object", {}), ("true", True),
        ("false", False), ("huge int", 10**400), ("huge negative int", -(10**400)),
        ("NaN", "NaN"), ("Infinity", "Infinity"), ("-inf", "-inf"), ("1e999", "1e999"),
        ("1e3 text", "1e3"), ("empty", ""), ("space 0.5", " 0.5"), ("+0.5", "+0.5"),
        ("off grid", "0.5000000001"), ("-0.01", "-0.01"), ("1.01", "1.01"), ("0", "0"),
        ("1", "1"), ("number 0.5", D("0.5")), ("number 7", 7), ("number 0", 0),
        ("number -1", -1), ("arabic digits", "\u0661\u0662"), ("fullwidth 1", "\uff11"),
        ("underscore", "1_000"), ("hex", "0x10"), ("long", "9" * 5000),
        ("unicode", "é\u200b🙂"), ("rfc3339", "2026-11-22T03:30:00Z"),
        ("naive time", "2026-11-22T03:30:00"), ("list of level", [["0.5", "1"]]),
    ]
)  # fmt: skip


_NUMBER = re.compile(r'"@@(-?[0-9.Ee+]+)@@"')


def dumps(payload: Any) -> str:
    """JSON text, a ``Decimal`` written as a bare JSON number (as the wire sends 0.56)."""

    def number(value: object) -> str:
        if isinstance(value, Decimal):
            return f"@@{value}@@"
        raise TypeError(type(value).__name__)

    return _NUMBER.sub(r"\1", json.dumps(payload, default=number, ensure_ascii=False))


def put(payload: Any, path: Path, value: Any, *, drop: bool = False) -> Any:
    """A deep copy of ``payload`` with ``value`` at ``path`` (or that key dropped)."""
    out = copy.deepcopy(payload)
    node = out
    for key in path[:-1]:
        node = node[key]
    if drop:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def at(payload: Any, path: Path) -> Any:
    node = payload
    for key in path:
        node = node[key]
    return node


# =========================================================================== WS frames


def ms(t: int) -> datetime:
    return datetime.fromtimestamp(t / 1000, UTC)


def sec(t: int) -> datetime:
    return datetime.fromtimestamp(t, UTC)


DELTA = {
    "type": "orderbook_delta", "sid": 2, "seq": 3,
    "msg": {"market_ticker": "FED-23DEC-T3.00", "market_id": "9b0f6b43", "price_dollars": "0.9600",
            "delta_fp": "-54.00", "side": "yes", "ts_ms": 1669149841000,
            "client_order_id": "mine-1"},
}  # fmt: skip
SNAPSHOT = {
    "type": "orderbook_snapshot", "sid": 2, "seq": 2,
    "msg": {"market_ticker": "FED-23DEC-T3.00", "market_id": "9b0f6b43",
            "yes_dollars_fp": [["0.0800", "300.00"], ["0.2200", "333.00"]],
            "no_dollars_fp": [["0.5400", "20.00"]]},
}  # fmt: skip
TICKER = {
    "type": "ticker", "sid": 11,
    "msg": {"market_id": "9b0f6b43", "market_ticker": "FED-23DEC-T3.00", "price_dollars": "0.4800",
            "yes_bid_dollars": "0.4500", "yes_ask_dollars": "0.5300", "volume_fp": "33896.00",
            "open_interest_fp": "20422.00", "yes_bid_size_fp": "300.00",
            "yes_ask_size_fp": "150.00", "ts_ms": 1669149841000},
}  # fmt: skip
TRADE = {
    "type": "trade", "sid": 11, "seq": 2,
    "msg": {"trade_id": "d91bc706", "market_ticker": "HIGHNY-22DEC23-B53.5",
            "yes_price_dollars": "0.3600", "count_fp": "136.00", "taker_book_side": "ask",
            "ts_ms": 1669149841000},
}  # fmt: skip
FILL = {
    "type": "fill", "sid": 13,
    "msg": {"trade_id": "d91bc706", "order_id": "ee587a1c", "client_order_id": "my-order-1",
            "market_ticker": "HIGHNY-22DEC23-B53.5", "is_taker": True, "book_side": "bid",
            "yes_price_dollars": "0.7500", "count_fp": "278.00", "fee_cost": "0.010000",
            "ts_ms": 1671899397000, "post_position_fp": "500.00"},
}  # fmt: skip
USER_ORDER = {
    "type": "user_order", "sid": 22,
    "msg": {"order_id": "ee587a1c", "ticker": "FED-23DEC-T3.00", "status": "resting",
            "book_side": "bid", "yes_price_dollars": "0.3500", "fill_count_fp": "0.00",
            "remaining_count_fp": "10.00", "initial_count_fp": "10.00",
            "taker_fees_dollars": "0.000000", "maker_fees_dollars": "0.000000",
            "client_order_id": "my-order-1", "order_group_id": "og_123",
            "created_ts_ms": 1733047200000, "last_updated_ts_ms": 1733047260000},
}  # fmt: skip
POSITION = {
    "type": "market_position", "sid": 14,
    "msg": {"market_ticker": "FED-23DEC-T3.00", "position_fp": "100.00",
            "position_cost_dollars": "50.0000", "realized_pnl_dollars": "10.0000",
            "fees_paid_dollars": "1.0000", "volume_fp": "15.00"},
}  # fmt: skip
LIFECYCLE = {
    "type": "market_lifecycle_v2", "sid": 13, "seq": 3,
    "msg": {"market_ticker": "INXD-23SEP14-B4487", "event_type": "settled",
            "open_ts": 1694635200, "close_ts": 1694721600, "result": "yes",
            "settlement_value": "1.0000", "determination_ts": 1694722000,
            "settled_ts": 1694723000, "is_deactivated": False,
            "price_level_structure": "linear_cent",
            "additional_metadata": {"event_ticker": "INXD-23SEP14"}},
}  # fmt: skip
EVENT_LIFECYCLE = {
    "type": "event_lifecycle", "sid": 5, "seq": 8,
    "msg": {"event_ticker": "KXQUICK-26JAN25H2150", "series_ticker": "KXQUICK",
            "title": "What will 1+1 equal?", "strike_date": 1769377800},
}  # fmt: skip
FEE_UPDATE = {
    "type": "event_fee_update", "sid": 5, "seq": 9,
    "msg": {"event_ticker": "KXBTCD-26MAY2018", "fee_type_override": "quadratic",
            "fee_multiplier_override": "1.0000"},
}  # fmt: skip
SUBSCRIBED = {"type": "subscribed", "id": 1, "msg": {"channel": "orderbook_delta", "sid": 1}}
ERROR = {"type": "error", "id": 123, "msg": {"code": 7, "msg": "Unknown subscription ID"}}

M = ("msg",)
SIDES = ("bid", "ask")
ENVELOPE = [F(("sid",), K.INDEX, lambda m: m.sid)]
SEQUENCED = [*ENVELOPE, F(("seq",), K.INDEX, lambda m: m.seq)]


def _bid(p: Decimal) -> Decimal | None:
    return p if p > 0 else None


def _ask(p: Decimal) -> Decimal | None:
    return p if p < 1 else None


def _last(p: Decimal) -> Decimal | None:
    return p or None


def _no_leg(p: Decimal) -> Decimal:
    return 1 - p


#: Every WS frame type we parse: a valid frame and its fields.
WS: dict[str, tuple[dict[str, Any], list[F]]] = {
    "orderbook_delta": (DELTA, [
        *SEQUENCED,
        F((*M, "market_ticker"), K.TEXT, lambda m: m.ticker),
        F((*M, "price_dollars"), K.PRICE, lambda m: m.price),
        F((*M, "delta_fp"), K.SIGNED, lambda m: m.delta),
        F((*M, "side"), K.CHOICE, lambda m: m.side, none="refused", allowed=("yes", "no"),
          shown={"yes": Side.BID, "no": Side.ASK}.get),
        opt((*M, "ts_ms"), K.MS, lambda m: m.ts),
        opt((*M, "client_order_id"), K.TEXT, lambda m: m.client_order_id),
    ]),
    "orderbook_snapshot": (SNAPSHOT, [
        *SEQUENCED,
        F((*M, "market_ticker"), K.TEXT, lambda m: m.ticker),
        opt((*M, "yes_dollars_fp"), K.LIST, lambda m: m.book.bids, ()),
        F((*M, "yes_dollars_fp", 0, 0), K.PRICE, lambda m: m.book.bids[0][0], none="refused"),
        F((*M, "yes_dollars_fp", 1, 1), K.COUNT, lambda m: m.book.bids[1][1], none="refused"),
        F((*M, "no_dollars_fp", 0, 0), K.PRICE, lambda m: m.book.asks[0][0], none="refused",
          shown=_no_leg),
    ]),
    "ticker": (TICKER, [
        *ENVELOPE,
        F((*M, "market_ticker"), K.TEXT, lambda m: m.ticker),
        F((*M, "yes_bid_dollars"), K.UNIT, lambda m: m.yes_bid, shown=_bid),
        F((*M, "yes_ask_dollars"), K.UNIT, lambda m: m.yes_ask, shown=_ask),
        opt((*M, "price_dollars"), K.UNIT, lambda m: m.last_price, shown=_last),
        opt((*M, "volume_fp"), K.COUNT, lambda m: m.volume),
        opt((*M, "open_interest_fp"), K.COUNT, lambda m: m.open_interest),
        opt((*M, "yes_bid_size_fp"), K.COUNT, lambda m: m.yes_bid_size),
        opt((*M, "yes_ask_size_fp"), K.COUNT, lambda m: m.yes_ask_size),
        opt((*M, "ts_ms"), K.MS, lambda m: m.ts),
    ]),
    "trade": (TRADE, [
        *SEQUENCED,
        F((*M, "trade_id"), K.TEXT, lambda m: m.trade_id),
        F((*M, "market_ticker"), K.TEXT, lambda m: m.ticker),
        F((*M, "yes_price_dollars"), K.PRICE, lambda m: m.price),
        F((*M, "count_fp"), K.POSITIVE, lambda m: m.count),
        opt((*M, "taker_book_side"), K.CHOICE, lambda m: m.taker_side, allowed=SIDES,
            shown=Side, empty_absent=False),
        opt((*M, "ts_ms"), K.MS, lambda m: m.ts),
    ]),
    "fill": (FILL, [
        *ENVELOPE,
        F((*M, "trade_id"), K.TEXT, lambda m: m.fill.fill_id),
        F((*M, "order_id"), K.TEXT, lambda m: m.fill.order_id),
        F((*M, "market_ticker"), K.TEXT, lambda m: m.ticker, names=("ticker",), empty_absent=True),
        F((*M, "book_side"), K.CHOICE, lambda m: m.fill.side, allowed=SIDES, shown=Side),
        F((*M, "yes_price_dollars"), K.PRICE, lambda m: m.fill.price),
        F((*M, "count_fp"), K.POSITIVE, lambda m: m.fill.count, names=("count",)),
        opt((*M, "fee_cost"), K.DOLLARS, lambda m: m.fill.fee, D(0)),
        F((*M, "is_taker"), K.FLAG, lambda m: m.fill.is_taker),
        F((*M, "ts_ms"), K.MS, lambda m: m.ts, names=("ts",), empty_absent=True),
        opt((*M, "client_order_id"), K.TEXT, lambda m: m.fill.client_order_id),
        opt((*M, "post_position_fp"), K.SIGNED, lambda m: m.post_position),
    ]),
    "user_order": (USER_ORDER, [
        *ENVELOPE,
        F((*M, "order_id"), K.TEXT, lambda m: m.order.order_id),
        F((*M, "ticker"), K.TEXT, lambda m: m.ticker),
        F((*M, "status"), K.CHOICE, lambda m: m.order.status, allowed=models.ORDER_STATUSES),
        F((*M, "book_side"), K.CHOICE, lambda m: m.order.side, allowed=SIDES, shown=Side),
        F((*M, "yes_price_dollars"), K.PRICE, lambda m: m.order.price),
        opt((*M, "fill_count_fp"), K.COUNT, lambda m: m.order.filled, D(0)),
        F((*M, "remaining_count_fp"), K.COUNT, lambda m: m.order.remaining),
        opt((*M, "initial_count_fp"), K.COUNT, lambda m: m.order.initial),
        opt((*M, "taker_fees_dollars"), K.DOLLARS, lambda m: m.order.fees, D(0)),
        opt((*M, "client_order_id"), K.TEXT, lambda m: m.order.client_order_id),
        opt((*M, "order_group_id"), K.TEXT, lambda m: m.order.order_group_id),
        opt((*M, "last_updated_ts_ms"), K.MS, lambda m: m.order.updated),
    ]),
    "market_position": (POSITION, [
        *ENVELOPE,
        F((*M, "market_ticker"), K.TEXT, lambda m: m.ticker),
        F((*M, "position_fp"), K.SIGNED, lambda m: m.position),
        F((*M, "position_cost_dollars"), K.DOLLARS, lambda m: m.cost),
        F((*M, "realized_pnl_dollars"), K.DOLLARS, lambda m: m.realized_pnl),
        F((*M, "fees_paid_dollars"), K.DOLLARS, lambda m: m.fees),
        opt((*M, "volume_fp"), K.COUNT, lambda m: m.volume),
    ]),
    "market_lifecycle_v2": (LIFECYCLE, [
        *SEQUENCED,
        F((*M, "market_ticker"), K.TEXT, lambda m: m.ticker),
        F((*M, "event_type"), K.TEXT, lambda m: m.event_type),
        opt((*M, "open_ts"), K.SECONDS, lambda m: m.open_ts),
        opt((*M, "close_ts"), K.SECONDS, lambda m: m.close_ts),
        opt((*M, "determination_ts"), K.SECONDS, lambda m: m.determination_ts),
        opt((*M, "settled_ts"), K.SECONDS, lambda m: m.settled_ts),
        opt((*M, "result"), K.TEXT, lambda m: m.result),
        opt((*M, "is_deactivated"), K.FLAG, lambda m: m.is_deactivated),
        opt((*M, "settlement_value"), K.UNIT, lambda m: m.settlement_value),
        opt((*M, "price_level_structure"), K.TEXT, lambda m: m.price_level_structure),
        opt((*M, "additional_metadata", "event_ticker"), K.TEXT, lambda m: m.event_ticker),
    ]),
    "event_lifecycle": (EVENT_LIFECYCLE, [
        *SEQUENCED,
        F((*M, "event_ticker"), K.TEXT, lambda m: m.event_ticker),
        opt((*M, "series_ticker"), K.TEXT, lambda m: m.series_ticker),
        opt((*M, "title"), K.TEXT, lambda m: m.title),
        opt((*M, "strike_date"), K.SECONDS, lambda m: m.strike_date),
    ]),
    "event_fee_update": (FEE_UPDATE, [
        *SEQUENCED,
        F((*M, "event_ticker"), K.TEXT, lambda m: m.event_ticker),
        opt((*M, "fee_type_override"), K.TEXT, lambda m: m.fee_type),
        opt((*M, "fee_multiplier_override"), K.NONNEG, lambda m: m.fee_multiplier),
    ]),
    "subscribed": (SUBSCRIBED, [
        F((*M, "channel"), K.TEXT, lambda m: m.channel),
        F((*M, "sid"), K.INDEX, lambda m: m.sid),
    ]),
    "error": (ERROR, [
        F((*M, "code"), K.JSON_INT, lambda m: m.code, none="refused"),
    ]),
}  # fmt: skip


def ws_parse(payload: Any) -> Any:
    """Parse twice: the second time an ``orderbook_delta`` may take the cached fast path,
    which must give the same answer."""
    text = dumps(payload)
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(parse_frame(text, yes_prices=False))
        except PayloadError as exc:
            outcomes.append(exc)
    first, second = outcomes
    if isinstance(first, PayloadError):
        assert isinstance(second, PayloadError), f"refused, then read as {second}"
        assert str(first) == str(second)
        raise first
    assert first == second, f"{first} then {second}"
    return first


# =========================================================================== REST objects


REST_ORDER = {
    "order_id": "8967340d", "client_order_id": "a32b383b", "ticker": "KXNBAGAME-25JUN15GSWMIA-GSW",
    "book_side": "bid", "type": "limit", "status": "resting", "yes_price_dollars": "0.4000",
    "no_price_dollars": "0.6000", "fill_count_fp": "4.00", "remaining_count_fp": "6.00",
    "initial_count_fp": "10.00", "taker_fees_dollars": "0.0000", "maker_fees_dollars": "0.0000",
    "last_updated_ts_ms": 1750000000000, "last_update_reason": "Fill",
    "order_group_id": None, "expiration_time": None,
}  # fmt: skip
REST_FILL = {
    "fill_id": "5b2192d1", "trade_id": "5b2192d1", "order_id": "8967340d",
    "ticker": "KXNBAGAME-25JUN15GSWMIA-GSW", "market_ticker": "KXNBAGAME-25JUN15GSWMIA-GSW",
    "book_side": "bid", "count_fp": "4.00", "yes_price_dollars": "0.4000", "is_taker": False,
    "created_time": "2025-06-15T15:06:40.000Z", "fee_cost": "0.0200", "ts": 1750000000,
    "client_order_id": "c-1",
}  # fmt: skip
REST_MARKET = {
    "ticker": "KXNBAGAME-25JUN15GSWMIA-GSW", "event_ticker": "KXNBAGAME-25JUN15GSWMIA",
    "yes_sub_title": "Golden State", "no_sub_title": "Golden State", "status": "active",
    "open_time": "2025-06-14T15:06:40.000Z", "close_time": "2025-06-15T15:06:40.000Z",
    "expected_expiration_time": "2025-06-15T15:23:40.000Z",
    "occurrence_datetime": "2025-06-15T15:08:40.000Z",
    "yes_bid_dollars": "0.3900", "yes_bid_size_fp": "10.00", "yes_ask_dollars": "0.4100",
    "yes_ask_size_fp": "12.00", "last_price_dollars": "0.4000", "volume_fp": "4.00",
    "open_interest_fp": "2.00", "result": "", "price_level_structure": "linear_cent",
    "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
    "exchange_index": 0,
}  # fmt: skip
REST_TRADE = {
    "trade_id": "5b2192d1", "ticker": "KXNBAGAME-25JUN15GSWMIA-GSW", "count_fp": "4.00",
    "yes_price_dollars": "0.4000", "taker_book_side": "ask",
    "created_time": "2025-06-15T15:06:40.000Z",
}  # fmt: skip
REST_POSITION = {
    "ticker": "KXNBAGAME-25JUN15GSWMIA-GSW", "total_traded_dollars": "1.6000",
    "position_fp": "-3.00", "market_exposure_dollars": "1.2000",
    "realized_pnl_dollars": "2.4000", "fees_paid_dollars": "0.0200",
    "last_updated_ts": "2025-06-15T15:06:40.000Z",
}  # fmt: skip
REST_EVENT_POSITION = {
    "event_ticker": "KXNBAGAME-25JUN15GSWMIA", "total_cost_dollars": "1.0000",
    "event_exposure_dollars": "1.0000", "realized_pnl_dollars": "2.4000",
    "fees_paid_dollars": "0.0200",
}  # fmt: skip
REST_SETTLEMENT = {
    "ticker": "KXNBAGAME-25JUN15GSWMIA-GSW", "event_ticker": "KXNBAGAME-25JUN15GSWMIA",
    "market_result": "yes", "yes_count_fp": "4.00", "yes_total_cost_dollars": "1.6000",
    "no_count_fp": "0.00", "no_total_cost_dollars": "0.0000", "revenue": 400,
    "settled_time": "2025-06-15T15:06:40.000Z", "fee_cost": "0.0200", "value": 100,
}  # fmt: skip
REST_BALANCE = {"balance": 1000, "portfolio_value": 250, "updated_ts": 1750000000}
REST_ACK = {
    "order_id": "8967340d", "client_order_id": "c-1", "fill_count": "4.00",
    "remaining_count": "6.00", "reduced_by": "1.00", "average_fill_price": "0.4000",
    "average_fee_paid": "0.0100", "ts_ms": 1750000000000,
}  # fmt: skip
REST_SERIES = {
    "ticker": "KXNBAGAME", "title": "NBA", "category": "Sports", "tags": ["Basketball"],
    "fee_type": "quadratic", "fee_multiplier": "1", "volume_fp": "100.00",
}  # fmt: skip
REST_EVENT = {
    "event_ticker": "KXNBAGAME-25JUN15GSWMIA", "series_ticker": "KXNBAGAME", "title": "GSW at MIA",
    "sub_title": "Jun 15", "mutually_exclusive": True, "strike_date": "2025-06-15T15:06:40Z",
    "markets": [],
}  # fmt: skip
REST_GROUP = {"id": "og_1", "contracts_limit_fp": "50.00", "is_auto_cancel_enabled": True,
              "orders": ["o1"]}  # fmt: skip
REST_LIMITS = {"usage_tier": "basic", "read": {"refill_rate": 20, "bucket_capacity": "40"},
               "write": {"refill_rate": "10", "bucket_capacity": 10}}  # fmt: skip
REST_COSTS = {"default_cost": 10,
              "endpoint_costs": [{"method": "get", "path": "/markets", "cost": 2}]}  # fmt: skip
REST_QUEUE = [{"order_id": "o1", "queue_position_fp": "3.00"}]
REST_STATUS = {"exchange_active": True, "trading_active": False,
               "exchange_estimated_resume_time": "2026-11-22T03:30:00Z"}  # fmt: skip
REST_BOOK = {"yes_dollars": [["0.3900", "10.00"]], "no_dollars": [["0.5900", "12.00"]]}

T_FILL = datetime.fromtimestamp(1750000000, UTC)


def _lenient_ack(value: Any) -> models.OrderAck:
    return models.parse_order_ack(value, lenient=True)


#: Every REST reader: its parser, a valid payload and its fields.
REST: dict[str, tuple[Callable[[Any], Any], Any, list[F]]] = {
    "order": (models.parse_order, REST_ORDER, [
        F(("order_id",), K.TEXT, lambda o: o.order_id),
        opt(("client_order_id",), K.TEXT, lambda o: o.client_order_id),
        F(("ticker",), K.TEXT, lambda o: o.ticker),
        F(("book_side",), K.CHOICE, lambda o: o.side, allowed=SIDES, shown=Side),
        F(("yes_price_dollars",), K.PRICE, lambda o: o.price),
        F(("status",), K.CHOICE, lambda o: o.status, allowed=models.ORDER_STATUSES),
        opt(("fill_count_fp",), K.COUNT, lambda o: o.filled, D(0)),
        F(("remaining_count_fp",), K.COUNT, lambda o: o.remaining),
        opt(("initial_count_fp",), K.COUNT, lambda o: o.initial),
        opt(("taker_fees_dollars",), K.DOLLARS, lambda o: o.fees, D(0)),
        opt(("order_group_id",), K.TEXT, lambda o: o.order_group_id),
        opt(("last_update_reason",), K.TEXT, lambda o: o.last_update_reason),
        opt(("last_updated_ts_ms",), K.MS, lambda o: o.updated),
    ]),
    "fill": (models.parse_fill, REST_FILL, [
        opt(("fill_id",), K.TEXT, lambda f: f.fill_id, "5b2192d1"),
        F(("order_id",), K.TEXT, lambda f: f.order_id),
        opt(("market_ticker",), K.TEXT, lambda f: f.ticker, "KXNBAGAME-25JUN15GSWMIA-GSW"),
        F(("book_side",), K.CHOICE, lambda f: f.side, allowed=SIDES, shown=Side),
        F(("yes_price_dollars",), K.PRICE, lambda f: f.price),
        F(("count_fp",), K.POSITIVE, lambda f: f.count, names=("count",)),
        opt(("fee_cost",), K.DOLLARS, lambda f: f.fee, D(0)),
        F(("is_taker",), K.FLAG, lambda f: f.is_taker),
        opt(("created_time",), K.TIME, lambda f: f.ts, T_FILL),
        opt(("client_order_id",), K.TEXT, lambda f: f.client_order_id),
    ]),
    "market": (models.parse_market, REST_MARKET, [
        F(("ticker",), K.TEXT, lambda m: m.ticker),
        F(("event_ticker",), K.TEXT, lambda m: m.event_ticker),
        opt(("yes_sub_title",), K.LABEL, lambda m: m.yes_sub_title, ""),
        F(("status",), K.TEXT, lambda m: m.status),
        F(("open_time",), K.TIME, lambda m: m.open_time),
        F(("close_time",), K.TIME, lambda m: m.close_time),
        opt(("expected_expiration_time",), K.TIME, lambda m: m.expected_expiration_time),
        opt(("occurrence_datetime",), K.TIME, lambda m: m.occurrence_time),
        opt(("yes_bid_dollars",), K.UNIT, lambda m: m.yes_bid, shown=_bid),
        opt(("yes_bid_size_fp",), K.COUNT, lambda m: m.yes_bid_size, D(0)),
        opt(("yes_ask_dollars",), K.UNIT, lambda m: m.yes_ask, shown=_ask),
        opt(("yes_ask_size_fp",), K.COUNT, lambda m: m.yes_ask_size, D(0)),
        opt(("last_price_dollars",), K.UNIT, lambda m: m.last_price, shown=_last),
        opt(("volume_fp",), K.COUNT, lambda m: m.volume, D(0)),
        opt(("open_interest_fp",), K.COUNT, lambda m: m.open_interest, D(0)),
        opt(("result",), K.TEXT, lambda m: m.result, ""),
        opt(("price_level_structure",), K.TEXT, lambda m: m.price_level_structure, ""),
        opt(("exchange_index",), K.INTEGER, lambda m: m.exchange_index, 0),
    ]),
    "trade": (models.parse_trade, REST_TRADE, [
        F(("trade_id",), K.TEXT, lambda t: t.trade_id),
        F(("ticker",), K.TEXT, lambda t: t.ticker),
        F(("yes_price_dollars",), K.PRICE, lambda t: t.price),
        F(("count_fp",), K.COUNT, lambda t: t.count),
        F(("taker_book_side",), K.CHOICE, lambda t: t.taker_side, allowed=SIDES, shown=Side),
        F(("created_time",), K.TIME, lambda t: t.created_time),
    ]),
    "market position": (models.parse_market_position, REST_POSITION, [
        F(("ticker",), K.TEXT, lambda p: p.ticker),
        F(("position_fp",), K.SIGNED, lambda p: p.position),
        opt(("market_exposure_dollars",), K.DOLLARS, lambda p: p.exposure, D(0)),
        opt(("realized_pnl_dollars",), K.DOLLARS, lambda p: p.realized_pnl, D(0)),
        opt(("fees_paid_dollars",), K.DOLLARS, lambda p: p.fees_paid, D(0)),
        opt(("total_traded_dollars",), K.NONNEG, lambda p: p.total_traded, D(0)),
        opt(("last_updated_ts",), K.TIME, lambda p: p.last_updated),
    ]),
    "event position": (models.parse_event_position, REST_EVENT_POSITION, [
        F(("event_ticker",), K.TEXT, lambda p: p.event_ticker),
        opt(("total_cost_dollars",), K.DOLLARS, lambda p: p.total_cost, D(0)),
        opt(("event_exposure_dollars",), K.DOLLARS, lambda p: p.exposure, D(0)),
        opt(("realized_pnl_dollars",), K.DOLLARS, lambda p: p.realized_pnl, D(0)),
        opt(("fees_paid_dollars",), K.DOLLARS, lambda p: p.fees_paid, D(0)),
    ]),
    "settlement": (models.parse_settlement, REST_SETTLEMENT, [
        F(("ticker",), K.TEXT, lambda s: s.ticker),
        F(("event_ticker",), K.TEXT, lambda s: s.event_ticker),
        F(("market_result",), K.CHOICE, lambda s: s.market_result,
          allowed=("yes", "no", "scalar", "void")),
        F(("yes_count_fp",), K.COUNT, lambda s: s.yes_count),
        F(("yes_total_cost_dollars",), K.DOLLARS, lambda s: s.yes_cost),
        F(("no_count_fp",), K.COUNT, lambda s: s.no_count),
        F(("no_total_cost_dollars",), K.DOLLARS, lambda s: s.no_cost),
        F(("revenue",), K.CENTS, lambda s: s.revenue),
        opt(("fee_cost",), K.DOLLARS, lambda s: s.fee_cost, D(0)),
        opt(("value",), K.CENTS, lambda s: s.value),
        F(("settled_time",), K.TIME, lambda s: s.settled_time),
    ]),
    "balance": (models.parse_balance, REST_BALANCE, [
        F(("balance",), K.CENTS, lambda b: b.balance),
        F(("portfolio_value",), K.CENTS, lambda b: b.portfolio_value),
        opt(("updated_ts",), K.TIME, lambda b: b.updated),
    ]),
    "balance in dollars": (models.parse_balance, {**REST_BALANCE, "balance_dollars": "10.0000"}, [
        opt(("balance_dollars",), K.DOLLARS, lambda b: b.balance, D(10)),
    ]),
    "order ack": (models.parse_order_ack, REST_ACK, [
        opt(("order_id",), K.TEXT, lambda a: a.order_id),
        opt(("client_order_id",), K.TEXT, lambda a: a.client_order_id),
        opt(("fill_count",), K.COUNT, lambda a: a.fill_count),
        opt(("remaining_count",), K.COUNT, lambda a: a.remaining_count),
        opt(("reduced_by",), K.COUNT, lambda a: a.reduced_by),
        opt(("average_fill_price",), K.PRICE, lambda a: a.average_fill_price),
        opt(("average_fee_paid",), K.DOLLARS, lambda a: a.average_fee_paid),
        opt(("ts_ms",), K.MS, lambda a: a.ts),
    ]),
    "series": (models.parse_series, REST_SERIES, [
        F(("ticker",), K.TEXT, lambda s: s.ticker),
        opt(("title",), K.LABEL, lambda s: s.title, ""),
        opt(("tags",), K.LIST, lambda s: s.tags, ()),
        F(("fee_type",), K.CHOICE, lambda s: s.fees.fee_type,
          allowed=("quadratic", "quadratic_with_maker_fees", "quadratic_with_combo_maker_fees",
                   "flat", "margin_market_maker_program_fees")),
        F(("fee_multiplier",), K.NONNEG, lambda s: s.fees.multiplier),
        opt(("volume_fp",), K.COUNT, lambda s: s.volume),
    ]),
    "event": (models.parse_event, REST_EVENT, [
        F(("event_ticker",), K.TEXT, lambda e: e.event_ticker),
        F(("series_ticker",), K.TEXT, lambda e: e.series_ticker),
        opt(("title",), K.LABEL, lambda e: e.title, ""),
        opt(("mutually_exclusive",), K.FLAG, lambda e: e.mutually_exclusive, False),
        opt(("strike_date",), K.TIME, lambda e: e.strike_date),
        opt(("markets",), K.LIST, lambda e: e.markets, ()),
    ]),
    "order group": (models.parse_order_group, REST_GROUP, [
        F(("id",), K.TEXT, lambda g: g.group_id),
        opt(("contracts_limit_fp",), K.COUNT, lambda g: g.contracts_limit),
        F(("is_auto_cancel_enabled",), K.FLAG, lambda g: g.auto_cancel_enabled),
        opt(("orders",), K.LIST, lambda g: g.order_ids, ()),
    ]),
    "account limits": (models.parse_account_limits, REST_LIMITS, [
        opt(("usage_tier",), K.TEXT, lambda a: a.usage_tier, ""),
        F(("read", "refill_rate"), K.RATE, lambda a: a.read.refill_rate),
        F(("write", "bucket_capacity"), K.RATE, lambda a: a.write.capacity),
    ]),
    "endpoint costs": (models.parse_endpoint_costs, REST_COSTS, [
        F(("default_cost",), K.TOKENS, lambda c: c.default_cost),
        F(("endpoint_costs", 0, "cost"), K.TOKENS, lambda c: c.costs[("GET", "/markets")]),
        F(("endpoint_costs", 0, "path"), K.TEXT, lambda c: next(iter(c.costs))[1]),
        opt(("endpoint_costs",), K.LIST, lambda c: tuple(c.costs), ()),
    ]),
    "queue positions": (models.parse_queue_positions, REST_QUEUE, [
        F((0, "queue_position_fp"), K.COUNT, lambda q: q["o1"]),
        F((0, "order_id"), K.TEXT, lambda q: next(iter(q))),
    ]),
    "exchange status": (models.parse_exchange_status, REST_STATUS, [
        F(("exchange_active",), K.FLAG, lambda s: s.exchange_active),
        F(("trading_active",), K.FLAG, lambda s: s.trading_active),
        opt(("exchange_estimated_resume_time",), K.TIME, lambda s: s.estimated_resume),
    ]),
    "orderbook": (models.parse_orderbook, REST_BOOK, [
        opt(("yes_dollars",), K.LIST, lambda b: b.bids, ()),
        opt(("no_dollars",), K.LIST, lambda b: b.asks, ()),
        F(("yes_dollars", 0, 0), K.PRICE, lambda b: b.bids[0][0], none="refused"),
        F(("yes_dollars", 0, 1), K.COUNT, lambda b: b.bids[0][1], none="refused"),
        F(("no_dollars", 0, 0), K.PRICE, lambda b: b.asks[0][0], none="refused",
          shown=_no_leg),
    ]),
}  # fmt: skip

#: The lenient ack reads a bad count, price or time as None instead of failing; ids stay strict.
REST["order ack, lenient"] = (
    _lenient_ack,
    REST_ACK,
    [
        f if f.kind is K.TEXT else opt(f.path, f.kind, f.get, lenient=True)
        for f in REST["order ack"][2]
    ],
)


def rest_parse(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``parse`` applied to the payload as the client decodes it off the wire."""
    return lambda payload: parse(models.loads(dumps(payload)))


# =========================================================================== the check


def cross_rule(values: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The one rule across fields: a fill's fee may be a refund, but never $1 a contract or
    more (domain.Fill). Returns what a refusal must name, or None."""
    count = next((v for k, v in values.items() if k.endswith("count_fp")), None)
    fee = next((v for k, v in values.items() if k.endswith("fee_cost")), None)
    if isinstance(count, Decimal) and isinstance(fee, Decimal) and fee <= -count:
        return ("fee",)
    return None


def outcome(parse: Callable[[Any], Any], payload: Any) -> Any:
    try:
        return parse(payload)
    except PayloadError as exc:
        return exc


def problems_with(
    parse: Callable[[Any], Any],
    fields: Sequence[F],
    payload: Any,
    changes: Sequence[tuple[F, Hostile | None]],
) -> list[str]:
    """What is wrong with parsing ``payload`` with ``changes`` applied (a Hostile value set,
    or None: the key dropped): [] when the parser did what the oracle says."""
    mutated = payload
    expected = {f.label: f.expect(at(payload, f.path)) for f in fields}
    refusing: list[tuple[F, Any]] = []
    for f, hostile in changes:
        if hostile is None:
            mutated = put(mutated, f.path, None, drop=True)
            want = f.expect(None)
        else:
            mutated = put(mutated, f.path, hostile.value)
            want = f.expect(hostile.value)
        expected[f.label] = want
        if want is REFUSED or want is MISSING:
            refusing.append((f, want))
    what = ", ".join(f"{f.label} {'dropped' if h is None else '= ' + h.label}" for f, h in changes)
    if any(expected[f.label] is UNCHECKED for f, _ in changes):
        return []  # a list of other things: its items' fields are checked on their own
    got = outcome(parse, mutated)
    cross = cross_rule(expected)
    if refusing or cross:
        if not isinstance(got, PayloadError):
            return [f"{what}: accepted, expected a refusal"]
        message = str(got)
        if "parser bug" in message or len(message) > 1000:
            return [f"{what}: {message[:300]}"]
        for f, want in refusing:
            if any(name in message for name in f.mentions) and (
                want is REFUSED or "missing" in message
            ):
                return []
        if cross and any(name in message for name in cross):
            return []
        return [f"{what}: the refusal {message!r} does not name the field (or say missing)"]
    if isinstance(got, PayloadError):
        return [f"{what}: refused ({got}), expected it read"]
    out = []
    for f, _ in changes:
        want = expected[f.label]
        if want is UNCHECKED:
            continue
        try:
            value = f.get(got)
        except Exception as exc:  # the parser returned something else
            out.append(f"{what}: no {f.label} in {got!r:.200} ({exc!r})")
            continue
        if value != want or type(value) is not type(want):
            out.append(f"{what}: {f.label} read as {value!r:.80}, expected {want!r:.80}")
        if isinstance(value, Decimal) and not value.is_finite():
            out.append(f"{what}: {f.label} = {value}")
    return out


def _ws_cases() -> list[tuple[str, F]]:
    return [(name, f) for name, (_, fields) in WS.items() for f in fields]


def _rest_cases() -> list[tuple[str, F]]:
    return [(name, f) for name, (_, _, fields) in REST.items() for f in fields]


def _ids(cases: list[tuple[str, F]]) -> list[str]:
    return [f"{name}:{f.label}" for name, f in cases]


def test_the_valid_payloads_read_as_the_oracle_says() -> None:
    """The starting points are valid and every field reads as the oracle reads it, so that
    a refusal below is about the hostile value."""
    for frame, fields in WS.values():
        parsed = ws_parse(frame)
        for f in fields:
            want = f.expect(at(frame, f.path))
            assert want is UNCHECKED or f.get(parsed) == want, f.label
    for parse, payload, fields in REST.values():
        parsed = rest_parse(parse)(payload)
        for f in fields:
            want = f.expect(at(payload, f.path))
            assert want is UNCHECKED or f.get(parsed) == want, f.label


@pytest.mark.parametrize(("name", "f"), _ws_cases(), ids=_ids(_ws_cases()))
def test_every_ws_field_refuses_or_reads_each_hostile_value_as_the_oracle_says(
    name: str, f: F
) -> None:
    frame, fields = WS[name]
    found: list[str] = []
    for hostile in (*HOSTILE, None):
        found += problems_with(ws_parse, fields, frame, [(f, hostile)])
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("name", "f"), _rest_cases(), ids=_ids(_rest_cases()))
def test_every_rest_field_refuses_or_reads_each_hostile_value_as_the_oracle_says(
    name: str, f: F
) -> None:
    parse, payload, fields = REST[name]
    found: list[str] = []
    for hostile in (*HOSTILE, None):
        found += problems_with(rest_parse(parse), fields, payload, [(f, hostile)])
    assert not found, "\n".join(found)


def _independent(chosen: Sequence[F]) -> bool:
    """No field inside another one chosen (a book level inside its list)."""
    paths = [f.path for f in chosen]
    return not any(a != b and a[: len(b)] == b for a in paths for b in paths)


@st.composite
def several_changes(draw: st.DrawFn, fields: Sequence[F]) -> list[tuple[F, Hostile | None]]:
    chosen = draw(
        st.lists(
            st.sampled_from(list(fields)), min_size=2, max_size=4, unique_by=lambda f: f.path
        ).filter(_independent)
    )
    return [(f, draw(st.sampled_from((*HOSTILE, None)))) for f in chosen]


@settings(max_examples=250)
@given(data=st.data())
def test_several_hostile_ws_fields_at_once(data: st.DataObject) -> None:
    """Refused, naming one of the fields whose value is refused; else every field read."""
    name = data.draw(st.sampled_from(sorted(k for k, (_, fs) in WS.items() if len(fs) > 2)))
    frame, fields = WS[name]
    changes = data.draw(several_changes(fields))
    found = problems_with(ws_parse, fields, frame, changes)
    assert not found, "\n".join(found)


@settings(max_examples=250)
@given(data=st.data())
def test_several_hostile_rest_fields_at_once(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(k for k, (_, _, fs) in REST.items() if len(fs) > 2)))
    parse, payload, fields = REST[name]
    changes = data.draw(several_changes(fields))
    found = problems_with(rest_parse(parse), fields, payload, changes)
    assert not found, "\n".join(found)


# =========================================================================== numeric strings


_DIGITS = st.text(alphabet="0123456789", max_size=7)
#: Strings that look more or less like numbers: signs, points, commas, exponents, stray
#: whitespace, non-ASCII digits, words.
NUMERIC_TEXT = st.one_of(
    st.tuples(
        st.sampled_from(["", " ", "\t", "\u00a0", "\n"]),
        st.sampled_from(["", "", "-", "+", "--", "+-"]),
        _DIGITS,
        st.sampled_from(["", ".", ".", ",", ".."]),
        _DIGITS,
        st.sampled_from(["", "", "", "e2", "E-3", "e999999", "e+0"]),
        st.sampled_from(["", "", " ", "\u2003", "x"]),
    ).map("".join),
    st.sampled_from(
        ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", "\u0661\u0662", "\uff10.\uff15",
         "1_0", "0x1F", "\u00bd", "0.5\u0000", "0." + "0" * 70 + "1", "1" + "0" * 20]
    ),
    st.text(alphabet=st.characters(categories=("Nd", "No", "Zs", "Pd", "Po")), max_size=6),
)  # fmt: skip


def _field(fields: Sequence[F], label: str) -> F:
    return next(f for f in fields if f.label == label)


NUMERIC_TARGETS = [
    ("ws", "orderbook_delta", "msg.price_dollars"),
    ("ws", "orderbook_delta", "msg.delta_fp"),
    ("ws", "ticker", "msg.yes_bid_dollars"),
    ("ws", "market_lifecycle_v2", "msg.open_ts"),
    ("ws", "event_fee_update", "msg.fee_multiplier_override"),
    ("rest", "order", "yes_price_dollars"),
    ("rest", "order", "remaining_count_fp"),
    ("rest", "settlement", "revenue"),
    ("rest", "market", "exchange_index"),
    ("rest", "fill", "created_time"),
    ("rest", "account limits", "read.refill_rate"),
]


@pytest.mark.parametrize(("api", "name", "label"), NUMERIC_TARGETS)
@settings(max_examples=120)
@given(text=NUMERIC_TEXT)
def test_numeric_looking_strings_are_read_exactly_or_refused(
    api: str, name: str, label: str, text: str
) -> None:
    """The WS delta's price and size go through the fast path's caches once a string has
    been seen valid; a string must read the same, or be refused the same, either way."""
    if api == "ws":
        frame, fields = WS[name]
        parse, payload = ws_parse, frame
    else:
        reader, payload, fields = REST[name]
        parse = rest_parse(reader)
    f = _field(fields, label)
    found = problems_with(parse, fields, payload, [(f, Hostile(repr(text), text))])
    assert not found, "\n".join(found)


# =========================================================================== frame types


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.label for h in HOSTILE])
def test_a_hostile_frame_type_is_refused_naming_type_or_is_an_unknown_message(
    hostile: Hostile,
) -> None:
    frame = {**DELTA, "type": hostile.value}
    if not isinstance(hostile.value, str):
        with pytest.raises(PayloadError, match=r"^frame: type must be a string, got \w+$"):
            ws_parse(frame)
        return
    assert ws_parse(frame) == UnknownMsg(hostile.value[:64], 2, 3)


@pytest.mark.parametrize(
    "kind", ["ORDERBOOK_DELTA", " orderbook_delta", "orderbook_delta\u0000", "fills", "ticker_v2"]
)
def test_a_near_miss_of_a_known_type_is_not_read_as_that_type(kind: str) -> None:
    """Skipped (and counted by the connection as unknown), never parsed as a neighbour."""
    assert ws_parse({**DELTA, "type": kind}) == UnknownMsg(kind, 2, 3)


_GONE = object()


def _lookup(payload: Any, path: Path) -> Any:
    try:
        return at(payload, path)
    except (KeyError, IndexError, TypeError):
        return _GONE


@settings(max_examples=300)
@given(name=st.sampled_from(sorted(WS)), data=st.data())
def test_corrupted_frame_bytes_are_refused_or_read_exactly(name: str, data: st.DataObject) -> None:
    """One to three bytes flipped, inserted or deleted, or the frame cut short: a
    PayloadError that says what, or (the damage made another valid frame) a message whose
    every field reads as the oracle reads the damaged frame."""
    raw = bytearray(dumps(WS[name][0]).encode())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        i = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if op == "flip":
            raw[i] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
        elif op == "insert":
            raw.insert(i, data.draw(st.sampled_from(b'"{}[],:.-0 9e\\\xff')))
        elif op == "delete":
            del raw[i]
        else:
            del raw[i:]
        if not raw:
            break
    try:
        message = parse_frame(bytes(raw), yes_prices=False)
    except PayloadError as exc:
        problem = str(exc)
        assert problem.strip()
        assert "parser bug" not in problem, problem
        assert len(problem) < 1000
        return
    frame = json.loads(bytes(raw), parse_float=Decimal)
    if frame.get("type") != name:
        return  # now another (or an unknown) type: the table of ``name`` does not apply
    for f in WS[name][1]:
        value = _lookup(frame, f.path)
        if value is _GONE and f.none == "refused":
            continue  # a book level that is no longer there
        want = f.expect(None if value is _GONE else value)
        assert want is not REFUSED, f"{f.label} = {value!r} accepted"
        assert want is not MISSING, f"{f.label} missing, accepted"
        if want is not UNCHECKED:
            assert f.get(message) == want, f.label


# =========================================================================== the order book


@dataclass
class Feed:
    """Frames through ``parse_frame`` into the books, as the connection does it: a refused
    frame and a book message for a market without a book are skipped and counted."""

    yes_prices: bool
    books: dict[str, OrderBook] = field(default_factory=lambda: {"T": OrderBook("T")})
    refused: int = 0
    not_ours: int = 0

    def send(self, frame: Any) -> None:
        try:
            msg = parse_frame(
                frame if isinstance(frame, str) else dumps(frame), yes_prices=self.yes_prices
            )
        except PayloadError:
            self.refused += 1
            return
        if isinstance(msg, BookSnapshot | BookDelta):
            book = self.books.get(msg.ticker)
            if book is None:
                self.not_ours += 1
            elif isinstance(msg, BookSnapshot):
                book.apply_snapshot(msg.book)
            else:
                book.apply_delta(msg.side, msg.price, msg.delta, ts=msg.ts)


def delta(
    price: Any, size: Any, side: Any = "yes", ticker: Any = "T", seq: int = 1
) -> dict[str, Any]:
    msg = {"market_ticker": ticker, "price_dollars": price, "delta_fp": size, "side": side,
           "ts_ms": 1_750_000_000_000}  # fmt: skip
    return {"type": "orderbook_delta", "sid": 1, "seq": seq, "msg": msg}


def snapshot(yes: list[list[Any]], no: list[list[Any]], ticker: str = "T") -> dict[str, Any]:
    msg = {"market_ticker": ticker, "yes_dollars_fp": yes, "no_dollars_fp": no}
    return {"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": msg}


#: Valid prices, on the cent grid and off it (a book mirrors what the exchange sends).
GOOD_PRICE = st.integers(min_value=1, max_value=999).map(lambda m: f"{D(m) / 1000:.4f}")
BAD_PRICE = st.sampled_from(
    ["0", "1.0000", "-0.0100", "1.01", "NaN", "0.12345678", "", None, True, 10**400, "1e-1"]
)
GOOD_SIZE = st.integers(min_value=-5000, max_value=5000).map(lambda c: f"{D(c) / 100:.2f}")
BAD_SIZE = st.sampled_from(["1.234", "NaN", None, "", "1e3", [], "\u0661", 10**400, False])


@st.composite
def book_steps(draw: st.DrawFn) -> tuple[Any, bool, tuple[str, str, Decimal, Decimal] | None]:
    """A frame, whether the parser must accept it, and the change it stands for:
    ("delta", wire side, wire price, size) or ("snapshot", ...) via the frame itself."""
    kind = draw(st.sampled_from(["delta"] * 6 + ["other market", "snapshot", "garbage"]))
    if kind == "garbage":
        return dumps(delta("0.5000", "1.00"))[: draw(st.integers(0, 60))], False, None
    if kind == "snapshot":
        yes = draw(st.dictionaries(GOOD_PRICE, GOOD_SIZE.filter(lambda s: s[0] != "-"), max_size=5))
        no = draw(st.dictionaries(GOOD_PRICE, GOOD_SIZE.filter(lambda s: s[0] != "-"), max_size=5))
        levels = [[p, n] for p, n in yes.items()], [[p, n] for p, n in no.items()]
        bad = draw(st.sampled_from([None, None, "negative", "repeat", "price"]))
        if bad == "negative":
            levels[0].append(["0.0100" if "0.0100" not in yes else "0.0200", "-1.00"])
        elif bad == "repeat" and levels[1]:
            levels[1].append([str(D(levels[1][0][0]) * 1), "1.00"])  # "0.5" and "0.5000"
        elif bad == "price":
            levels[0].append([draw(BAD_PRICE), "1.00"])
        return snapshot(*levels), bad is None or (bad == "repeat" and not levels[1]), None
    good_price, good_size = draw(st.booleans()) or draw(st.booleans()), draw(st.booleans()) or True
    price = draw(GOOD_PRICE if good_price else BAD_PRICE)
    size = draw(GOOD_SIZE if good_size else BAD_SIZE)
    side = draw(st.sampled_from(["yes", "no", "yes", "no", "bid"]))
    ticker = "T" if kind == "delta" else draw(st.sampled_from(["OTHER", "T2", "t"]))
    ok = good_price and good_size and side in ("yes", "no")
    change = (ticker, side, D(price), D(size)) if ok else None
    return delta(price, size, side, ticker), ok, change


def _model_crossed(model: Mapping[Side, Mapping[Decimal, Decimal]]) -> bool:
    bids, asks = model[Side.BID], model[Side.ASK]
    return bool(bids and asks) and max(bids) >= min(asks)


@settings(max_examples=300)
@given(steps=st.lists(book_steps(), max_size=30), yes_prices=st.booleans())
def test_the_book_fed_hostile_frames_matches_a_model_of_what_was_accepted(
    steps: list[tuple[Any, bool, tuple[str, str, Decimal, Decimal] | None]], yes_prices: bool
) -> None:
    feed = Feed(yes_prices)
    book = feed.books["T"]
    model: dict[Side, dict[Decimal, Decimal]] = {Side.BID: {}, Side.ASK: {}}
    stale, negatives, refused, not_ours = True, 0, 0, 0
    for frame, ok, change in steps:
        feed.send(frame)
        if not ok:
            refused += 1
        elif isinstance(frame, dict) and frame["type"] == "orderbook_snapshot":
            msg = frame["msg"]
            model[Side.BID] = {D(p): D(n) for p, n in msg["yes_dollars_fp"] if D(n) > 0}
            asks = ((D(p) if yes_prices else 1 - D(p), D(n)) for p, n in msg["no_dollars_fp"])
            model[Side.ASK] = {p: n for p, n in asks if n > 0}
            stale = _model_crossed(model)
        elif change is not None and change[0] != "T":
            not_ours += 1
        elif change is not None:
            _, side, price, size = change
            at_side = Side.BID if side == "yes" else Side.ASK
            yes_price = price if side == "yes" or yes_prices else 1 - price
            new = model[at_side].get(yes_price, D(0)) + size
            if new < 0:
                negatives, stale = negatives + 1, True
            if new > 0:
                model[at_side][yes_price] = new
            else:
                model[at_side].pop(yes_price, None)
            stale = stale or _model_crossed(model)
        # A refused frame changed nothing; an accepted one did exactly what it says.
        assert (feed.refused, feed.not_ours) == (refused, not_ours)
        assert set(feed.books) == {"T"}, "a frame for another market made a book"
        assert dict(book.levels(Side.BID)) == model[Side.BID]
        assert dict(book.levels(Side.ASK)) == model[Side.ASK]
        assert all(n > 0 and 0 < p < 1 for s in Side for p, n in book.levels(s))
        assert (book.stale, book.negative_levels) == (stale, negatives), book.stale_reason
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None and bid[0] >= ask[0]:
            assert book.stale, "a crossed book that is not marked stale"


@pytest.mark.parametrize(
    ("frames", "bids", "asks", "stale", "negatives"),
    [
        pytest.param(
            [delta("0.40", "5.00"), delta("0.4000", "-5.00")], {}, {}, False, 0,
            id="one level however the price is written; netting to zero removes it",
        ),
        pytest.param(
            [delta("0.40", "-0.01")], {}, {}, True, 1,
            id="a delta below zero on no level: nothing kept, counted, stale",
        ),
        pytest.param(
            [delta("0.40", "2.00"), delta("0.40", "-2.01")], {}, {}, True, 1,
            id="a delta below zero on a level: the level goes, counted, stale",
        ),
        pytest.param(
            [delta("0.40", "0.00"), delta("0.40", "-0.00")], {}, {}, False, 0,
            id="zero deltas make no level",
        ),
        pytest.param(
            [delta("0.40", "1.00"), delta("0.65", "1.00", side="no")],
            {D("0.40"): D(1)}, {D("0.35"): D(1)}, True, 0,
            id="a NO bid at 0.65 is a YES ask at 0.35: crossed, kept, stale",
        ),
        pytest.param(
            [delta("0.40", "0.01")] * 100, {D("0.40"): D("1.00")}, {}, False, 0,
            id="a hundred cents of a contract are exactly one",
        ),
        pytest.param(
            [delta("0.40", "99999999999999.99"), delta("0.40", "-99999999999999.98")],
            {D("0.40"): D("0.01")}, {}, False, 0,
            id="the largest sizes stay exact",
        ),
        pytest.param(
            [delta("0.40", "1.00", ticker="OTHER"), delta("0.40", "1e3")], {}, {}, False, 0,
            id="another market's delta and a refused one leave the book alone",
        ),
    ],
)  # fmt: skip
def test_hostile_but_parseable_book_frames(
    frames: list[dict[str, Any]],
    bids: dict[Decimal, Decimal],
    asks: dict[Decimal, Decimal],
    stale: bool,
    negatives: int,
) -> None:
    feed = Feed(yes_prices=False)
    book = feed.books["T"]
    feed.send(snapshot([], []))
    for frame in frames:
        feed.send(frame)
    assert dict(book.levels(Side.BID)) == bids
    assert dict(book.levels(Side.ASK)) == asks
    assert (book.stale, book.negative_levels) == (stale, negatives)
    if negatives:
        assert "a delta was missed" in (book.stale_reason or "")
    assert set(feed.books) == {"T"}


# =========================================================================== odds boards


ODDS_NOW = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
HOME, AWAY = "Los Angeles Lakers", "Boston Celtics"
STAMP = "2026-11-21T21:59:10Z"


def line(key: str, outcomes: list[tuple[Any, Any]], **extra: Any) -> dict[str, Any]:
    market = {"key": "h2h", "last_update": STAMP,
              "outcomes": [{"name": n, "price": p} for n, p in outcomes]}  # fmt: skip
    return {"key": key, "title": str(key), "last_update": STAMP, "markets": [market], **extra}


def game_event(event_id: str, books: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    if books is None:
        books = [line("pinnacle", [(HOME, 2.4), (AWAY, 1.625)])]
    return {"id": event_id, "sport_key": "basketball_nba", "commence_time": "2026-11-22T03:30:00Z",
            "home_team": HOME, "away_team": AWAY, "bookmakers": books, **extra}  # fmt: skip


def board_of(*events: Any) -> Any:
    """Through JSON text, as the client decodes it (NaN and Infinity literals included)."""
    return parse_board(json.loads(json.dumps(list(events))), "basketball_nba", ODDS_NOW)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0001-01-01T00:00:00+01:00", "outside the years 1 to 9999 in UTC"),
        ("9999-12-31T23:59:59-01:00", "outside the years 1 to 9999 in UTC"),
        ("2026-11-22T03:30:00", "has no time zone"),
        ("2026-02-30T03:30:00Z", "is not an ISO 8601 time"),
        ("2026-11-22T03:30:00+25:00", "is not an ISO 8601 time"),
        (1795404600, "is not an ISO 8601 time"),
        ("", "is not an ISO 8601 time"),
        (None, "is not an ISO 8601 time"),
        (["2026-11-22T03:30:00Z"], "is not an ISO 8601 time"),
    ],
)
def test_a_bad_commence_time_skips_its_event_naming_the_field(value: Any, problem: str) -> None:
    board = board_of(game_event("good"), game_event("bad", commence_time=value))
    assert [e.id for e in board.events] == ["good"]
    (skipped,) = board.problems
    assert (skipped.event_id, skipped.bookmaker, skipped.field) == ("bad", None, "commence_time")
    assert problem in str(skipped)
    assert (board.skipped_events, board.skipped_bookmakers) == (1, 0)


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:00:00-02:00", "2026-11-21T21:59:10"]
)
def test_a_bad_last_update_skips_its_bookmaker(stamp: str) -> None:
    bad = line("fanduel", [(HOME, 2.36), (AWAY, 1.62)])
    bad["markets"][0]["last_update"] = stamp
    board = board_of(game_event("e1", [line("pinnacle", [(HOME, 2.4), (AWAY, 1.625)]), bad]))
    assert [b.key for b in board.events[0].bookmakers] == ["pinnacle"]
    (skipped,) = board.problems
    assert (skipped.event_id, skipped.bookmaker, skipped.field) == ("e1", "fanduel", "last_update")
    assert (board.skipped_events, board.skipped_bookmakers) == (0, 1)


PINNACLE = line("pinnacle", [(HOME, 2.4), (AWAY, 1.625)])


@pytest.mark.parametrize(
    ("books", "bookmaker", "field_name", "problem"),
    [
        ([PINNACLE, line("fd", [(HOME, 2.3), (HOME, 2.2), (AWAY, 1.6)])],
         "fd", "h2h.outcomes[1].name", "'Los Angeles Lakers' is listed twice"),
        ([PINNACLE, line("fd", [(HOME, 2.3), (AWAY, 1.6), (f" {AWAY}\t", 1.7)])],
         "fd", "h2h.outcomes[2].name", "'Boston Celtics' is listed twice"),
        ([PINNACLE, line("fd", [(HOME, 2.3), (AWAY, 1.6), ("Chicago Bulls", 9.0)])],
         "fd", "h2h.outcomes", "are not the two teams (and Draw)"),
        ([PINNACLE, line("fd", [("Lakers", 2.3), (AWAY, 1.6)])],
         "fd", "h2h.outcomes", "are not the two teams (and Draw)"),
        ([PINNACLE, line("fd", [])], "fd", "h2h.outcomes", "0 outcome(s)"),
        ([PINNACLE, line("fd", [(HOME, 2.3)])], "fd", "h2h.outcomes", "1 outcome(s)"),
        ([PINNACLE, {**PINNACLE, "key": "fd", "markets": [PINNACLE["markets"][0]] * 2}],
         "fd", "markets", "2 h2h markets, expected one"),
        ([PINNACLE, {**PINNACLE, "key": "fd", "markets": None}], "fd", "markets", "is not a list"),
        ([PINNACLE, line("pinnacle", [(HOME, 2.5), (AWAY, 1.6)])],
         "pinnacle", "key", "listed twice"),
        ([PINNACLE, line("fd", [(HOME, 10**400), (AWAY, 1.6)])],
         "fd", "h2h.outcomes[0].price", "is not decimal odds above 1.0"),
        ([PINNACLE, line("fd", [(HOME, 2.3), (AWAY, float("-inf"))])],
         "fd", "h2h.outcomes[1].price", "is not decimal odds above 1.0"),
        ([PINNACLE, line("fd", [(HOME, 2.3), (AWAY, -0.0)])],
         "fd", "h2h.outcomes[1].price", "is not decimal odds above 1.0"),
        ([PINNACLE, line("fd", [(HOME, 2.3), (AWAY, "NaN")])],
         "fd", "h2h.outcomes[1].price", "is not a number"),
        ([PINNACLE, line("fd", [(HOME, 2.3), (AWAY, [1.6])])],
         "fd", "h2h.outcomes[1].price", "is not a number"),
        # No key to name the bookmaker by: named by its place, and counted as a bookmaker.
        ([PINNACLE, "draftkings"], "bookmakers[1]", None, "a bookmaker is not an object"),
        ([PINNACLE, {**PINNACLE, "key": " "}], "bookmakers[1]", "key", "not a non-empty string"),
        ([PINNACLE, {**PINNACLE, "key": None}], "bookmakers[1]", "key", "not a non-empty string"),
    ],
)  # fmt: skip
def test_a_bad_bookmaker_line_is_skipped_and_counted_naming_the_field(
    books: list[Any], bookmaker: str, field_name: str | None, problem: str
) -> None:
    board = board_of(game_event("e1", books))
    (event,) = board.events
    assert [b.key for b in event.bookmakers] == ["pinnacle"]
    assert event.bookmakers[0].outcomes == {HOME: 2.4, AWAY: 1.625}
    (skipped,) = board.problems
    assert (skipped.event_id, skipped.bookmaker, skipped.field) == ("e1", bookmaker, field_name)
    assert problem in str(skipped)
    assert (board.skipped_events, board.skipped_bookmakers) == (0, 1)


@pytest.mark.parametrize(
    ("change", "field_name", "problem"),
    [
        ({"bookmakers": None}, "bookmakers", "is not a list"),
        ({"bookmakers": {"pinnacle": PINNACLE}}, "bookmakers", "is not a list"),
        ({"home_team": AWAY}, "away_team", "is both the home and the away team"),
        ({"home_team": f" {AWAY} "}, "away_team", "is both the home and the away team"),
        ({"away_team": ""}, "away_team", "is not a non-empty string"),
        ({"sport_key": "basketball_wnba"}, "sport_key", "is not the sport asked for"),
        ({"id": 7}, "id", "is not a non-empty string"),
    ],
)
def test_a_bad_event_is_skipped_and_counted_naming_the_field(
    change: dict[str, Any], field_name: str, problem: str
) -> None:
    bad = {**game_event("bad"), **change}
    board = board_of(game_event("good"), bad)
    assert [e.id for e in board.events] == ["good"]
    (skipped,) = board.problems
    assert skipped.field == field_name
    assert skipped.event_id == (None if field_name == "id" else "bad")
    assert problem in str(skipped)
    assert (board.skipped_events, board.skipped_bookmakers) == (1, 0)


def test_a_draw_in_a_two_way_line_is_read_but_never_priced_as_two_way() -> None:
    """Parsing allows a draw; :meth:`OddsEvent.book_odds` leaves a book out whose outcomes
    are not exactly the names asked for, so no two-way theo is devigged from it."""
    three = line("fd", [(HOME, 2.3), (AWAY, 1.6), ("Draw", 15.0)])
    (event,) = board_of(game_event("e1", [PINNACLE, three])).events
    assert [b.bookmaker for b in event.book_odds((AWAY, HOME))] == ["pinnacle"]
    assert [b.bookmaker for b in event.book_odds((AWAY, HOME, "Draw"))] == ["fd"]


def _odds_oracle(price: Any) -> float | None:
    """Decimal odds: a JSON number (not a bool), finite as a float, above 1.0."""
    if isinstance(price, bool) or not isinstance(price, int | float):
        return None
    try:
        value = float(price)
    except OverflowError:
        return None
    return value if value > 1.0 and value != float("inf") else None


ODDS_PRICES = st.one_of(
    st.floats(),
    st.floats(min_value=0.9, max_value=1.1),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([10**308, 10**309, -(10**309), 1.0, 1, 2, 1e308, 5e-324]),
    st.text(max_size=8),
    st.none(),
    st.booleans(),
    st.lists(st.floats(min_value=1.1, max_value=9), max_size=2),
)


@settings(max_examples=300)
@given(price=ODDS_PRICES, which=st.integers(min_value=0, max_value=1))
def test_any_price_is_read_exactly_as_decimal_odds_or_skips_its_bookmaker(
    price: Any, which: int
) -> None:
    outcomes: list[tuple[Any, Any]] = [(HOME, 2.3), (AWAY, 1.6)]
    outcomes[which] = (outcomes[which][0], price)
    board = board_of(game_event("e1", [PINNACLE, line("fd", outcomes)]))
    (event,) = board.events
    want = _odds_oracle(price)
    fd = event.bookmaker("fd")
    if want is None:
        assert fd is None, f"price {price!r} read as {fd}"
        (skipped,) = board.problems
        assert (skipped.bookmaker, skipped.field) == ("fd", f"h2h.outcomes[{which}].price")
        assert "is not a number" in str(skipped) or "is not decimal odds above 1.0" in str(skipped)
    else:
        assert fd is not None, f"price {price!r} refused: {board.problems}"
        assert fd.outcomes[outcomes[which][0]] == want
        assert board.problems == ()


@settings(max_examples=200)
@given(
    when=st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59, 59),
        timezones=st.none()
        | st.timedeltas(
            min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
        ).map(timezone),
    )
)
@example(when=datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))))
@example(when=datetime(9999, 12, 31, 23, 30, tzinfo=timezone(-timedelta(hours=2))))
def test_any_commence_time_is_read_as_its_instant_or_skips_the_event(when: datetime) -> None:
    board = board_of(game_event("good"), game_event("e1", commence_time=when.isoformat()))
    try:
        instant = when.astimezone(UTC) if when.tzinfo is not None else None
    except OverflowError:
        instant = None
    if instant is None:
        (skipped,) = board.problems
        assert (skipped.event_id, skipped.field) == ("e1", "commence_time")
        assert [e.id for e in board.events] == ["good"]
    else:
        assert board.problems == ()
        assert board.events[1].commence_time == instant


# =========================================================================== matching


GAME_MARKETS = [
    {"event_ticker": "KXNBAGAME-26NOV21BOSLAL", "ticker": "KXNBAGAME-26NOV21BOSLAL-BOS",
     "yes_sub_title": "Boston", "occurrence_datetime": "2026-11-22T03:30:00Z"},
    {"event_ticker": "KXNBAGAME-26NOV21BOSLAL", "ticker": "KXNBAGAME-26NOV21BOSLAL-LAL",
     "yes_sub_title": "Los Angeles L", "occurrence_datetime": "2026-11-22T03:30:00Z"},
]  # fmt: skip


def _with(i: int, **change: Any) -> list[Any]:
    out = copy.deepcopy(GAME_MARKETS)
    out[i].update(change)
    return out


@pytest.mark.parametrize(
    ("markets", "problem"),
    [
        ([], "a game needs its markets"),
        ([GAME_MARKETS[0], ["not", "a", "market"]], "a market is not a JSON object but list"),
        ([GAME_MARKETS[0], None], "a market is not a JSON object but NoneType"),
        (_with(1, event_ticker=["KXNBAGAME-26NOV21BOSLAL"]), "the markets are not of one event"),
        (_with(0, event_ticker={}), "the markets are not of one event"),
        (_with(1, event_ticker="KXNBAGAME-26NOV22BOSLAL"), "the markets are not of one event"),
        (_with(1, ticker=""), "KXNBAGAME-26NOV21BOSLAL: a market has no ticker"),
        (_with(1, yes_sub_title={"name": "Lakers"}), "has yes_sub_title"),
        (_with(1, yes_sub_title=76), "has yes_sub_title '76', not a string"),
        (_with(1, occurrence_datetime="0001-01-01T00:00:00+01:00"), "within the years 1"),
        (_with(1, occurrence_datetime="9999-12-31T23:59:59-01:00"), "within the years 1"),
        (_with(1, occurrence_datetime="2026-11-22T03:30:00"), "with a zone"),
        (_with(1, occurrence_datetime=1795404600), "not an ISO 8601 time"),
        (_with(1, occurrence_datetime="2026-11-22T04:30:00Z"), "different occurrence_datetime"),
    ],
)
def test_hostile_kalshi_markets_raise_a_value_error_naming_the_event(
    markets: list[Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)) as caught:
        KalshiGame.from_markets(markets)
    assert type(caught.value) is ValueError
    if markets and all(isinstance(m, dict) for m in markets) and "one event" not in problem:
        assert str(caught.value).startswith("KXNBAGAME-26NOV21BOSLAL: ")


MARKET_VALUES = st.one_of(
    st.sampled_from(["KXNBAGAME-26NOV21BOSLAL", "KXNBAGAME-26NOV21BOSLAL-BOS", "Boston",
                     "2026-11-22T03:30:00Z", "0001-01-01T00:00:00+01:00", "", " "]),
    st.none(), st.booleans(), st.integers(), st.text(max_size=12),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.none(), max_size=1),
)  # fmt: skip


@settings(max_examples=300)
@given(data=st.data())
def test_mutated_kalshi_markets_make_a_game_or_a_value_error(data: st.DataObject) -> None:
    markets: list[Any] = copy.deepcopy(GAME_MARKETS)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        i = data.draw(st.integers(min_value=0, max_value=1))
        key = data.draw(st.sampled_from(sorted(GAME_MARKETS[0])))
        if data.draw(st.booleans()):
            markets[i].pop(key, None)
        else:
            markets[i][key] = data.draw(MARKET_VALUES)
    try:
        game = KalshiGame.from_markets(markets)
    except ValueError as exc:
        refusal: ValueError | None = exc
    else:
        refusal = None
    if refusal is not None:
        assert type(refusal) is ValueError
        assert str(refusal).strip()
        return
    assert game.event_ticker == markets[0]["event_ticker"]
    assert all(isinstance(t, str) and t and isinstance(title, str) for t, title in game.markets)
    assert game.start_time is None or game.start_time.utcoffset() == timedelta(0)


TEAM_NAMES = st.one_of(
    st.sampled_from([HOME, AWAY, "Boston", "Los Angeles L", "Los Angeles C", "LA Clippers",
                     "Celtics", "Draw", "St. Louis", "Miami (OH)", "Texas A&M", "Montréal"]),
    st.text(max_size=16),
    st.text(alphabet="-–().&'’ St", max_size=8),
)  # fmt: skip


@settings(max_examples=300)
@given(
    odds_names=st.lists(TEAM_NAMES, min_size=4, max_size=4),
    kalshi=st.tuples(TEAM_NAMES, TEAM_NAMES),
)
def test_any_team_names_give_one_match_or_one_reason(
    odds_names: list[str], kalshi: tuple[str, str]
) -> None:
    """Never an exception; the game is matched once or unmatched once, and a match names
    both teams well enough."""
    events = [
        game_event("e1", [], away_team=odds_names[0], home_team=odds_names[1]),
        game_event("e2", [], away_team=odds_names[2], home_team=odds_names[3]),
    ]
    try:
        board = board_of(*events)
    except OddsPayloadError:
        return  # neither event readable (empty or repeated names): nothing to match
    markets = copy.deepcopy(GAME_MARKETS)
    markets[0]["yes_sub_title"], markets[1]["yes_sub_title"] = kalshi
    game = KalshiGame.from_markets(markets)
    report = match_games([game], board.events)
    assert len(report.matches) + len(report.unmatched) == 1
    for unmatched in report.unmatched:
        assert unmatched.detail
    for match in report.matches:
        assert match.event in board.events
        titles = dict(game.markets)
        least = MatchParams().min_score
        assert team_score(titles[match.team_a], match.event.away_team, "basketball_nba") >= least
        assert team_score(titles[match.team_b], match.event.home_team, "basketball_nba") >= least
