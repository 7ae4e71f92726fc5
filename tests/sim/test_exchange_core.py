"""The exchange core without a server: matching, time in force, STP, amend/decrease, groups,
fees, positions and cash, grids, lifecycle and settlement, and the events it announces.

Every expectation is an exact value worked out by hand from Kalshi's rules
(reference/apis.md §1.3–1.5, 1.7), not read back from the implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from kmm_interactive.pricing.fees import CENT, maker_fee, taker_fee
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.exchange import (
    BookChange,
    BookSide,
    Exchange,
    ExchangeError,
    ExchangeEvent,
    FillEvent,
    OrderEvent,
    PositionEvent,
    SettlementRecord,
    SimOrder,
    TradeEvent,
)
from kmm_interactive.sim.scenario import build_scenario

D = Decimal
NOW = 1_790_000_000.0
TIF = {"gtc": "good_till_canceled", "ioc": "immediate_or_cancel", "fok": "fill_or_kill"}
USERS = ("alice", "bob", "carol")
THOUSAND = D(1000)
SIDES: tuple[BookSide, BookSide] = ("bid", "ask")


def money(price: Decimal) -> str:
    """ "0.50" for whole cents, "0.045" for sub-cent prices."""
    return f"{price:.2f}" if price == price.quantize(CENT) else str(price)


@dataclass
class Lab:
    ex: Exchange
    clock: VirtualClock
    events: list[ExchangeEvent] = field(default_factory=list)

    def ticker(self, prefix: str) -> str:
        return next(t for t in self.ex.markets if t.startswith(prefix))

    @property
    def nba(self) -> str:  # quadratic_with_maker_fees, linear cent
        return self.ticker("KXNBAGAME")

    @property
    def epl(self) -> str:  # quadratic (no maker fee), linear cent
        return self.ticker("KXEPLGAME")

    def put(
        self,
        user: str,
        side: str,
        price: str,
        count: object,
        tif: str = "gtc",
        *,
        ticker: str | None = None,
        stp: str = "taker_at_cross",
        **kw: Any,
    ) -> SimOrder:
        return self.ex.create_order(
            user,
            ticker=ticker or self.nba,
            side=side,
            price=price,
            count=str(count),
            time_in_force=TIF[tif],
            self_trade_prevention_type=stp,
            **kw,
        )

    def book(self, ticker: str | None = None, side: BookSide = "bid") -> dict[str, int]:
        """One side of the book as {price: centi-contracts}, after checking that both sides
        agree with the queued orders and with the sum of every BookChange announced."""
        market = self.ex.markets[ticker or self.nba]
        grid, book = market.grid, market.book
        for s in SIDES:
            queues = book.levels[s]
            assert {t: sum(o.remaining for o in q) for t, q in queues.items()} == book.sizes[s]
            assert all(o.live and o.remaining > 0 for q in queues.values() for o in q)
            announced: dict[int, int] = {}
            for e in self.events:
                if isinstance(e, BookChange) and e.ticker == market.ticker and e.book_side == s:
                    t = grid.tick(e.price)
                    announced[t] = announced.get(t, 0) + e.delta
            assert {t: n for t, n in announced.items() if n} == book.sizes[s]
        return {money(grid.price(t)): n for t, n in sorted(book.sizes[side].items())}

    def fills(self, user: str) -> list[tuple[str, int, bool, Decimal]]:
        return [(money(f.price), f.count, f.is_taker, f.fee) for f in self.ex.accounts[user].fills]


def make_lab(name: str = "small", balance: Decimal = THOUSAND) -> Lab:
    clock = VirtualClock(NOW)
    ex = Exchange.from_scenario(build_scenario(name, seed=1, now=NOW, speed=1), clock)
    for user in USERS:
        ex.open_account(user, balance)
    lab = Lab(ex, clock)
    ex.listeners.append(lab.events.append)
    return lab


@pytest.fixture
def lab() -> Lab:
    return make_lab()


def refused(status: int, code: str, call: Any, *args: Any, **kw: Any) -> None:
    with pytest.raises(ExchangeError) as info:
        call(*args, **kw)
    assert (info.value.status, info.value.code) == (status, code)


def state(lab: Lab) -> tuple[object, ...]:
    """Trades, cash, fills and books: what an order that neither trades nor rests leaves alone."""
    ex = lab.ex
    return (
        len(ex.trades),
        {u: (a.balance, a.open_orders, len(a.fills)) for u, a in ex.accounts.items()},
        {t: (dict(m.book.sizes["bid"]), dict(m.book.sizes["ask"])) for t, m in ex.markets.items()},
    )


def snapshot(lab: Lab) -> tuple[object, ...]:
    """Everything a refused request must leave alone."""
    orders = {u: (len(a.orders), len(a.client_ids)) for u, a in lab.ex.accounts.items()}
    return (len(lab.events), orders, *state(lab))


def amend(lab: Lab, order: SimOrder, price: str, count: object, **kw: Any) -> SimOrder:
    return lab.ex.amend_order(
        order.user_id, order.order_id, ticker=order.ticker, side=order.book_side, price=price,
        count=str(count), **kw,
    )  # fmt: skip


# --------------------------------------------------------------------------- priority


def test_price_then_time_priority_and_partial_fills(lab: Lab) -> None:
    first = lab.put("bob", "bid", "0.50", 5)
    second = lab.put("carol", "bid", "0.50", 5)
    better = lab.put("carol", "bid", "0.51", 2)
    assert lab.book() == {"0.50": 1000, "0.51": 200}
    taker = lab.put("alice", "ask", "0.50", 9)
    # the better price first, at its price (the seller is improved), then arrival order;
    # fees accrue on the order: 0.07·2·0.51·0.49 = 0.034986 → 0.0350 (4¢),
    # + 0.0875 = 0.1225 (13¢: 9 more), + 0.035 = 0.1575 (16¢: 3 more)
    assert lab.fills("alice") == [
        ("0.51", 200, True, D("0.04")),
        ("0.50", 500, True, D("0.09")),
        ("0.50", 200, True, D("0.03")),
    ]
    assert [(t.price, t.count, t.taker_book_side) for t in lab.ex.trades] == [
        (D("0.51"), 200, "ask"),
        (D("0.50"), 500, "ask"),
        (D("0.50"), 200, "ask"),
    ]
    assert (better.status, better.filled, better.remaining) == ("executed", 200, 0)
    assert (first.status, first.filled, first.remaining) == ("executed", 500, 0)
    assert (second.status, second.filled, second.remaining) == ("resting", 200, 300)
    assert (taker.status, taker.filled, taker.remaining) == ("executed", 900, 0)
    assert lab.book() == {"0.50": 300}
    assert lab.book(side="ask") == {}
    market = lab.ex.markets[lab.nba]
    assert (market.volume, market.last_price) == (900, D("0.50"))
    assert [lab.ex.accounts[u].open_orders for u in USERS] == [0, 0, 1]


def test_a_sweep_trades_at_each_resting_price(lab: Lab) -> None:
    lab.put("bob", "ask", "0.52", 1)
    lab.put("carol", "ask", "0.53", 2)
    lab.put("bob", "ask", "0.55", 3)
    taker = lab.put("alice", "bid", "0.54", 5, "ioc")
    # 0.07·0.52·0.48 = 0.017472 → 0.0175 (2¢); + 0.07·2·0.53·0.47 = 0.034874 → 0.0349:
    # the order's 0.0524 is 6¢, 4 more
    assert lab.fills("alice") == [("0.52", 100, True, D("0.02")), ("0.53", 200, True, D("0.04"))]
    assert (taker.status, taker.filled, taker.remaining) == ("canceled", 300, 0)
    assert (taker.taker_fill_cost, taker.taker_fees) == (D("1.58"), D("0.06"))
    assert lab.ex.balance("alice") == D("1000") - D("1.58") - D("0.06")
    assert lab.book(side="ask") == {"0.55": 300}
    assert lab.book() == {}  # the unfilled rest of an IOC never reaches the book


# --------------------------------------------------------------------------- time in force


@pytest.mark.parametrize(("count", "filled"), [(7, 0), (6, 600)])
def test_fill_or_kill_is_all_or_nothing(lab: Lab, count: int, filled: int) -> None:
    lab.put("bob", "ask", "0.52", 1)
    lab.put("carol", "ask", "0.55", 5)
    lab.put("bob", "ask", "0.56", 9)
    before = state(lab)
    order = lab.put("alice", "bid", "0.55", count, "fok")
    assert (order.filled, order.remaining) == (filled, 0)
    if filled:
        assert order.status == "executed"
        assert lab.book(side="ask") == {"0.56": 900}
        assert len(lab.ex.trades) == 2
    else:
        assert order.status == "canceled"
        assert state(lab) == before  # no trade, no book change, no cash
    assert isinstance(lab.events[-1], OrderEvent)  # announced either way
    assert lab.events[-1].order is order


def test_gtc_rests_and_expires(lab: Lab) -> None:
    order = lab.put("alice", "bid", "0.45", 4)
    assert (order.status, order.remaining) == ("resting", 400)
    expiring = lab.put("alice", "bid", "0.44", 2, expiration_time=int(NOW) + 10)
    assert lab.book() == {"0.44": 200, "0.45": 400}
    lab.clock.advance(9)
    lab.ex.advance()
    assert expiring.live
    lab.clock.advance(1)
    lab.ex.advance()
    assert (expiring.status, expiring.remaining) == ("canceled", 0)
    assert expiring.last_update_reason == "ExpiryCancel"
    assert lab.book() == {"0.45": 400}
    assert order.live
    assert lab.ex.accounts["alice"].open_orders == 1


@pytest.mark.parametrize(("tif", "expires"), [("ioc", 10), ("fok", 10), ("gtc", 0), ("gtc", -5)])
def test_expiration_time_needs_gtc_in_the_future(lab: Lab, tif: str, expires: int) -> None:
    before = snapshot(lab)
    refused(
        400, "invalid_parameters", lab.put, "alice", "bid", "0.45", 1, tif,
        expiration_time=int(NOW) + expires,
    )  # fmt: skip
    assert snapshot(lab) == before


# --------------------------------------------------------------------------- post only


def test_post_only(lab: Lab) -> None:
    lab.put("bob", "ask", "0.55", 1)
    before, mark = state(lab), len(lab.events)
    crossing = lab.put("alice", "bid", "0.55", 3, post_only=True)
    assert (crossing.status, crossing.filled, crossing.remaining) == ("canceled", 0, 0)
    assert crossing.last_update_reason == "PostOnlyCrossCancel"
    assert state(lab) == before  # no trade, no book change, no cash
    assert [type(e) for e in lab.events[mark:]] == [OrderEvent]  # only announced
    resting = lab.put("alice", "bid", "0.54", 3, post_only=True)
    assert (resting.status, resting.remaining) == ("resting", 300)
    assert lab.book() == {"0.54": 300}
    refused(400, "invalid_parameters", lab.put, "alice", "bid", "0.50", 1, "ioc", post_only=True)


def test_finished_orders_are_dropped_without_history(lab: Lab) -> None:
    lab.ex.open_account("agent", D(1000), keep_history=False)
    lab.put("bob", "ask", "0.55", 2)
    lab.put("agent", "bid", "0.55", 1, post_only=True, client_order_id="po")
    assert lab.put("agent", "bid", "0.55", 1, client_order_id="gtc").status == "executed"
    assert lab.put("agent", "bid", "0.55", 5, "fok").status == "canceled"
    account = lab.ex.accounts["agent"]
    assert (account.orders, account.client_ids, account.fills) == ({}, {}, [])
    assert lab.put("agent", "bid", "0.50", 1, client_order_id="po").live  # the id is free


# --------------------------------------------------------------------------- self-trade prevention


def test_stp_taker_at_cross_keeps_earlier_fills(lab: Lab) -> None:
    lab.put("bob", "ask", "0.52", 1)
    own = lab.put("alice", "ask", "0.53", 2)
    lab.put("carol", "ask", "0.54", 1)
    taker = lab.put("alice", "bid", "0.54", 4, stp="taker_at_cross")
    assert (taker.status, taker.filled, taker.remaining) == ("canceled", 100, 0)
    assert taker.last_update_reason == "SelfTradeCancel"
    assert own.live
    assert lab.book(side="ask") == {"0.53": 200, "0.54": 100}
    assert lab.book() == {}


def test_stp_maker_cancels_the_resting_order_and_goes_on(lab: Lab) -> None:
    lab.put("bob", "ask", "0.52", 1)
    own = lab.put("alice", "ask", "0.53", 2)
    lab.put("carol", "ask", "0.54", 1)
    mark = len(lab.events)
    taker = lab.put("alice", "bid", "0.54", 4, stp="maker", client_order_id="sweep")
    assert (own.status, own.remaining, own.last_update_reason) == ("canceled", 0, "SelfTradeCancel")
    assert [(t.price, t.count) for t in lab.ex.trades] == [(D("0.52"), 100), (D("0.54"), 100)]
    assert (taker.status, taker.filled, taker.remaining) == ("resting", 200, 200)
    assert lab.book(side="ask") == {}
    assert lab.book() == {"0.54": 200}
    changes = [e for e in lab.events[mark:] if isinstance(e, BookChange)]
    assert [(e.book_side, money(e.price), e.delta, e.client_order_id) for e in changes] == [
        ("ask", "0.52", -100, "sweep"),
        ("ask", "0.53", -200, "sweep"),  # the cancel was caused by the incoming order
        ("ask", "0.54", -100, "sweep"),
        ("bid", "0.54", 200, "sweep"),
    ]
    assert lab.ex.accounts["alice"].open_orders == 1


def test_fill_or_kill_does_not_fill_part_way_to_a_self_trade(lab: Lab) -> None:
    lab.put("bob", "ask", "0.52", 1)
    lab.put("alice", "ask", "0.53", 1)
    lab.put("carol", "ask", "0.54", 2)
    before = state(lab)
    order = lab.put("alice", "bid", "0.54", 3, "fok", stp="taker_at_cross")
    assert (order.status, order.filled) == ("canceled", 0)
    assert state(lab) == before
    # with "maker" the own order is cancelled instead, and the rest is enough
    order = lab.put("alice", "bid", "0.54", 3, "fok", stp="maker")
    assert (order.status, order.filled) == ("executed", 300)
    assert lab.book(side="ask") == {}


# --------------------------------------------------------------------------- client_order_id


def test_duplicate_client_order_id_is_refused(lab: Lab) -> None:
    lab.put("alice", "bid", "0.40", 1, client_order_id="x1")
    before = snapshot(lab)
    refused(409, "order_already_exists", lab.put, "alice", "bid", "0.41", 2, client_order_id="x1")
    assert snapshot(lab) == before
    lab.put("bob", "bid", "0.41", 2, client_order_id="x1")  # ids are per account
    assert lab.book() == {"0.40": 100, "0.41": 200}


# --------------------------------------------------------------------------- amend and decrease


@pytest.mark.parametrize(
    ("price", "count", "first", "after"),
    [
        ("0.39", 5, "bob", {"0.39": 900}),  # moved to bob's price: behind bob
        ("0.40", 6, "bob", {"0.40": 1000}),  # grew: behind bob
        ("0.40", 3, "alice", {"0.40": 700}),  # shrank: keeps its place
        ("0.40", 5, "alice", {"0.40": 900}),  # unchanged
    ],
)
def test_amend_priority(
    lab: Lab, price: str, count: int, first: str, after: dict[str, int]
) -> None:
    alice = lab.put("alice", "bid", "0.40", 5)
    lab.put("bob", "bid", price, 5)
    amend(lab, alice, price, count)
    assert (alice.remaining, alice.initial, alice.last_update_reason) == (
        count * 100, count * 100, "Amend",
    )  # fmt: skip
    lab.put("carol", "ask", price, 1, "ioc")
    assert [u for u in ("alice", "bob") if lab.ex.accounts[u].fills] == [first]
    assert lab.book() == after
    assert lab.ex.accounts["alice"].open_orders == 1


def test_amend_that_crosses_trades_and_count_is_the_total(lab: Lab) -> None:
    order = lab.put("alice", "bid", "0.40", 5, client_order_id="a")
    lab.put("carol", "ask", "0.40", 2, "ioc")
    assert (order.filled, order.remaining) == (200, 300)
    amend(lab, order, "0.40", 4)  # total 4 = 2 filled + 2 resting
    assert (order.filled, order.remaining, order.initial) == (200, 200, 400)
    before = snapshot(lab)
    for total in (2, 1):
        refused(400, "invalid_parameters", amend, lab, order, "0.41", total)
    assert snapshot(lab) == before
    lab.put("bob", "ask", "0.45", 1)
    amend(lab, order, "0.45", 6, updated_client_order_id="b")
    # crosses bob's 1 at 0.45 and rests the other 3 of the 4 still wanted
    assert (lab.ex.trades[-1].price, lab.ex.trades[-1].count) == (D("0.45"), 100)
    assert lab.ex.trades[-1].taker_book_side == "bid"
    assert (order.filled, order.remaining, order.status) == (300, 300, "resting")
    assert lab.book() == {"0.45": 300}
    assert lab.book(side="ask") == {}
    assert order.client_order_id == "b"
    assert lab.ex.accounts["alice"].client_ids == {"b": order.order_id}
    lab.put("alice", "bid", "0.30", 1, client_order_id="a")  # the old id is free again
    other = lab.put("alice", "bid", "0.31", 1, client_order_id="c")
    refused(409, "order_already_exists", amend, lab, other, "0.31", 1, updated_client_order_id="b")


@pytest.mark.parametrize(
    ("kw", "remaining"),
    [({"reduce_by": "2"}, 300), ({"reduce_to": "1"}, 100), ({"reduce_to": "0"}, 0)],
)
def test_decrease_keeps_priority(lab: Lab, kw: dict[str, str], remaining: int) -> None:
    alice = lab.put("alice", "bid", "0.40", 5)
    lab.put("bob", "bid", "0.40", 5)
    lab.ex.decrease_order("alice", alice.order_id, **kw)
    assert (alice.remaining, alice.last_update_reason) == (remaining, "Decrease")
    assert lab.book() == {"0.40": 500 + remaining}
    if remaining == 0:
        assert alice.status == "canceled"
        assert lab.ex.accounts["alice"].open_orders == 0
        return
    lab.put("carol", "ask", "0.40", 1, "ioc")
    assert (alice.filled, alice.remaining) == (100, remaining - 100)


@pytest.mark.parametrize("kw", [{}, {"reduce_by": "1", "reduce_to": "1"}])
def test_decrease_needs_exactly_one_of_by_and_to(lab: Lab, kw: dict[str, str]) -> None:
    order = lab.put("alice", "bid", "0.40", 5)
    refused(400, "invalid_parameters", lab.ex.decrease_order, "alice", order.order_id, **kw)
    assert order.remaining == 500


# --------------------------------------------------------------------------- cancel


def test_cancel_and_cancel_all(lab: Lab) -> None:
    order = lab.put("alice", "bid", "0.40", 5)
    assert lab.ex.cancel_order("alice", order.order_id) == (order, 500)
    assert (order.status, order.remaining) == ("canceled", 0)
    assert lab.ex.cancel_order("alice", order.order_id) == (order, 0)
    lab.put("bob", "ask", "0.60", 1)
    done = lab.put("alice", "bid", "0.60", 1)
    assert done.status == "executed"
    assert lab.ex.cancel_order("alice", done.order_id) == (done, 0)
    refused(404, "not_found", lab.ex.cancel_order, "bob", done.order_id)  # not bob's
    mine = [
        lab.put("alice", "bid", "0.41", 2),
        lab.put("alice", "ask", "0.70", 3),
        lab.put("alice", "bid", "0.20", 4, ticker=lab.epl),
    ]
    bobs = lab.put("bob", "bid", "0.42", 1)
    assert lab.ex.cancel_all("alice") == list(zip(mine, (200, 300, 400), strict=True))
    assert not any(o.live for o in mine)
    assert bobs.live
    assert lab.book() == {"0.42": 100}
    assert lab.book(side="ask") == {}
    assert lab.book(lab.epl) == {}
    assert lab.ex.accounts["alice"].open_orders == 0
    assert lab.ex.cancel_all("alice") == []


# --------------------------------------------------------------------------- order groups


def test_order_group_rolling_limit(lab: Lab) -> None:
    group = lab.ex.create_group("alice", "5").group_id
    near = lab.put("alice", "bid", "0.40", 3, order_group_id=group)
    far = lab.put("alice", "bid", "0.39", 10, order_group_id=group)
    other = lab.put("alice", "bid", "0.30", 10)  # not in the group
    lab.put("bob", "ask", "0.40", 3, "ioc")
    lab.clock.advance(10)
    lab.put("bob", "ask", "0.39", 1, "ioc")
    assert lab.ex.group_window(lab.ex.group("alice", group), lab.clock.now()) == 400
    lab.clock.advance(5)  # the first 3 are now 15 s old: out of the window
    assert lab.ex.group_window(lab.ex.group("alice", group), lab.clock.now()) == 100
    lab.put("bob", "ask", "0.39", 3, "ioc")
    assert far.live  # 4 in the window
    lab.put("bob", "ask", "0.39", 1, "ioc")  # 5: the limit
    assert (near.status, far.status, far.filled, far.remaining) == ("executed", "canceled", 500, 0)
    assert other.live
    assert lab.book() == {"0.30": 1000}
    refused(
        400, "order_group_limit_reached", lab.put, "alice", "bid", "0.35", 1, order_group_id=group
    )
    lab.ex.reset_group("alice", group)
    assert lab.put("alice", "bid", "0.35", 1, order_group_id=group).live


def test_a_taker_that_hits_its_group_limit_stops(lab: Lab) -> None:
    group = lab.ex.create_group("alice", "3").group_id
    lab.put("bob", "ask", "0.50", 2)
    lab.put("carol", "ask", "0.50", 2)
    lab.put("bob", "ask", "0.51", 5)
    resting = lab.put("alice", "bid", "0.20", 1, order_group_id=group)
    taker = lab.put("alice", "bid", "0.51", 10, order_group_id=group)
    # 2, then 2 more: 4 >= 3 triggers the group; the taker stops there and nothing rests
    assert (taker.status, taker.filled, taker.remaining) == ("canceled", 400, 0)
    assert resting.status == "canceled"
    assert lab.book() == {}
    assert lab.book(side="ask") == {"0.51": 500}
    assert lab.ex.accounts["alice"].open_orders == 0


# --------------------------------------------------------------------------- fees


@pytest.mark.parametrize(("which", "maker_pays"), [("nba", D("0.44")), ("epl", D(0))])
def test_fees_of_a_100_lot_at_50c(lab: Lab, which: str, maker_pays: Decimal) -> None:
    ticker = getattr(lab, which)
    maker = lab.put("alice", "bid", "0.50", 100, ticker=ticker)
    taker = lab.put("bob", "ask", "0.50", 100, ticker=ticker)
    assert (maker.maker_fees, maker.taker_fees, taker.taker_fees) == (maker_pays, D(0), D("1.75"))
    assert lab.fills("alice") == [("0.50", 10000, False, maker_pays)]
    assert lab.fills("bob") == [("0.50", 10000, True, D("1.75"))]
    assert lab.ex.balance("alice") == D(1000) - D(50) - maker_pays
    assert lab.ex.balance("bob") == D(1000) - D(50) - D("1.75")
    assert lab.ex.position("alice", ticker).fees == maker_pays
    assert lab.ex.position("bob", ticker).fees == D("1.75")


@pytest.mark.parametrize("price", ["0.10", "0.33", "0.50", "0.97"])
def test_fees_accumulate_per_order(lab: Lab, price: str) -> None:
    p = D(price)
    maker = lab.put("alice", "bid", price, 3)  # one maker order, three 1-lot fills
    for _ in range(3):
        lab.put("bob", "ask", price, 1, "ioc")
    for user in ("bob", "carol", "bob"):  # one taker order sweeping three 1-lot makers
        lab.put(user, "ask", price, 1)
    taker = lab.put("alice", "bid", price, 3, "ioc")
    fills = lab.ex.accounts["alice"].fills
    assert [(f.count, f.is_taker) for f in fills] == [(100, False)] * 3 + [(100, True)] * 3
    assert all(f.fee == f.fee.quantize(CENT) >= 0 for f in fills)
    assert maker.maker_fees == sum(f.fee for f in fills[:3]) == maker_fee(p, D(3))
    assert taker.taker_fees == sum(f.fee for f in fills[3:]) == taker_fee(p, D(3))
    assert lab.ex.position("alice", lab.nba).fees == maker_fee(p, D(3)) + taker_fee(p, D(3))


# --------------------------------------------------------------------------- positions and cash


def test_positions_and_cash_across_a_round_trip(lab: Lab) -> None:
    t = lab.epl  # no maker fee: makers' cash is exact
    market = lab.ex.markets[t]
    lab.put("alice", "bid", "0.40", 10, ticker=t)
    lab.put("bob", "ask", "0.40", 10, ticker=t)  # bob has nothing: buys 10 NO at 0.60
    a, b = lab.ex.position("alice", t), lab.ex.position("bob", t)
    assert (a.position, a.cost, lab.ex.balance("alice")) == (1000, D("4.00"), D("996.00"))
    fee = taker_fee(D("0.40"), D(10))  # 0.168 → 0.17
    assert (b.position, b.cost, lab.ex.balance("bob")) == (-1000, D("6.00"), D(994) - fee)
    assert market.open_interest == 1000

    lab.put("alice", "ask", "0.55", 4, ticker=t)  # sells 4 of her 10 YES
    lab.put("carol", "bid", "0.55", 4, ticker=t)
    assert (a.position, a.cost, a.realized) == (600, D("2.40"), D("0.60"))
    assert lab.ex.balance("alice") == D("996.00") + D("2.20")
    assert market.open_interest == 1000

    lab.put("bob", "bid", "0.30", 10, ticker=t)  # buys YES against his NO: closes it
    lab.put("carol", "ask", "0.30", 10, ticker=t)  # closes her 4 YES, buys 6 NO at 0.70
    assert (b.position, b.cost, b.realized) == (0, D(0), D("1.00"))
    assert lab.ex.balance("bob") == D(994) - fee + D("7.00")  # (1 − 0.30) back per contract
    c = lab.ex.position("carol", t)
    assert (c.position, c.cost, c.realized) == (-600, D("4.20"), D("-1.00"))
    carol_fees = taker_fee(D("0.55"), D(4)) + taker_fee(D("0.30"), D(10))
    assert lab.ex.balance("carol") == D(1000) - D("2.20") + D("1.20") - D("4.20") - carol_fees
    assert c.fees == carol_fees
    assert [f.post_position for f in lab.ex.accounts["carol"].fills] == [400, -600]
    assert market.open_interest == 600  # alice's 6 YES against carol's 6 NO
    assert sum(lab.ex.position(u, t).position for u in USERS) == 0


def test_balance_never_goes_negative() -> None:
    lab = make_lab(balance=D(50))
    lab.ex.open_account("bob", D(1000))
    before = snapshot(lab)
    refused(400, "insufficient_balance", lab.put, "alice", "bid", "0.50", "100.01")
    refused(400, "insufficient_balance", lab.put, "alice", "ask", "0.40", "84")  # NO at 0.60
    assert snapshot(lab) == before
    lab.put("bob", "ask", "0.50", 100)
    before = snapshot(lab)
    # $50 pays for 100 YES at 0.50 but not for the $1.75 taker fee on top
    refused(400, "insufficient_balance", lab.put, "alice", "bid", "0.50", 100, "ioc")
    assert snapshot(lab) == before
    # The check also covers rounding: 95 would need 47.50 + 1.67 fee + 0.95 (a $0.0001 per
    # 0.01-contract fill) + 1¢ = 50.13; 94 needs 49.60.
    refused(400, "insufficient_balance", lab.put, "alice", "bid", "0.50", 95, "ioc")
    order = lab.put("alice", "bid", "0.50", 94, "ioc")
    assert order.filled == 9400
    assert lab.ex.balance("alice") == D("1.35")  # 50 − (47.00 + 1.645 fee, to the cent)


# --------------------------------------------------------------------------- price grids


def test_prices_must_be_on_the_grid() -> None:
    lab = make_lab("default")
    ncaab = lab.ticker("KXNCAAMBGAME")
    assert lab.ex.markets[ncaab].price_level_structure == "tapered_deci_cent"
    before = snapshot(lab)
    refused(400, "invalid_price", lab.put, "alice", "bid", "0.555", 1)  # NBA: linear cent
    refused(400, "invalid_price", lab.put, "alice", "bid", "0.455", 1, ticker=ncaab)
    assert snapshot(lab) == before
    for price in ("0.045", "0.955", "0.45"):
        assert lab.put("alice", "bid", price, 1, ticker=ncaab).price == D(price)
    assert lab.book(ncaab) == {"0.045": 100, "0.45": 100, "0.955": 100}


# --------------------------------------------------------------------------- lifecycle


def test_close_determine_settle(lab: Lab) -> None:
    t = lab.epl
    lab.put("alice", "bid", "0.50", 10, ticker=t)
    lab.put("bob", "ask", "0.50", 10, ticker=t)  # bob: 10 NO at 0.50
    resting = [
        lab.put("alice", "bid", "0.40", 5, ticker=t),
        lab.put("bob", "ask", "0.60", 1, ticker=t),
    ]
    lab.clock.advance(60)
    lab.ex.close_market(t)
    assert [(o.status, o.last_update_reason) for o in resting] == [("canceled", "CloseCancel")] * 2
    assert (lab.book(t), lab.book(t, "ask")) == ({}, {})
    refused(400, "MARKET_INACTIVE", lab.put, "carol", "bid", "0.50", 1, ticker=t)
    alice_cash, bob_cash = lab.ex.balance("alice"), lab.ex.balance("bob")
    lab.ex.determine(t, "yes")
    lab.ex.settle(t)
    market = lab.ex.markets[t]
    assert (market.status, market.result, market.settlement_value) == ("finalized", "yes", D(1))
    assert lab.ex.balance("alice") == alice_cash + D(10)
    assert lab.ex.balance("bob") == bob_cash
    ts, event = NOW + 60, market.event_ticker
    assert lab.ex.accounts["alice"].settlements == [
        SettlementRecord(t, event, "yes", 1000, D("5.00"), 0, D(0), D(10), ts)
    ]
    assert lab.ex.accounts["bob"].settlements == [
        SettlementRecord(t, event, "yes", 0, D(0), 1000, D("5.00"), D(0), ts)
    ]
    assert lab.ex.accounts["carol"].settlements == []
    a, b = lab.ex.position("alice", t), lab.ex.position("bob", t)
    assert (a.position, a.cost, a.realized) == (0, D(0), D("5.00"))
    assert (b.position, b.cost, b.realized) == (0, D(0), D("-5.00"))
    assert market.open_interest == 0


def test_pause_blocks_orders_and_reactivation_cancels(lab: Lab) -> None:
    order = lab.put("alice", "bid", "0.40", 5)
    lab.ex.set_paused(lab.nba, True)
    before = snapshot(lab)
    refused(400, "MARKET_INACTIVE", lab.put, "bob", "ask", "0.40", 1)
    refused(400, "MARKET_INACTIVE", amend, lab, order, "0.41", 5)
    assert snapshot(lab) == before
    assert order.live
    lab.ex.set_paused(lab.nba, False)
    assert (order.status, order.last_update_reason) == ("canceled", "HaltCancel")
    assert lab.book() == {}
    assert lab.put("bob", "ask", "0.40", 1).live


# --------------------------------------------------------------------------- events


def test_a_trade_announces_book_fills_positions_trade_and_orders(lab: Lab) -> None:
    maker = lab.put("alice", "bid", "0.50", 2, client_order_id="m")
    mark = len(lab.events)
    taker = lab.put("bob", "ask", "0.50", 1, client_order_id="t")
    seen = lab.events[mark:]
    assert [type(e) for e in seen] == [
        BookChange, FillEvent, PositionEvent, FillEvent, PositionEvent, TradeEvent, OrderEvent,
        OrderEvent,
    ]  # fmt: skip
    change, maker_fill, maker_pos, taker_fill, taker_pos, trade, maker_up, taker_up = seen
    assert isinstance(change, BookChange)
    assert (change.book_side, change.price, change.delta) == ("bid", D("0.50"), -100)
    assert (change.user_id, change.client_order_id) == ("bob", "t")  # who caused it
    assert isinstance(maker_fill, FillEvent)
    assert isinstance(taker_fill, FillEvent)
    assert (maker_fill.fill.order_id, maker_fill.fill.is_taker) == (maker.order_id, False)
    assert (taker_fill.fill.order_id, taker_fill.fill.is_taker) == (taker.order_id, True)
    assert maker_fill.fill.fill_id == taker_fill.fill.fill_id
    assert isinstance(trade, TradeEvent)
    assert (trade.trade.trade_id, trade.trade.count) == (maker_fill.fill.fill_id, 100)
    assert (maker_pos, taker_pos) == (
        PositionEvent("alice", lab.nba, NOW), PositionEvent("bob", lab.nba, NOW),
    )  # fmt: skip
    assert isinstance(maker_up, OrderEvent)
    assert isinstance(taker_up, OrderEvent)
    assert (maker_up.order, taker_up.order) == (maker, taker)
    assert (maker.status, taker.status) == ("resting", "executed")
    # a resting order's own BookChange carries its own client_order_id
    lab.put("carol", "bid", "0.45", 1, client_order_id="c")
    rest = lab.events[-2]
    assert isinstance(rest, BookChange)
    assert (rest.delta, rest.user_id, rest.client_order_id) == (100, "carol", "c")
    lab.ex.cancel_order("alice", maker.order_id)
    cancel = lab.events[-2]
    assert isinstance(cancel, BookChange)
    assert (cancel.delta, cancel.user_id, cancel.client_order_id) == (-100, "alice", "m")


# --------------------------------------------------------------------------- review additions


def test_amending_a_post_only_order_across_the_book_cancels_it() -> None:
    lab = make_lab()
    lab.put("bob", "ask", "0.50", 5)
    quote = lab.put("alice", "bid", "0.45", 5, post_only=True)
    lab.ex.amend_order("alice", quote.order_id, ticker=lab.nba, side="bid", price="0.50", count="5")
    assert (quote.status, quote.last_update_reason) == ("canceled", "PostOnlyCrossCancel")
    assert lab.book(side="bid") == {}
    assert lab.book(side="ask") == {"0.50": 500}
    assert lab.ex.accounts["alice"].fills == []


def test_pausing_cancels_only_orders_that_asked_for_it() -> None:
    lab = make_lab()
    keep = lab.put("alice", "bid", "0.40", 1)
    go = lab.put("alice", "bid", "0.41", 1, cancel_order_on_pause=True)
    lab.ex.set_paused(lab.nba, True)
    assert (keep.status, go.status, go.last_update_reason) == ("resting", "canceled", "HaltCancel")
    with pytest.raises(ExchangeError) as exc:
        lab.ex.decrease_order("alice", keep.order_id, reduce_by="1")
    assert exc.value.code == "MARKET_INACTIVE"


def test_partial_close_keeps_cost_to_the_micro_dollar_and_flat_accounts_get_no_settlement() -> None:
    lab = make_lab()
    for price in ("0.30", "0.31", "0.33"):  # $0.94 for 3 contracts: a third is not exact
        lab.put("bob", "ask", price, 1)
        lab.put("alice", "bid", price, 1, "ioc")
    lab.put("carol", "bid", "0.40", 1)
    lab.put("alice", "ask", "0.40", 1, "ioc")
    pos = lab.ex.position("alice", lab.nba)
    assert pos.cost == D("0.626667")  # 0.94 − round(0.94 / 3, 6)
    assert pos.realized == D("0.40") - D("0.313333")
    lab.put("carol", "bid", "0.40", 2)
    lab.put("alice", "ask", "0.40", 2, "ioc")
    assert (pos.position, pos.cost) == (0, 0)
    lab.ex.determine(lab.nba, "yes")
    lab.ex.settle(lab.nba)
    assert lab.ex.accounts["alice"].settlements == []
    assert [s.yes_count for s in lab.ex.accounts["carol"].settlements] == [300]


def test_resting_orders_hold_cash_and_closing_needs_none() -> None:
    lab = make_lab(balance=D(10))
    alice = lab.ex.accounts["alice"]
    # 9.00 + fee 0.07×18×0.25 → 0.32 + rounding (1800 fills at most × $0.0001) 0.18 + 1¢
    first = lab.put("alice", "bid", "0.50", 18)
    assert alice.available == D("0.49")
    refused(400, "insufficient_balance", lab.put, "alice", "bid", "0.40", 2)
    # A bigger amend is refused too; a smaller one frees cash.
    refused(
        400, "insufficient_balance", lab.ex.amend_order, "alice", first.order_id,
        ticker=lab.nba, side="bid", price="0.50", count="20",
    )  # fmt: skip
    lab.ex.decrease_order("alice", first.order_id, reduce_to="10")
    assert alice.available == D("10") - (D("5.00") + D("0.18") + D("0.10") + D("0.01"))
    # Bob sells 10 into the bid; Alice's cash pays for them; then she can sell them with
    # no cash at all: closing contracts need none.
    lab.put("bob", "ask", "0.50", 10, "ioc")
    assert (alice.balance, alice.held) == (D("4.95"), 0)  # maker fee 0.04375 → 5¢
    lab.ex.accounts["alice"].balance = D(0)  # spent elsewhere
    lab.put("alice", "ask", "0.55", 10)
    assert alice.held == 0
    # Only the contracts she holds are free: a second ask would open NO and needs cash.
    refused(400, "insufficient_balance", lab.put, "alice", "ask", "0.56", 1)


def test_fill_or_kill_respects_its_order_group() -> None:
    lab = make_lab()
    group = lab.ex.create_group("alice", "2")
    lab.put("bob", "ask", "0.50", 5)
    order = lab.put("alice", "bid", "0.50", 5, "fok", order_group_id=group.group_id)
    assert (order.status, order.filled) == ("canceled", 0)
    assert lab.ex.accounts["bob"].fills == []


def test_orders_cannot_even_be_cancelled_after_close() -> None:
    lab = make_lab()
    order = lab.put("alice", "bid", "0.40", 1)
    lab.ex.close_market(lab.nba)
    refused(400, "MARKET_INACTIVE", lab.ex.cancel_order, "alice", order.order_id)
    assert (order.status, order.last_update_reason) == ("canceled", "CloseCancel")


def test_many_tiny_fills_cannot_push_a_balance_below_zero() -> None:
    # Each fill rounds its fee up to $0.0001, so 2,000 fills of 0.01 contract cost $0.20 in
    # rounding alone, far above the fee formula's $0.02: the hold must cover that too.
    lab = make_lab()
    alice = lab.ex.accounts["alice"]
    lab.put("alice", "bid", "0.05", 20)
    alice.balance = alice.held  # not a cent more than the order holds
    for _ in range(2000):
        lab.put("bob", "ask", "0.05", "0.01", "ioc")
    assert lab.ex.position("alice", lab.nba).position == 2000
    assert alice.balance >= 0
    assert alice.available >= 0


def test_shrinking_an_order_in_place_never_needs_cash() -> None:
    lab = make_lab(balance=D(10))
    alice = lab.ex.accounts["alice"]
    lab.put("bob", "ask", "0.50", 10)
    lab.put("alice", "bid", "0.50", 10, "ioc")  # long 10
    closing = lab.put("alice", "ask", "0.60", 10)  # closes: holds nothing
    lab.put("alice", "ask", "0.70", 10)  # opens NO: holds cash
    alice.balance -= alice.available  # nothing left over
    lab.ex.amend_order(
        "alice", closing.order_id, ticker=lab.nba, side="ask", price="0.60", count="5"
    )
    assert closing.remaining == 500
    assert alice.available > 0  # the shrink released cash
