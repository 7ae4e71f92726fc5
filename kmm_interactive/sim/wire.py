"""The exchange's objects as Kalshi prints them: REST bodies and WebSocket ``msg`` payloads.

Fixed-point strings throughout (``*_dollars`` with four decimals or more, ``*_fp`` with
two), deprecated fields still present where the spec lists them as required, and the V2
direction fields (``outcome_side``/``book_side``) beside them. A V2 ``ask`` is reported
with the legacy pair ``side = "no"``, ``action = "buy"``: selling YES at p is buying NO at
1 − p, which is what the deprecated fields described.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kmm_interactive.domain import ONE, ZERO, format_count, format_dollars
from kmm_interactive.sim.exchange import (
    Book,
    BookSide,
    Exchange,
    FillRecord,
    Position,
    SettlementRecord,
    SimEvent,
    SimMarket,
    SimOrder,
    SimSeries,
    TradeRecord,
    cc_to_count,
    floor_cents,
)

Json = dict[str, Any]


def iso(t: float) -> str:
    """RFC 3339 in UTC with a Z, millisecond precision."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(t: float) -> int:
    return round(t * 1000)


def dollars(value: Decimal) -> str:
    return format_dollars(value)


def fp(cc: int) -> str:
    return format_count(cc_to_count(cc))


def outcome_side(book_side: BookSide) -> str:
    return "yes" if book_side == "bid" else "no"


# --------------------------------------------------------------------------- market data


def series_json(s: SimSeries, volume: int = 0, updated: float = 0.0) -> Json:
    return {
        "ticker": s.ticker,
        "frequency": "custom",
        "title": s.title,
        "category": s.category,
        "tags": list(s.tags),
        "settlement_sources": [{"name": "Official league results", "url": "https://example.org"}],
        "contract_url": f"https://kalshi.com/series/{s.ticker.lower()}",
        "contract_terms_url": "https://kalshi.com/regulatory/rulebook",
        "product_metadata": None,
        "fee_type": s.fees.fee_type.value,
        "fee_multiplier": float(s.fees.multiplier),  # the spec types it as a JSON number
        "additional_prohibitions": [],
        "volume_fp": fp(volume),
        "last_updated_ts": iso(updated),
    }


def _top(book: Book) -> tuple[int | None, int, int | None, int]:
    bid, ask = book.best("bid"), book.best("ask")
    bid_size = book.sizes["bid"].get(bid, 0) if bid is not None else 0
    ask_size = book.sizes["ask"].get(ask, 0) if ask is not None else 0
    return bid, bid_size, ask, ask_size


def top_of_book(m: SimMarket) -> tuple[Decimal, int, Decimal, int]:
    """Best YES bid and ask with sizes; an empty side reads 0 (bid) or 1 (ask)."""
    bid, bid_size, ask, ask_size = _top(m.book)
    bid_px = m.grid.price(bid) if bid is not None else ZERO
    ask_px = m.grid.price(ask) if ask is not None else ONE
    return bid_px, bid_size, ask_px, ask_size


def market_json(m: SimMarket) -> Json:
    bid, bid_size, ask, ask_size = top_of_book(m)
    last = m.last_price if m.last_price is not None else ZERO
    return {
        "ticker": m.ticker,
        "event_ticker": m.event_ticker,
        "market_type": "binary",
        "title": "",
        "subtitle": "",
        "yes_sub_title": m.yes_sub_title,
        "no_sub_title": m.no_sub_title,
        "created_time": iso(m.created),
        "updated_time": iso(m.updated),
        "open_time": iso(m.open_time),
        "close_time": iso(m.close_time),
        "expected_expiration_time": iso(m.expected_expiration),
        "expiration_time": iso(m.latest_expiration),
        "latest_expiration_time": iso(m.latest_expiration),
        "occurrence_datetime": iso(m.occurrence),
        "settlement_timer_seconds": 300,
        "status": m.status,
        "yes_bid_dollars": dollars(bid),
        "yes_bid_size_fp": fp(bid_size),
        "yes_ask_dollars": dollars(ask),
        "yes_ask_size_fp": fp(ask_size),
        "no_bid_dollars": dollars(ONE - ask),
        "no_ask_dollars": dollars(ONE - bid),
        "last_price_dollars": dollars(last),
        "previous_yes_bid_dollars": dollars(bid),
        "previous_yes_ask_dollars": dollars(ask),
        "previous_price_dollars": dollars(last),
        "volume_fp": fp(m.volume),
        "volume_24h_fp": fp(m.volume),
        "open_interest_fp": fp(m.open_interest),
        "notional_value_dollars": "1.0000",
        "liquidity_dollars": "0.0000",
        "result": m.result,
        "can_close_early": True,
        "early_close_condition": "The market closes early once the game's result is known.",
        "fractional_trading_enabled": True,
        "expiration_value": m.result,
        "settlement_value_dollars": (
            dollars(m.settlement_value) if m.settlement_value is not None else None
        ),
        "settlement_ts": iso(m.settled_ts) if m.settled_ts is not None else None,
        "rules_primary": f"If {m.yes_sub_title} wins the game, the market resolves to Yes.",
        "rules_secondary": "Settles on the official result.",
        "price_level_structure": m.price_level_structure,
        "price_ranges": [{"start": a, "end": b, "step": s} for a, b, s in m.price_ranges],
        "exchange_index": 0,
        "is_provisional": False,
    }


def event_json(ex: Exchange, e: SimEvent, *, nested: bool) -> Json:
    out: Json = {
        "event_ticker": e.event_ticker,
        "series_ticker": e.series_ticker,
        "title": e.title,
        "sub_title": e.sub_title,
        "collateral_return_type": "MECNET" if e.mutually_exclusive else "",
        "mutually_exclusive": e.mutually_exclusive,
        "category": "Sports",
        "strike_date": iso(e.strike_date),
        "strike_period": None,
        "available_on_brokers": True,
        "product_metadata": None,
        "exchange_index": 0,
        "last_updated_ts": iso(max(ex.markets[t].updated for t in e.markets)),
    }
    if nested:
        out["markets"] = [market_json(ex.markets[t]) for t in e.markets]
    return out


def event_status(ex: Exchange, e: SimEvent) -> set[str]:
    """The REST filter values that match the event (any child market matching counts)."""
    return {market_filter_status(ex.markets[t]) for t in e.markets}


def market_filter_status(m: SimMarket) -> str:
    return {
        "initialized": "unopened",
        "active": "open",
        "inactive": "paused",
        "closed": "closed",
        "determined": "closed",
        "finalized": "settled",
    }[m.status]


def orderbook_json(m: SimMarket, depth: int = 0) -> Json:
    """``orderbook_fp``: YES bids and NO bids (= YES asks at 1 − p), ascending, best last."""
    yes = [[m.grid.wire(t), fp(n)] for t, n in m.book.depth("bid")]
    no = [[dollars(ONE - m.grid.price(t)), fp(n)] for t, n in reversed(m.book.depth("ask"))]
    if depth:
        yes, no = yes[-depth:], no[-depth:]
    return {"yes_dollars": yes, "no_dollars": no}


def trade_json(t: TradeRecord) -> Json:
    return {
        "trade_id": t.trade_id,
        "ticker": t.ticker,
        "count_fp": fp(t.count),
        "yes_price_dollars": dollars(t.price),
        "no_price_dollars": dollars(ONE - t.price),
        "taker_side": outcome_side(t.taker_book_side),
        "taker_outcome_side": outcome_side(t.taker_book_side),
        "taker_book_side": t.taker_book_side,
        "is_block_trade": False,
        "created_time": iso(t.ts),
    }


# --------------------------------------------------------------------------- portfolio


def _order_amounts(o: SimOrder) -> Json:
    """Counts, costs and fees of an order: the same fields in REST and on ``user_orders``."""
    return {
        "fill_count_fp": fp(o.filled),
        "remaining_count_fp": fp(o.remaining),
        "initial_count_fp": fp(o.initial),
        "taker_fill_cost_dollars": dollars(o.taker_fill_cost),
        "maker_fill_cost_dollars": dollars(o.maker_fill_cost),
        "taker_fees_dollars": dollars(o.taker_fees),
        "maker_fees_dollars": dollars(o.maker_fees),
    }


def order_json(o: SimOrder) -> Json:
    return {
        "order_id": o.order_id,
        "user_id": o.user_id,
        "client_order_id": o.client_order_id,
        "ticker": o.ticker,
        "side": outcome_side(o.book_side),
        "action": "buy",
        "outcome_side": outcome_side(o.book_side),
        "book_side": o.book_side,
        "type": "limit",
        "status": o.status,
        "yes_price_dollars": dollars(o.price),
        "no_price_dollars": dollars(ONE - o.price),
        **_order_amounts(o),
        "expiration_time": iso(o.expiration) if o.expiration is not None else None,
        "created_time": iso(o.created),
        "last_update_time": iso(o.updated),
        "last_update_reason": o.last_update_reason,
        "self_trade_prevention_type": o.self_trade_prevention_type,
        "time_in_force": o.time_in_force,
        "post_only": o.post_only,
        "order_group_id": o.order_group_id,
        "cancel_order_on_pause": o.cancel_order_on_pause,
        "subaccount_number": 0,
        "exchange_index": 0,
    }


def fill_json(f: FillRecord) -> Json:
    return {
        "fill_id": f.fill_id,
        "trade_id": f.fill_id,
        "order_id": f.order_id,
        "ticker": f.ticker,
        "market_ticker": f.ticker,
        "side": outcome_side(f.book_side),
        "action": "buy",
        "outcome_side": outcome_side(f.book_side),
        "book_side": f.book_side,
        "count_fp": fp(f.count),
        "yes_price_dollars": dollars(f.price),
        "no_price_dollars": dollars(ONE - f.price),
        "is_taker": f.is_taker,
        "created_time": iso(f.ts),
        "fee_cost": dollars(f.fee),
        "subaccount_number": 0,
        "exchange_index": 0,
        "ts": int(f.ts),
    }


def position_json(ticker: str, p: Position, resting: int) -> Json:
    return {
        "ticker": ticker,
        "exchange_index": 0,
        "total_traded_dollars": dollars(p.traded),
        "position_fp": fp(p.position),
        "market_exposure_dollars": dollars(p.cost),
        "realized_pnl_dollars": dollars(p.realized),
        "resting_orders_count": resting,
        "fees_paid_dollars": dollars(p.fees),
        "last_updated_ts": iso(p.updated),
    }


def event_position_json(event_ticker: str, positions: list[Position]) -> Json:
    cost = sum((p.cost for p in positions), ZERO)
    return {
        "event_ticker": event_ticker,
        "total_cost_dollars": dollars(cost),
        "total_cost_shares_fp": fp(sum(abs(p.position) for p in positions)),
        "event_exposure_dollars": dollars(cost),
        "realized_pnl_dollars": dollars(sum((p.realized for p in positions), ZERO)),
        "fees_paid_dollars": dollars(sum((p.fees for p in positions), ZERO)),
    }


def settlement_json(s: SettlementRecord) -> Json:
    return {
        "ticker": s.ticker,
        "event_ticker": s.event_ticker,
        "market_result": s.result,
        "yes_count_fp": fp(s.yes_count),
        "yes_total_cost_dollars": dollars(s.yes_cost),
        "no_count_fp": fp(s.no_count),
        "no_total_cost_dollars": dollars(s.no_cost),
        "revenue": floor_cents(s.revenue),
        "settled_time": iso(s.ts),
        "fee_cost": "0.0000",
        "value": 100 if s.result == "yes" else 0,
    }


# --------------------------------------------------------------------------- WebSocket msgs


def ws_fill(f: FillRecord) -> Json:
    side = outcome_side(f.book_side)
    return {
        "trade_id": f.fill_id,
        "order_id": f.order_id,
        "client_order_id": f.client_order_id,
        "market_ticker": f.ticker,
        "exchange_index": 0,
        "is_taker": f.is_taker,
        "side": side,
        "action": "buy",
        "purchased_side": side,
        "outcome_side": side,
        "book_side": f.book_side,
        "yes_price_dollars": dollars(f.price),
        "count_fp": fp(f.count),
        "fee_cost": dollars(f.fee),
        "post_position_fp": fp(f.post_position),
        "subaccount": 0,
        "ts": int(f.ts),
        "ts_ms": ms(f.ts),
    }


def ws_user_order(o: SimOrder) -> Json:
    side = outcome_side(o.book_side)
    out: Json = {
        "order_id": o.order_id,
        "user_id": o.user_id,
        "ticker": o.ticker,
        "exchange_index": 0,
        "status": o.status,
        "side": side,
        "is_yes": side == "yes",
        "outcome_side": side,
        "book_side": o.book_side,
        "yes_price_dollars": dollars(o.price),
        **_order_amounts(o),
        "client_order_id": o.client_order_id,
        "self_trade_prevention_type": o.self_trade_prevention_type,
        "created_time": iso(o.created),
        "created_ts_ms": ms(o.created),
        "last_update_time": iso(o.updated),
        "last_updated_ts_ms": ms(o.updated),
        "subaccount_number": 0,
    }
    if o.order_group_id is not None:
        out["order_group_id"] = o.order_group_id
    if o.expiration is not None:
        out["expiration_time"] = iso(o.expiration)
        out["expiration_ts_ms"] = ms(o.expiration)
    if o.last_update_reason is not None:
        out["last_update_reason"] = o.last_update_reason
    return out


def ws_market_position(user_id: str, ticker: str, p: Position) -> Json:
    return {
        "user_id": user_id,
        "market_ticker": ticker,
        "position_fp": fp(p.position),
        "position_cost_dollars": dollars(p.cost),
        "realized_pnl_dollars": dollars(p.realized),
        "fees_paid_dollars": dollars(p.fees),
        "position_fee_cost_dollars": dollars(p.fees),
        "volume_fp": fp(p.volume),
        "subaccount": 0,
    }


def ws_ticker(m: SimMarket, ts: float) -> Json:
    bid, bid_size, ask, ask_size = top_of_book(m)
    last = m.last_price if m.last_price is not None else ZERO
    return {
        "market_id": m.market_id,
        "market_ticker": m.ticker,
        "price_dollars": dollars(last),
        "yes_bid_dollars": dollars(bid),
        "yes_ask_dollars": dollars(ask),
        "yes_bid_size_fp": fp(bid_size),
        "yes_ask_size_fp": fp(ask_size),
        "last_trade_size_fp": fp(m.last_size),
        "volume_fp": fp(m.volume),
        "open_interest_fp": fp(m.open_interest),
        "dollar_volume": int(m.notional),
        "dollar_open_interest": int(cc_to_count(m.open_interest) * last),
        "ts": int(ts),
        "ts_ms": ms(ts),
        "time": iso(ts),
    }


def ws_trade(t: TradeRecord) -> Json:
    side = outcome_side(t.taker_book_side)
    return {
        "trade_id": t.trade_id,
        "market_ticker": t.ticker,
        "yes_price_dollars": dollars(t.price),
        "no_price_dollars": dollars(ONE - t.price),
        "count_fp": fp(t.count),
        "taker_side": side,
        "taker_outcome_side": side,
        "taker_book_side": t.taker_book_side,
        "is_block_trade": False,
        "ts": int(t.ts),
        "ts_ms": ms(t.ts),
    }


def ws_book_levels(m: SimMarket, *, use_yes_price: bool) -> Json:
    """An ``orderbook_snapshot`` msg: NO levels in NO prices unless ``use_yes_price``."""
    out: Json = {"market_ticker": m.ticker, "market_id": m.market_id}
    yes = [[m.grid.wire(t), fp(n)] for t, n in m.book.depth("bid")]
    asks = m.book.depth("ask")
    if use_yes_price:
        no = [[m.grid.wire(t), fp(n)] for t, n in asks]
    else:
        no = [[dollars(ONE - m.grid.price(t)), fp(n)] for t, n in reversed(asks)]
    if yes:
        out["yes_dollars_fp"] = yes
    if no:
        out["no_dollars_fp"] = no
    return out


def ws_book_delta(
    m: SimMarket,
    book_side: BookSide,
    price: Decimal,
    delta: int,
    ts: float,
    *,
    use_yes_price: bool,
    client_order_id: str | None,
) -> Json:
    level = price if book_side == "bid" or use_yes_price else ONE - price
    out: Json = {
        "market_ticker": m.ticker,
        "market_id": m.market_id,
        "price_dollars": dollars(level),
        "delta_fp": format_count(cc_to_count(delta)),
        "side": outcome_side(book_side),
        "ts": iso(ts),
        "ts_ms": ms(ts),
    }
    if client_order_id is not None:
        out["client_order_id"] = client_order_id
    return out
