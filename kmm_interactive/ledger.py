"""Positions and PnL kept from fills: pure accounting, shared by the engine and the strategy
lab.

**The book** (:class:`PositionBook`) holds, per market, a signed YES position (+ YES held,
− NO held) and the cost of the open claims, fees included, so that break-even ceilings can be
read without an API call. A bid at b buys a YES claim for b; an ask at a buys a NO claim for
1 − a. A fill first closes claims of the other kind (each closed claim redeems against the
one bought, so it yields 1 − the bought claim's price) and opens new claims with what is
left; its fee is split pro rata between the two parts. Closing realizes
``proceeds − average cost × closed − fee``; opening adds ``price × count + fee`` to the open
cost. So fees are counted once, inside open cost and realized PnL; ``fees`` reports them
beside, for information, and ``total = realized + unrealized``. At every moment
``realized − open_cost + NO claims held = Σ fill.cash_delta`` exactly (the tests check it).
A partial close moves the proportional share of the open cost, to the micro-dollar (Kalshi's
fixed-point precision); the rest stays with the open claims, and closing a whole position
moves all of it. A fill is applied once per ``fill_id``: the WebSocket and REST backfills
may both deliver it.

**Settlement** pays $1 per YES claim on "yes" and $1 per NO claim on "no"; "void" and
"scalar" pay the settlement value per YES (and 1 − it per NO) and are refused without one.
A fill that arrives after its market settled (a late backfill) was traded before the
settlement, so it is settled at once at the same value.

How a position taken from elsewhere (the exchange's, at reconciliation) is priced is
documented on :meth:`PositionBook.adopt`.

Failure semantics: bad input (an unknown settlement result, a void result without a value,
a theo outside [0, 1], a game of three markets) raises ``ValueError`` and changes nothing.
No I/O, no clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Final

from kmm_interactive.domain import (
    DOLLAR_DECIMALS,
    ONE,
    ZERO,
    Fill,
    Side,
    game_inventory,
    no_price,
)

log = logging.getLogger(__name__)

#: Kalshi's FixedPointDollars precision; shares of a cost are kept to it.
MICRO_DOLLAR: Final = ONE.scaleb(-DOLLAR_DECIMALS)
#: What each result pays per YES claim (a NO claim pays $1 minus it).
_YES_PAYS: Final = {"yes": ONE, "no": ZERO}
_VALUED_RESULTS: Final = frozenset({"void", "scalar"})


def _share(amount: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """``amount × part / whole`` to the micro-dollar; all of it when the part is the whole."""
    return amount if part == whole else (amount * part / whole).quantize(MICRO_DOLLAR)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Holding:
    """One market's position as the book knows it.

    ``position`` is signed (+ YES, − NO); ``open_cost`` is what the open claims cost, fees
    included; ``realized`` is closed PnL net of fees; ``fees`` every fee paid (already inside
    the other two); ``volume`` the contracts traded; ``fills`` the fills applied.
    """

    ticker: str
    position: Decimal = ZERO
    open_cost: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    volume: Decimal = ZERO
    fills: int = 0
    last_fill: datetime | None = None

    @property
    def avg_cost(self) -> Decimal | None:
        """Cost per open claim (YES claims when long, NO claims when short), fees included;
        None when flat."""
        return self.open_cost / abs(self.position) if self.position else None

    def value(self, theo_yes: Decimal) -> Decimal:
        """Unrealized PnL: the open claims marked at ``theo_yes`` (NO claims at 1 − theo),
        less what they cost."""
        if not ZERO <= theo_yes <= ONE:
            raise ValueError(f"{self.ticker}: theo {theo_yes} must lie between 0 and 1")
        claim_value = theo_yes if self.position > 0 else no_price(theo_yes)
        return abs(self.position) * claim_value - self.open_cost


@dataclass(frozen=True)
class Exposure:
    """A game's (or a market's) inventory ``q`` in team-A units, and the average cost per
    contract, fees included, of the claims ``q`` is made of (None when ``q`` is 0)."""

    q: Decimal
    claim_cost: Decimal | None


@dataclass(frozen=True)
class PnL:
    """``total = realized + unrealized``; ``fees`` is already inside both (information)."""

    realized: Decimal
    unrealized: Decimal
    fees: Decimal
    total: Decimal


# --------------------------------------------------------------------------- accounting


def _after_fill(h: Holding, fill: Fill) -> Holding:
    bought = fill.price if fill.side is Side.BID else no_price(fill.price)
    held = h.position
    closing = min(fill.count, max(-fill.side.sign * held, ZERO))
    opening = fill.count - closing
    closing_fee = _share(fill.fee, closing, fill.count) if closing else ZERO
    realized, open_cost = h.realized, h.open_cost
    if closing:
        basis = _share(open_cost, closing, abs(held))
        # A closed claim redeems against the one just bought: together they pay $1.
        realized += no_price(bought) * closing - basis - closing_fee
        open_cost -= basis
    if opening:
        open_cost += bought * opening + (fill.fee - closing_fee)
    last = fill.ts if h.last_fill is None else max(h.last_fill, fill.ts)
    return replace(
        h,
        position=held + fill.position_delta,
        open_cost=open_cost,
        realized=realized,
        fees=h.fees + fill.fee,
        volume=h.volume + fill.count,
        fills=h.fills + 1,
        last_fill=last,
    )


def _yes_pays(result: str, settlement_value: Decimal | None) -> Decimal:
    if result in _YES_PAYS:
        return _YES_PAYS[result]
    if result not in _VALUED_RESULTS:
        raise ValueError(f"settlement result {result!r} (allowed: yes, no, void, scalar)")
    if settlement_value is None:
        raise ValueError(f"a {result!r} settlement needs the settlement value per YES contract")
    if not ZERO <= settlement_value <= ONE:
        raise ValueError(f"settlement value {settlement_value} must lie between 0 and 1")
    return settlement_value


class PositionBook:
    """Every market's :class:`Holding`, kept from fills; no I/O."""

    def __init__(self) -> None:
        self._holdings: dict[str, Holding] = {}
        self._seen: set[str] = set()
        self._settled: dict[str, tuple[str, Decimal]] = {}

    def apply_fill(self, fill: Fill) -> bool:
        """Book one fill; False (and nothing changes) if its ``fill_id`` was applied before."""
        if fill.fill_id in self._seen:
            return False
        self._seen.add(fill.fill_id)
        self._holdings[fill.ticker] = _after_fill(self.holding(fill.ticker), fill)
        if fill.ticker in self._settled:
            self._pay_out(fill.ticker, self._settled[fill.ticker][1])
        return True

    def holding(self, ticker: str) -> Holding:
        """The market's holding; a flat one for a market never traded."""
        return self._holdings.get(ticker) or Holding(ticker)

    def holdings(self) -> list[Holding]:
        """Every market traded, adopted or settled, by ticker."""
        return [self._holdings[t] for t in sorted(self._holdings)]

    def is_settled(self, ticker: str) -> bool:
        """The market was settled here (its result known; the exchange may pay out later)."""
        return ticker in self._settled

    def settle(self, ticker: str, result: str, settlement_value: Decimal | None = None) -> Decimal:
        """Pay the open claims out and close the position; returns the realized change.

        Settling a market again with the same result changes nothing and returns 0; another
        result raises ``ValueError``."""
        if ticker in self._settled:
            settled_as = self._settled[ticker][0]
            if result != settled_as:
                raise ValueError(f"{ticker} already settled {settled_as!r}, not {result!r}")
            return ZERO
        yes_pays = _yes_pays(result, settlement_value)
        self._settled[ticker] = (result, yes_pays)
        return self._pay_out(ticker, yes_pays)

    def _pay_out(self, ticker: str, yes_pays: Decimal) -> Decimal:
        h = self.holding(ticker)
        payout = abs(h.position) * (yes_pays if h.position > 0 else no_price(yes_pays))
        change = payout - h.open_cost
        self._holdings[ticker] = replace(
            h, position=ZERO, open_cost=ZERO, realized=h.realized + change
        )
        return change

    def adopt(
        self,
        ticker: str,
        position: Decimal,
        *,
        reason: str,
        exchange_cost: Decimal | None = None,
    ) -> Decimal:
        """Take the exchange's ``position`` as ours; returns the change in position.

        The gap's cash is unknown, so realized PnL and fees are left alone. On the same side,
        the open cost is scaled to the new size (the average cost is kept). When we were flat
        or the side flips, the claims are priced at ``exchange_cost`` (the exchange's market
        exposure: what the position cost, without fees), or, when it is not given, at $1
        each, the most a claim can cost: a guessed low cost would let a break-even ceiling
        pay above theo, and would show a gain that was never made.
        """
        h = self.holding(ticker)
        change = position - h.position
        if not change:
            return ZERO
        if not position:
            open_cost = ZERO
        elif h.position * position > 0:
            open_cost = _share(h.open_cost, abs(position), abs(h.position))
        elif exchange_cost is not None:
            if exchange_cost < 0:
                raise ValueError(f"{ticker}: exchange cost {exchange_cost} must not be negative")
            open_cost = exchange_cost
        else:
            open_cost = abs(position)
        log.warning("%s: adopting position %s (ours %s): %s", ticker, position, h.position, reason)
        self._holdings[ticker] = replace(h, position=position, open_cost=open_cost)
        return change

    def exposure(self, tickers: tuple[str] | tuple[str, str]) -> Exposure:
        """One market: its position and average cost. A two-team game ``(A, B)``: ``q =
        pos_A − pos_B`` and the average cost of the claims that pay if the team ``q`` points
        to wins (YES A and NO B for ``q > 0``; YES B and NO A for ``q < 0``)."""
        if len(tickers) == 1:
            h = self.holding(tickers[0])
            return Exposure(h.position, h.avg_cost)
        if len(tickers) != 2 or tickers[0] == tickers[1]:
            raise ValueError(f"exposure needs one market or two distinct ones, got {tickers}")
        a, b = (self.holding(t) for t in tickers)
        q = game_inventory(a.position, b.position)
        if not q:
            return Exposure(q, None)
        # Holdings of the claims q points to: YES on the leading market, NO on the other.
        sign = 1 if q > 0 else -1
        claims = [h for h, s in ((a, sign), (b, -sign)) if h.position * s > 0]
        contracts = sum((abs(h.position) for h in claims), ZERO)
        cost = sum((h.open_cost for h in claims), ZERO)
        return Exposure(q, cost / contracts)

    def pnl(self, theos: Mapping[str, Decimal], tickers: Iterable[str] | None = None) -> PnL:
        """Realized PnL, and unrealized PnL at theo for the markets that have one (a market
        without a theo contributes its realized PnL only)."""
        chosen = self.holdings() if tickers is None else [self.holding(t) for t in tickers]
        realized = sum((h.realized for h in chosen), ZERO)
        unrealized = sum((h.value(theos[h.ticker]) for h in chosen if h.ticker in theos), ZERO)
        fees = sum((h.fees for h in chosen), ZERO)
        return PnL(realized, unrealized, fees, realized + unrealized)
