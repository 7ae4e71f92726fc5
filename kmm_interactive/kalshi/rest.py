"""The Kalshi Trade API v2 REST client: market data, V2 orders, portfolio, order groups, limits.

One :class:`KalshiRest` holds one ``httpx.AsyncClient`` (a keep-alive connection pool) for
one API key, signs every request (auth.py), waits on client-side token buckets so that it
does not send into a 429 (ratelimit.py), and parses every answer into the frozen types of
models.py (exact ``Decimal`` money; never floats).

Failure semantics:

* Arguments are checked before anything is sent: a bad price (outside (0, 1), more than
  six decimals), count, naive datetime, or an order id / ticker that could change the
  request's path (empty, "." or "..") is a ``ValueError`` and nothing goes out.
* Reads, cancels, cancel-all, ``reduce_to`` decreases and order-group updates are safe to
  repeat: 5xx and transport errors (any ``httpx`` failure, including an undecodable body)
  are retried with capped exponential backoff and jitter. A 429 is retried for every call
  (it was refused whole), after emptying the bucket. Amends and ``reduce_by`` decreases are
  not retried after a 5xx or timeout (repeating them could apply twice); the
  :class:`~kmm_interactive.kalshi.errors.KalshiError` is raised and the caller reconciles.
  Whatever is not retried, or still fails, raises a KalshiError.
* Creates never raise once anything may have been sent: :meth:`KalshiRest.create_order`
  returns a :class:`CreateResult` that is CREATED, REJECTED (refused; nothing from this
  request rests) or UNKNOWN (a timeout, transport error, 5xx or unreadable answer left the
  outcome open). Every create carries a ``client_order_id`` and is retried only with that
  same id; a 409 ``order_already_exists`` (after our own ambiguous attempt, or because the
  caller resent a create to settle an UNKNOWN) is answered by looking the order up.
  :meth:`KalshiRest.resolve_client_order_ids` settles UNKNOWNs later. A batch returns one
  result per request even when a later chunk fails.
* Cancel and amend answers are not trusted to describe the order asked about (Kalshi
  sometimes describes another one): :class:`OrderChange` keeps the order id that was asked
  about beside the answer's fields, and ``describes_request`` says whether they agree. An
  answer to a retry after an ambiguous attempt is flagged (``ambiguous_retry``).
* A malformed answer raises :class:`~kmm_interactive.kalshi.models.PayloadError` (except
  from creates, above).
* Neither the private key nor signature headers appear in a repr, a log line or an error,
  nor in any exception's ``__cause__``/``__context__`` chain.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote

import httpx

from kmm_interactive.config import KALSHI_ENDPOINTS
from kmm_interactive.domain import (
    Fill,
    Side,
    format_count,
    format_dollars,
    parse_count,
    parse_dollars,
    validate_price,
)
from kmm_interactive.kalshi.auth import KalshiAuth, Signer
from kmm_interactive.kalshi.errors import (
    KalshiError,
    RateLimited,
    ServerError,
    TransportError,
    error_from_item,
    error_from_response,
)
from kmm_interactive.kalshi.models import (
    AccountLimits,
    Balance,
    BookLevels,
    EndpointCosts,
    EventInfo,
    EventPosition,
    ExchangeOrder,
    ExchangeStatus,
    Json,
    MarketInfo,
    MarketPosition,
    OrderAck,
    OrderGroup,
    PayloadError,
    Positions,
    SeriesInfo,
    Settlement,
    Trade,
    field,
    items,
    loads,
    obj,
    optional,
    parse_account_limits,
    parse_balance,
    parse_endpoint_costs,
    parse_event,
    parse_event_position,
    parse_exchange_status,
    parse_fill,
    parse_market,
    parse_market_position,
    parse_order,
    parse_order_ack,
    parse_order_group,
    parse_orderbook,
    parse_queue_positions,
    parse_series,
    parse_settlement,
    parse_trade,
    text,
)
from kmm_interactive.kalshi.ratelimit import RateLimiter

log = logging.getLogger(__name__)
T = TypeVar("T")

ORDERS: Final = "/portfolio/events/orders"
BATCH: Final = f"{ORDERS}/batched"
GROUPS: Final = "/portfolio/order_groups"
API_ROOT: Final = "/trade-api/v2"
MAX_BOOKS_PER_CALL: Final = 100
#: Orders per batch at most: the last documented limit (V1: 20). V2 says only that it
#: scales with the write budget and that the whole batch must fit the bucket.
MAX_BATCH: Final = 20
#: How far before an attempt a lookup by client_order_id starts (``min_ts``): allows for
#: clock skew between this host and the exchange.
RESOLVE_MARGIN: Final = timedelta(minutes=5)
#: Order and order-group ids (UUIDs on Kalshi). Anything else is refused before sending.
_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
#: The codes of "no such order"; a 404 without one (an HTML page from a proxy or a wrong
#: base URL) says nothing about the order.
_NOT_FOUND: Final = frozenset({"not_found", "order_not_found"})
Params = Mapping[str, object]
TimeInForce = Literal["good_till_canceled", "immediate_or_cancel", "fill_or_kill"]
SelfTradePrevention = Literal["taker_at_cross", "maker"]


@dataclass(frozen=True)
class Retry:
    """How often one call is tried (the first try included) and how long to back off."""

    attempts: int = 4
    base_delay: float = 0.05
    max_delay: float = 2.0

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        # Equal jitter: half fixed, half random, so concurrent callers that failed together
        # spread out instead of retrying in lockstep.
        cap = min(self.max_delay, self.base_delay * 2.0**attempt)
        return cap * (0.5 + 0.5 * rng())


# --------------------------------------------------------------------------- order requests


@dataclass(frozen=True)
class OrderRequest:
    """A V2 create (CreateOrderV2Request). ``side`` is on the YES book; ``price`` is the YES
    price and must lie on the market's grid; ``count`` may have two decimals.
    ``client_order_id`` is generated (uuid4) when not given."""

    ticker: str
    side: Side
    price: Decimal
    count: Decimal
    time_in_force: TimeInForce = "good_till_canceled"
    self_trade_prevention_type: SelfTradePrevention = "taker_at_cross"
    client_order_id: str | None = None
    post_only: bool = False
    expiration_time: datetime | None = None
    order_group_id: str | None = None
    cancel_order_on_pause: bool = False
    reduce_only: bool = False

    def body(self, client_order_id: str) -> dict[str, object]:
        """The JSON body; a bad price, count or expiration is a ``ValueError`` here, before
        any I/O."""
        _order_price(self.price, f"{self.ticker} price")
        _positive_count(self.count, f"{self.ticker} count")
        expiration = _seconds(self.expiration_time, "expiration_time")
        out: dict[str, object] = {
            "ticker": self.ticker,
            "side": Side(self.side).value,
            "count": format_count(self.count),
            "price": format_dollars(self.price),
            "time_in_force": self.time_in_force,
            "self_trade_prevention_type": self.self_trade_prevention_type,
            "client_order_id": client_order_id,
        }
        if self.post_only:
            out["post_only"] = True
        if expiration is not None:
            out["expiration_time"] = expiration  # Unix seconds
        if self.order_group_id is not None:
            out["order_group_id"] = self.order_group_id
        if self.cancel_order_on_pause:
            out["cancel_order_on_pause"] = True
        if self.reduce_only:
            out["reduce_only"] = True
        return out


class CreateStatus(enum.StrEnum):
    CREATED = "created"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CreateResult:
    """The outcome of one create.

    CREATED: ``order_id`` is set; the fill fields are the exchange's answer (for IOC and
    FOK, the final state; a field the answer garbled is None). When CREATED was learned
    from the order list, ``order`` holds that order and the average prices are None (the
    fills feed has them); ``already_existed`` says the exchange answered 409: an order with
    this ``client_order_id`` was there before this call's last attempt (our own earlier
    attempt, or the caller resending a create to settle an UNKNOWN).
    REJECTED: refused (``error``); nothing from this request rests. ``order`` is set when
    the ``client_order_id`` belongs to a different order (another ticker, side or price).
    UNKNOWN: the order may or may not exist; resolve with
    :meth:`KalshiRest.resolve_client_order_ids`.
    """

    status: CreateStatus
    client_order_id: str
    request: OrderRequest
    order_id: str | None = None
    fill_count: Decimal | None = None
    remaining_count: Decimal | None = None
    average_fill_price: Decimal | None = None
    average_fee_paid: Decimal | None = None
    error: KalshiError | PayloadError | None = None
    order: ExchangeOrder | None = None
    already_existed: bool = False


@dataclass(frozen=True)
class OrderChange:
    """The outcome of an amend, decrease or cancel of ``order_id``.

    ``reported`` is the exchange's answer as sent; it may describe another order
    (``describes_request`` is then False) although the change itself was applied to
    ``order_id``. ``already_gone``: a cancel found no such order (404 ``not_found``).
    ``ambiguous_retry``: an earlier attempt of this call failed with a 5xx or timeout and may
    have been applied, so ``reported`` answers a repeat: a cancel's ``reduced_by`` of 0 then
    does not mean the order had filled (the first attempt may have taken it off).
    ``error`` (batch cancel only): this item was not confirmed: refused by the exchange, or
    its chunk failed (5xx, transport, unreadable answer) and it may or may not have been
    cancelled; cancelling again is safe.
    """

    order_id: str
    reported: OrderAck | None
    already_gone: bool = False
    error: KalshiError | PayloadError | None = None
    ambiguous_retry: bool = False

    @property
    def describes_request(self) -> bool:
        return self.reported is not None and self.reported.order_id == self.order_id

    @property
    def reduced_by(self) -> Decimal | None:
        """What this change took off, when the answer can be believed: None if the answer
        describes another order or answers a retry after an ambiguous attempt."""
        if self.ambiguous_retry or not self.describes_request or self.reported is None:
            return None
        return self.reported.reduced_by


# --------------------------------------------------------------------------- helpers


def base_url_for(base: str) -> str:
    endpoints = KALSHI_ENDPOINTS.get(base)
    if endpoints is not None:
        return endpoints.rest
    url = base.rstrip("/")
    if not url.startswith(("http://", "https://")) or not url.endswith(API_ROOT):
        raise ValueError(
            f"base {base!r}: give 'demo', 'prod' or an http(s) URL ending in {API_ROOT}"
        )
    return url


def _seg(value: str, what: str = "ticker") -> str:
    """A path segment (a ticker), escaped so that it cannot change the path. Empty and
    dot-only values are refused: URL handling drops "." and ".." segments, so an order id
    of "." would turn a cancel into DELETE /portfolio/events/orders, the cancel-all."""
    if not isinstance(value, str) or not value.strip("."):
        raise ValueError(f"{what} {str(value)[:40]!r} is empty or only dots")
    return quote(value, safe="")


def checked_id(value: str, what: str = "order id") -> str:
    """An order or order-group id checked against :data:`_ID` (so also safe in a path)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"{what} {str(value)[:40]!r} is not an id (letters, digits, - and _)")
    return value


def _seconds(value: datetime | None, what: str) -> int | None:
    """Unix seconds of an aware datetime; a naive one would be read as local time."""
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError(f"{what} {value} has no time zone; give an aware datetime")
    return int(value.timestamp())


def _order_price(value: Decimal, what: str) -> Decimal:
    """A YES price strictly inside (0, 1) with at most six decimals (FixedPointDollars)."""
    return validate_price(parse_dollars(value, what), what)


def _positive_count(value: Decimal, what: str) -> Decimal:
    count = parse_count(value, what)
    if count <= 0:
        raise ValueError(f"{what} = {value} must be positive")
    return count


def _is_not_found(error: KalshiError) -> bool:
    return error.code.lower() in _NOT_FOUND


def transport_failure(exc: httpx.HTTPError, method: str, path: str) -> TransportError:
    """The TransportError for any httpx failure; made from the text only, so that the
    httpx request (whose headers hold the key id and signature) is not kept."""
    if isinstance(exc, httpx.TimeoutException):
        code, message = "timeout", "no answer within the timeout"
    elif isinstance(exc, httpx.DecodingError):  # e.g. a corrupt gzip body, even on a 2xx
        code, message = "undecodable", f"the answer could not be decoded: {exc}"
    else:
        code, message = "transport", f"{type(exc).__name__}: {exc}"
    return TransportError(None, code, message, method=method, path=path)


def _query(params: Params | None) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for name, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            out[name] = [str(v) for v in value]
        else:
            out[name] = str(value)
    return out


def _ambiguous(errors: Sequence[KalshiError]) -> bool:
    """True if an attempt may have been applied although no success came back."""
    return any(isinstance(e, ServerError | TransportError) for e in errors)


# --------------------------------------------------------------------------- the client


class KalshiRest:
    """Async client for one API key. ``base`` is ``"demo"``, ``"prod"`` or a URL ending in
    ``/trade-api/v2`` (the embedded exchange's). Without a ``signer`` only public market
    data can be read. ``max_batch`` caps the orders per batch request (the write bucket's
    capacity caps it too). ``skipped`` counts, per path, the listing items that could not
    be parsed and were left out (see :meth:`paginate`). Use ``async with`` or call
    :meth:`aclose`."""

    def __init__(
        self,
        base: str,
        signer: Signer | None = None,
        *,
        timeout: float = 10.0,
        limiter: RateLimiter | None = None,
        retry: Retry | None = None,
        max_connections: int = 20,
        max_batch: int = MAX_BATCH,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch {max_batch} must be at least 1")
        self.base_url = base_url_for(base)
        self.limiter = limiter or RateLimiter.for_tier("basic", sleep=sleep)
        self.retry = retry or Retry()
        self.max_batch = max_batch
        self.skipped: collections.Counter[str] = collections.Counter()
        self._signer = signer
        self._sleep = sleep
        self._rng = rng
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=KalshiAuth(signer) if signer is not None else None,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=30.0,
            ),
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"KalshiRest({self.base_url!r}, signer={self._signer!r})"

    async def __aenter__(self) -> KalshiRest:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ plumbing

    async def _request(
        self, method: str, path: str, params: Params | None, body: object
    ) -> httpx.Response | TransportError:
        # Returned, not raised: raising inside the except block would chain the httpx error,
        # and with it the signed request, as the TransportError's __context__.
        try:
            return await self._http.request(method, path, params=_query(params), json=body)
        except httpx.HTTPError as exc:
            return transport_failure(exc, method, path)

    async def _send(
        self, method: str, path: str, params: Params | None, body: object, items_: int
    ) -> Any:
        """One attempt: wait for tokens, send, and return the decoded JSON of a 2xx.

        A request the write or read bucket can never hold (its capacity shrank below the
        cost) is a KalshiError ``exceeds_bucket`` and is not sent."""
        try:
            ticket = await self.limiter.acquire(method, path, items_)
        except ValueError as exc:
            raise KalshiError(None, "exceeds_bucket", str(exc), method=method, path=path) from None
        started = time.monotonic()
        try:
            response = await self._request(method, path, params, body)
        finally:
            # Answered or not, the exchange may have billed it by now.
            ticket.bucket.settle(ticket)
        if isinstance(response, TransportError):
            raise response
        log.debug(
            "%s %s -> %d in %.0f ms",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        if response.is_success:
            return loads(response.content) if response.content else {}
        error = error_from_response(
            response.status_code, response.content, method=method, path=path
        )
        if isinstance(error, RateLimited):
            ticket.bucket.drain()
        raise error

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: object = None,
        items_: int = 1,
        idempotent: bool = True,
        seen: list[KalshiError] | None = None,
    ) -> Any:
        """Send with retries: 429 always, 5xx/transport only when ``idempotent``.
        Every failed attempt's error is appended to ``seen``."""
        attempt = 0
        while True:
            try:
                return await self._send(method, path, params, body, items_)
            except KalshiError as exc:
                if seen is not None:
                    seen.append(exc)
                retryable = isinstance(exc, RateLimited) or (
                    idempotent and isinstance(exc, ServerError | TransportError)
                )
                if not retryable or attempt + 1 >= self.retry.attempts:
                    raise
                delay = self.retry.delay(attempt, self._rng)
                log.info("%s; retry %d in %.2f s", exc, attempt + 1, delay)
                attempt += 1
                await self._sleep(delay)

    async def _get(self, path: str, params: Params | None = None) -> Json:
        return obj(await self._call("GET", path, params=params), f"GET {path}")

    async def paginate(
        self,
        path: str,
        key: str,
        parse: Callable[[Any, str], T],
        params: Params | None = None,
        *,
        page_size: int = 100,
        max_pages: int = 100,
        skip_bad: bool = False,
    ) -> AsyncGenerator[T, None]:
        """Each item of ``body[key]`` over all pages, following ``cursor`` until it is empty.

        More than ``max_pages`` pages raises ``KalshiError`` (code ``too_many_pages``) after
        the items already yielded, rather than stopping silently; a cursor that repeats
        raises ``PayloadError``. An item that does not parse raises ``PayloadError``, or
        with ``skip_bad`` (market data, where one odd market must not hide the others; never
        for orders, fills or positions) is logged, counted in ``skipped`` and left out.
        """
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            body = await self._get(path, {**(params or {}), "limit": page_size, "cursor": cursor})
            where = f"GET {path}"
            for i, item in enumerate(items(body.get(key) or [], f"{where}.{key}")):
                try:
                    parsed = parse(item, f"{where}.{key}[{i}]")
                except PayloadError as exc:
                    if not skip_bad:
                        raise
                    self.skipped[path] += 1
                    log.warning("left out of the listing: %s", exc)
                    continue
                yield parsed
            cursor = optional(body, "cursor", where, text)
            if not cursor:
                return
            if cursor in seen:
                raise PayloadError(f"{where}: cursor {cursor[:40]!r} came back twice")
            seen.add(cursor)
        raise KalshiError(
            None,
            "too_many_pages",
            f"more than {max_pages} pages of {page_size}; narrow the filters or raise max_pages",
            method="GET",
            path=path,
        )

    async def _all(
        self,
        path: str,
        key: str,
        parse: Callable[[Any, str], T],
        params: Params | None,
        page_size: int,
        max_pages: int,
        *,
        skip_bad: bool = False,
    ) -> list[T]:
        pages = self.paginate(
            path, key, parse, params, page_size=page_size, max_pages=max_pages, skip_bad=skip_bad
        )
        return [item async for item in pages]

    # ------------------------------------------------------------------ exchange and markets

    async def exchange_status(self) -> ExchangeStatus:
        return parse_exchange_status(await self._get("/exchange/status"))

    async def series_list(self, *, category: str | None = None) -> list[SeriesInfo]:
        body = await self._get("/series", {"category": category})
        return [
            parse_series(s, f"series[{i}]")
            for i, s in enumerate(items(body.get("series") or [], "series"))
        ]

    async def series(self, series_ticker: str) -> SeriesInfo:
        body = await self._get(f"/series/{_seg(series_ticker)}")
        return field(body, "series", "GET /series/{ticker}", parse_series)

    async def events(
        self,
        *,
        series_ticker: str | None = None,
        status: str | None = None,
        tickers: Sequence[str] | None = None,
        with_nested_markets: bool = False,
        page_size: int = 200,
        max_pages: int = 100,
    ) -> list[EventInfo]:
        """Events (``status``: unopened, open, closed or settled; matches if any market does).
        An event that does not parse is left out and counted (see :meth:`paginate`)."""
        params = {
            "series_ticker": series_ticker,
            "status": status,
            "tickers": ",".join(tickers) if tickers else None,
            "with_nested_markets": with_nested_markets,
        }
        return await self._all(
            "/events", "events", parse_event, params, page_size, max_pages, skip_bad=True
        )

    async def event(self, event_ticker: str) -> EventInfo:
        """One event with its markets."""
        path = f"/events/{_seg(event_ticker)}"
        body = await self._get(path, {"with_nested_markets": True})
        event = field(body, "event", f"GET {path}", parse_event)
        if not event.markets and body.get("markets"):  # the deprecated top-level list
            markets = items(body["markets"], f"GET {path}.markets")
            nested = tuple(
                parse_market(m, f"GET {path}.markets[{i}]") for i, m in enumerate(markets)
            )
            event = dataclasses.replace(event, markets=nested)
        return event

    async def markets(
        self,
        *,
        event_ticker: str | None = None,
        series_ticker: str | None = None,
        status: str | None = None,
        tickers: Sequence[str] | None = None,
        mve_filter: Literal["only", "exclude"] | None = "exclude",
        page_size: int = 1000,
        max_pages: int = 100,
    ) -> list[MarketInfo]:
        """Markets (``status``: unopened, open, paused, closed or settled). Combo
        (multivariate) markets are left out unless ``mve_filter`` is ``"only"`` or None:
        there are many of them and this market maker quotes single games. A market that does
        not parse is left out and counted (see :meth:`paginate`)."""
        params = {
            "event_ticker": event_ticker,
            "series_ticker": series_ticker,
            "status": status,
            "tickers": ",".join(tickers) if tickers else None,
            "mve_filter": mve_filter,
        }
        return await self._all(
            "/markets", "markets", parse_market, params, page_size, max_pages, skip_bad=True
        )

    async def market(self, ticker: str) -> MarketInfo:
        body = await self._get(f"/markets/{_seg(ticker)}")
        return field(body, "market", "GET /markets/{ticker}", parse_market)

    async def orderbook(self, ticker: str, *, depth: int = 0) -> BookLevels:
        """The full book on the YES scale (``depth`` levels per side; 0 = all)."""
        body = await self._get(f"/markets/{_seg(ticker)}/orderbook", {"depth": depth or None})
        return field(body, "orderbook_fp", f"GET orderbook {ticker}", parse_orderbook)

    async def orderbooks(self, tickers: Sequence[str]) -> dict[str, BookLevels]:
        """Books of many markets, up to 100 per request."""
        out: dict[str, BookLevels] = {}
        for start in range(0, len(tickers), MAX_BOOKS_PER_CALL):
            chunk = list(tickers[start : start + MAX_BOOKS_PER_CALL])
            body = await self._get("/markets/orderbooks", {"tickers": chunk})
            for i, entry in enumerate(items(body.get("orderbooks") or [], "orderbooks")):
                where = f"orderbooks[{i}]"
                row = obj(entry, where)
                out[field(row, "ticker", where, text)] = field(
                    row, "orderbook_fp", where, parse_orderbook
                )
        return out

    async def trades(
        self,
        *,
        ticker: str | None = None,
        min_ts: datetime | None = None,
        max_ts: datetime | None = None,
        page_size: int = 1000,
        max_pages: int = 100,
    ) -> list[Trade]:
        params = {
            "ticker": ticker,
            "min_ts": _seconds(min_ts, "min_ts"),
            "max_ts": _seconds(max_ts, "max_ts"),
        }
        return await self._all(
            "/markets/trades", "trades", parse_trade, params, page_size, max_pages
        )

    # ------------------------------------------------------------------ creating orders

    async def create_order(self, request: OrderRequest) -> CreateResult:
        """Create one order. A bad request is a ``ValueError`` before anything is sent;
        after that it never raises (see :class:`CreateResult`)."""
        cid = request.client_order_id or str(uuid.uuid4())
        body = request.body(cid)
        started = datetime.now(UTC)
        errors: list[KalshiError] = []
        try:
            raw = await self._call("POST", ORDERS, body=body, seen=errors)
        except KalshiError as exc:
            ambiguous = _ambiguous(errors)
            if exc.code != "order_already_exists":
                status = CreateStatus.UNKNOWN if ambiguous else CreateStatus.REJECTED
                return CreateResult(status, cid, request, error=exc)
            found = await self._lookup([request], [cid], started if ambiguous else None)
            return self._looked_up(request, cid, exc, found.get(cid), already_existed=True)
        except PayloadError as exc:  # a 2xx we cannot read: accepted, but what rests?
            return CreateResult(CreateStatus.UNKNOWN, cid, request, error=exc)
        return self._created(request, cid, raw)

    async def batch_create(self, requests: Sequence[OrderRequest]) -> list[CreateResult]:
        """Create many orders, one result per request in order.

        Every request is checked (and given its ``client_order_id``) before anything is
        sent: a bad one, or a ``client_order_id`` used twice, is a ``ValueError`` and nothing
        goes out. Each item is billed and a batch must fit the write bucket whole, so the
        requests go out in chunks of at most ``max_batch``; a chunk that fails does not
        lose the results of the others (its items are UNKNOWN, or REJECTED if it was
        refused whole).
        """
        cids = [r.client_order_id or str(uuid.uuid4()) for r in requests]
        if len(set(cids)) != len(cids):
            raise ValueError("batch_create: a client_order_id appears twice")
        bodies = [r.body(c) for r, c in zip(requests, cids, strict=True)]
        per_batch = self._per_batch("POST")
        results: list[CreateResult] = []
        for start in range(0, len(requests), per_batch):
            end = start + per_batch
            results += await self._batch_chunk(
                requests[start:end], cids[start:end], bodies[start:end]
            )
        return results

    def _per_batch(self, method: str) -> int:
        """Items per batch request: what the write bucket holds at once, at most max_batch.
        (A bucket too small for even one item is refused by the limiter, not here.)"""
        fits = int(self.limiter.capacity("write") // self.limiter.cost(method, BATCH))
        return max(1, min(self.max_batch, fits))

    async def _batch_chunk(
        self,
        requests: Sequence[OrderRequest],
        cids: Sequence[str],
        bodies: Sequence[dict[str, object]],
    ) -> list[CreateResult]:
        """One batch request; never raises."""
        started = datetime.now(UTC)
        errors: list[KalshiError] = []
        try:
            raw = await self._call(
                "POST", BATCH, body={"orders": list(bodies)}, items_=len(bodies), seen=errors
            )
            rows = items(obj(raw, "batch create").get("orders"), "batch create.orders")
            if len(rows) != len(requests):
                raise PayloadError(f"batch create: {len(rows)} results for {len(requests)} orders")
        except (KalshiError, PayloadError) as exc:
            status = (
                CreateStatus.UNKNOWN
                if isinstance(exc, PayloadError) or _ambiguous(errors)
                else CreateStatus.REJECTED
            )
            return [
                CreateResult(status, c, r, error=exc) for r, c in zip(requests, cids, strict=True)
            ]
        ambiguous = _ambiguous(errors)
        out: dict[int, CreateResult] = {}
        # Rows are matched by position; ones to settle from the order list instead.
        pending: dict[int, tuple[KalshiError | PayloadError, bool]] = {}
        for i, (request, cid, row) in enumerate(zip(requests, cids, rows, strict=True)):
            item = row if isinstance(row, Mapping) else {}
            echoed = item.get("client_order_id")
            if echoed is not None and echoed != cid:
                where = f"batch create[{i}]"
                pending[i] = (PayloadError(f"{where}: the answer is for another order"), False)
            elif item.get("error"):
                refused = error_from_item(item["error"], method="POST", path=f"{BATCH}[{i}]")
                if refused.code == "order_already_exists":
                    pending[i] = (refused, True)
                else:
                    # After an ambiguous attempt the refusal may answer a repeat of an
                    # item that the first attempt created.
                    status = CreateStatus.UNKNOWN if ambiguous else CreateStatus.REJECTED
                    out[i] = CreateResult(status, cid, request, error=refused)
            else:
                out[i] = self._created(request, cid, row)
        if pending:
            found = await self._lookup(
                [requests[i] for i in pending],
                [cids[i] for i in pending],
                started if ambiguous else None,
            )
            for i, (error, existed) in pending.items():
                order = found.get(cids[i])
                out[i] = self._looked_up(
                    requests[i], cids[i], error, order, already_existed=existed
                )
        return [out[i] for i in range(len(requests))]

    @staticmethod
    def _created(request: OrderRequest, cid: str, raw: object) -> CreateResult:
        # The order id decides; a garbled optional field must not turn a confirmed create
        # into an UNKNOWN, so those read as None.
        try:
            ack = parse_order_ack(raw, f"create {cid}", lenient=True)
            if ack.order_id is None:
                raise PayloadError(f"create {cid}: the answer has no order_id")
        except PayloadError as exc:  # accepted, but we cannot tell what rests
            return CreateResult(CreateStatus.UNKNOWN, cid, request, error=exc)
        return CreateResult(
            CreateStatus.CREATED,
            cid,
            request,
            order_id=ack.order_id,
            fill_count=ack.fill_count,
            remaining_count=ack.remaining_count,
            average_fill_price=ack.average_fill_price,
            average_fee_paid=ack.average_fee_paid,
        )

    async def _lookup(
        self, requests: Sequence[OrderRequest], cids: Sequence[str], since: datetime | None
    ) -> dict[str, ExchangeOrder]:
        """What the order list shows for ``cids`` ({} if it cannot be read). ``since``: the
        start of the call whose ambiguous attempt may have created them."""
        tickers = {r.ticker for r in requests}
        try:
            return await self.resolve_client_order_ids(
                cids,
                ticker=tickers.pop() if len(tickers) == 1 else None,
                min_ts=since - RESOLVE_MARGIN if since is not None else None,
            )
        except (KalshiError, PayloadError) as exc:
            log.warning("could not look up %d client_order_ids: %s", len(cids), exc)
            return {}

    @staticmethod
    def _looked_up(
        request: OrderRequest,
        cid: str,
        error: KalshiError | PayloadError,
        order: ExchangeOrder | None,
        *,
        already_existed: bool,
    ) -> CreateResult:
        if order is None:  # not visible (yet: REST lags the engine), or the lookup failed
            return CreateResult(CreateStatus.UNKNOWN, cid, request, error=error)
        if (order.ticker, order.side, order.price) != (request.ticker, request.side, request.price):
            # The id was reused for a different order: this request was refused, and what
            # rests under the id is not it.
            return CreateResult(CreateStatus.REJECTED, cid, request, error=error, order=order)
        return CreateResult(
            CreateStatus.CREATED,
            cid,
            request,
            order_id=order.order_id,
            fill_count=order.filled,
            remaining_count=order.remaining,
            order=order,
            already_existed=already_existed,
        )

    async def resolve_client_order_ids(
        self,
        client_order_ids: Collection[str],
        *,
        ticker: str | None = None,
        min_ts: datetime | None = None,
        max_pages: int = 10,
    ) -> dict[str, ExchangeOrder]:
        """The orders (any status) created with ``client_order_ids``, found in one walk of
        the order list (newest first) that stops once all are found. ``ticker`` and
        ``min_ts`` narrow the walk; give the attempt's start minus a margin for clock skew
        (:data:`RESOLVE_MARGIN`), or None when the order may be older.

        An id missing from the answer means "not visible": REST lags the matching engine
        (apis.md §1.11 #3), so it does not prove the order was never created. Raises
        KalshiError if the list cannot be read (or is longer than ``max_pages`` pages of
        1000), so that "not found" is never confused with "could not look"."""
        wanted = set(client_order_ids)
        found: dict[str, ExchangeOrder] = {}
        params = {"ticker": ticker, "min_ts": _seconds(min_ts, "min_ts")}
        pages = self.paginate(
            "/portfolio/orders", "orders", parse_order, params, page_size=1000, max_pages=max_pages
        )
        async with aclosing(pages):
            async for order in pages:
                if order.client_order_id in wanted:
                    found[order.client_order_id] = order
                    if len(found) == len(wanted):
                        break
        return found

    async def resolve_by_client_order_id(
        self, ticker: str, client_order_id: str, *, min_ts: datetime | None = None
    ) -> ExchangeOrder | None:
        """The order created with ``client_order_id`` on ``ticker``, or None if it is not
        visible (yet); see :meth:`resolve_client_order_ids`."""
        found = await self.resolve_client_order_ids([client_order_id], ticker=ticker, min_ts=min_ts)
        return found.get(client_order_id)

    # ------------------------------------------------------------------ changing orders

    async def amend_order(
        self,
        order_id: str,
        *,
        ticker: str,
        side: Side,
        price: Decimal,
        count: Decimal,
        client_order_id: str | None = None,
        updated_client_order_id: str | None = None,
    ) -> OrderChange:
        """New price and/or size. ``count`` is the new total: already filled plus the
        remainder wanted resting. Not retried after a 5xx or timeout (see module doc)."""
        path = f"{ORDERS}/{checked_id(order_id)}/amend"
        body: dict[str, object] = {
            "ticker": ticker,
            "side": Side(side).value,
            "price": format_dollars(_order_price(price, f"{ticker} price")),
            "count": format_count(_positive_count(count, f"{ticker} count")),
        }
        if client_order_id is not None:
            body["client_order_id"] = client_order_id
        if updated_client_order_id is not None:
            body["updated_client_order_id"] = updated_client_order_id
        raw = await self._call("POST", path, body=body, idempotent=False)
        return OrderChange(order_id, parse_order_ack(raw, f"amend {order_id}"))

    async def decrease_order(
        self,
        order_id: str,
        *,
        reduce_by: Decimal | None = None,
        reduce_to: Decimal | None = None,
        market_ticker: str | None = None,
    ) -> OrderChange:
        """Shrink the resting remainder, keeping queue priority. Exactly one of ``reduce_by``
        (positive) and ``reduce_to`` (0 or more; 0 cancels); only ``reduce_to`` is retried
        after a 5xx or timeout (the result is then flagged ``ambiguous_retry``)."""
        path = f"{ORDERS}/{checked_id(order_id)}/decrease"
        body: dict[str, object]
        if reduce_by is not None and reduce_to is None:
            body = {"reduce_by": format_count(_positive_count(reduce_by, "reduce_by"))}
        elif reduce_to is not None and reduce_by is None:
            body = {"reduce_to": format_count(parse_count(reduce_to, "reduce_to"))}
        else:
            raise ValueError("give exactly one of reduce_by and reduce_to")
        if market_ticker is not None:
            body["market_ticker"] = market_ticker
        errors: list[KalshiError] = []
        raw = await self._call(
            "POST", path, body=body, idempotent=reduce_to is not None, seen=errors
        )
        return OrderChange(
            order_id,
            parse_order_ack(raw, f"decrease {order_id}"),
            ambiguous_retry=_ambiguous(errors),
        )

    async def cancel_order(self, order_id: str, *, market_ticker: str | None = None) -> OrderChange:
        """Cancel (idempotent, so retried; a retry after a 5xx or timeout is flagged
        ``ambiguous_retry``). An order the exchange does not know (404 with a not-found
        code) is reported ``already_gone``; any other 404 raises."""
        path = f"{ORDERS}/{checked_id(order_id)}"
        errors: list[KalshiError] = []
        try:
            raw = await self._call(
                "DELETE", path, params={"market_ticker": market_ticker}, seen=errors
            )
        except KalshiError as exc:
            if exc.status == 404 and _is_not_found(exc):
                return OrderChange(
                    order_id, None, already_gone=True, ambiguous_retry=_ambiguous(errors)
                )
            raise
        return OrderChange(
            order_id, parse_order_ack(raw, f"cancel {order_id}"), ambiguous_retry=_ambiguous(errors)
        )

    async def batch_cancel(self, orders: Sequence[tuple[str, str | None]]) -> list[OrderChange]:
        """Cancel many ``(order_id, market_ticker)`` pairs; one result per pair, in order
        (matched by position, since an answer's order id may be wrong). Ids are checked
        before anything is sent; a chunk that fails sets ``error`` on its items and does not
        lose the results of the others."""
        for oid, _ in orders:
            checked_id(oid)
        per_batch = self._per_batch("DELETE")
        out: list[OrderChange] = []
        for start in range(0, len(orders), per_batch):
            out += await self._cancel_chunk(orders[start : start + per_batch])
        return out

    async def _cancel_chunk(self, chunk: Sequence[tuple[str, str | None]]) -> list[OrderChange]:
        """One batch cancel request; never raises."""
        body = {
            "orders": [{"order_id": oid, **({"market_ticker": t} if t else {})} for oid, t in chunk]
        }
        errors: list[KalshiError] = []
        try:
            raw = await self._call("DELETE", BATCH, body=body, items_=len(chunk), seen=errors)
            rows = items(obj(raw, "batch cancel").get("orders"), "batch cancel.orders")
            if len(rows) != len(chunk):
                raise PayloadError(f"batch cancel: {len(rows)} results for {len(chunk)} orders")
        except (KalshiError, PayloadError) as exc:
            return [OrderChange(oid, None, error=exc) for oid, _ in chunk]
        retried = _ambiguous(errors)
        out = []
        for i, ((oid, _), row) in enumerate(zip(chunk, rows, strict=True)):
            item = row if isinstance(row, Mapping) else {}
            if item.get("error"):
                refused = error_from_item(item["error"], method="DELETE", path=f"{BATCH}[{i}]")
                gone = _is_not_found(refused)
                out.append(
                    OrderChange(
                        oid,
                        None,
                        already_gone=gone,
                        error=None if gone else refused,
                        ambiguous_retry=retried,
                    )
                )
                continue
            try:
                ack = parse_order_ack(row, f"batch cancel[{i}]")
            except PayloadError as bad:
                out.append(OrderChange(oid, None, error=bad, ambiguous_retry=retried))
                continue
            out.append(OrderChange(oid, ack, ambiguous_retry=retried))
        return out

    async def cancel_all(self) -> list[OrderAck]:
        """Cancel every resting order of the account (all shards); what the answer lists."""
        raw = await self._call("DELETE", ORDERS)
        rows = items(obj(raw, "cancel all").get("orders") or [], "cancel all.orders")
        return [parse_order_ack(r, f"cancel all[{i}]") for i, r in enumerate(rows)]

    # ------------------------------------------------------------------ portfolio

    async def orders(
        self,
        *,
        ticker: str | None = None,
        event_tickers: Sequence[str] | None = None,
        status: Literal["resting", "canceled", "executed"] | None = None,
        page_size: int = 1000,
        max_pages: int = 100,
    ) -> list[ExchangeOrder]:
        params = {
            "ticker": ticker,
            "event_ticker": ",".join(event_tickers) if event_tickers else None,
            "status": status,
        }
        return await self._all(
            "/portfolio/orders", "orders", parse_order, params, page_size, max_pages
        )

    async def order(self, order_id: str) -> ExchangeOrder:
        body = await self._get(f"/portfolio/orders/{checked_id(order_id)}")
        return field(body, "order", f"GET order {order_id}", parse_order)

    async def queue_positions(
        self, *, market_tickers: Sequence[str] | None = None, event_ticker: str | None = None
    ) -> dict[str, Decimal]:
        """order_id → contracts resting ahead of each of our resting orders."""
        body = await self._get(
            "/portfolio/orders/queue_positions",
            {
                "market_tickers": ",".join(market_tickers) if market_tickers else None,
                "event_ticker": event_ticker,
            },
        )
        return parse_queue_positions(body.get("queue_positions") or [])

    async def positions(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        count_filter: Sequence[Literal["position", "total_traded"]] | None = None,
        page_size: int = 1000,
        max_pages: int = 100,
    ) -> Positions:
        """Market positions over all pages, and the event positions (each event once)."""
        params: dict[str, object] = {
            "ticker": ticker,
            "event_ticker": event_ticker,
            "count_filter": ",".join(count_filter) if count_filter else None,
        }
        events: dict[str, EventPosition] = {}
        markets: list[MarketPosition] = []
        cursor: str | None = None
        seen: set[str] = set()
        path = "/portfolio/positions"
        # Walked by hand because each page carries two lists; paginate() follows one.
        for _ in range(max_pages):
            body = await self._get(path, {**params, "limit": page_size, "cursor": cursor})
            rows = items(body.get("market_positions") or [], "market_positions")
            markets += [
                parse_market_position(r, f"market_positions[{i}]") for i, r in enumerate(rows)
            ]
            for i, r in enumerate(items(body.get("event_positions") or [], "event_positions")):
                ep = parse_event_position(r, f"event_positions[{i}]")
                events.setdefault(ep.event_ticker, ep)
            cursor = optional(body, "cursor", f"GET {path}", text)
            if not cursor:
                return Positions(tuple(markets), tuple(events.values()))
            if cursor in seen:
                raise PayloadError(f"GET {path}: cursor {cursor[:40]!r} came back twice")
            seen.add(cursor)
        raise KalshiError(
            None, "too_many_pages", f"more than {max_pages} pages", method="GET", path=path
        )

    async def fills(
        self,
        *,
        ticker: str | None = None,
        order_id: str | None = None,
        min_ts: datetime | None = None,
        max_ts: datetime | None = None,
        page_size: int = 1000,
        max_pages: int = 100,
    ) -> list[Fill]:
        params = {
            "ticker": ticker,
            "order_id": order_id,
            "min_ts": _seconds(min_ts, "min_ts"),
            "max_ts": _seconds(max_ts, "max_ts"),
        }
        return await self._all(
            "/portfolio/fills", "fills", parse_fill, params, page_size, max_pages
        )

    async def settlements(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        min_ts: datetime | None = None,
        page_size: int = 100,
        max_pages: int = 100,
    ) -> list[Settlement]:
        params = {
            "ticker": ticker,
            "event_ticker": event_ticker,
            "min_ts": _seconds(min_ts, "min_ts"),
        }
        return await self._all(
            "/portfolio/settlements", "settlements", parse_settlement, params, page_size, max_pages
        )

    async def balance(self) -> Balance:
        return parse_balance(await self._get("/portfolio/balance"))

    # ------------------------------------------------------------------ order groups

    @staticmethod
    def _group_limit(contracts_limit: Decimal) -> dict[str, object]:
        if contracts_limit <= 0 or contracts_limit != contracts_limit.to_integral_value():
            raise ValueError(f"contracts_limit {contracts_limit}: a positive whole number")
        return {"contracts_limit_fp": format_count(contracts_limit)}

    async def create_order_group(self, contracts_limit: Decimal) -> str:
        """A new group; returns its id. Not retried after a 5xx or timeout (it has no
        idempotency key); list the groups to reconcile."""
        raw = await self._call(
            "POST", f"{GROUPS}/create", body=self._group_limit(contracts_limit), idempotent=False
        )
        return field(obj(raw, "create order group"), "order_group_id", "create order group", text)

    async def order_group(self, group_id: str) -> OrderGroup:
        body = await self._get(f"{GROUPS}/{checked_id(group_id, 'order group id')}")
        return parse_order_group(body, f"order group {group_id}", group_id=group_id)

    async def order_groups(self) -> list[OrderGroup]:
        body = await self._get(GROUPS)
        rows = items(body.get("order_groups") or [], "order_groups")
        return [parse_order_group(r, f"order_groups[{i}]") for i, r in enumerate(rows)]

    async def delete_order_group(self, group_id: str) -> None:
        await self._call("DELETE", f"{GROUPS}/{checked_id(group_id, 'order group id')}")

    async def reset_order_group(self, group_id: str) -> None:
        await self._call("PUT", f"{GROUPS}/{checked_id(group_id, 'order group id')}/reset", body={})

    async def trigger_order_group(self, group_id: str) -> None:
        await self._call(
            "PUT", f"{GROUPS}/{checked_id(group_id, 'order group id')}/trigger", body={}
        )

    async def set_order_group_limit(self, group_id: str, contracts_limit: Decimal) -> None:
        await self._call(
            "PUT",
            f"{GROUPS}/{checked_id(group_id, 'order group id')}/limit",
            body=self._group_limit(contracts_limit),
        )

    # ------------------------------------------------------------------ account

    async def account_limits(self) -> AccountLimits:
        return parse_account_limits(await self._get("/account/limits"))

    async def endpoint_costs(self) -> EndpointCosts:
        return parse_endpoint_costs(await self._get("/account/endpoint_costs"))

    async def configure_rate_limits(self) -> AccountLimits:
        """Size the buckets from ``/account/limits`` and, where the exchange serves it,
        price the routes from ``/account/endpoint_costs`` (a 404 keeps the known costs)."""
        limits = await self.account_limits()
        try:
            costs: EndpointCosts | None = await self.endpoint_costs()
        except KalshiError as exc:
            if exc.status != 404:
                raise
            costs = None
        self.limiter.configure(
            limits.read,
            limits.write,
            default_cost=costs.default_cost if costs else None,
            costs=costs.costs if costs else None,
        )
        return limits
