"""The local L2 order book of one market, on the YES scale, kept from WS snapshots and deltas.

Bids and asks are YES prices (NO levels were turned into YES asks by the parser). Sizes are
exact ``Decimal`` contracts, accumulated delta by delta; a level that nets to zero is gone.

Staleness: the book says when it cannot be trusted rather than guessing. It is stale

* before its first snapshot;
* when the connection says so (:meth:`OrderBook.mark_stale`: a seq gap, a lost subscription,
  a disconnect);
* when a delta would take a level below zero: a delta was missed. The level is removed
  (the closest we can get without the missing delta) and :attr:`OrderBook.negative_levels`
  counts it;
* when the book becomes crossed (best bid >= best ask). Kalshi matches crossing orders at
  once, so a crossed local book also means something was missed; :attr:`OrderBook.crossings`
  counts it. The levels are kept as reported.

Only a snapshot makes a stale book fresh again (a crossed snapshot is accepted but stays
stale). Nothing here raises on exchange data: surprises become staleness and counters.

Cost: each side is a dict of levels plus a sorted list of its prices, so a delta on an
existing level is a dict update, and only adding or removing a level pays a bisect; the
best price is the end of the list.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from kmm_interactive.domain import ZERO, Side
from kmm_interactive.kalshi.models import BookLevels, Level


class OrderBook:
    """One market's YES book; mutate it with :meth:`apply_snapshot` and :meth:`apply_delta`."""

    __slots__ = (
        "_ask_prices",
        "_asks",
        "_bid_prices",
        "_bids",
        "crossings",
        "negative_levels",
        "stale",
        "stale_reason",
        "ticker",
        "updated",
        "updates",
    )

    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self._bids: dict[Decimal, Decimal] = {}
        self._asks: dict[Decimal, Decimal] = {}
        # Ascending on both sides: the best bid is the last price, the best ask the first.
        self._bid_prices: list[Decimal] = []
        self._ask_prices: list[Decimal] = []
        self.stale = True
        self.stale_reason: str | None = "no snapshot yet"
        #: Exchange time of the last delta when known, else local time of the last change.
        self.updated: datetime | None = None
        #: Snapshots and deltas applied.
        self.updates = 0
        #: Deltas that would have taken a level below zero (each marked the book stale).
        self.negative_levels = 0
        #: Times the book became crossed (each marked it stale).
        self.crossings = 0

    @classmethod
    def from_levels(cls, ticker: str, levels: BookLevels) -> OrderBook:
        """A fresh book holding ``levels`` (e.g. a REST order book, to compare with)."""
        book = cls(ticker)
        book.apply_snapshot(levels)
        return book

    # ------------------------------------------------------------------ changes

    def apply_snapshot(self, levels: BookLevels, *, ts: datetime | None = None) -> None:
        """Replace the whole book; it is fresh again unless the snapshot itself is crossed."""
        self._bids, self._bid_prices = _side_of(levels.bids)
        self._asks, self._ask_prices = _side_of(levels.asks)
        self.stale, self.stale_reason = False, None
        self.updates += 1
        self.updated = ts or datetime.now(UTC)
        if self._crossed():
            self.crossings += 1
            self.mark_stale("the snapshot is crossed")

    def apply_delta(
        self, side: Side, price: Decimal, delta: Decimal, *, ts: datetime | None = None
    ) -> None:
        """Change the resting size at YES ``price`` on ``side`` by the signed ``delta``."""
        if side is Side.BID:
            sizes, prices = self._bids, self._bid_prices
        else:
            sizes, prices = self._asks, self._ask_prices
        old = sizes.get(price)
        new = delta if old is None else old + delta
        self.updates += 1
        self.updated = ts or datetime.now(UTC)
        if new > 0:
            sizes[price] = new
            if old is None:
                insort(prices, price)
                # Only a new level can cross the book: a bigger one at a known price cannot.
                if self._crossed():
                    self.crossings += 1
                    self.mark_stale(f"crossed after a {side.value} at {price}")
            return
        if old is not None:
            del sizes[price]
            del prices[bisect_left(prices, price)]
        if new < 0:
            self.negative_levels += 1
            self.mark_stale(f"{side.value} {price} would go to {new}: a delta was missed")

    def mark_stale(self, reason: str) -> None:
        """Distrust the book until the next snapshot; the first reason given is kept."""
        if not self.stale:
            self.stale, self.stale_reason = True, reason

    # ------------------------------------------------------------------ reads

    def best_bid(self) -> Level | None:
        """(price, size) of the highest bid, None when there are no bids."""
        if not self._bid_prices:
            return None
        p = self._bid_prices[-1]
        return p, self._bids[p]

    def best_ask(self) -> Level | None:
        """(price, size) of the lowest ask, None when there are no asks."""
        if not self._ask_prices:
            return None
        p = self._ask_prices[0]
        return p, self._asks[p]

    def levels(self, side: Side) -> list[Level]:
        """Every level of ``side``, best first."""
        if side is Side.BID:
            return [(p, self._bids[p]) for p in reversed(self._bid_prices)]
        return [(p, self._asks[p]) for p in self._ask_prices]

    def depth(self, side: Side, to_price: Decimal) -> Decimal:
        """Total size at prices at least as good as ``to_price`` (bids >= it, asks <= it)."""
        if side is Side.BID:
            sizes = self._bids
            prices = self._bid_prices[bisect_left(self._bid_prices, to_price) :]
        else:
            sizes = self._asks
            prices = self._ask_prices[: bisect_right(self._ask_prices, to_price)]
        return sum((sizes[p] for p in prices), ZERO)

    def size_at(self, side: Side, price: Decimal) -> Decimal:
        """Resting size at ``price`` on ``side`` (zero when there is no level)."""
        return (self._bids if side is Side.BID else self._asks).get(price, ZERO)

    def without(self, own: Mapping[tuple[Side, Decimal], Decimal]) -> OrderBook:
        """A copy with our own resting sizes taken out: what the competition shows.

        A level that our size covers (or more than covers, when the book has not caught up
        with our order yet) is dropped. The copy keeps this book's staleness and counters.
        """
        view = OrderBook(self.ticker)
        bids, asks = dict(self._bids), dict(self._asks)
        for (side, at), mine in own.items():
            sizes = bids if side is Side.BID else asks
            if at in sizes:
                left = _others_at(sizes[at], mine)
                if left:
                    sizes[at] = left
                else:
                    del sizes[at]
        view._bids, view._bid_prices = bids, sorted(bids)
        view._asks, view._ask_prices = asks, sorted(asks)
        for name in ("stale", "stale_reason", "updated", "updates", "negative_levels", "crossings"):
            setattr(view, name, getattr(self, name))
        return view

    def competition(
        self, own: Mapping[tuple[Side, Decimal], Decimal]
    ) -> tuple[Level | None, Level | None, Decimal]:
        """The others' best bid, best ask and total size: :meth:`without`'s view, read
        without copying the book (what every decision asks for)."""
        best: list[Level | None] = [None, None]
        depth = ZERO
        for i, side in enumerate(Side):
            for at, size in self.levels(side):
                left = _others_at(size, own.get((side, at), ZERO))
                if left:
                    depth += left
                    if best[i] is None:
                        best[i] = (at, left)
        return best[0], best[1], depth

    def as_levels(self) -> BookLevels:
        """The book as :class:`BookLevels`, each side best first."""
        return BookLevels(tuple(self.levels(Side.BID)), tuple(self.levels(Side.ASK)))

    def _crossed(self) -> bool:
        return bool(self._bid_prices and self._ask_prices) and (
            self._bid_prices[-1] >= self._ask_prices[0]
        )

    def __eq__(self, other: object) -> bool:
        """Same ticker and the same levels (staleness and counters are not compared)."""
        if not isinstance(other, OrderBook):
            return NotImplemented
        return (self.ticker, self._bids, self._asks) == (other.ticker, other._bids, other._asks)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        state = f"stale: {self.stale_reason}" if self.stale else "fresh"
        return (
            f"OrderBook({self.ticker}, bid={self.best_bid()}, ask={self.best_ask()}, "
            f"{len(self._bids)}x{len(self._asks)} levels, {state})"
        )


def _others_at(size: Decimal, mine: Decimal) -> Decimal:
    """What others show at a level where we rest ``mine``: nothing when ours covers it (or
    more than covers it, when the book has not caught up with our order yet)."""
    return max(size - mine, ZERO)


def _side_of(levels: Iterable[Level]) -> tuple[dict[Decimal, Decimal], list[Decimal]]:
    """A side's dict and sorted prices; zero-size levels are not kept, repeats add up."""
    sizes: dict[Decimal, Decimal] = {}
    for at, size in levels:
        sizes[at] = sizes.get(at, ZERO) + size
    sizes = {at: size for at, size in sizes.items() if size > 0}
    return sizes, sorted(sizes)
