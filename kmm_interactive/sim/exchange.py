"""The exchange core: YES books with price-time priority, accounts, fills, order groups, settlement.

Pure state and rules, no I/O: the server (server.py) and the virtual-clock lab drive it, and
everything that changes is announced to listeners as an :class:`ExchangeEvent`, in order.

Conventions, as on Kalshi (reference/apis.md §1.3–1.5, 1.7):

* One YES book per market. ``bid`` buys YES, ``ask`` sells YES (= buys NO at 1 − price);
  both counterparties of a trade trade at the resting order's YES price.
* Counts are kept as integer hundredths of a contract ("centi-contracts"), so fractional
  fills are exact; money is ``Decimal``.
* Positions are signed and netted (+ YES, − NO). Buying YES against a NO position closes it
  and returns the $1 the pair is worth; cash moves by the price of the leg bought.
* Fees: each fill's trade fee is the quadratic formula rounded up to $0.0001; the balance
  moves in whole cents and the order refunds the rounding it accumulates
  (``pricing.fees.charge_fill``, Kalshi's documented rule).
* Cash is held for resting orders: ``available`` (what REST reports as ``balance``) is the
  balance less what every resting order could still cost (its opening contracts at the
  order's price plus the largest fee); closing contracts need no cash.
* Order groups: contracts filled in a rolling 15 s window; reaching the limit cancels every
  order of the group and blocks it until reset.

Failure semantics: every rejected request raises :class:`ExchangeError` (HTTP status, code,
message) before anything changes; a request that is accepted is applied whole.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Final, Literal

from kmm_interactive.domain import ONE, ZERO, OffGridError, PriceGrid, SeriesFees, parse_count
from kmm_interactive.pricing.fees import (
    CENT,
    DIRECT_MEMBER_PRECISION,
    charge_fill,
    charges_maker_fee,
    maker_fee,
    taker_fee,
)
from kmm_interactive.sim.clock import Clock
from kmm_interactive.sim.scenario import Scenario

BookSide = Literal["bid", "ask"]
TimeInForce = Literal["good_till_canceled", "immediate_or_cancel", "fill_or_kill"]
TIME_IN_FORCE: Final = ("fill_or_kill", "good_till_canceled", "immediate_or_cancel")
SELF_TRADE_PREVENTION: Final = ("taker_at_cross", "maker")
GROUP_WINDOW: Final = 15.0  # seconds of the order-group rolling window
CC: Final = 100  # centi-contracts per contract
MAX_OPEN_ORDERS: Final = 200_000
MICRO_DOLLAR: Final = Decimal("0.000001")
MAX_EXPIRY: Final = 10 * 365 * 86400  # seconds ahead an order may be set to expire


class ExchangeError(Exception):
    """A rejected request: the HTTP status and Kalshi-style error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def to_cc(value: object, what: str = "count") -> int:
    """A wire count ("10", "10.5", "10.00") as centi-contracts; > 0."""
    try:
        count = parse_count(value, what)
    except (TypeError, ValueError) as exc:
        raise ExchangeError(400, "invalid_parameters", str(exc)) from None
    cc = int(count * CC)
    if cc <= 0:
        raise ExchangeError(400, "invalid_parameters", f"{what} must be positive, got {value!r}")
    return cc


def cc_to_count(cc: int) -> Decimal:
    return Decimal(cc) / CC


# --------------------------------------------------------------------------- state


@dataclass(eq=False)
class SimOrder:
    order_id: str
    user_id: str
    client_order_id: str
    ticker: str
    book_side: BookSide
    tick: int
    price: Decimal
    initial: int
    time_in_force: str
    self_trade_prevention_type: str
    created: float
    post_only: bool = False
    order_group_id: str | None = None
    expiration: float | None = None
    cancel_order_on_pause: bool = False
    filled: int = 0
    remaining: int = 0
    status: Literal["resting", "canceled", "executed"] = "resting"
    updated: float = 0.0
    last_update_reason: str | None = None
    taker_fill_cost: Decimal = ZERO
    maker_fill_cost: Decimal = ZERO
    taker_fees: Decimal = ZERO
    maker_fees: Decimal = ZERO
    carried: Decimal = ZERO  # fee rounding this order carries toward its next refund
    hold: Decimal = ZERO  # cash held for the resting remainder
    priority: int = 0
    seq: int = 0  # when it was created, exchange-wide

    @property
    def live(self) -> bool:
        return self.status == "resting"


@dataclass
class Position:
    position: int = 0  # centi-contracts, + YES / − NO
    cost: Decimal = ZERO  # what the open position cost
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    traded: Decimal = ZERO  # notional traded, both directions
    volume: int = 0
    updated: float = 0.0


@dataclass(frozen=True)
class FillRecord:
    fill_id: str  # = trade id
    order_id: str
    client_order_id: str
    user_id: str
    ticker: str
    book_side: BookSide
    price: Decimal
    count: int
    is_taker: bool
    fee: Decimal
    post_position: int
    ts: float
    seq: int = field(default=0, compare=False)  # exchange-wide record order (paging key)


@dataclass(frozen=True)
class TradeRecord:
    trade_id: str
    ticker: str
    price: Decimal
    count: int
    taker_book_side: BookSide
    ts: float
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SettlementRecord:
    ticker: str
    event_ticker: str
    result: str
    yes_count: int
    yes_cost: Decimal
    no_count: int
    no_cost: Decimal
    revenue: Decimal
    ts: float
    seq: int = field(default=0, compare=False)


@dataclass
class OrderGroup:
    group_id: str
    user_id: str
    limit: int  # centi-contracts per rolling window
    window: deque[tuple[float, int]] = field(default_factory=deque)
    triggered: bool = False
    deleted: bool = False


@dataclass
class Account:
    user_id: str
    balance: Decimal
    keep_history: bool = True
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, SimOrder] = field(default_factory=dict)
    client_ids: dict[str, str] = field(default_factory=dict)
    fills: list[FillRecord] = field(default_factory=list)
    settlements: list[SettlementRecord] = field(default_factory=list)
    groups: dict[str, OrderGroup] = field(default_factory=dict)
    open_orders: int = 0
    held: Decimal = ZERO  # cash held for resting orders
    resting: dict[str, dict[str, SimOrder]] = field(default_factory=dict)  # by ticker, id

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


class Book:
    """One market's YES book: FIFO queues per tick, bids and asks."""

    def __init__(self) -> None:
        self.levels: dict[BookSide, dict[int, deque[SimOrder]]] = {"bid": {}, "ask": {}}
        self.sizes: dict[BookSide, dict[int, int]] = {"bid": {}, "ask": {}}

    def best(self, side: BookSide) -> int | None:
        ticks = self.sizes[side]
        if not ticks:
            return None
        return max(ticks) if side == "bid" else min(ticks)

    def add(self, order: SimOrder) -> None:
        self.levels[order.book_side].setdefault(order.tick, deque()).append(order)
        sizes = self.sizes[order.book_side]
        sizes[order.tick] = sizes.get(order.tick, 0) + order.remaining

    def remove(self, order: SimOrder) -> None:
        queue = self.levels[order.book_side][order.tick]
        queue.remove(order)
        self.shrink(order, order.remaining, drop=not queue)

    def shrink(self, order: SimOrder, amount: int, *, drop: bool = False) -> None:
        sizes = self.sizes[order.book_side]
        sizes[order.tick] -= amount
        if drop or sizes[order.tick] <= 0:
            del sizes[order.tick]
            self.levels[order.book_side].pop(order.tick, None)

    def depth(self, side: BookSide) -> list[tuple[int, int]]:
        """(tick, size) levels, ascending by tick."""
        return sorted(self.sizes[side].items())


@dataclass
class SimSeries:
    ticker: str
    title: str
    category: str
    tags: tuple[str, ...]
    fees: SeriesFees


@dataclass
class SimEvent:
    event_ticker: str
    series_ticker: str
    title: str
    sub_title: str
    strike_date: float
    markets: list[str]
    mutually_exclusive: bool = True


@dataclass
class SimMarket:
    ticker: str
    market_id: str
    event_ticker: str
    series_ticker: str
    yes_sub_title: str
    no_sub_title: str
    grid: PriceGrid
    price_level_structure: str
    price_ranges: tuple[tuple[str, str, str], ...]
    fees: SeriesFees
    created: float
    open_time: float
    close_time: float
    occurrence: float
    expected_expiration: float
    latest_expiration: float
    status: str = "active"
    result: str = ""
    settlement_value: Decimal | None = None
    settled_ts: float | None = None
    determined_ts: float | None = None
    updated: float = 0.0
    volume: int = 0
    open_interest: int = 0
    last_price: Decimal | None = None
    last_size: int = 0
    notional: Decimal = ZERO  # dollars traded
    book: Book = field(default_factory=Book)

    @property
    def trading(self) -> bool:
        return self.status == "active"


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class BookChange:
    ticker: str
    book_side: BookSide
    price: Decimal
    delta: int  # centi-contracts, signed
    ts: float
    user_id: str | None = None  # whose action caused it
    client_order_id: str | None = None


@dataclass(frozen=True)
class TradeEvent:
    trade: TradeRecord


@dataclass(frozen=True)
class FillEvent:
    fill: FillRecord


@dataclass(frozen=True)
class OrderEvent:
    user_id: str
    order: SimOrder
    ts: float


@dataclass(frozen=True)
class PositionEvent:
    user_id: str
    ticker: str
    ts: float


@dataclass(frozen=True)
class LifecycleEvent:
    ticker: str
    event_type: str
    ts: float
    fields: tuple[tuple[str, object], ...] = ()


ExchangeEvent = BookChange | TradeEvent | FillEvent | OrderEvent | PositionEvent | LifecycleEvent
Listener = Callable[[ExchangeEvent], None]


# --------------------------------------------------------------------------- the exchange


class Exchange:
    """All markets and accounts of one simulated exchange."""

    def __init__(self, clock: Clock, *, seed: int = 0) -> None:
        self.clock = clock
        self._rng = random.Random(f"exchange-{seed}")
        self.series: dict[str, SimSeries] = {}
        self.events: dict[str, SimEvent] = {}
        self.markets: dict[str, SimMarket] = {}
        self.accounts: dict[str, Account] = {}
        self.trades: deque[TradeRecord] = deque(maxlen=100_000)
        self.listeners: list[Listener] = []
        self.trading_active = True
        self._priority = 0
        self._seq = itertools.count(1)
        self._expiring: list[SimOrder] = []

    # ------------------------------------------------------------------ setup

    @classmethod
    def from_scenario(cls, scenario: Scenario, clock: Clock) -> Exchange:
        ex = cls(clock, seed=scenario.seed)
        now = clock.now()
        for sport in scenario.sports:
            ex.series[sport.series] = SimSeries(
                sport.series,
                sport.series_title,
                "Sports",
                (sport.odds_title, sport.odds_group),
                SeriesFees(sport.fee_type, sport.fee_multiplier),  # type: ignore[arg-type]
            )
        for game in scenario.games:
            sport = game.sport
            ex.events[game.event_ticker] = SimEvent(
                game.event_ticker,
                sport.series,
                game.title,
                f"{game.away.name} vs {game.home.name}",
                game.start,
                [o.ticker for o in game.outcomes],
            )
            grid = PriceGrid.from_price_ranges(
                [{"start": a, "end": b, "step": s} for a, b, s in sport.price_ranges]
            )
            for outcome in game.outcomes:
                ex.markets[outcome.ticker] = SimMarket(
                    ticker=outcome.ticker,
                    market_id=ex.new_id(),
                    event_ticker=game.event_ticker,
                    series_ticker=sport.series,
                    yes_sub_title=outcome.name,
                    no_sub_title=outcome.name,
                    grid=grid,
                    price_level_structure=sport.price_level_structure,
                    price_ranges=sport.price_ranges,
                    fees=ex.series[sport.series].fees,
                    created=now - 86400,
                    open_time=now - 86400,
                    # Kalshi sets a sports close well after the game and moves it earlier
                    # once the result is known.
                    close_time=game.start + 14 * 86400,
                    occurrence=game.start,
                    expected_expiration=game.end,
                    latest_expiration=game.start + 14 * 86400,
                    updated=now,
                )
        return ex

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def open_account(
        self, user_id: str, balance: Decimal = Decimal(100_000), *, keep_history: bool = True
    ) -> Account:
        account = Account(user_id, balance, keep_history)
        self.accounts[user_id] = account
        return account

    def account(self, user_id: str) -> Account:
        try:
            return self.accounts[user_id]
        except KeyError:
            raise ExchangeError(401, "unauthorized", "unknown account") from None

    def market(self, ticker: str) -> SimMarket:
        try:
            return self.markets[ticker]
        except KeyError:
            raise ExchangeError(404, "not_found", f"market {ticker!r} not found") from None

    def emit(self, event: ExchangeEvent) -> None:
        for listener in self.listeners:
            listener(event)

    # ------------------------------------------------------------------ orders

    def create_order(
        self,
        user_id: str,
        *,
        ticker: str,
        side: str,
        price: object,
        count: object,
        time_in_force: str,
        self_trade_prevention_type: str,
        client_order_id: str | None = None,
        post_only: bool = False,
        expiration_time: int | None = None,
        order_group_id: str | None = None,
        cancel_order_on_pause: bool = False,
        reduce_only: bool = False,
    ) -> SimOrder:
        """Validate, match and (for GTC) rest one order; returns it in its final state."""
        account = self.account(user_id)
        market = self.market(ticker)
        book_side = _book_side(side)
        tick, px = _on_grid(market, price)
        cc = to_cc(count)
        if time_in_force not in TIME_IN_FORCE:
            raise _bad(f"time_in_force {time_in_force!r} (allowed: {', '.join(TIME_IN_FORCE)})")
        if self_trade_prevention_type not in SELF_TRADE_PREVENTION:
            raise _bad(
                f"self_trade_prevention_type {self_trade_prevention_type!r} "
                f"(allowed: {', '.join(SELF_TRADE_PREVENTION)})"
            )
        if expiration_time is not None:
            if time_in_force != "good_till_canceled":
                raise _bad("expiration_time is allowed only with good_till_canceled")
            if not isinstance(expiration_time, int) or isinstance(expiration_time, bool):
                raise _bad("expiration_time must be integer Unix seconds")
            now = self.clock.now()
            if not now < expiration_time <= now + MAX_EXPIRY:
                raise _bad("expiration_time must be in the future and within 10 years")
        if post_only and time_in_force != "good_till_canceled":
            raise _bad("post_only is allowed only with good_till_canceled")
        if client_order_id is not None:
            if not isinstance(client_order_id, str) or not 0 < len(client_order_id) <= 64:
                raise _bad("client_order_id must be a string of 1 to 64 characters")
            if client_order_id in account.client_ids:
                raise ExchangeError(
                    409, "order_already_exists", f"client_order_id {client_order_id} is in use"
                )
        group = None
        if order_group_id is not None:
            group = account.groups.get(order_group_id)
            if group is None or group.deleted:
                raise ExchangeError(404, "not_found", f"order group {order_group_id} not found")
            if group.triggered:
                raise ExchangeError(
                    400,
                    "order_group_limit_reached",
                    f"order group {order_group_id} hit its limit; reset it first",
                )
        if not market.trading or not self.trading_active:
            raise ExchangeError(400, "MARKET_INACTIVE", f"market {ticker} is not open for trading")
        if account.open_orders >= MAX_OPEN_ORDERS:
            raise _bad(f"at most {MAX_OPEN_ORDERS} open orders")
        if reduce_only:
            held = account.positions.get(ticker, Position()).position
            reducible = max(-held, 0) if book_side == "bid" else max(held, 0)
            if reducible <= 0:
                raise _bad("reduce_only order would not reduce the position")
            cc = min(cc, reducible)
        if self._cash_needed(market, account, book_side, px, cc) > account.available:
            raise ExchangeError(400, "insufficient_balance", "insufficient balance")

        now = self.clock.now()
        order = SimOrder(
            order_id=self.new_id(),
            user_id=user_id,
            client_order_id=client_order_id or self.new_id(),
            ticker=ticker,
            book_side=book_side,
            tick=tick,
            price=px,
            initial=cc,
            remaining=cc,
            time_in_force=time_in_force,
            self_trade_prevention_type=self_trade_prevention_type,
            created=now,
            updated=now,
            post_only=post_only,
            order_group_id=order_group_id,
            expiration=float(expiration_time) if expiration_time is not None else None,
            cancel_order_on_pause=cancel_order_on_pause,
            seq=next(self._seq),
        )
        if account.keep_history or time_in_force == "good_till_canceled":
            account.orders[order.order_id] = order
            account.client_ids[order.client_order_id] = order.order_id
        opposite: BookSide = "ask" if book_side == "bid" else "bid"
        best = market.book.best(opposite)
        crosses = best is not None and (tick >= best if book_side == "bid" else tick <= best)
        if post_only and crosses:
            self._finish(order, "canceled", "PostOnlyCrossCancel")
            self._announce(order)
            return order
        if time_in_force == "fill_or_kill" and self._fillable(market, order, group) < cc:
            self._finish(order, "canceled", None)
            self._announce(order)
            return order
        self._match(market, order)
        if order.live:
            if time_in_force == "good_till_canceled":
                self._rest(market, order)
            else:
                self._finish(order, "canceled", None)
        self._announce(order)
        return order

    @staticmethod
    def _order_cost(market: SimMarket, book_side: BookSide, px: Decimal, opening: int) -> Decimal:
        """Most ``opening`` new contracts can cost: at the order's own price, plus the
        largest fee (cost + fee only shrinks at better prices), plus rounding: each fill
        (0.01 contract at the least) rounds its fee up by under $0.0001, and an order
        carries under a cent of rounding not yet refunded."""
        if opening <= 0:
            return ZERO
        count = cc_to_count(opening)
        leg = px if book_side == "bid" else ONE - px
        fee = taker_fee(px, count, market.fees.multiplier)
        return leg * count + fee + opening * DIRECT_MEMBER_PRECISION + CENT

    def _claims(
        self, account: Account, market: SimMarket, without: SimOrder | None = None
    ) -> tuple[list[tuple[SimOrder, int]], dict[BookSide, int]]:
        """How the position's closable contracts go to the account's resting orders in one
        market, in priority order: (order, contracts it closes) each, and what is left free
        per side."""
        held = account.positions.get(market.ticker, Position()).position
        free: dict[BookSide, int] = {"bid": max(-held, 0), "ask": max(held, 0)}
        claims = []
        for order in sorted(account.resting.get(market.ticker, {}).values(), key=_by_priority):
            if order is without or not order.live:
                continue
            closing = min(order.remaining, free[order.book_side])
            free[order.book_side] -= closing
            claims.append((order, closing))
        return claims, free

    def _cash_needed(
        self, market: SimMarket, account: Account, book_side: BookSide, px: Decimal, cc: int
    ) -> Decimal:
        """Cash a new order must find available: closing contracts need none."""
        closable = self._claims(account, market)[1][book_side]
        return self._order_cost(market, book_side, px, cc - closable)

    def _rehold(self, account: Account, market: SimMarket) -> None:
        """Hold cash for the account's resting orders in one market: what an order closes
        needs nothing, what it would open holds its most possible cost."""
        resting = account.resting.get(market.ticker)
        if not resting:
            return
        for order in [o for o in resting.values() if not o.live]:
            del resting[order.order_id]
            account.held -= order.hold
            order.hold = ZERO
        for order, closing in self._claims(account, market)[0]:
            hold = self._order_cost(market, order.book_side, order.price, order.remaining - closing)
            account.held += hold - order.hold
            order.hold = hold

    def _fillable(self, market: SimMarket, order: SimOrder, group: OrderGroup | None) -> int:
        """What _match would fill: in priority order, up to an own order under taker_at_cross,
        and no further than the order group's limit allows before it triggers."""
        opposite: BookSide = "ask" if order.book_side == "bid" else "bid"
        levels = market.book.levels[opposite]
        total = 0
        if group is not None:
            room = group.limit - self.group_window(group, self.clock.now())
            return min(self._fillable(market, order, None), room)
        for tick in sorted(levels, reverse=order.book_side == "ask"):
            if (tick > order.tick) if order.book_side == "bid" else (tick < order.tick):
                break
            for o in levels[tick]:
                if o.user_id != order.user_id:
                    total += o.remaining
                elif order.self_trade_prevention_type == "taker_at_cross":
                    return total
        return total

    def _match(self, market: SimMarket, taker: SimOrder) -> None:
        book = market.book
        opposite: BookSide = "ask" if taker.book_side == "bid" else "bid"
        while taker.remaining > 0:
            best = book.best(opposite)
            if best is None or (
                best > taker.tick if taker.book_side == "bid" else best < taker.tick
            ):
                return
            maker = book.levels[opposite][best][0]
            if maker.user_id == taker.user_id:
                if taker.self_trade_prevention_type == "taker_at_cross":
                    self._finish(taker, "canceled", "SelfTradeCancel")
                    return
                self._cancel_resting(market, maker, "SelfTradeCancel", taker)
                continue
            self._trade(market, taker, maker, min(taker.remaining, maker.remaining))

    def _trade(self, market: SimMarket, taker: SimOrder, maker: SimOrder, cc: int) -> None:
        now = self.clock.now()
        trade_id = self.new_id()
        price = maker.price
        maker.remaining -= cc
        maker.filled += cc
        maker.updated = now
        maker.last_update_reason = "Trade"
        if maker.remaining == 0:
            market.book.levels[maker.book_side][maker.tick].popleft()
            maker.status = "executed"
            self.account(maker.user_id).open_orders -= 1
        market.book.shrink(maker, cc)
        taker.remaining -= cc
        taker.filled += cc
        taker.updated = now
        taker.last_update_reason = "Trade"
        if taker.remaining == 0:
            taker.status = "executed"
        self.emit(
            BookChange(
                market.ticker, maker.book_side, price, -cc, now, taker.user_id,
                taker.client_order_id,
            )
        )  # fmt: skip
        trade = TradeRecord(
            trade_id, market.ticker, price, cc, taker.book_side, now, next(self._seq)
        )
        self.trades.append(trade)
        market.volume += cc
        market.last_price = price
        market.last_size = cc
        market.notional += price * cc_to_count(cc)
        market.updated = now
        for order, is_taker in ((maker, False), (taker, True)):
            trade_fee = self._trade_fee(market, price, cc, is_taker=is_taker)
            fee = self._book_fill(market, order, price, cc, trade_fee, is_taker, trade_id, now)
            cost = price * cc_to_count(cc)
            if is_taker:
                order.taker_fill_cost += cost
                order.taker_fees += fee
            else:
                order.maker_fill_cost += cost
                order.maker_fees += fee
        self.emit(TradeEvent(trade))
        self._rehold(self.account(maker.user_id), market)
        self._rehold(self.account(taker.user_id), market)
        self._announce(maker)
        self._count_group_fill(maker, cc, now)
        self._count_group_fill(taker, cc, now)

    @staticmethod
    def _trade_fee(market: SimMarket, price: Decimal, cc: int, *, is_taker: bool) -> Decimal:
        """The fill's fee before balance rounding: the formula rounded up to $0.0001."""
        count = cc_to_count(cc)
        mult = market.fees.multiplier
        fee_type = market.fees.fee_type
        if is_taker:
            trade_fee = taker_fee(price, count, mult, rounding=DIRECT_MEMBER_PRECISION)
        elif charges_maker_fee(fee_type):
            trade_fee = maker_fee(
                price, count, mult, fee_type=fee_type, rounding=DIRECT_MEMBER_PRECISION
            )
        else:
            trade_fee = ZERO
        return trade_fee

    def _book_fill(
        self,
        market: SimMarket,
        order: SimOrder,
        price: Decimal,
        cc: int,
        trade_fee: Decimal,
        is_taker: bool,
        trade_id: str,
        now: float,
    ) -> Decimal:
        """Book one side of a fill: position, cost basis, cash; returns the fee charged."""
        account = self.account(order.user_id)
        pos = account.positions.setdefault(market.ticker, Position())
        count = cc_to_count(cc)
        sign = 1 if order.book_side == "bid" else -1
        leg = price if sign > 0 else ONE - price  # the price of the contract bought
        held = pos.position
        closing = min(cc, max(-sign * held, 0))  # contracts of the other leg closed
        opening = cc - closing
        flow = ZERO
        if closing:
            closed = cc_to_count(closing)
            # FixedPointDollars carries six decimals: the basis of a partial close is kept
            # to the micro-dollar, and the rest stays with the open contracts.
            basis = (pos.cost * Decimal(closing) / Decimal(abs(held))).quantize(MICRO_DOLLAR)
            proceeds = (ONE - leg) * closed  # the pair redeems at $1
            flow += proceeds
            pos.cost -= basis
            pos.realized += proceeds - basis
        if opening:
            outlay = leg * cc_to_count(opening)
            flow -= outlay
            pos.cost += outlay
        charge = charge_fill(flow, trade_fee, order.carried)
        order.carried = charge.carried
        fee = charge.fee
        account.balance += charge.balance_change
        pos.fees += fee  # realized PnL is before fees, as fees_paid is reported beside it
        pos.position = held + sign * cc
        # contracts outstanding = YES held (each is matched by a NO held by someone else)
        market.open_interest += max(pos.position, 0) - max(held, 0)
        pos.traded += price * count
        pos.volume += cc
        pos.updated = now
        if pos.position == 0:
            pos.cost = ZERO
        record = FillRecord(
            trade_id, order.order_id, order.client_order_id, order.user_id, market.ticker,
            order.book_side, price, cc, is_taker, fee, pos.position, now, next(self._seq),
        )  # fmt: skip
        if account.keep_history:
            account.fills.append(record)
        self.emit(FillEvent(record))
        self.emit(PositionEvent(order.user_id, market.ticker, now))
        return fee

    def _rest(self, market: SimMarket, order: SimOrder) -> None:
        self._priority += 1
        order.priority = self._priority
        market.book.add(order)
        account = self.account(order.user_id)
        account.open_orders += 1
        account.resting.setdefault(market.ticker, {})[order.order_id] = order
        self._rehold(account, market)
        if order.expiration is not None:
            self._expiring.append(order)
        self.emit(
            BookChange(
                market.ticker, order.book_side, order.price, order.remaining, order.updated,
                order.user_id, order.client_order_id,
            )
        )  # fmt: skip

    def _finish(
        self, order: SimOrder, status: Literal["canceled", "executed"], why: str | None
    ) -> None:
        order.status = status
        order.remaining = 0 if status == "canceled" else order.remaining
        order.updated = self.clock.now()
        self._rehold(self.account(order.user_id), self.markets[order.ticker])
        if why is not None:
            order.last_update_reason = why

    def _announce(self, order: SimOrder) -> None:
        self.emit(OrderEvent(order.user_id, order, order.updated))
        account = self.account(order.user_id)
        if not account.keep_history and not order.live:
            account.orders.pop(order.order_id, None)
            account.client_ids.pop(order.client_order_id, None)

    def _cancel_resting(
        self, market: SimMarket, order: SimOrder, why: str | None, cause: SimOrder | None = None
    ) -> int:
        """Take a resting order off the book; returns the centi-contracts removed."""
        removed = order.remaining
        market.book.remove(order)
        self.account(order.user_id).open_orders -= 1
        self._finish(order, "canceled", why)
        actor = cause or order
        self.emit(
            BookChange(
                market.ticker, order.book_side, order.price, -removed, order.updated,
                actor.user_id, actor.client_order_id,
            )
        )  # fmt: skip
        self._announce(order)
        return removed

    def _own_order(self, user_id: str, order_id: str) -> SimOrder:
        order = self.account(user_id).orders.get(order_id)
        if order is None:
            raise ExchangeError(404, "not_found", f"order {order_id} not found")
        return order

    def cancel_order(self, user_id: str, order_id: str) -> tuple[SimOrder, int]:
        """Cancel; returns the order and how much was taken off (0 if it was already done)."""
        order = self._own_order(user_id, order_id)
        market = self.market(order.ticker)
        if market.status in ("closed", "determined", "finalized"):  # even cancels, on Kalshi
            raise ExchangeError(400, "MARKET_INACTIVE", f"market {order.ticker} is closed")
        if not order.live:
            return order, 0
        return order, self._cancel_resting(market, order, None)

    def cancel_all(self, user_id: str) -> list[tuple[SimOrder, int]]:
        account = self.account(user_id)
        live = sorted((o for o in account.orders.values() if o.live), key=lambda o: o.priority)
        return [(o, self._cancel_resting(self.market(o.ticker), o, None)) for o in live]

    def decrease_order(
        self, user_id: str, order_id: str, *, reduce_by: object = None, reduce_to: object = None
    ) -> SimOrder:
        """Shrink the remaining size; the order keeps its place in the queue."""
        order = self._own_order(user_id, order_id)
        if (reduce_by is None) == (reduce_to is None):
            raise _bad("exactly one of reduce_by and reduce_to is required")
        if not order.live:
            raise ExchangeError(400, "order_not_resting", f"order {order_id} is {order.status}")
        market = self.market(order.ticker)
        if not market.trading or not self.trading_active:
            raise ExchangeError(400, "MARKET_INACTIVE", f"market {order.ticker} is not open")
        if reduce_by is not None:
            target = order.remaining - to_cc(reduce_by, "reduce_by")
        else:
            try:
                target = int(parse_count(reduce_to, "reduce_to") * CC)
            except (TypeError, ValueError) as exc:
                raise _bad(str(exc)) from None
            if target > order.remaining:
                raise _bad("reduce_to exceeds the remaining count; use amend to increase")
        target = max(target, 0)
        if target == 0:
            self._cancel_resting(market, order, "Decrease")
            return order
        if target == order.remaining:
            return order  # nothing to take off
        cut = order.remaining - target
        order.remaining = target
        order.updated = self.clock.now()
        order.last_update_reason = "Decrease"
        market.book.shrink(order, cut)
        self._rehold(self.account(user_id), market)
        self.emit(
            BookChange(
                market.ticker, order.book_side, order.price, -cut, order.updated, user_id,
                order.client_order_id,
            )
        )  # fmt: skip
        self._announce(order)
        return order

    def amend_order(
        self,
        user_id: str,
        order_id: str,
        *,
        ticker: str,
        side: str,
        price: object,
        count: object,
        client_order_id: str | None = None,
        updated_client_order_id: str | None = None,
    ) -> SimOrder:
        """New price and/or total size (filled + new remaining).

        Priority is kept only when the price is unchanged and the size does not grow.
        """
        account = self.account(user_id)
        order = self._own_order(user_id, order_id)
        if ticker != order.ticker or _book_side(side) != order.book_side:
            raise _bad("ticker and side must match the order being amended")
        if client_order_id is not None and client_order_id != order.client_order_id:
            raise _bad("client_order_id does not match the order")
        if not order.live:
            raise ExchangeError(400, "order_not_resting", f"order {order_id} is {order.status}")
        market = self.market(order.ticker)
        if not market.trading or not self.trading_active:
            raise ExchangeError(400, "MARKET_INACTIVE", f"market {ticker} is not open")
        tick, px = _on_grid(market, price)
        total = to_cc(count)
        new_remaining = total - order.filled
        if new_remaining <= 0:
            raise _bad(f"count {count} must exceed the {cc_to_count(order.filled)} already filled")
        renamed = updated_client_order_id not in (None, order.client_order_id)
        if renamed and updated_client_order_id in account.client_ids:
            raise ExchangeError(409, "order_already_exists", "updated_client_order_id in use")
        closable = self._claims(account, market, without=order)[1][order.book_side]
        need = self._order_cost(market, order.book_side, px, new_remaining - closable)
        shrinks_in_place = tick == order.tick and new_remaining <= order.remaining
        if not shrinks_in_place and need - order.hold > account.available:
            raise ExchangeError(400, "insufficient_balance", "insufficient balance")
        keeps_priority = tick == order.tick and new_remaining <= order.remaining
        now = self.clock.now()
        if renamed and updated_client_order_id is not None:
            account.client_ids.pop(order.client_order_id, None)
            order.client_order_id = updated_client_order_id
            account.client_ids[updated_client_order_id] = order.order_id
        if keeps_priority:
            cut = order.remaining - new_remaining
            order.remaining = new_remaining
            order.initial = total
            order.updated = now
            order.last_update_reason = "Amend"
            if cut:
                market.book.shrink(order, cut)
                self._rehold(account, market)
                self.emit(
                    BookChange(
                        ticker, order.book_side, order.price, -cut, now, user_id,
                        order.client_order_id,
                    )
                )  # fmt: skip
            self._announce(order)
            return order
        removed = order.remaining
        market.book.remove(order)
        account.open_orders -= 1
        self.emit(
            BookChange(
                ticker, order.book_side, order.price, -removed, now, user_id, order.client_order_id
            )
        )
        order.tick, order.price = tick, px
        order.remaining = new_remaining
        order.initial = total
        order.updated = now
        order.last_update_reason = "Amend"
        opposite = market.book.best("ask" if order.book_side == "bid" else "bid")
        crosses = opposite is not None and (
            tick >= opposite if order.book_side == "bid" else tick <= opposite
        )
        if order.post_only and crosses:  # a post-only order never takes, amended or not
            self._finish(order, "canceled", "PostOnlyCrossCancel")
            self._announce(order)
            return order
        self._match(market, order)
        if order.live:
            self._rest(market, order)
        self._announce(order)
        return order

    # ------------------------------------------------------------------ order groups

    def create_group(self, user_id: str, contracts_limit: object) -> OrderGroup:
        account = self.account(user_id)
        group = OrderGroup(self.new_id(), user_id, to_cc(contracts_limit, "contracts_limit"))
        account.groups[group.group_id] = group
        return group

    def group(self, user_id: str, group_id: str) -> OrderGroup:
        group = self.account(user_id).groups.get(group_id)
        if group is None or group.deleted:
            raise ExchangeError(404, "not_found", f"order group {group_id} not found")
        return group

    def group_orders(self, user_id: str, group_id: str) -> list[SimOrder]:
        return [
            o
            for o in self.account(user_id).orders.values()
            if o.order_group_id == group_id and o.live
        ]

    def trigger_group(self, user_id: str, group_id: str) -> None:
        group = self.group(user_id, group_id)
        group.triggered = True
        for order in sorted(self.group_orders(user_id, group_id), key=lambda o: o.priority):
            market = self.market(order.ticker)
            if order in market.book.levels[order.book_side].get(order.tick, ()):
                self._cancel_resting(market, order, None)
            else:  # the incoming order whose fill hit the limit: it stops matching here
                self._finish(order, "canceled", None)

    def reset_group(self, user_id: str, group_id: str) -> None:
        group = self.group(user_id, group_id)
        group.triggered = False
        group.window.clear()

    def set_group_limit(self, user_id: str, group_id: str, contracts_limit: object) -> None:
        self.group(user_id, group_id).limit = to_cc(contracts_limit, "contracts_limit")

    def delete_group(self, user_id: str, group_id: str) -> None:
        self.trigger_group(user_id, group_id)
        self.group(user_id, group_id).deleted = True

    def group_window(self, group: OrderGroup, now: float) -> int:
        while group.window and group.window[0][0] <= now - GROUP_WINDOW:
            group.window.popleft()
        return sum(cc for _, cc in group.window)

    def _count_group_fill(self, order: SimOrder, cc: int, now: float) -> None:
        if order.order_group_id is None:
            return
        group = self.account(order.user_id).groups.get(order.order_group_id)
        if group is None or group.triggered:
            return
        group.window.append((now, cc))
        if self.group_window(group, now) >= group.limit:
            self.trigger_group(order.user_id, group.group_id)

    # ------------------------------------------------------------------ time and lifecycle

    def advance(self) -> None:
        """Expire GTC orders whose ``expiration_time`` has passed."""
        now = self.clock.now()
        keep = []
        for order in self._expiring:
            if not order.live:
                continue
            if order.expiration is not None and order.expiration <= now:
                self._cancel_resting(self.market(order.ticker), order, "ExpiryCancel")
            else:
                keep.append(order)
        self._expiring = keep

    def _cancel_market_orders(self, market: SimMarket, why: str) -> None:
        live = [o for q in _queues(market) for o in q]
        for order in sorted(live, key=lambda o: o.priority):
            self._cancel_resting(market, order, why)

    def set_paused(self, ticker: str, paused: bool) -> None:
        """Deactivate (pause) or reactivate a market; reactivation cancels resting orders."""
        market = self.market(ticker)
        now = self.clock.now()
        if paused and market.status == "active":
            market.status = "inactive"
            opted_in = [o for q in _queues(market) for o in q if o.cancel_order_on_pause]
            for order in sorted(opted_in, key=lambda o: o.priority):
                self._cancel_resting(market, order, "HaltCancel")
        elif not paused and market.status == "inactive":
            market.status = "active"
            self._cancel_market_orders(market, "HaltCancel")
        else:
            return
        market.updated = now
        kind = "deactivated" if paused else "activated"
        self.emit(LifecycleEvent(ticker, kind, now, (("is_deactivated", paused),)))

    def close_market(self, ticker: str) -> None:
        market = self.market(ticker)
        if market.status not in ("active", "inactive"):
            return
        now = self.clock.now()
        self._cancel_market_orders(market, "CloseCancel")
        market.status = "closed"
        market.close_time = now
        market.updated = now
        self.emit(LifecycleEvent(ticker, "close_date_updated", now, (("close_ts", int(now)),)))

    def determine(self, ticker: str, result: Literal["yes", "no"]) -> None:
        market = self.market(ticker)
        self.close_market(ticker)
        if market.status != "closed":
            return
        now = self.clock.now()
        market.status = "determined"
        market.result = result
        market.settlement_value = ONE if result == "yes" else ZERO
        market.determined_ts = now
        market.updated = now
        self.emit(
            LifecycleEvent(
                ticker,
                "determined",
                now,
                (
                    ("determination_ts", int(now)),
                    ("result", result),
                    ("settlement_value", f"{market.settlement_value:.4f}"),
                ),
            )
        )

    def settle(self, ticker: str) -> None:
        """Pay $1 per winning contract on net positions and record a settlement per holder."""
        market = self.market(ticker)
        if market.status != "determined":
            return
        now = self.clock.now()
        for account in self.accounts.values():
            pos = account.positions.get(ticker)
            if pos is None:
                continue
            yes = max(pos.position, 0)
            no = max(-pos.position, 0)
            won = yes if market.result == "yes" else no
            revenue = cc_to_count(won)
            account.balance += revenue
            pos.realized += revenue - pos.cost
            record = SettlementRecord(
                ticker, market.event_ticker, market.result,
                yes, pos.cost if yes else ZERO, no, pos.cost if no else ZERO, revenue, now,
                next(self._seq),
            )  # fmt: skip
            pos.position = 0
            pos.cost = ZERO
            pos.updated = now
            if account.keep_history and (yes or no):  # a flat account has nothing to settle
                account.settlements.append(record)
            if yes or no:
                self.emit(PositionEvent(account.user_id, ticker, now))
        market.open_interest = 0
        market.status = "finalized"
        market.settled_ts = now
        market.updated = now
        self.emit(LifecycleEvent(ticker, "settled", now, (("settled_ts", int(now)),)))

    # ------------------------------------------------------------------ reads

    def queue_position(self, order: SimOrder) -> int:
        """Centi-contracts resting ahead of a live order at its price (0 when it is not live)."""
        if not order.live:
            return 0
        ahead = 0
        for other in self.markets[order.ticker].book.levels[order.book_side].get(order.tick, ()):
            if other is order:
                return ahead
            ahead += other.remaining
        return 0

    def balance(self, user_id: str) -> Decimal:
        return self.account(user_id).balance

    def position(self, user_id: str, ticker: str) -> Position:
        return self.account(user_id).positions.get(ticker, Position())

    def live_orders(self, user_id: str) -> Iterable[SimOrder]:
        return (o for o in self.account(user_id).orders.values() if o.live)


def _queues(market: SimMarket) -> list[deque[SimOrder]]:
    return [q for side in ("bid", "ask") for q in market.book.levels[side].values()]


def _by_priority(order: SimOrder) -> int:
    return order.priority


def _bad(message: str) -> ExchangeError:
    return ExchangeError(400, "invalid_parameters", message)


def _book_side(side: object) -> BookSide:
    if side == "bid":
        return "bid"
    if side == "ask":
        return "ask"
    raise _bad(f"side {side!r} (allowed: bid, ask — on the YES book)")


def _on_grid(market: SimMarket, price: object) -> tuple[int, Decimal]:
    try:
        tick = market.grid.tick(price)  # type: ignore[arg-type]
    except OffGridError as exc:
        raise ExchangeError(400, "invalid_price", str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise _bad(f"price {price!r}: {exc}") from None
    return tick, market.grid.price(tick)


def floor_cents(value: Decimal) -> int:
    """Whole cents, rounded down (``balance`` is reported in integer cents)."""
    return int((value / CENT).to_integral_value(rounding=ROUND_FLOOR))
