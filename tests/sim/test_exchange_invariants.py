"""Random order flow among a few thin accounts: money is conserved and the books stay sound.

Each run sends a seeded mix of every request the exchange takes (all time-in-force values,
post-only, expiry, order groups, amend, decrease, cancel, cancel-all, pauses) between four
accounts with little cash, then settles every market. After every step:

* cash + $1 × contracts outstanding = starting cash − fees (money neither appears nor
  vanishes; after settlement, cash alone);
* no balance and no available balance is ever negative (resting orders hold their cash);
* each book's sizes equal its queues, no book is crossed, positions net to zero per market,
  open interest equals the YES held, open-order counts match the books.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.exchange import Exchange, ExchangeError, FillEvent, cc_to_count
from kmm_interactive.sim.scenario import build_scenario

NOW = 1_790_000_000.0
USERS = ("a", "b", "c", "d")
CASH = Decimal(40)
TIF = ("good_till_canceled", "immediate_or_cancel", "fill_or_kill")


def _check(ex: Exchange, fees: Decimal, where: str) -> None:
    live: dict[str, int] = dict.fromkeys(ex.accounts, 0)
    outstanding = 0
    for ticker, m in ex.markets.items():
        for side in ("bid", "ask"):
            queues = m.book.levels[side]  # type: ignore[index]
            assert {t: sum(o.remaining for o in q) for t, q in queues.items()} == m.book.sizes[
                side  # type: ignore[index]
            ], where
            for q in queues.values():
                for o in q:
                    assert o.live, where
                    assert o.remaining > 0, where
                    live[o.user_id] += 1
        bid, ask = m.book.best("bid"), m.book.best("ask")
        assert bid is None or ask is None or bid < ask, f"{where}: crossed {ticker}"
        positions = [
            a.positions[ticker].position for a in ex.accounts.values() if ticker in a.positions
        ]
        assert sum(positions) == 0, where
        assert m.open_interest == sum(max(p, 0) for p in positions), where
        if m.status != "finalized":
            outstanding += m.open_interest
    cash = sum((a.balance for a in ex.accounts.values()), Decimal(0))
    assert cash + cc_to_count(outstanding) == CASH * len(USERS) - fees, where
    for user, account in ex.accounts.items():
        assert account.open_orders == live[user], where
        assert account.balance >= 0, f"{where}: {user} balance {account.balance}"
        assert account.available >= 0, f"{where}: {user} available {account.available}"


def _run(seed: int, steps: int) -> int:
    """Run one seeded flow, checking after every step; returns how many fills it made."""
    rng = random.Random(seed)
    clock = VirtualClock(NOW)
    ex = Exchange.from_scenario(build_scenario("small", seed=1, now=NOW, speed=1), clock)
    for user in USERS:
        ex.open_account(user, CASH)
    fees = [Decimal(0)]
    fills = [0]

    def count_fees(event: object) -> None:
        if isinstance(event, FillEvent):
            fees[0] += event.fill.fee
            fills[0] += 1

    ex.listeners.append(count_fees)
    tickers = list(ex.markets)
    groups: dict[str, list[str]] = {u: [] for u in USERS}
    for step in range(steps):
        user = rng.choice(USERS)
        ticker = rng.choice(tickers)
        live = list(ex.live_orders(user))
        roll = rng.random()
        price = f"0.{rng.randint(30, 70):02d}"
        try:
            if roll < 0.55 or not live:
                tif = rng.choice(TIF)
                ex.create_order(
                    user,
                    ticker=ticker,
                    side=rng.choice(("bid", "ask")),
                    price=price,
                    count=str(rng.choice((1, 2, 5, 10, 25, 0.5))),
                    time_in_force=tif,
                    self_trade_prevention_type=rng.choice(("maker", "taker_at_cross")),
                    post_only=tif == "good_till_canceled" and rng.random() < 0.2,
                    expiration_time=(
                        int(clock.now()) + rng.randint(1, 30)
                        if tif == "good_till_canceled" and rng.random() < 0.2
                        else None
                    ),
                    order_group_id=(
                        rng.choice(groups[user]) if groups[user] and rng.random() < 0.3 else None
                    ),
                )
            elif roll < 0.7:
                o = rng.choice(live)
                ex.amend_order(
                    user, o.order_id, ticker=o.ticker, side=o.book_side, price=price,
                    count=str(cc_to_count(o.filled) + rng.choice((1, 3, 10))),
                )  # fmt: skip
            elif roll < 0.8:
                ex.decrease_order(user, rng.choice(live).order_id, reduce_by="1")
            elif roll < 0.9:
                ex.cancel_order(user, rng.choice(live).order_id)
            elif roll < 0.93:
                ex.cancel_all(user)
            elif roll < 0.96:
                groups[user].append(ex.create_group(user, str(rng.choice((3, 10)))).group_id)
            elif roll < 0.98 and groups[user]:
                ex.reset_group(user, rng.choice(groups[user]))
            else:
                ex.set_paused(ticker, rng.random() < 0.5)
        except ExchangeError:
            pass  # refused requests must change nothing; the checks below say so
        clock.advance(rng.choice((0.0, 0.5, 3.0)))
        ex.advance()
        _check(ex, fees[0], f"seed {seed} step {step}")
    for ticker in tickers:
        ex.set_paused(ticker, False)
        ex.determine(ticker, rng.choice(("yes", "no")))
        ex.settle(ticker)
        _check(ex, fees[0], f"seed {seed} settle {ticker}")
    return fills[0]


@pytest.mark.parametrize("seed", range(40))
def test_money_is_conserved_and_books_stay_sound(seed: int) -> None:
    assert _run(seed, 250) >= 10  # the flow trades: the checks are not vacuous
