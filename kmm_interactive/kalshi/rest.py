"""The Kalshi Trade API v2 REST client: market data, V2 orders, portfolio, order groups, limits.

One :class:`KalshiRest` holds one ``httpx.AsyncClient`` (a keep-alive connection pool) for
one API key, signs every request (auth.py), waits on client-side token buckets so that it
does not send into a 429 (ratelimit.py), and parses every answer into the frozen types of
models.py (exact ``Decimal`` money; never floats).

Failure semantics:

* Reads, cancels, cancel-all, ``reduce_to`` decreases and order-group updates are safe to
  repeat: 5xx and transport errors are retried with capped exponential backoff and jitter.
  A 429 is retried for every call (it was refused whole), after emptying the bucket.
  Amends and ``reduce_by`` decreases are not retried after a 5xx or timeout (repeating them
  could apply twice); the :class:`~kmm_interactive.kalshi.errors.KalshiError` is raised and
  the caller reconciles. Whatever is not retried, or still fails, raises a KalshiError.
* Creates never raise for an exchange answer: :meth:`KalshiRest.create_order` returns a
  :class:`CreateResult` that is CREATED, REJECTED (the exchange refused it; nothing rests)
  or UNKNOWN (a timeout, transport error or 5xx left the outcome open). Every create carries
  a ``client_order_id`` and is retried only with that same id, so a 409
  ``order_already_exists`` after an ambiguous attempt means the first attempt went through;
  the order is then looked up and reported CREATED. :meth:`KalshiRest.resolve_by_client_order_id`
  settles an UNKNOWN later.
* Cancel and amend answers are not trusted to describe the order asked about (Kalshi
  sometimes describes another one): :class:`OrderChange` keeps the order id that was asked
  about beside the answer's fields, and ``describes_request`` says whether they agree.
* A malformed answer raises :class:`~kmm_interactive.kalshi.models.PayloadError`.
* Neither the private key nor signature headers appear in a repr, a log line or an error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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
        """The JSON body; a bad price or count is a ``ValueError`` here, before any I/O."""
        validate_price(self.price, f"{self.ticker} price")
        if parse_count(self.count, f"{self.ticker} count") <= 0:
            raise ValueError(f"{self.ticker}: count {self.count} must be positive")
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
        if self.expiration_time is not None:
            out["expiration_time"] = int(self.expiration_time.timestamp())  # Unix seconds
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
    FOK, the final state). When CREATED was learned from the order list after a 409,
    ``order`` holds that order and the average prices are None (the fills feed has them).
    REJECTED: the exchange refused it (``error``); nothing rests. UNKNOWN: the order may or
    may not exist; resolve with :meth:`KalshiRest.resolve_by_client_order_id`.
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


@dataclass(frozen=True)
class OrderChange:
    """The outcome of an amend, decrease or cancel of ``order_id``.

    ``reported`` is the exchange's answer as sent; it may describe another order
    (``describes_request`` is then False) although the change itself was applied to
    ``order_id``. ``already_gone``: a cancel found no such order (404). ``error``: this item
    of a batch cancel was refused.
    """

    order_id: str
    reported: OrderAck | None
    already_gone: bool = False
    error: KalshiError | None = None

    @property
    def describes_request(self) -> bool:
        return self.reported is not None and self.reported.order_id == self.order_id


# --------------------------------------------------------------------------- helpers


def _base_url(base: str) -> str:
    endpoints = KALSHI_ENDPOINTS.get(base)
    if endpoints is not None:
        return endpoints.rest
    url = base.rstrip("/")
    if not url.startswith(("http://", "https://")) or not url.endswith(API_ROOT):
        raise ValueError(
            f"base {base!r}: give 'demo', 'prod' or an http(s) URL ending in {API_ROOT}"
        )
    return url


def _seg(value: str) -> str:
    """A path segment (ticker, order id), escaped so that it cannot change the path."""
    return quote(value, safe="")


def _seconds(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


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
    data can be read. Use ``async with`` or call :meth:`aclose`."""

    def __init__(
        self,
        base: str,
        signer: Signer | None = None,
        *,
        timeout: float = 10.0,
        limiter: RateLimiter | None = None,
        retry: Retry | None = None,
        max_connections: int = 20,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = _base_url(base)
        self.limiter = limiter or RateLimiter.for_tier("basic", sleep=sleep)
        self.retry = retry or Retry()
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

    async def _send(
        self, method: str, path: str, params: Params | None, body: object, items_: int
    ) -> Any:
        """One attempt: wait for tokens, send, and return the decoded JSON of a 2xx."""
        ticket = await self.limiter.acquire(method, path, items_)
        started = time.monotonic()
        try:
            response = await self._http.request(method, path, params=_query(params), json=body)
        except httpx.TimeoutException:
            raise TransportError(
                None, "timeout", "no answer within the timeout", method=method, path=path
            ) from None
        except httpx.TransportError as exc:
            raise TransportError(
                None, "transport", f"{type(exc).__name__}: {exc}", method=method, path=path
            ) from None
        finally:
            # Answered or not, the exchange may have billed it by now.
            ticket.bucket.settle(ticket)
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
    ) -> AsyncIterator[T]:
        """Each item of ``body[key]`` over all pages, following ``cursor`` until it is empty.

        More than ``max_pages`` pages raises ``KalshiError`` (code ``too_many_pages``) after
        the items already yielded, rather than stopping silently; a cursor that repeats
        raises ``PayloadError``.
        """
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            body = await self._get(path, {**(params or {}), "limit": page_size, "cursor": cursor})
            where = f"GET {path}"
            for i, item in enumerate(items(body.get(key) or [], f"{where}.{key}")):
                yield parse(item, f"{where}.{key}[{i}]")
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
    ) -> list[T]:
        pages = self.paginate(path, key, parse, params, page_size=page_size, max_pages=max_pages)
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
        """Events (``status``: unopened, open, closed or settled; matches if any market does)."""
        params = {
            "series_ticker": series_ticker,
            "status": status,
            "tickers": ",".join(tickers) if tickers else None,
            "with_nested_markets": with_nested_markets,
        }
        return await self._all("/events", "events", parse_event, params, page_size, max_pages)

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
        page_size: int = 1000,
        max_pages: int = 100,
    ) -> list[MarketInfo]:
        """Markets (``status``: unopened, open, paused, closed or settled)."""
        params = {
            "event_ticker": event_ticker,
            "series_ticker": series_ticker,
            "status": status,
            "tickers": ",".join(tickers) if tickers else None,
        }
        return await self._all("/markets", "markets", parse_market, params, page_size, max_pages)

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
        params = {"ticker": ticker, "min_ts": _seconds(min_ts), "max_ts": _seconds(max_ts)}
        return await self._all(
            "/markets/trades", "trades", parse_trade, params, page_size, max_pages
        )

    # ------------------------------------------------------------------ creating orders

    async def create_order(self, request: OrderRequest) -> CreateResult:
        """Create one order; never raises for the exchange's answer (see :class:`CreateResult`)."""
        cid = request.client_order_id or str(uuid.uuid4())
        body = request.body(cid)
        errors: list[KalshiError] = []
        try:
            raw = await self._call("POST", ORDERS, body=body, seen=errors)
        except KalshiError as exc:
            return await self._failed_create(request, cid, exc, _ambiguous(errors))
        return self._created(request, cid, raw)

    async def batch_create(self, requests: Sequence[OrderRequest]) -> list[CreateResult]:
        """Create many orders, one result per request in order.

        Each item is billed and a batch must fit the write bucket whole, so the requests go
        out in as many batches as the bucket's capacity needs.
        """
        per_batch = max(1, int(self.limiter.capacity("write") // self.limiter.cost("POST", BATCH)))
        results: list[CreateResult] = []
        for start in range(0, len(requests), per_batch):
            results += await self._batch_create(list(requests[start : start + per_batch]))
        return results

    async def _batch_create(self, requests: list[OrderRequest]) -> list[CreateResult]:
        cids = [r.client_order_id or str(uuid.uuid4()) for r in requests]
        body = {"orders": [r.body(c) for r, c in zip(requests, cids, strict=True)]}
        errors: list[KalshiError] = []
        try:
            raw = await self._call("POST", BATCH, body=body, items_=len(requests), seen=errors)
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
        out = []
        for i, (request, cid, row) in enumerate(zip(requests, cids, rows, strict=True)):
            item = row if isinstance(row, Mapping) else {}
            if item.get("error"):
                refused = error_from_item(item["error"], method="POST", path=f"{BATCH}[{i}]")
                out.append(await self._failed_create(request, cid, refused, _ambiguous(errors)))
            else:
                out.append(self._created(request, cid, row))
        return out

    @staticmethod
    def _created(request: OrderRequest, cid: str, raw: object) -> CreateResult:
        try:
            ack = parse_order_ack(raw, f"create {cid}")
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

    async def _failed_create(
        self, request: OrderRequest, cid: str, exc: KalshiError, ambiguous: bool
    ) -> CreateResult:
        if not ambiguous:
            # Every attempt was answered with a refusal: nothing was created. (A first-try
            # 409 means the caller reused a client_order_id: refused too.)
            return CreateResult(CreateStatus.REJECTED, cid, request, error=exc)
        if exc.code == "order_already_exists":
            # Our own earlier attempt went through: find it.
            try:
                order = await self.resolve_by_client_order_id(request.ticker, cid)
            except (KalshiError, PayloadError):
                order = None
            if order is not None:
                return CreateResult(
                    CreateStatus.CREATED,
                    cid,
                    request,
                    order_id=order.order_id,
                    fill_count=order.filled,
                    remaining_count=order.remaining,
                    order=order,
                )
        return CreateResult(CreateStatus.UNKNOWN, cid, request, error=exc)

    async def resolve_by_client_order_id(
        self, ticker: str, client_order_id: str
    ) -> ExchangeOrder | None:
        """The order created with ``client_order_id`` on ``ticker``, or None if there is none
        (any status: resting, canceled or executed). Raises KalshiError if the list cannot
        be read, so that "not found" is never confused with "could not look"."""
        async for order in self.paginate(
            "/portfolio/orders", "orders", parse_order, {"ticker": ticker}, page_size=1000
        ):
            if order.client_order_id == client_order_id:
                return order
        return None

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
        body: dict[str, object] = {
            "ticker": ticker,
            "side": Side(side).value,
            "price": format_dollars(validate_price(price, f"{ticker} price")),
            "count": format_count(count),
        }
        if client_order_id is not None:
            body["client_order_id"] = client_order_id
        if updated_client_order_id is not None:
            body["updated_client_order_id"] = updated_client_order_id
        raw = await self._call(
            "POST", f"{ORDERS}/{_seg(order_id)}/amend", body=body, idempotent=False
        )
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
        and ``reduce_to``; only ``reduce_to`` is retried after a 5xx or timeout."""
        if (reduce_by is None) == (reduce_to is None):
            raise ValueError("give exactly one of reduce_by and reduce_to")
        body: dict[str, object] = (
            {"reduce_by": format_count(reduce_by)}
            if reduce_by is not None
            else {"reduce_to": format_count(reduce_to)}  # type: ignore[arg-type]  # set here
        )
        if market_ticker is not None:
            body["market_ticker"] = market_ticker
        raw = await self._call(
            "POST",
            f"{ORDERS}/{_seg(order_id)}/decrease",
            body=body,
            idempotent=reduce_to is not None,
        )
        return OrderChange(order_id, parse_order_ack(raw, f"decrease {order_id}"))

    async def cancel_order(self, order_id: str, *, market_ticker: str | None = None) -> OrderChange:
        """Cancel (idempotent, so retried). An order the exchange does not know (404) is
        reported ``already_gone``."""
        try:
            raw = await self._call(
                "DELETE", f"{ORDERS}/{_seg(order_id)}", params={"market_ticker": market_ticker}
            )
        except KalshiError as exc:
            if exc.status == 404:
                return OrderChange(order_id, None, already_gone=True)
            raise
        return OrderChange(order_id, parse_order_ack(raw, f"cancel {order_id}"))

    async def batch_cancel(self, orders: Sequence[tuple[str, str | None]]) -> list[OrderChange]:
        """Cancel many ``(order_id, market_ticker)`` pairs; one result per pair, in order
        (matched by position, since an answer's order id may be wrong)."""
        per_batch = max(
            1, int(self.limiter.capacity("write") // self.limiter.cost("DELETE", BATCH))
        )
        out: list[OrderChange] = []
        for start in range(0, len(orders), per_batch):
            chunk = orders[start : start + per_batch]
            body = {
                "orders": [
                    {"order_id": oid, **({"market_ticker": t} if t else {})} for oid, t in chunk
                ]
            }
            raw = await self._call("DELETE", BATCH, body=body, items_=len(chunk))
            rows = items(obj(raw, "batch cancel").get("orders"), "batch cancel.orders")
            if len(rows) != len(chunk):
                raise PayloadError(f"batch cancel: {len(rows)} results for {len(chunk)} orders")
            for i, ((oid, _), row) in enumerate(zip(chunk, rows, strict=True)):
                item = obj(row, f"batch cancel.orders[{i}]")
                if item.get("error"):
                    exc = error_from_item(item["error"], method="DELETE", path=f"{BATCH}[{i}]")
                    gone = exc.code == "not_found"
                    out.append(
                        OrderChange(oid, None, already_gone=gone, error=None if gone else exc)
                    )
                else:
                    out.append(OrderChange(oid, parse_order_ack(item, f"batch cancel[{i}]")))
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
        body = await self._get(f"/portfolio/orders/{_seg(order_id)}")
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
            "min_ts": _seconds(min_ts),
            "max_ts": _seconds(max_ts),
        }
        return await self._all(
            "/portfolio/fills", "fills", parse_fill, params, page_size, max_pages
        )

    async def settlements(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        page_size: int = 100,
        max_pages: int = 100,
    ) -> list[Settlement]:
        params = {"ticker": ticker, "event_ticker": event_ticker}
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
        body = await self._get(f"{GROUPS}/{_seg(group_id)}")
        return parse_order_group(body, f"order group {group_id}", group_id=group_id)

    async def order_groups(self) -> list[OrderGroup]:
        body = await self._get(GROUPS)
        rows = items(body.get("order_groups") or [], "order_groups")
        return [parse_order_group(r, f"order_groups[{i}]") for i, r in enumerate(rows)]

    async def delete_order_group(self, group_id: str) -> None:
        await self._call("DELETE", f"{GROUPS}/{_seg(group_id)}")

    async def reset_order_group(self, group_id: str) -> None:
        await self._call("PUT", f"{GROUPS}/{_seg(group_id)}/reset", body={})

    async def trigger_order_group(self, group_id: str) -> None:
        await self._call("PUT", f"{GROUPS}/{_seg(group_id)}/trigger", body={})

    async def set_order_group_limit(self, group_id: str, contracts_limit: Decimal) -> None:
        await self._call(
            "PUT", f"{GROUPS}/{_seg(group_id)}/limit", body=self._group_limit(contracts_limit)
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
