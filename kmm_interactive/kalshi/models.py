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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

from kmm_interactive.domain import (
    ONE,
    ZERO,
    Fill,
    Side,
    parse_count,
    parse_dollars,
    validate_price,
)

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


def text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > 256:
        raise PayloadError(f"{what} is longer than 256 characters")
    return value


def dollars(value: Any, what: str) -> Decimal:
    return parse_dollars(value, what)


def price(value: Any, what: str) -> Decimal:
    """A YES price strictly inside (0, 1)."""
    return validate_price(parse_dollars(value, what), what)


def count(value: Any, what: str) -> Decimal:
    return parse_count(value, what)


def signed_count(value: Any, what: str) -> Decimal:
    return parse_count(value, what, signed=True)


def flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise PayloadError(f"{what} must be true or false, not {value!r:.40}")
    return value


def integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise PayloadError(f"{what} must be an integer, not {type(value).__name__}")
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
        bids = levels(data.get(yes_key) or [], f"{where}.{yes_key}")
        raw_no = levels(data.get(no_key) or [], f"{where}.{no_key}")
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
    ts = optional(data, "ts_ms", where, ms_timestamp) or field(
        data, "created_time", where, timestamp
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
