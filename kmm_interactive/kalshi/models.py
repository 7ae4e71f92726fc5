"""Kalshi payload objects parsed into typed values, shared by the REST and WebSocket clients.

Every reader here takes decoded JSON (``json.loads(..., parse_float=Decimal)``, so a price
sent as a JSON number stays exact) and returns domain values: ``Decimal`` dollars and
contract counts, :class:`~kmm_interactive.domain.Side` on the YES book, aware datetimes.
Bad input raises :class:`PayloadError`, which names the object, the field and what was
wrong; nothing is half-parsed.

Direction: V2 objects carry ``book_side`` (``bid`` buys YES, ``ask`` sells YES). Older
payloads carry only ``side`` (yes/no) and ``action`` (buy/sell); buy YES and sell NO are a
bid, buy NO and sell YES an ask.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

from kmm_interactive.domain import (
    ONE,
    ZERO,
    Fill,
    PriceGrid,
    SeriesFees,
    Side,
    parse_count,
    parse_dollars,
    validate_price,
)
from kmm_interactive.kalshi.ratelimit import BucketLimits

Json = Mapping[str, Any]
T = TypeVar("T")

#: Order statuses Kalshi reports (``unknown`` only on ``user_orders``).
ORDER_STATUSES: Final = ("resting", "canceled", "executed", "unknown")


class PayloadError(ValueError):
    """A payload from the exchange that does not have the shape or values the API promises."""


def loads(text: str | bytes) -> Any:
    """Decode JSON keeping every number exact (floats become ``Decimal``)."""
    try:
        return json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"not valid JSON: {str(exc)[:120]}") from None


def obj(value: Any, where: str) -> Json:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def items(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise PayloadError(f"{where}: expected a JSON array, got {type(value).__name__}")
    return value


def list_field(data: Json, name: str, where: str) -> Sequence[Any]:
    """``data[name]`` as a JSON array; null or absent is empty, anything else (``{}``,
    ``false``, ``""``) is refused rather than read as an empty list."""
    value = data.get(name)
    return [] if value is None else items(value, f"{where}.{name}")


def field(data: Json, name: str, where: str, parse: Callable[[Any, str], T]) -> T:
    """Required ``data[name]`` through ``parse``; any failure becomes a PayloadError."""
    if name not in data or data[name] is None:
        raise PayloadError(f"{where}: missing {name}")
    return _apply(parse, data[name], f"{where}.{name}")


def optional(data: Json, name: str, where: str, parse: Callable[[Any, str], T]) -> T | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    return _apply(parse, value, f"{where}.{name}")


def _apply(parse: Callable[[Any, str], T], value: Any, what: str) -> T:
    try:
        return parse(value, what)
    except PayloadError:
        raise
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise PayloadError(str(exc)) from None


# --------------------------------------------------------------------------- scalar readers


#: Long enough for any id, ticker or pagination cursor (cursors over 256 characters exist).
MAX_TEXT: Final = 4096


def text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise PayloadError(f"{what} is longer than {MAX_TEXT} characters")
    return value


def dollars(value: Any, what: str) -> Decimal:
    return parse_dollars(value, what)


def price(value: Any, what: str) -> Decimal:
    """A YES price strictly inside (0, 1)."""
    return validate_price(parse_dollars(value, what), what)


def unit_dollars(value: Any, what: str) -> Decimal:
    """A price that may sit on the edge of [0, 1] (an empty side, no trade yet)."""
    p = dollars(value, what)
    if not ZERO <= p <= ONE:
        raise PayloadError(f"{what} = {p} must lie between 0 and 1 dollars")
    return p


def nonnegative_dollars(value: Any, what: str) -> Decimal:
    """An amount of money that cannot be negative (a volume traded)."""
    amount = dollars(value, what)
    if amount < 0:
        raise PayloadError(f"{what} = {amount} must not be negative")
    return amount


def count(value: Any, what: str) -> Decimal:
    return parse_count(value, what)


def signed_count(value: Any, what: str) -> Decimal:
    return parse_count(value, what, signed=True)


def flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise PayloadError(f"{what} must be true or false, not {value!r:.40}")
    return value


#: An integer written as a string: ASCII digits, as for fixed-point values (``Decimal`` alone
#: would also read "1e3", "1_000" and non-ASCII digits such as "١٢").
_PLAIN_INTEGER: Final = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?")


def integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise PayloadError(f"{what} must be an integer, not {type(value).__name__}")
    if isinstance(value, str) and not _PLAIN_INTEGER.fullmatch(value.strip()):
        raise PayloadError(f"{what} = {value[:40]!r} is not an integer (ASCII digits only)")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, int) else Decimal(value)
    except ArithmeticError:
        raise PayloadError(f"{what} = {str(value)[:40]!r} is not an integer") from None
    if not number.is_finite() or number != number.to_integral_value() or abs(number) >= 10**18:
        raise PayloadError(f"{what} = {str(value)[:40]!r} is not an integer in range")
    return int(number)


def timestamp(value: Any, what: str) -> datetime:
    """An RFC 3339 string, or Unix seconds / milliseconds as a number (either works)."""
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        try:
            t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"{what} = {value[:40]!r} is not an RFC 3339 time") from None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    n = integer(value, what)
    seconds = n / 1000 if abs(n) >= 100_000_000_000 else n  # ms once past year 5138 in s
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"{what} = {n} is not a representable time") from None


def ms_timestamp(value: Any, what: str) -> datetime:
    n = integer(value, what)
    try:
        return datetime.fromtimestamp(n / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"{what} = {n} ms is not a representable time") from None


def choice(allowed: Sequence[str]) -> Callable[[Any, str], str]:
    def parse(value: Any, what: str) -> str:
        if value not in allowed:
            raise PayloadError(f"{what} = {str(value)[:40]!r} (allowed: {', '.join(allowed)})")
        return str(value)

    return parse


# --------------------------------------------------------------------------- direction


def book_side(data: Json, where: str) -> Side:
    """The YES-book side of an order or fill: ``book_side``, else legacy ``side`` + ``action``."""
    value = data.get("book_side")
    if value is not None:
        if value not in ("bid", "ask"):
            raise PayloadError(f"{where}.book_side = {str(value)[:20]!r} (allowed: bid, ask)")
        return Side(value)
    side, action = data.get("side"), data.get("action", "buy")
    if side not in ("yes", "no") or action not in ("buy", "sell"):
        raise PayloadError(f"{where}: missing book_side (and no legacy side/action to read)")
    return Side.BID if (side == "yes") == (action == "buy") else Side.ASK


# --------------------------------------------------------------------------- book levels


Level = tuple[Decimal, Decimal]


def levels(value: Any, where: str) -> list[Level]:
    """``[[price, count], ...]`` (strings or exact numbers) as (price, count) pairs."""
    out: list[Level] = []
    for i, level in enumerate(items(value, where)):
        spot = f"{where}[{i}]"
        if not isinstance(level, list) or len(level) != 2:
            raise PayloadError(f"{spot}: a level is [price, count], got {str(level)[:40]}")
        out.append((_apply(price, level[0], f"{spot} price"), _apply(count, level[1], f"{spot}")))
    return out


def yes_side_of_wire(book: str, wire_price: Decimal, *, yes_prices: bool) -> tuple[Side, Decimal]:
    """Map a wire level to the YES book: ``yes`` levels are YES bids; ``no`` levels are YES
    asks, at 1 − price when the NO level is in NO-leg prices (REST, and WS without
    ``use_yes_price``)."""
    if book == "yes":
        return Side.BID, wire_price
    if book == "no":
        return Side.ASK, wire_price if yes_prices else ONE - wire_price
    raise PayloadError(f"book side {book[:20]!r} (allowed: yes, no)")


@dataclass(frozen=True)
class BookLevels:
    """A full book on the YES scale: bids and asks, each as (YES price, size) pairs."""

    bids: tuple[Level, ...]
    asks: tuple[Level, ...]

    @classmethod
    def from_wire(
        cls, data: Json, yes_key: str, no_key: str, where: str, *, yes_prices: bool
    ) -> BookLevels:
        bids = levels(list_field(data, yes_key, where), f"{where}.{yes_key}")
        raw_no = levels(list_field(data, no_key, where), f"{where}.{no_key}")
        asks = [(yes_side_of_wire("no", p, yes_prices=yes_prices)[1], n) for p, n in raw_no]
        return cls(tuple(bids), tuple(asks))


# --------------------------------------------------------------------------- orders and fills


@dataclass(frozen=True)
class ExchangeOrder:
    """An order as the exchange reports it (REST ``Order`` or WS ``user_order``)."""

    order_id: str
    client_order_id: str | None
    ticker: str
    side: Side
    price: Decimal
    status: str
    filled: Decimal
    remaining: Decimal
    initial: Decimal | None
    fees: Decimal
    order_group_id: str | None = None
    last_update_reason: str | None = None
    updated: datetime | None = None

    @property
    def is_resting(self) -> bool:
        return self.status == "resting" and self.remaining > 0


def parse_order(value: Any, where: str = "order") -> ExchangeOrder:
    data = obj(value, where)
    fees = ZERO
    for name in ("taker_fees_dollars", "maker_fees_dollars"):
        fees += optional(data, name, where, dollars) or ZERO
    updated = optional(data, "last_updated_ts_ms", where, ms_timestamp) or optional(
        data, "last_update_time", where, timestamp
    )
    return ExchangeOrder(
        order_id=field(data, "order_id", where, text),
        client_order_id=optional(data, "client_order_id", where, text),
        ticker=field(data, "ticker", where, text),
        side=book_side(data, where),
        price=field(data, "yes_price_dollars", where, price),
        status=field(data, "status", where, choice(ORDER_STATUSES)),
        filled=optional(data, "fill_count_fp", where, count) or ZERO,
        remaining=field(data, "remaining_count_fp", where, count),
        initial=optional(data, "initial_count_fp", where, count),
        fees=fees,
        order_group_id=optional(data, "order_group_id", where, text),
        last_update_reason=optional(data, "last_update_reason", where, text),
        updated=updated,
    )


def parse_fill(value: Any, where: str = "fill") -> Fill:
    """A REST ``Fill`` or a WS ``fill`` message as a domain :class:`Fill`."""
    data = obj(value, where)
    fill_id = optional(data, "fill_id", where, text) or field(data, "trade_id", where, text)
    ticker = optional(data, "market_ticker", where, text) or field(data, "ticker", where, text)
    # ``created_time`` (REST) or ``ts_ms`` (WS); the legacy ``ts`` (seconds) as a last resort.
    ts = (
        optional(data, "ts_ms", where, ms_timestamp)
        or optional(data, "created_time", where, timestamp)
        or field(data, "ts", where, timestamp)
    )
    try:
        return Fill(
            fill_id=fill_id,
            order_id=field(data, "order_id", where, text),
            ticker=ticker,
            side=book_side(data, where),
            price=field(data, "yes_price_dollars", where, price),
            count=field(data, "count_fp", where, count),
            fee=optional(data, "fee_cost", where, dollars) or ZERO,
            is_taker=field(data, "is_taker", where, flag),
            ts=ts,
            client_order_id=optional(data, "client_order_id", where, text),
        )
    except ValueError as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- REST objects
#
# What the REST client (rest.py) returns. Money is Decimal dollars; the few fields Kalshi
# still sends in integer cents (balance, portfolio_value, settlement revenue and value) are
# converted here, so no caller ever sees cents.

CENTS_PER_DOLLAR: Final = Decimal(100)
#: An empty side of a market's top of book reads as $0 (bid) or $1 (ask).
_NO_PRICE: Final = (ZERO, ONE)
#: Titles are display text: a longer one (combo markets list every leg) is clipped, so that
#: one long title does not fail a whole listing.
MAX_LABEL: Final = 1024


def label(value: Any, what: str) -> str:
    """Display text (a title or subtitle), clipped to :data:`MAX_LABEL` characters."""
    if not isinstance(value, str):
        raise PayloadError(f"{what} must be a string, not {type(value).__name__}")
    return value[:MAX_LABEL]


def cents(value: Any, what: str) -> Decimal:
    """Integer cents (``balance``, ``revenue``) as exact dollars."""
    return Decimal(integer(value, what)) / CENTS_PER_DOLLAR


def decimal_number(value: Any, what: str) -> Decimal:
    """A plain number sent as a JSON number or a string (``fee_multiplier``)."""
    return dollars(value, what)


def _tuple_of(value: Any, where: str, parse: Callable[[Any, str], T]) -> tuple[T, ...]:
    return tuple(parse(v, f"{where}[{i}]") for i, v in enumerate(items(value, where)))


@dataclass(frozen=True)
class ExchangeStatus:
    exchange_active: bool
    trading_active: bool
    estimated_resume: datetime | None


def parse_exchange_status(value: Any, where: str = "exchange_status") -> ExchangeStatus:
    data = obj(value, where)
    return ExchangeStatus(
        exchange_active=field(data, "exchange_active", where, flag),
        trading_active=field(data, "trading_active", where, flag),
        estimated_resume=optional(data, "exchange_estimated_resume_time", where, timestamp),
    )


@dataclass(frozen=True)
class SeriesInfo:
    ticker: str
    title: str
    category: str
    tags: tuple[str, ...]
    fees: SeriesFees
    volume: Decimal | None


def parse_series(value: Any, where: str = "series") -> SeriesInfo:
    data = obj(value, where)
    try:
        fees = SeriesFees(
            field(data, "fee_type", where, text),  # type: ignore[arg-type]  # checked by SeriesFees
            field(data, "fee_multiplier", where, decimal_number),
        )
    except ValueError as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(f"{where}: {exc}") from None
    return SeriesInfo(
        ticker=field(data, "ticker", where, text),
        title=optional(data, "title", where, label) or "",
        category=optional(data, "category", where, label) or "",
        tags=_tuple_of(list_field(data, "tags", where), f"{where}.tags", text),
        fees=fees,
        volume=optional(data, "volume_fp", where, count),
    )


def price_grid(value: Any, what: str) -> PriceGrid:
    ranges = [obj(r, f"{what}[{i}]") for i, r in enumerate(items(value, what))]
    return PriceGrid.from_price_ranges(ranges)


def _top(data: Json, name: str, where: str, empty: Decimal) -> Decimal | None:
    value = optional(data, name, where, unit_dollars)
    return None if value is None or value == empty else value


@dataclass(frozen=True)
class MarketInfo:
    """One market as ``GET /markets`` reports it. ``yes_bid``/``yes_ask`` are None when that
    side of the book is empty (Kalshi prints $0 and $1 then)."""

    ticker: str
    event_ticker: str
    yes_sub_title: str
    no_sub_title: str
    status: str
    open_time: datetime
    close_time: datetime
    expected_expiration_time: datetime | None
    occurrence_time: datetime | None
    grid: PriceGrid
    price_level_structure: str
    yes_bid: Decimal | None
    yes_bid_size: Decimal
    yes_ask: Decimal | None
    yes_ask_size: Decimal
    last_price: Decimal | None
    volume: Decimal
    open_interest: Decimal
    result: str
    exchange_index: int


def parse_market(value: Any, where: str = "market") -> MarketInfo:
    data = obj(value, where)
    where = f"{where} {str(data.get('ticker'))[:60]}"
    last = optional(data, "last_price_dollars", where, unit_dollars)
    return MarketInfo(
        ticker=field(data, "ticker", where, text),
        event_ticker=field(data, "event_ticker", where, text),
        yes_sub_title=optional(data, "yes_sub_title", where, label) or "",
        no_sub_title=optional(data, "no_sub_title", where, label) or "",
        status=field(data, "status", where, text),
        open_time=field(data, "open_time", where, timestamp),
        close_time=field(data, "close_time", where, timestamp),
        expected_expiration_time=optional(data, "expected_expiration_time", where, timestamp),
        occurrence_time=optional(data, "occurrence_datetime", where, timestamp),
        grid=field(data, "price_ranges", where, price_grid),
        price_level_structure=optional(data, "price_level_structure", where, text) or "",
        yes_bid=_top(data, "yes_bid_dollars", where, _NO_PRICE[0]),
        yes_bid_size=optional(data, "yes_bid_size_fp", where, count) or ZERO,
        yes_ask=_top(data, "yes_ask_dollars", where, _NO_PRICE[1]),
        yes_ask_size=optional(data, "yes_ask_size_fp", where, count) or ZERO,
        last_price=last if last else None,
        volume=optional(data, "volume_fp", where, count) or ZERO,
        open_interest=optional(data, "open_interest_fp", where, count) or ZERO,
        result=optional(data, "result", where, text) or "",
        exchange_index=optional(data, "exchange_index", where, integer) or 0,
    )


@dataclass(frozen=True)
class EventInfo:
    """One event; ``markets`` is filled only when asked ``with_nested_markets``."""

    event_ticker: str
    series_ticker: str
    title: str
    sub_title: str
    mutually_exclusive: bool
    strike_date: datetime | None
    markets: tuple[MarketInfo, ...]


def parse_event(value: Any, where: str = "event") -> EventInfo:
    data = obj(value, where)
    return EventInfo(
        event_ticker=field(data, "event_ticker", where, text),
        series_ticker=field(data, "series_ticker", where, text),
        title=optional(data, "title", where, label) or "",
        sub_title=optional(data, "sub_title", where, label) or "",
        mutually_exclusive=optional(data, "mutually_exclusive", where, flag) or False,
        strike_date=optional(data, "strike_date", where, timestamp),
        markets=_tuple_of(list_field(data, "markets", where), f"{where}.markets", parse_market),
    )


def parse_orderbook(value: Any, where: str = "orderbook_fp") -> BookLevels:
    """A REST ``orderbook_fp``: YES bids and NO bids (NO prices), as one YES book."""
    return BookLevels.from_wire(
        obj(value, where), "yes_dollars", "no_dollars", where, yes_prices=False
    )


@dataclass(frozen=True)
class Trade:
    trade_id: str
    ticker: str
    price: Decimal
    count: Decimal
    taker_side: Side
    created_time: datetime


def parse_trade(value: Any, where: str = "trade") -> Trade:
    data = obj(value, where)
    side = data.get("taker_book_side")
    if side is None:  # older payloads: the taker's outcome side (yes = bought YES = bid)
        outcome = data.get("taker_outcome_side", data.get("taker_side"))
        if outcome not in ("yes", "no"):
            raise PayloadError(f"{where}: missing taker_book_side (and taker_side)")
        side = "bid" if outcome == "yes" else "ask"
    return Trade(
        trade_id=field(data, "trade_id", where, text),
        ticker=field(data, "ticker", where, text),
        price=field(data, "yes_price_dollars", where, price),
        count=field(data, "count_fp", where, count),
        taker_side=Side(choice(("bid", "ask"))(side, f"{where}.taker_book_side")),
        created_time=field(data, "created_time", where, timestamp),
    )


@dataclass(frozen=True)
class OrderAck:
    """What a V2 order write answered, field by field, as the exchange sent it.

    Kalshi's cancel and amend answers sometimes describe a different order than the one
    asked about (apis.md §1.11 #1); the client keeps the order it asked about beside this.
    ``fill_count``/``remaining_count``/``reduced_by`` are None when the answer omits them.
    """

    order_id: str | None
    client_order_id: str | None
    fill_count: Decimal | None
    remaining_count: Decimal | None
    reduced_by: Decimal | None
    average_fill_price: Decimal | None
    average_fee_paid: Decimal | None
    ts: datetime | None


def parse_order_ack(
    value: Any, where: str = "order response", *, lenient: bool = False
) -> OrderAck:
    """Every field as sent. ``lenient``: ids are still read strictly, but a count, price or
    time that does not parse reads as None instead of failing the answer (a create that the
    exchange confirmed stays confirmed because of, say, an over-precise average price)."""
    data = obj(value, where)

    def loose(name: str, parse: Callable[[Any, str], T]) -> T | None:
        try:
            return optional(data, name, where, parse)
        except PayloadError:
            if not lenient:
                raise
            return None

    return OrderAck(
        order_id=optional(data, "order_id", where, text),
        client_order_id=optional(data, "client_order_id", where, text),
        fill_count=loose("fill_count", count),
        remaining_count=loose("remaining_count", count),
        reduced_by=loose("reduced_by", count),
        average_fill_price=loose("average_fill_price", price),
        average_fee_paid=loose("average_fee_paid", dollars),
        ts=loose("ts_ms", ms_timestamp),
    )


@dataclass(frozen=True)
class MarketPosition:
    """A signed YES position (+ YES, − NO) and what it cost."""

    ticker: str
    position: Decimal
    exposure: Decimal
    realized_pnl: Decimal
    fees_paid: Decimal
    total_traded: Decimal
    last_updated: datetime | None


def parse_market_position(value: Any, where: str = "market_position") -> MarketPosition:
    data = obj(value, where)
    return MarketPosition(
        ticker=field(data, "ticker", where, text),
        position=field(data, "position_fp", where, signed_count),
        exposure=optional(data, "market_exposure_dollars", where, dollars) or ZERO,
        realized_pnl=optional(data, "realized_pnl_dollars", where, dollars) or ZERO,
        fees_paid=optional(data, "fees_paid_dollars", where, dollars) or ZERO,
        total_traded=optional(data, "total_traded_dollars", where, nonnegative_dollars) or ZERO,
        last_updated=optional(data, "last_updated_ts", where, timestamp),
    )


@dataclass(frozen=True)
class EventPosition:
    event_ticker: str
    total_cost: Decimal
    exposure: Decimal
    realized_pnl: Decimal
    fees_paid: Decimal


def parse_event_position(value: Any, where: str = "event_position") -> EventPosition:
    data = obj(value, where)
    return EventPosition(
        event_ticker=field(data, "event_ticker", where, text),
        total_cost=optional(data, "total_cost_dollars", where, dollars) or ZERO,
        exposure=optional(data, "event_exposure_dollars", where, dollars) or ZERO,
        realized_pnl=optional(data, "realized_pnl_dollars", where, dollars) or ZERO,
        fees_paid=optional(data, "fees_paid_dollars", where, dollars) or ZERO,
    )


@dataclass(frozen=True)
class Positions:
    markets: tuple[MarketPosition, ...]
    events: tuple[EventPosition, ...]


@dataclass(frozen=True)
class Settlement:
    """One settled market. ``revenue`` and ``value`` arrive in cents and are dollars here."""

    ticker: str
    event_ticker: str
    market_result: str
    yes_count: Decimal
    yes_cost: Decimal
    no_count: Decimal
    no_cost: Decimal
    revenue: Decimal
    fee_cost: Decimal
    value: Decimal | None
    settled_time: datetime


def parse_settlement(value: Any, where: str = "settlement") -> Settlement:
    data = obj(value, where)
    return Settlement(
        ticker=field(data, "ticker", where, text),
        event_ticker=field(data, "event_ticker", where, text),
        market_result=field(data, "market_result", where, choice(("yes", "no", "scalar", "void"))),
        yes_count=field(data, "yes_count_fp", where, count),
        yes_cost=field(data, "yes_total_cost_dollars", where, dollars),
        no_count=field(data, "no_count_fp", where, count),
        no_cost=field(data, "no_total_cost_dollars", where, dollars),
        revenue=field(data, "revenue", where, cents),
        fee_cost=optional(data, "fee_cost", where, dollars) or ZERO,
        value=optional(data, "value", where, cents),
        settled_time=field(data, "settled_time", where, timestamp),
    )


@dataclass(frozen=True)
class Balance:
    """Cash available to trade and the portfolio's value, in dollars."""

    balance: Decimal
    portfolio_value: Decimal
    updated: datetime | None


def parse_balance(value: Any, where: str = "balance") -> Balance:
    data = obj(value, where)
    # balance_dollars (added 2026-05-28) is exact; the older integer field is whole cents.
    available = optional(data, "balance_dollars", where, dollars)
    return Balance(
        balance=available if available is not None else field(data, "balance", where, cents),
        portfolio_value=field(data, "portfolio_value", where, cents),
        updated=optional(data, "updated_ts", where, timestamp),
    )


@dataclass(frozen=True)
class OrderGroup:
    """An exchange-side contract limit over a rolling window; ``order_ids`` only from a
    single-group read."""

    group_id: str
    contracts_limit: Decimal | None
    auto_cancel_enabled: bool
    order_ids: tuple[str, ...] = ()


def parse_order_group(value: Any, where: str = "order_group", group_id: str = "") -> OrderGroup:
    data = obj(value, where)
    return OrderGroup(
        group_id=group_id or field(data, "id", where, text),
        contracts_limit=optional(data, "contracts_limit_fp", where, count),
        auto_cancel_enabled=field(data, "is_auto_cancel_enabled", where, flag),
        order_ids=_tuple_of(list_field(data, "orders", where), f"{where}.orders", text),
    )


def positive_number(value: Any, what: str) -> Decimal:
    number = decimal_number(value, what)
    if number <= 0:
        raise PayloadError(f"{what} = {number} must be positive")
    return number


@dataclass(frozen=True)
class AccountLimits:
    """``GET /account/limits``: the tier and each bucket's refill rate and capacity in
    tokens. The old flat shape (``read_limit``/``write_limit``) gives no capacity; it is
    read as one second's worth, the smallest any tier has."""

    usage_tier: str
    read: BucketLimits
    write: BucketLimits


def _bucket(data: Json, name: str, where: str) -> BucketLimits:
    nested = data.get(name)
    if isinstance(nested, Mapping):
        spot = f"{where}.{name}"
        return BucketLimits(
            float(field(nested, "refill_rate", spot, positive_number)),
            float(field(nested, "bucket_capacity", spot, positive_number)),
        )
    rate = float(field(data, f"{name}_limit", where, positive_number))
    return BucketLimits(rate, rate)


def parse_account_limits(value: Any, where: str = "account limits") -> AccountLimits:
    data = obj(value, where)
    return AccountLimits(
        usage_tier=optional(data, "usage_tier", where, text) or "",
        read=_bucket(data, "read", where),
        write=_bucket(data, "write", where),
    )


def token_cost(value: Any, what: str) -> int:
    """A request's cost in tokens: a whole number, at least 1 (0 would make it free here)."""
    cost = integer(value, what)
    if cost < 1:
        raise PayloadError(f"{what} = {cost} must be at least 1 token")
    return cost


@dataclass(frozen=True)
class EndpointCosts:
    """``GET /account/endpoint_costs``: the default cost and the routes that differ."""

    default_cost: int
    costs: Mapping[tuple[str, str], int]


def parse_endpoint_costs(value: Any, where: str = "endpoint costs") -> EndpointCosts:
    data = obj(value, where)
    costs: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(list_field(data, "endpoint_costs", where)):
        spot = f"{where}.endpoint_costs[{i}]"
        row = obj(entry, spot)
        method = field(row, "method", spot, text).upper()
        costs[(method, field(row, "path", spot, text))] = field(row, "cost", spot, token_cost)
    return EndpointCosts(field(data, "default_cost", where, token_cost), costs)


def parse_queue_positions(value: Any, where: str = "queue_positions") -> dict[str, Decimal]:
    """order_id → contracts resting ahead of it."""
    out: dict[str, Decimal] = {}
    for i, entry in enumerate(items(value, where)):
        spot = f"{where}[{i}]"
        row = obj(entry, spot)
        out[field(row, "order_id", spot, text)] = field(row, "queue_position_fp", spot, count)
    return out
