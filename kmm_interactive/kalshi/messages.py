"""One Kalshi WebSocket v2 text frame in, one typed, frozen event out (pure: no I/O, no state).

:func:`parse_frame` decodes a frame exactly (JSON floats become ``Decimal``, ``NaN`` and
``Infinity`` are refused) and turns it into one of the event classes below. Every event has
``sid`` (the server subscription id), ``seq`` (None on channels without one: ``ticker``,
``fill``, ``user_orders``, ``market_positions`` and the command replies) and ``ts`` (when
the exchange stamped it, from ``ts_ms``; None when the frame carries no time), so the
connection can track sequence numbers per sid and measure message age.

Prices are YES prices in dollars, sides are :class:`~kmm_interactive.domain.Side` on the
YES book. Order-book NO levels are YES asks: with ``yes_prices=True`` (the subscription set
``use_yes_price: true``) they already are YES prices, otherwise they are NO-leg prices and
become a YES ask at 1 − p (reference/apis.md §1.6).

Failure semantics: a frame that is not JSON, not an object, too large, or whose fields do
not have the types and ranges the API promises raises :class:`PayloadError` naming the frame
type, the field and the problem; nothing is half-parsed. No other exception escapes (a
parser bug is reported as a PayloadError saying "parser bug", so that the connection skips
the frame and stays up). A well-formed frame of a type we do not parse is an
:class:`UnknownMsg`, not an error.

``orderbook_delta`` is the hot path (thousands a second on a busy session): it reads the
common shape directly and looks wire strings up in small caches of already validated prices
and counts, falling back to the fully checked reader for anything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, NoReturn

from kmm_interactive.domain import ONE, ZERO, Fill, PriceGrid, Side
from kmm_interactive.kalshi.models import (
    BookLevels,
    ExchangeOrder,
    Json,
    PayloadError,
    count,
    dollars,
    field,
    flag,
    integer,
    items,
    ms_timestamp,
    obj,
    optional,
    parse_fill,
    parse_order,
    price,
    signed_count,
    text,
    timestamp,
    unit_dollars,
    yes_side_of_wire,
)

#: Longest frame accepted, in characters. A full snapshot of one market on the finest grid
#: is well under 1 MB and an ``ok`` listing 100k tickers about 3 MB; anything bigger is
#: refused before decoding rather than spending seconds on it (Kalshi's own cap is 64 MiB).
MAX_FRAME_CHARS: Final = 16 * 1024 * 1024
#: ``ts_ms`` values accepted on the fast path (up to year 5138); others take the checked path.
_MAX_MS: Final = 100_000_000_000_000
#: Distinct wire strings remembered per cache; a hostile stream of new strings only ever
#: costs a cleared cache, never unbounded memory.
_CACHE_LIMIT: Final = 65_536


# --------------------------------------------------------------------------- events


class _NoSeq:
    """For events of channels that carry no ``seq`` (and command replies)."""

    __slots__ = ()

    @property
    def seq(self) -> int | None:
        return None


class _NoTs:
    """For events that carry no exchange time."""

    __slots__ = ()

    @property
    def ts(self) -> datetime | None:
        return None


@dataclass(frozen=True, slots=True)
class Subscribed(_NoSeq, _NoTs):
    """``subscribed``: the command ``id`` created subscription ``sid`` on ``channel``."""

    id: int | None
    channel: str
    sid: int


@dataclass(frozen=True, slots=True)
class Unsubscribed(_NoTs):
    """``unsubscribed``: subscription ``sid`` ended (``seq`` is the stream's last number)."""

    id: int | None
    sid: int
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Ok(_NoTs):
    """``ok``: an ``update_subscription`` reply (the full ticker list after the change), or a
    ``list_subscriptions`` reply (``subscriptions``: (channel, sid) pairs)."""

    id: int | None
    sid: int | None
    seq: int | None
    market_tickers: tuple[str, ...] | None
    subscriptions: tuple[tuple[str, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class ErrorMsg(_NoTs):
    """``error``: ``code`` (reference/apis.md §1.6) about command ``id`` and/or ``sid``."""

    id: int | None
    code: int
    message: str
    sid: int | None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class BookSnapshot(_NoTs):
    """``orderbook_snapshot``: the whole book of ``ticker`` on the YES scale (``id`` is set
    when it answers a ``get_snapshot`` command)."""

    sid: int
    seq: int
    ticker: str
    book: BookLevels
    id: int | None = None


@dataclass(frozen=True, slots=True)
class BookDelta:
    """``orderbook_delta``: resting size at YES ``price`` on ``side`` changed by ``delta``
    (signed, exact, possibly fractional). ``client_order_id`` is set when our order did it."""

    sid: int
    seq: int
    ticker: str
    side: Side
    price: Decimal
    delta: Decimal
    ts: datetime | None
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class TradeMsg:
    """``trade``: ``count`` contracts traded at YES ``price``; ``taker_side`` is the side the
    taker bought (BID: took YES from the asks)."""

    sid: int
    seq: int
    trade_id: str
    ticker: str
    price: Decimal
    count: Decimal
    taker_side: Side | None
    ts: datetime | None


@dataclass(frozen=True, slots=True)
class FillMsg(_NoSeq):
    """``fill``: one of our fills; ``post_position`` is our signed YES position after it."""

    sid: int
    fill: Fill
    post_position: Decimal | None
    ts: datetime | None

    @property
    def ticker(self) -> str:
        return self.fill.ticker


@dataclass(frozen=True, slots=True)
class UserOrderMsg(_NoSeq):
    """``user_order``: one of our orders as it now stands."""

    sid: int
    order: ExchangeOrder
    ts: datetime | None

    @property
    def ticker(self) -> str:
        return self.order.ticker


@dataclass(frozen=True, slots=True)
class PositionMsg(_NoSeq, _NoTs):
    """``market_position``: our signed YES ``position`` in ``ticker`` and its money."""

    sid: int
    ticker: str
    position: Decimal
    cost: Decimal
    realized_pnl: Decimal
    fees: Decimal
    volume: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TickerMsg(_NoSeq):
    """``ticker``: top of book and last trade. An empty side is None (Kalshi prints it as a
    bid of 0 or an ask of 1); ``last_price`` is None before the first trade."""

    sid: int
    ticker: str
    yes_bid: Decimal | None
    yes_ask: Decimal | None
    ts: datetime | None
    yes_bid_size: Decimal | None = None
    yes_ask_size: Decimal | None = None
    last_price: Decimal | None = None
    volume: Decimal | None = None
    open_interest: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LifecycleMsg(_NoTs):
    """``market_lifecycle_v2``: ``event_type`` is created, activated, deactivated,
    close_date_updated, determined, settled, price_level_structure_updated or
    metadata_updated (kept as text: a new kind must not be lost). ``price_ranges`` is the
    market's price grid when the event carries one (creation, structure change)."""

    sid: int
    seq: int
    ticker: str
    event_type: str
    open_ts: datetime | None = None
    close_ts: datetime | None = None
    result: str | None = None
    is_deactivated: bool | None = None
    price_ranges: PriceGrid | None = None
    price_level_structure: str | None = None
    determination_ts: datetime | None = None
    settled_ts: datetime | None = None
    settlement_value: Decimal | None = None
    event_ticker: str | None = None


@dataclass(frozen=True, slots=True)
class EventLifecycleMsg(_NoTs):
    """``event_lifecycle`` (on the lifecycle channel): an event was created."""

    sid: int
    seq: int
    event_ticker: str
    series_ticker: str | None
    title: str | None
    strike_date: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventFeeUpdateMsg(_NoTs):
    """``event_fee_update`` (on the lifecycle channel): an event's fee override was set, or
    cleared (both None: the series' own fees apply again)."""

    sid: int
    seq: int
    event_ticker: str
    fee_type: str | None
    fee_multiplier: Decimal | None


@dataclass(frozen=True, slots=True)
class UnknownMsg(_NoTs):
    """A well-formed frame of a type not parsed here; ``seq`` is kept (when it is a valid
    number) so that skipping the frame does not look like a gap on its subscription."""

    type: str
    sid: int | None
    seq: int | None = None


Message = (
    Subscribed
    | Unsubscribed
    | Ok
    | ErrorMsg
    | BookSnapshot
    | BookDelta
    | TradeMsg
    | FillMsg
    | UserOrderMsg
    | PositionMsg
    | TickerMsg
    | LifecycleMsg
    | EventLifecycleMsg
    | EventFeeUpdateMsg
    | UnknownMsg
)


# --------------------------------------------------------------------------- entry point


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


# One decoder for every frame: json.loads with keyword arguments builds a new one per call.
_DECODER: Final = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)


def parse_frame(text: str | bytes, *, yes_prices: bool) -> Message:
    """Parse one WS text frame; ``yes_prices`` is the book subscription's ``use_yes_price``."""
    if len(text) > MAX_FRAME_CHARS:
        raise PayloadError(f"frame: {len(text)} characters, more than {MAX_FRAME_CHARS}")
    try:
        frame = _DECODER.decode(text.decode() if isinstance(text, bytes) else text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise PayloadError(f"frame: not valid JSON: {str(exc)[:120]}") from None
    if type(frame) is not dict:
        raise PayloadError(f"frame: expected a JSON object, got {type(frame).__name__}")
    kind = frame.get("type")
    if type(kind) is not str:
        raise PayloadError(f"frame: type must be a string, got {type(kind).__name__}")
    if kind == "orderbook_delta":
        return _fast_delta(frame, yes_prices)
    reader = _READERS.get(kind)
    if reader is None:
        return UnknownMsg(
            kind[:64], _lenient_index(frame.get("sid")), _lenient_index(frame.get("seq"))
        )
    try:
        return reader(frame, kind, yes_prices)
    except PayloadError:
        raise
    except Exception as exc:  # a gap in the checks above; must not end the stream
        raise PayloadError(f"{kind}: parser bug, {type(exc).__name__}: {str(exc)[:120]}") from None


# --------------------------------------------------------------------------- envelope fields


def _index(value: Any, what: str) -> int:
    """A sid or seq: a JSON integer >= 1 (the spec's minimum)."""
    if type(value) is not int or value < 1:
        raise PayloadError(f"{what} must be an integer >= 1, not {str(value)[:40]!r}")
    return value


def _lenient_index(value: Any) -> int | None:
    return value if type(value) is int and value >= 1 else None


def _sid(frame: Json, kind: str) -> int:
    if frame.get("sid") is None:
        raise PayloadError(f"{kind}: missing sid")
    return _index(frame["sid"], f"{kind}.sid")


def _seq(frame: Json, kind: str) -> int:
    if frame.get("seq") is None:
        raise PayloadError(f"{kind}: missing seq")
    return _index(frame["seq"], f"{kind}.seq")


def _maybe(frame: Json, name: str, kind: str) -> int | None:
    value = frame.get(name)
    return None if value is None else _index(value, f"{kind}.{name}")


def _command_id(frame: Json, kind: str) -> int | None:
    """The echoed command id; 0 means "no id" (the spec's convention)."""
    value = frame.get("id")
    if value is None or value == 0:
        return None
    if type(value) is not int or value < 0:
        raise PayloadError(f"{kind}.id must be an integer >= 0, not {str(value)[:40]!r}")
    return value


def _body(frame: Json, kind: str) -> Json:
    if "msg" not in frame:
        raise PayloadError(f"{kind}: missing msg")
    return obj(frame["msg"], f"{kind}.msg")


def _ts(data: Json, where: str) -> datetime | None:
    """When the exchange stamped the message: ``ts_ms``, else the older ``ts``."""
    return optional(data, "ts_ms", where, ms_timestamp) or optional(data, "ts", where, timestamp)


# --------------------------------------------------------------------------- order book


_PRICES: dict[str, Decimal] = {}  # wire string -> validated price strictly inside (0, 1)
_COUNTS: dict[str, Decimal] = {}  # wire string -> validated signed count


def _remember(cache: dict[str, Decimal], key: Any, value: Decimal) -> None:
    if type(key) is str:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = value


def _fast_delta(frame: dict[str, Any], yes_prices: bool) -> Message:
    """``orderbook_delta`` in its usual shape (strings already seen, int sid/seq/ts_ms);
    anything else goes through :func:`_book_delta`, which checks and explains."""
    sid, seq, msg = frame.get("sid"), frame.get("seq"), frame.get("msg")
    if type(sid) is int and type(seq) is int and sid > 0 and seq > 0 and type(msg) is dict:
        ticker, side, ts_ms = msg.get("market_ticker"), msg.get("side"), msg.get("ts_ms")
        wire_price, wire_delta = msg.get("price_dollars"), msg.get("delta_fp")
        coid = msg.get("client_order_id")
        at = _PRICES.get(wire_price) if type(wire_price) is str else None
        delta = _COUNTS.get(wire_delta) if type(wire_delta) is str else None
        if (
            at is not None
            and delta is not None
            and type(ticker) is str
            and 0 < len(ticker) <= 256
            and type(ts_ms) is int
            and 0 <= ts_ms < _MAX_MS
            and (coid is None or (type(coid) is str and len(coid) <= 256))
            and (side == "yes" or side == "no")
        ):
            if side == "yes":
                book_side = Side.BID
            else:
                book_side = Side.ASK
                if not yes_prices:
                    at = ONE - at
            ts = datetime.fromtimestamp(ts_ms / 1000, UTC)
            return BookDelta(sid, seq, ticker, book_side, at, delta, ts, coid or None)
    try:
        return _book_delta(frame, "orderbook_delta", yes_prices)
    except PayloadError:
        raise
    except Exception as exc:  # as in parse_frame: a gap in the checks must not end the stream
        raise PayloadError(f"orderbook_delta: parser bug, {type(exc).__name__}: {exc}") from None


def _wire_side(data: Json, where: str) -> str:
    side = data.get("side")
    if side not in ("yes", "no"):
        raise PayloadError(f"{where}.side = {str(side)[:20]!r} (allowed: yes, no)")
    return str(side)


def _book_delta(frame: Json, kind: str, yes_prices: bool) -> BookDelta:
    where = f"{kind}.msg"
    data = _body(frame, kind)
    wire_price = field(data, "price_dollars", where, price)
    delta = field(data, "delta_fp", where, signed_count)
    side, at = yes_side_of_wire(_wire_side(data, where), wire_price, yes_prices=yes_prices)
    event = BookDelta(
        sid=_sid(frame, kind),
        seq=_seq(frame, kind),
        ticker=field(data, "market_ticker", where, text),
        side=side,
        price=at,
        delta=delta,
        ts=_ts(data, where),
        client_order_id=optional(data, "client_order_id", where, text),
    )
    # Only now, with the whole frame valid: the fast path trusts what is cached.
    _remember(_PRICES, data["price_dollars"], wire_price)
    _remember(_COUNTS, data["delta_fp"], delta)
    return event


def _book_snapshot(frame: Json, kind: str, yes_prices: bool) -> BookSnapshot:
    where = f"{kind}.msg"
    data = _body(frame, kind)
    for key in ("yes_dollars_fp", "no_dollars_fp"):
        if data.get(key) is not None:
            items(data[key], f"{where}.{key}")  # present means a list, even when empty
    book = BookLevels.from_wire(
        data, "yes_dollars_fp", "no_dollars_fp", where, yes_prices=yes_prices
    )
    for key, side in (("yes_dollars_fp", book.bids), ("no_dollars_fp", book.asks)):
        if len({p for p, _ in side}) != len(side):
            raise PayloadError(f"{where}.{key}: the same price appears twice")
    return BookSnapshot(
        sid=_sid(frame, kind),
        seq=_seq(frame, kind),
        ticker=field(data, "market_ticker", where, text),
        book=book,
        id=_command_id(frame, kind),
    )


# --------------------------------------------------------------------------- market data


def _taker_side(data: Json, where: str) -> Side | None:
    """``taker_book_side`` (bid/ask), else the outcome side the taker bought (yes = bid)."""
    book = data.get("taker_book_side")
    if book is not None:
        if book not in ("bid", "ask"):
            raise PayloadError(f"{where}.taker_book_side = {str(book)[:20]!r} (allowed: bid, ask)")
        return Side(book)
    for name in ("taker_outcome_side", "taker_side"):
        outcome = data.get(name)
        if outcome is not None:
            if outcome not in ("yes", "no"):
                raise PayloadError(f"{where}.{name} = {str(outcome)[:20]!r} (allowed: yes, no)")
            return Side.BID if outcome == "yes" else Side.ASK
    return None


def _positive(value: Any, what: str) -> Decimal:
    n = count(value, what)
    if n <= 0:
        raise PayloadError(f"{what} = {n} must be positive")
    return n


def _trade(frame: Json, kind: str, _: bool) -> TradeMsg:
    where = f"{kind}.msg"
    data = _body(frame, kind)
    return TradeMsg(
        sid=_sid(frame, kind),
        seq=_seq(frame, kind),
        trade_id=field(data, "trade_id", where, text),
        ticker=field(data, "market_ticker", where, text),
        price=field(data, "yes_price_dollars", where, price),
        count=field(data, "count_fp", where, _positive),
        taker_side=_taker_side(data, where),
        ts=_ts(data, where),
    )


def _ticker(frame: Json, kind: str, _: bool) -> TickerMsg:
    where = f"{kind}.msg"
    data = _body(frame, kind)
    bid = field(data, "yes_bid_dollars", where, unit_dollars)
    ask = field(data, "yes_ask_dollars", where, unit_dollars)
    last = optional(data, "price_dollars", where, unit_dollars)
    return TickerMsg(
        sid=_sid(frame, kind),
        ticker=field(data, "market_ticker", where, text),
        yes_bid=bid if bid > ZERO else None,
        yes_ask=ask if ask < ONE else None,
        ts=_ts(data, where),
        yes_bid_size=optional(data, "yes_bid_size_fp", where, count),
        yes_ask_size=optional(data, "yes_ask_size_fp", where, count),
        last_price=last if last else None,
        volume=optional(data, "volume_fp", where, count),
        open_interest=optional(data, "open_interest_fp", where, count),
    )


def _seconds(value: Any, what: str) -> datetime:
    """Unix seconds (the lifecycle channel's ``*_ts`` fields)."""
    n = integer(value, what)
    try:
        return datetime.fromtimestamp(n, UTC)
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"{what} = {n} s is not a representable time") from None


def _grid(value: Any, what: str) -> PriceGrid:
    ranges = [obj(entry, f"{what}[{i}]") for i, entry in enumerate(items(value, what))]
    try:
        return PriceGrid.from_price_ranges(ranges)
    except ValueError as exc:
        raise PayloadError(f"{what}: {exc}") from None


def _lifecycle(frame: Json, kind: str, _: bool) -> LifecycleMsg:
    where = f"{kind}.msg"
    data = _body(frame, kind)
    meta = optional(data, "additional_metadata", where, obj)
    return LifecycleMsg(
        sid=_sid(frame, kind),
        seq=_seq(frame, kind),
        ticker=field(data, "market_ticker", where, text),
        event_type=field(data, "event_type", where, text),
        open_ts=optional(data, "open_ts", where, _seconds),
        close_ts=optional(data, "close_ts", where, _seconds),
        result=optional(data, "result", where, text),
        is_deactivated=optional(data, "is_deactivated", where, flag),
        price_ranges=optional(data, "price_ranges", where, _grid),
        price_level_structure=optional(data, "price_level_structure", where, text),
        determination_ts=optional(data, "determination_ts", where, _seconds),
        settled_ts=optional(data, "settled_ts", where, _seconds),
        settlement_value=optional(data, "settlement_value", where, unit_dollars),
        event_ticker=(
            optional(meta, "event_ticker", f"{where}.additional_metadata", text) if meta else None
        ),
    )


def _event_lifecycle(frame: Json, kind: str, _: bool) -> EventLifecycleMsg:
    where = f"{kind}.msg"
    data = _body(frame, kind)
    return EventLifecycleMsg(
        sid=_sid(frame, kind),
        seq=_seq(frame, kind),
        event_ticker=field(data, "event_ticker", where, text),
        series_ticker=optional(data, "series_ticker", where, text),
        title=optional(data, "title", where, text),
        strike_date=optional(data, "strike_date", where, _seconds),
    )


def _multiplier(value: Any, what: str) -> Decimal:
    m = dollars(value, what)
    if m < 0:
        raise PayloadError(f"{what} = {m} must not be negative")
    return m


def _event_fee_update(frame: Json, kind: str, _: bool) -> EventFeeUpdateMsg:
    where = f"{kind}.msg"
    data = _body(frame, kind)
    return EventFeeUpdateMsg(
        sid=_sid(frame, kind),
        seq=_seq(frame, kind),
        event_ticker=field(data, "event_ticker", where, text),
        fee_type=optional(data, "fee_type_override", where, text),
        fee_multiplier=optional(data, "fee_multiplier_override", where, _multiplier),
    )


# --------------------------------------------------------------------------- private channels


def _fill(frame: Json, kind: str, _: bool) -> FillMsg:
    where = f"{kind}.msg"
    data = _body(frame, kind)
    fill = parse_fill(data, where)
    return FillMsg(
        sid=_sid(frame, kind),
        fill=fill,
        post_position=optional(data, "post_position_fp", where, signed_count),
        ts=fill.ts,
    )


def _user_order(frame: Json, kind: str, _: bool) -> UserOrderMsg:
    where = f"{kind}.msg"
    data = _body(frame, kind)
    order = parse_order(data, where)
    return UserOrderMsg(
        sid=_sid(frame, kind),
        order=order,
        ts=order.updated or optional(data, "created_ts_ms", where, ms_timestamp),
    )


def _position(frame: Json, kind: str, _: bool) -> PositionMsg:
    where = f"{kind}.msg"
    data = _body(frame, kind)
    return PositionMsg(
        sid=_sid(frame, kind),
        ticker=field(data, "market_ticker", where, text),
        position=field(data, "position_fp", where, signed_count),
        cost=field(data, "position_cost_dollars", where, dollars),
        realized_pnl=field(data, "realized_pnl_dollars", where, dollars),
        fees=field(data, "fees_paid_dollars", where, dollars),
        volume=optional(data, "volume_fp", where, count),
    )


# --------------------------------------------------------------------------- command replies


def _subscribed(frame: Json, kind: str, _: bool) -> Subscribed:
    data = _body(frame, kind)
    if data.get("sid") is None:
        raise PayloadError(f"{kind}.msg: missing sid")
    return Subscribed(
        id=_command_id(frame, kind),
        channel=field(data, "channel", f"{kind}.msg", text),
        sid=_index(data["sid"], f"{kind}.msg.sid"),
    )


def _unsubscribed(frame: Json, kind: str, _: bool) -> Unsubscribed:
    return Unsubscribed(
        id=_command_id(frame, kind), sid=_sid(frame, kind), seq=_maybe(frame, "seq", kind)
    )


def _texts(value: Any, what: str) -> tuple[str, ...]:
    return tuple(text(t, f"{what}[{i}]") for i, t in enumerate(items(value, what)))


def _ok(frame: Json, kind: str, _: bool) -> Ok:
    body = frame.get("msg")
    tickers: tuple[str, ...] | None = None
    subscriptions: tuple[tuple[str, int], ...] | None = None
    if isinstance(body, list):  # list_subscriptions
        subs = []
        for i, entry in enumerate(body):
            spot = f"{kind}.msg[{i}]"
            sub = obj(entry, spot)
            if sub.get("sid") is None:
                raise PayloadError(f"{spot}: missing sid")
            subs.append((field(sub, "channel", spot, text), _index(sub["sid"], f"{spot}.sid")))
        subscriptions = tuple(subs)
    elif body is not None:
        tickers = optional(obj(body, f"{kind}.msg"), "market_tickers", f"{kind}.msg", _texts)
    return Ok(
        id=_command_id(frame, kind),
        sid=_maybe(frame, "sid", kind),
        seq=_maybe(frame, "seq", kind),
        market_tickers=tickers,
        subscriptions=subscriptions,
    )


def _error(frame: Json, kind: str, _: bool) -> ErrorMsg:
    where = f"{kind}.msg"
    data = _body(frame, kind)
    message = data.get("msg", "")
    if not isinstance(message, str):
        raise PayloadError(f"{where}.msg must be a string, not {type(message).__name__}")
    code = data.get("code")
    if type(code) is not int:
        raise PayloadError(f"{where}.code must be an integer, not {str(code)[:40]!r}")
    return ErrorMsg(
        id=_command_id(frame, kind),
        code=code,
        message=message[:500],
        sid=_maybe(frame, "sid", kind),
        seq=_maybe(frame, "seq", kind),
    )


_Reader = Callable[[Json, str, bool], Message]

_READERS: Final[dict[str, _Reader]] = {
    "orderbook_snapshot": _book_snapshot,  # orderbook_delta goes straight to _fast_delta
    "trade": _trade,
    "ticker": _ticker,
    "fill": _fill,
    "user_order": _user_order,
    "market_position": _position,
    "market_lifecycle_v2": _lifecycle,
    "event_lifecycle": _event_lifecycle,
    "event_fee_update": _event_fee_update,
    "subscribed": _subscribed,
    "unsubscribed": _unsubscribed,
    "ok": _ok,
    "error": _error,
}
