"""The Kalshi-compatible server: REST under ``/trade-api/v2``, WebSocket at ``/trade-api/ws/v2``.

Every request, in order: injected latency → signature check (401) → token bucket (429) →
injected 5xx/429 → the handler. As on Kalshi, market data (``GET`` of exchange status,
series, events, markets, order books and trades) may also be read unsigned; a request that
carries any signature header is checked in full. A refused request changes nothing.

Error bodies follow the spec's flat ``{"code", "message", "details"}``, except on the V2
order endpoints, which answer with the nested ``{"error": {"code", "message", "details"}}``
seen from the live exchange, and 429, which is Kalshi's documented
``{"error": "too many requests"}``; a client has to read both shapes, so the simulator
serves both.

Admin endpoints (no signature; the server listens on 127.0.0.1 only): ``GET/POST
/admin/faults`` (see faults.py) and ``GET /admin/status``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeVar

from aiohttp import web

from kmm_interactive.domain import ZERO, format_count, parse_count
from kmm_interactive.sim import wire
from kmm_interactive.sim.auth import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AuthError,
    Verifier,
)
from kmm_interactive.sim.exchange import (
    Exchange,
    ExchangeError,
    FillRecord,
    SettlementRecord,
    SimOrder,
    TradeRecord,
    cc_to_count,
    floor_cents,
)
from kmm_interactive.sim.faults import FaultError, Faults
from kmm_interactive.sim.loopback import LOOPBACK, listen
from kmm_interactive.sim.ratelimit import CANCEL_COST, DEFAULT_COST, RateLimiter
from kmm_interactive.sim.ws import WsHub

log = logging.getLogger(__name__)
API: Final = "/trade-api/v2"
WS_PATH: Final = "/trade-api/ws/v2"
V2_ORDERS: Final = f"{API}/portfolio/events/orders"
Json = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")

USER_KEY: Final = web.RequestKey("kmm_user", str)


ANONYMOUS: Final = "anonymous"
PUBLIC_PATHS: Final = tuple(f"{API}/{p}" for p in ("exchange/", "series", "events", "markets"))


def _is_public(path: str) -> bool:
    return path.startswith(PUBLIC_PATHS)


def _signed(request: web.Request) -> bool:
    return any(h in request.headers for h in (KEY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))


def _error(status: int, code: str, message: str, *, nested: bool = False) -> web.Response:
    body: Json = {"code": code, "message": message, "details": ""}
    return web.json_response({"error": body} if nested else body, status=status)


def _too_many() -> web.Response:
    return web.json_response({"error": "too many requests"}, status=429)


class BadRequest(Exception):
    """A malformed parameter: 400 ``invalid_parameters`` with what was wrong."""


# --------------------------------------------------------------------------- query parsing


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer from {lo} to {hi}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be from {lo} to {hi}, got {value}")
    return value


def _opt_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer (Unix seconds), got {raw!r}") from None


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false, got {raw!r}")
    return raw == "true"


def _csv(request: web.Request, name: str) -> list[str] | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    return [t for t in raw.split(",") if t]


def _page(
    items: Sequence[T],
    request: web.Request,
    *,
    default: int,
    hi: int,
    key: Callable[[T], int] | None = None,
) -> tuple[list[T], str]:
    """Cursor pagination; the cursor is opaque ("" = done).

    Lists that grow at the front (fills, trades, orders, settlements, newest first) page by
    ``key``, a number that falls down the list: the cursor is the key of the last item
    returned, so an item arriving between two pages neither repeats nor hides one. Fixed
    lists (markets, events) page by offset.
    """
    limit = _int_param(request, "limit", default, 1, hi)
    cursor = request.query.get("cursor") or ""
    mark = None
    if cursor:
        try:
            mark = int(base64.urlsafe_b64decode(cursor.encode()).decode())
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise BadRequest("cursor is not one this server issued") from None
        if mark < 0:
            raise BadRequest("cursor is not one this server issued")
    if key is None:
        start = mark or 0
        page = list(items[start : start + limit])
        nxt, more = start + limit, start + limit < len(items)
    else:
        rest = [i for i in items if mark is None or key(i) < mark]
        page, more = rest[:limit], len(rest) > limit
        nxt = key(page[-1]) if page else 0
    token = base64.urlsafe_b64encode(str(nxt).encode()).decode() if more else ""
    return page, token


def _seq(record: FillRecord | TradeRecord | SettlementRecord | SimOrder) -> int:
    return record.seq


async def _body(request: web.Request) -> Json:
    try:
        body = await request.json(loads=lambda s: json.loads(s, parse_float=Decimal))
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _field(body: Json, name: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
    if name not in body or body[name] is None:
        if required:
            raise BadRequest(f"missing required field {name!r}")
        return None
    value = body[name]
    if isinstance(value, bool) and kind is not bool:
        raise BadRequest(f"{name} has the wrong type")
    if not isinstance(value, kind):
        raise BadRequest(f"{name} has the wrong type ({type(value).__name__})")
    return value


# --------------------------------------------------------------------------- the server


@dataclass
class ServerStats:
    requests: int = 0
    rejected_auth: int = 0
    rejected_rate: int = 0


class KalshiServer:
    """Routes and state of one embedded Kalshi exchange."""

    def __init__(
        self,
        exchange: Exchange,
        verifier: Verifier,
        *,
        faults: Faults | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.exchange = exchange
        self.verifier = verifier
        self.faults = faults or Faults()
        self.limiter = limiter or RateLimiter()
        self.hub = WsHub(exchange, self.faults)
        self.stats = ServerStats()
        self.app = self._build_app()

    # ------------------------------------------------------------------ plumbing

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024 * 1024)
        r = app.router
        get, post, delete, put = r.add_get, r.add_post, r.add_delete, r.add_put
        get(f"{API}/exchange/status", self.exchange_status)
        get(f"{API}/exchange/schedule", self.exchange_schedule)
        get(f"{API}/series", self.series_list)
        get(f"{API}/series/{{ticker}}", self.series_one)
        get(f"{API}/events", self.events_list)
        get(f"{API}/events/{{ticker}}", self.event_one)
        get(f"{API}/markets", self.markets_list)
        get(f"{API}/markets/trades", self.trades)
        get(f"{API}/markets/orderbooks", self.orderbooks)
        get(f"{API}/markets/{{ticker}}", self.market_one)
        get(f"{API}/markets/{{ticker}}/orderbook", self.orderbook)
        post(V2_ORDERS, self.create_order)
        delete(V2_ORDERS, self.cancel_all)
        post(f"{V2_ORDERS}/batched", self.batch_create)
        delete(f"{V2_ORDERS}/batched", self.batch_cancel)
        delete(f"{V2_ORDERS}/{{order_id}}", self.cancel_order)
        post(f"{V2_ORDERS}/{{order_id}}/amend", self.amend_order)
        post(f"{V2_ORDERS}/{{order_id}}/decrease", self.decrease_order)
        get(f"{API}/portfolio/orders", self.orders_list)
        get(f"{API}/portfolio/orders/queue_positions", self.queue_positions)
        get(f"{API}/portfolio/orders/{{order_id}}", self.order_one)
        get(f"{API}/portfolio/orders/{{order_id}}/queue_position", self.queue_position)
        for legacy in ("", "/batched", "/{order_id}", "/{order_id}/amend", "/{order_id}/decrease"):
            r.add_route("POST", f"{API}/portfolio/orders{legacy}", self.v1_gone)
            if legacy in ("/batched", "/{order_id}"):
                r.add_route("DELETE", f"{API}/portfolio/orders{legacy}", self.v1_gone)
        get(f"{API}/portfolio/positions", self.positions)
        get(f"{API}/portfolio/fills", self.fills)
        get(f"{API}/portfolio/settlements", self.settlements)
        get(f"{API}/portfolio/balance", self.balance)
        get(f"{API}/portfolio/order_groups", self.groups_list)
        post(f"{API}/portfolio/order_groups/create", self.group_create)
        get(f"{API}/portfolio/order_groups/{{group_id}}", self.group_one)
        delete(f"{API}/portfolio/order_groups/{{group_id}}", self.group_delete)
        put(f"{API}/portfolio/order_groups/{{group_id}}/reset", self.group_reset)
        put(f"{API}/portfolio/order_groups/{{group_id}}/trigger", self.group_trigger)
        put(f"{API}/portfolio/order_groups/{{group_id}}/limit", self.group_limit)
        get(f"{API}/account/limits", self.account_limits)
        get(f"{API}/account/endpoint_costs", self.endpoint_costs)
        get(WS_PATH, self.websocket)
        get("/admin/faults", self.admin_faults_get)
        post("/admin/faults", self.admin_faults_set)
        get("/admin/status", self.admin_status)
        app.on_shutdown.append(_shutdown_hook(self.hub.close_all))
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/admin/"):
            return await handler(request)
        self.stats.requests += 1
        delay = self.faults.latency()
        if delay:
            # The request has arrived whole before the delay, as at a slow exchange: a client
            # that gives up meanwhile does not stop it being applied (its outcome is unknown).
            await request.read()
            await asyncio.sleep(delay)
        try:
            if request.method == "GET" and _is_public(request.path) and not _signed(request):
                user = ANONYMOUS  # market data needs no key on Kalshi
            else:
                signed_path = request.raw_path.split("?", 1)[0]  # as sent, without the query
                user = self.verifier.verify(
                    request.headers, request.method, signed_path, int(time.time() * 1000)
                )
        except AuthError as exc:
            self.stats.rejected_auth += 1
            return _error(401, "unauthorized", str(exc))
        request[USER_KEY] = user
        if request.path == WS_PATH:
            return await handler(request)
        nested = request.path.startswith(V2_ORDERS)
        # Injected refusals come first: a refused request is not billed and changes nothing.
        if self.faults.in_429_burst() or self.faults.roll("rest_429"):
            return _too_many()
        if self.faults.roll("rest_5xx"):
            return _error(503, "service_unavailable", "injected server error", nested=nested)
        if not self._charge_default(request, user):
            self.stats.rejected_rate += 1
            return _too_many()
        try:
            return await handler(request)
        except BadRequest as exc:
            return _error(400, "invalid_parameters", str(exc), nested=nested)
        except ExchangeError as exc:
            return _error(exc.status, exc.code, exc.message, nested=nested)
        except web.HTTPException:
            raise
        except ConnectionResetError:  # the client went away mid-request: nothing to answer
            log.debug("embedded exchange: %s %s: client gone", request.method, request.path)
            raise
        except Exception:  # a bug: say so plainly, and keep serving
            log.exception("embedded exchange: %s %s failed", request.method, request.path)
            return _error(500, "internal_error", "internal error", nested=nested)

    def _charge_default(self, request: web.Request, user: str) -> bool:
        """Bill single requests here; batches bill per item in their handlers."""
        path, method = request.path, request.method
        if path.startswith(V2_ORDERS) or path.startswith(f"{API}/portfolio/order_groups"):
            if method == "GET":
                return self.limiter.allow(user, "read", DEFAULT_COST)
            if path.endswith("/batched"):
                return True  # billed by the handler, per item
            cancel = method == "DELETE" and path.startswith(V2_ORDERS)  # cancels cost 2
            return self.limiter.allow(user, "write", CANCEL_COST if cancel else DEFAULT_COST)
        return self.limiter.allow(user, "read", DEFAULT_COST)

    @staticmethod
    def user(request: web.Request) -> str:
        return request[USER_KEY]

    # ------------------------------------------------------------------ exchange and markets

    async def exchange_status(self, _: web.Request) -> web.Response:
        active = self.exchange.trading_active
        return web.json_response(
            {
                "exchange_active": True,
                "trading_active": active,
                "exchange_estimated_resume_time": None,
                "intra_exchange_transfers_active": True,
                "exchange_index_statuses": [
                    {
                        "exchange_index": 0,
                        "description": "default",
                        "exchange_active": True,
                        "trading_active": active,
                        "intra_exchange_transfers_active": True,
                    }
                ],
            }
        )

    async def exchange_schedule(self, _: web.Request) -> web.Response:
        day = [{"open_time": "00:00", "close_time": "23:59"}]
        days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        return web.json_response(
            {
                "schedule": {
                    "standard_hours": [
                        {
                            "start_time": "2026-01-01T00:00:00Z",
                            "end_time": "2027-01-01T00:00:00Z",
                            **dict.fromkeys(days, day),
                        }
                    ],
                    "maintenance_windows": [],
                }
            }
        )

    async def series_list(self, request: web.Request) -> web.Response:
        category = request.query.get("category")
        items = [
            wire.series_json(s, self._series_volume(s.ticker), self._series_updated(s.ticker))
            for s in self.exchange.series.values()
            if category is None or s.category == category
        ]
        return web.json_response({"series": items})

    def _series_volume(self, ticker: str) -> int:
        return sum(m.volume for m in self.exchange.markets.values() if m.series_ticker == ticker)

    def _series_updated(self, ticker: str) -> float:
        times = [m.updated for m in self.exchange.markets.values() if m.series_ticker == ticker]
        return max(times, default=0.0)

    async def series_one(self, request: web.Request) -> web.Response:
        s = self.exchange.series.get(request.match_info["ticker"])
        if s is None:
            raise ExchangeError(404, "not_found", "series not found")
        return web.json_response(
            {
                "series": wire.series_json(
                    s, self._series_volume(s.ticker), self._series_updated(s.ticker)
                )
            }
        )

    async def events_list(self, request: web.Request) -> web.Response:
        ex = self.exchange
        status = request.query.get("status")
        if status is not None and status not in ("unopened", "open", "closed", "settled"):
            raise BadRequest(f"status {status!r} (allowed: unopened, open, closed, settled)")
        series = request.query.get("series_ticker")
        tickers = _csv(request, "tickers")
        nested = _bool_param(request, "with_nested_markets")
        min_close = _opt_int(request, "min_close_ts")
        events = [
            e
            for e in ex.events.values()
            if (series is None or e.series_ticker == series)
            and (tickers is None or e.event_ticker in tickers)
            and (status is None or status in wire.event_status(ex, e))
            and (min_close is None or any(ex.markets[t].close_time >= min_close for t in e.markets))
        ]
        page, cursor = _page(events, request, default=200, hi=200)
        return web.json_response(
            {
                "events": [wire.event_json(ex, e, nested=nested) for e in page],
                "milestones": [],
                "cursor": cursor,
            }
        )

    async def event_one(self, request: web.Request) -> web.Response:
        e = self.exchange.events.get(request.match_info["ticker"])
        if e is None:
            raise ExchangeError(404, "not_found", "event not found")
        nested = _bool_param(request, "with_nested_markets")
        markets = [wire.market_json(self.exchange.markets[t]) for t in e.markets]
        return web.json_response(
            {
                "event": wire.event_json(self.exchange, e, nested=nested),
                "markets": [] if nested else markets,
            }
        )

    async def markets_list(self, request: web.Request) -> web.Response:
        ex = self.exchange
        status = request.query.get("status")
        allowed = ("unopened", "open", "paused", "closed", "settled")
        if status is not None and status not in allowed:
            raise BadRequest(f"status {status!r} (allowed: {', '.join(allowed)})")
        event = request.query.get("event_ticker")
        series = request.query.get("series_ticker")
        tickers = _csv(request, "tickers")
        min_close, max_close = _opt_int(request, "min_close_ts"), _opt_int(request, "max_close_ts")
        markets = [
            m
            for m in ex.markets.values()
            if (event is None or m.event_ticker == event)
            and (series is None or m.series_ticker == series)
            and (tickers is None or m.ticker in tickers)
            and (status is None or wire.market_filter_status(m) == status)
            and (min_close is None or m.close_time >= min_close)
            and (max_close is None or m.close_time <= max_close)
        ]
        page, cursor = _page(markets, request, default=100, hi=1000)
        return web.json_response({"markets": [wire.market_json(m) for m in page], "cursor": cursor})

    async def market_one(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"market": wire.market_json(self.exchange.market(request.match_info["ticker"]))}
        )

    async def orderbook(self, request: web.Request) -> web.Response:
        market = self.exchange.market(request.match_info["ticker"])
        depth = _int_param(request, "depth", 0, 0, 100)
        return web.json_response({"orderbook_fp": wire.orderbook_json(market, depth)})

    async def orderbooks(self, request: web.Request) -> web.Response:
        tickers = request.query.getall("tickers", [])
        tickers = [t for raw in tickers for t in raw.split(",") if t]
        if not 1 <= len(tickers) <= 100:
            raise BadRequest("tickers: give 1 to 100 market tickers")
        books = [
            {"ticker": t, "orderbook_fp": wire.orderbook_json(self.exchange.market(t))}
            for t in tickers
        ]
        return web.json_response({"orderbooks": books})

    async def trades(self, request: web.Request) -> web.Response:
        ticker = request.query.get("ticker")
        lo, hi = _opt_int(request, "min_ts"), _opt_int(request, "max_ts")
        items = [
            t
            for t in reversed(self.exchange.trades)  # newest first
            if (ticker is None or t.ticker == ticker)
            and (lo is None or t.ts >= lo)
            and (hi is None or t.ts <= hi)
        ]
        page, cursor = _page(items, request, default=100, hi=1000, key=_seq)
        return web.json_response({"trades": [wire.trade_json(t) for t in page], "cursor": cursor})

    # ------------------------------------------------------------------ V2 orders

    def _create(self, user: str, body: Json) -> SimOrder:
        return self.exchange.create_order(
            user,
            ticker=_field(body, "ticker", str),
            side=_field(body, "side", str),
            price=_field(body, "price", str),
            count=_field(body, "count", str),
            time_in_force=_field(body, "time_in_force", str),
            self_trade_prevention_type=_field(body, "self_trade_prevention_type", str),
            client_order_id=_field(body, "client_order_id", str, required=False),
            post_only=bool(_field(body, "post_only", bool, required=False)),
            expiration_time=_field(body, "expiration_time", int, required=False),
            order_group_id=_field(body, "order_group_id", str, required=False),
            cancel_order_on_pause=bool(_field(body, "cancel_order_on_pause", bool, required=False)),
            reduce_only=bool(_field(body, "reduce_only", bool, required=False)),
        )

    @staticmethod
    def _fill_summary(
        order: SimOrder,
        before_filled: int = 0,
        before_cost: Decimal = ZERO,
        before_fees: Decimal = ZERO,
    ) -> Json:
        filled = order.filled - before_filled
        out: Json = {
            "order_id": order.order_id,
            "client_order_id": order.client_order_id,
            "fill_count": wire.fp(order.filled),
            "remaining_count": wire.fp(order.remaining),
            "ts_ms": wire.ms(order.updated),
        }
        if filled > 0:
            cost = order.taker_fill_cost + order.maker_fill_cost - before_cost
            fees = order.taker_fees + order.maker_fees - before_fees
            count = cc_to_count(filled)
            out["average_fill_price"] = wire.dollars((cost / count).quantize(Decimal("0.000001")))
            out["average_fee_paid"] = wire.dollars((fees / count).quantize(Decimal("0.000001")))
        return out

    async def create_order(self, request: web.Request) -> web.Response:
        order = self._create(self.user(request), await _body(request))
        return web.json_response(self._fill_summary(order), status=201)

    async def batch_create(self, request: web.Request) -> web.Response:
        user = self.user(request)
        items = (await _body(request)).get("orders")
        if not isinstance(items, list) or not items:
            raise BadRequest("orders must be a non-empty list")
        if not self.limiter.allow(user, "write", DEFAULT_COST * len(items)):
            self.stats.rejected_rate += 1
            return _too_many()
        results = []
        for item in items:
            try:
                if not isinstance(item, dict):
                    raise BadRequest("each order must be a JSON object")
                results.append({**self._fill_summary(self._create(user, item)), "error": None})
            except BadRequest as exc:
                results.append(self._item_error(item, 400, "invalid_parameters", str(exc)))
            except ExchangeError as exc:
                results.append(self._item_error(item, exc.status, exc.code, exc.message))
            except Exception:  # one item's bug must not hide the others' results
                log.exception("embedded exchange: batch item failed")
                results.append(self._item_error(item, 500, "internal_error", "internal error"))
        return web.json_response({"orders": results}, status=201)

    @staticmethod
    def _item_error(item: object, status: int, code: str, message: str) -> Json:
        cid = item.get("client_order_id") if isinstance(item, dict) else None
        return {
            "order_id": None,
            "client_order_id": cid,
            "error": {"code": code, "message": message, "details": str(status)},
        }

    def _cancel(self, user: str, order_id: str) -> Json:
        faults = self.faults
        if faults.take_cancel_not_applied():
            order = self.exchange.account(user).orders.get(order_id)
            if order is None:
                raise ExchangeError(404, "not_found", f"order {order_id} not found")
            reduced = order.remaining  # acknowledged as if cancelled; nothing happens
        else:
            order, reduced = self.exchange.cancel_order(user, order_id)
        shown = order
        if faults.roll("lying_cancel"):
            others = [o for o in self.exchange.account(user).orders.values() if o is not order]
            if others:
                shown = others[-1]
        return {
            "order_id": shown.order_id,
            "client_order_id": shown.client_order_id,
            "reduced_by": wire.fp(reduced if shown is order else shown.remaining),
            "ts_ms": wire.ms(time.time()),
        }

    async def cancel_order(self, request: web.Request) -> web.Response:
        return web.json_response(self._cancel(self.user(request), request.match_info["order_id"]))

    async def batch_cancel(self, request: web.Request) -> web.Response:
        user = self.user(request)
        body = await _body(request)
        items = body.get("orders")
        if items is None and isinstance(body.get("ids"), list):  # the deprecated form
            items = [{"order_id": i} for i in body["ids"]]
        if not isinstance(items, list) or not items:
            raise BadRequest("orders must be a non-empty list of {order_id}")
        if not self.limiter.allow(user, "write", CANCEL_COST * len(items)):
            self.stats.rejected_rate += 1
            return _too_many()
        results = []
        for item in items:
            oid = item.get("order_id") if isinstance(item, dict) else None
            try:
                if not isinstance(oid, str):
                    raise BadRequest("each item needs an order_id string")
                results.append({**self._cancel(user, oid), "error": None})
            except BadRequest as exc:
                results.append(self._cancel_error(oid, 400, "invalid_parameters", str(exc)))
            except ExchangeError as exc:
                results.append(self._cancel_error(oid, exc.status, exc.code, exc.message))
        return web.json_response({"orders": results})

    @staticmethod
    def _cancel_error(oid: object, status: int, code: str, message: str) -> Json:
        return {
            "order_id": oid if isinstance(oid, str) else None,
            "client_order_id": None,
            "reduced_by": "0.00",
            "error": {"code": code, "message": message, "details": str(status)},
        }

    async def cancel_all(self, request: web.Request) -> web.Response:
        user = self.user(request)
        results = [
            {
                "order_id": o.order_id,
                "client_order_id": o.client_order_id,
                "reduced_by": wire.fp(reduced),
                "ts_ms": wire.ms(o.updated),
                "error": None,
            }
            for o, reduced in self.exchange.cancel_all(user)
        ]
        return web.json_response({"orders": results})

    async def amend_order(self, request: web.Request) -> web.Response:
        user = self.user(request)
        body = await _body(request)
        order = self.exchange.account(user).orders.get(request.match_info["order_id"])
        before = (
            (
                order.filled,
                order.taker_fill_cost + order.maker_fill_cost,
                order.taker_fees + order.maker_fees,
            )
            if order is not None
            else (0, ZERO, ZERO)
        )
        order = self.exchange.amend_order(
            user,
            request.match_info["order_id"],
            ticker=_field(body, "ticker", str),
            side=_field(body, "side", str),
            price=_field(body, "price", str),
            count=_field(body, "count", str),
            client_order_id=_field(body, "client_order_id", str, required=False),
            updated_client_order_id=_field(body, "updated_client_order_id", str, required=False),
        )
        return web.json_response(self._fill_summary(order, *before))

    async def decrease_order(self, request: web.Request) -> web.Response:
        body = await _body(request)
        order = self.exchange.decrease_order(
            self.user(request),
            request.match_info["order_id"],
            reduce_by=_field(body, "reduce_by", str, required=False),
            reduce_to=_field(body, "reduce_to", str, required=False),
        )
        return web.json_response(
            {
                "order_id": order.order_id,
                "client_order_id": order.client_order_id,
                "remaining_count": wire.fp(order.remaining),
                "ts_ms": wire.ms(order.updated),
            }
        )

    async def v1_gone(self, _: web.Request) -> web.Response:
        return _error(
            410,
            "deprecated_v1_order_endpoint",
            "V1 order endpoints are gone; use /portfolio/events/orders",
        )

    # ------------------------------------------------------------------ portfolio reads

    async def orders_list(self, request: web.Request) -> web.Response:
        account = self.exchange.account(self.user(request))
        ticker = request.query.get("ticker")
        events = _csv(request, "event_ticker")
        if events is not None and len(events) > 10:
            raise BadRequest("event_ticker takes at most 10 comma-separated tickers")
        status = request.query.get("status")
        if status is not None and status not in ("resting", "canceled", "executed"):
            raise BadRequest(f"status {status!r} (allowed: resting, canceled, executed)")
        lo, hi = _opt_int(request, "min_ts"), _opt_int(request, "max_ts")
        markets = self.exchange.markets
        items = [
            o
            for o in sorted(account.orders.values(), key=_seq, reverse=True)
            if (ticker is None or o.ticker == ticker)
            and (events is None or markets[o.ticker].event_ticker in events)
            and (status is None or o.status == status)
            and (lo is None or o.updated >= lo)
            and (hi is None or o.updated <= hi)
        ]
        page, cursor = _page(items, request, default=100, hi=1000, key=_seq)
        return web.json_response({"orders": [wire.order_json(o) for o in page], "cursor": cursor})

    async def order_one(self, request: web.Request) -> web.Response:
        order = self.exchange.account(self.user(request)).orders.get(request.match_info["order_id"])
        if order is None:
            raise ExchangeError(404, "not_found", "order not found")
        return web.json_response({"order": wire.order_json(order)})

    async def queue_positions(self, request: web.Request) -> web.Response:
        """Contracts ahead of each resting order, by market tickers or by event."""
        tickers = _csv(request, "market_tickers")
        event = request.query.get("event_ticker")
        if tickers is None and event is None:
            raise BadRequest("give market_tickers or event_ticker")
        markets = self.exchange.markets
        rows = [
            {
                "order_id": o.order_id,
                "market_ticker": o.ticker,
                "queue_position_fp": wire.fp(self.exchange.queue_position(o)),
            }
            for o in sorted(self.exchange.live_orders(self.user(request)), key=_seq)
            if (tickers is None or o.ticker in tickers)
            and (event is None or markets[o.ticker].event_ticker == event)
        ]
        return web.json_response({"queue_positions": rows})

    async def queue_position(self, request: web.Request) -> web.Response:
        order = self.exchange.account(self.user(request)).orders.get(request.match_info["order_id"])
        if order is None:
            raise ExchangeError(404, "not_found", "order not found")
        return web.json_response(
            {"queue_position_fp": wire.fp(self.exchange.queue_position(order))}
        )

    async def positions(self, request: web.Request) -> web.Response:
        ex = self.exchange
        account = ex.account(self.user(request))
        ticker = request.query.get("ticker")
        event = request.query.get("event_ticker")
        count_filter = _csv(request, "count_filter") or []
        bad = set(count_filter) - {"position", "total_traded"}
        if bad:
            raise BadRequest(f"count_filter {sorted(bad)} (allowed: position, total_traded)")
        resting: dict[str, int] = {}
        for o in account.orders.values():
            if o.live:
                resting[o.ticker] = resting.get(o.ticker, 0) + 1
        rows = [
            (t, p)
            for t, p in sorted(account.positions.items())
            if ex.markets[t].status != "finalized"
            and (ticker is None or t == ticker)
            and (event is None or ex.markets[t].event_ticker == event)
            and ("position" not in count_filter or p.position != 0)
            and ("total_traded" not in count_filter or p.traded != 0)
        ]
        # Page by ticker (a rank that falls along the list), so that a market settling
        # between two pages neither repeats nor hides a row.
        rank = {t: len(ex.markets) - i for i, t in enumerate(sorted(ex.markets))}
        page, cursor = _page(rows, request, default=100, hi=1000, key=lambda row: rank[row[0]])
        by_event: dict[str, list[Any]] = {}
        for t, p in rows:
            by_event.setdefault(ex.markets[t].event_ticker, []).append(p)
        return web.json_response(
            {
                "market_positions": [wire.position_json(t, p, resting.get(t, 0)) for t, p in page],
                "event_positions": [
                    wire.event_position_json(e, ps) for e, ps in sorted(by_event.items())
                ],
                "cursor": cursor,
            }
        )

    async def fills(self, request: web.Request) -> web.Response:
        account = self.exchange.account(self.user(request))
        ticker, order_id = request.query.get("ticker"), request.query.get("order_id")
        lo, hi = _opt_int(request, "min_ts"), _opt_int(request, "max_ts")
        items = [
            f
            for f in reversed(account.fills)
            if (ticker is None or f.ticker == ticker)
            and (order_id is None or f.order_id == order_id)
            and (lo is None or f.ts >= lo)
            and (hi is None or f.ts <= hi)
        ]
        page, cursor = _page(items, request, default=100, hi=1000, key=_seq)
        return web.json_response({"fills": [wire.fill_json(f) for f in page], "cursor": cursor})

    async def settlements(self, request: web.Request) -> web.Response:
        account = self.exchange.account(self.user(request))
        ticker, event = request.query.get("ticker"), request.query.get("event_ticker")
        items = [
            s
            for s in reversed(account.settlements)
            if (ticker is None or s.ticker == ticker) and (event is None or s.event_ticker == event)
        ]
        page, cursor = _page(items, request, default=100, hi=1000, key=_seq)
        return web.json_response(
            {"settlements": [wire.settlement_json(s) for s in page], "cursor": cursor}
        )

    async def balance(self, request: web.Request) -> web.Response:
        """``balance`` is what is available to trade: cash less what resting orders hold."""
        account = self.exchange.account(self.user(request))
        exposure = sum((p.cost for p in account.positions.values()), ZERO)
        available = floor_cents(account.available)
        return web.json_response(
            {
                "balance": available,
                "balance_dollars": wire.dollars(account.available),
                "portfolio_value": floor_cents(account.balance + exposure),
                "updated_ts": int(time.time()),
                "balance_breakdown": [{"exchange_index": 0, "balance": available}],
            }
        )

    # ------------------------------------------------------------------ order groups

    async def groups_list(self, request: web.Request) -> web.Response:
        account = self.exchange.account(self.user(request))
        groups = [
            {
                "id": g.group_id,
                "contracts_limit_fp": wire.fp(g.limit),
                "is_auto_cancel_enabled": not g.triggered,
            }
            for g in account.groups.values()
            if not g.deleted
        ]
        return web.json_response({"order_groups": groups})

    @staticmethod
    def _limit_of(body: Json) -> str:
        """A group limit: ``contracts_limit_fp`` (string) or ``contracts_limit`` (integer),
        whole contracts, and the same if both are given."""
        fp = _field(body, "contracts_limit_fp", str, required=False)
        whole = _field(body, "contracts_limit", int, required=False)
        if fp is None and whole is None:
            raise BadRequest("contracts_limit_fp (or contracts_limit) is required")
        try:
            value = parse_count(fp if fp is not None else whole, "contracts_limit")
        except (TypeError, ValueError) as exc:
            raise BadRequest(str(exc)) from None
        if value != value.to_integral_value() or value <= 0:
            raise BadRequest("contracts_limit must be a positive whole number of contracts")
        if fp is not None and whole is not None and Decimal(whole) != value:
            raise BadRequest("contracts_limit and contracts_limit_fp disagree")
        return format_count(value)

    async def group_create(self, request: web.Request) -> web.Response:
        group = self.exchange.create_group(self.user(request), self._limit_of(await _body(request)))
        return web.json_response({"order_group_id": group.group_id}, status=201)

    async def group_one(self, request: web.Request) -> web.Response:
        user, gid = self.user(request), request.match_info["group_id"]
        group = self.exchange.group(user, gid)
        return web.json_response(
            {
                "is_auto_cancel_enabled": not group.triggered,
                "contracts_limit_fp": wire.fp(group.limit),
                "orders": [o.order_id for o in self.exchange.group_orders(user, gid)],
            }
        )

    async def group_delete(self, request: web.Request) -> web.Response:
        self.exchange.delete_group(self.user(request), request.match_info["group_id"])
        return web.json_response({})

    async def group_reset(self, request: web.Request) -> web.Response:
        self.exchange.reset_group(self.user(request), request.match_info["group_id"])
        return web.json_response({})

    async def group_trigger(self, request: web.Request) -> web.Response:
        self.exchange.trigger_group(self.user(request), request.match_info["group_id"])
        return web.json_response({})

    async def group_limit(self, request: web.Request) -> web.Response:
        limit = self._limit_of(await _body(request))
        self.exchange.set_group_limit(self.user(request), request.match_info["group_id"], limit)
        return web.json_response({})

    # ------------------------------------------------------------------ account

    async def account_limits(self, _: web.Request) -> web.Response:
        return web.json_response(self.limiter.limits_json())

    async def endpoint_costs(self, _: web.Request) -> web.Response:
        cancels = [
            {
                "method": "DELETE",
                "path": f"{API}/portfolio/events/orders/{{order_id}}",
                "cost": CANCEL_COST,
            },
            {
                "method": "DELETE",
                "path": f"{API}/portfolio/events/orders/batched",
                "cost": CANCEL_COST,
            },
            {"method": "DELETE", "path": f"{API}/portfolio/events/orders", "cost": CANCEL_COST},
        ]
        return web.json_response({"default_cost": DEFAULT_COST, "endpoint_costs": cancels})

    # ------------------------------------------------------------------ WebSocket and admin

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        return await self.hub.serve(request, self.user(request))

    async def admin_faults_get(self, _: web.Request) -> web.Response:
        return web.json_response(self.faults.report())

    async def admin_faults_set(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.faults.update_from_json(body)
        except (ValueError, RecursionError, FaultError) as exc:
            return _error(400, "invalid_parameters", str(exc) or "the body is not valid JSON")
        return web.json_response(self.faults.report())

    async def admin_status(self, _: web.Request) -> web.Response:
        ex = self.exchange
        return web.json_response(
            {
                "markets": len(ex.markets),
                "ws_connections": len(self.hub.connections),
                "ws_frames_sent": self.hub.frames_sent,
                "requests": self.stats.requests,
                "rejected_auth": self.stats.rejected_auth,
                "rejected_rate": self.stats.rejected_rate,
                "faults": self.faults.report()["counts"],
            }
        )


# --------------------------------------------------------------------------- running it


class RunningServer:
    """The Kalshi server listening on 127.0.0.1; ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"

    async def close(self) -> None:
        await self._runner.cleanup()


def _shutdown_hook(
    hook: Callable[[], Awaitable[None]],
) -> Callable[[web.Application], Awaitable[None]]:
    async def run(_: web.Application) -> None:
        await hook()

    return run


async def start_kalshi_server(
    server: KalshiServer, *, host: str = LOOPBACK, port: int = 0
) -> RunningServer:
    """Serve on 127.0.0.1 (port 0 picks a free one); no other host is allowed."""
    runner, bound = await listen(server.app, host=host, port=port, access_log=None)
    return RunningServer(runner, bound)
