"""Risk rules on one inventory: price limits (edge and break-even), the cap, and sizes.

Every limit here is net of the maker fee (the fee a resting quote pays when it fills, on
series that charge one), computed exactly with :func:`pricing.fees.expected_fee`.

* **Edge limit**: a bid is sent only at a price whose cost, fee included, leaves at least
  ``min_edge`` below theo; an ask only where its proceeds, fee taken off, are at least
  ``min_edge`` above theo.
* **Break-even ceiling**: when over-exposed, the side that reduces the exposure may pay up
  to the price that locks zero PnL on the position (its average cost, fees included), even
  through theo. Holding claims that pay $1 if team X wins, bought at ``claim_cost`` each,
  buying the opposite claim at x (a bid on the other book, or an ask on this one at
  1 − x) locks $1 − claim_cost − x − fee(x) per pair. The seed's example: long A at 45¢
  with B's theo at 52¢ → we bid B up to about 54¢, where without the exposure we would not
  bid B above 52¢ minus the edge.
* **Cap**: the game's cap is the sport's, shrunk to ``liquidity_factor`` × the depth others
  show (never below one quote).
* **Headroom**: the fills of every resting order on the sides that raise q can arrive
  together (both books), so ``q + Σ raising sizes ≤ cap`` and ``q − Σ lowering sizes ≥
  −cap``. Sizes shrink, then stop, as the room runs out.

All functions are pure; bad arguments raise ``ValueError``.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from decimal import ROUND_FLOOR, Decimal
from typing import Final

from kmm_interactive.domain import ONE, GameSide, PriceGrid, SeriesFees, Side
from kmm_interactive.pricing.fees import expected_fee


@functools.lru_cache(maxsize=1024)
def _net_levels(grid: PriceGrid, fees: SeriesFees) -> tuple[tuple[Decimal, ...], ...]:
    """Per level: the price plus the maker fee (what a bid pays) and the price minus it
    (what an ask keeps). Both rise with the price (the fee's slope is below 1), so they can
    be searched by bisection."""
    fee = [expected_fee(p, maker=True, fees=fees) for p in grid.levels]
    paid = tuple(p + f for p, f in zip(grid.levels, fee, strict=True))
    kept = tuple(p - f for p, f in zip(grid.levels, fee, strict=True))
    return paid, kept


def bid_limit(grid: PriceGrid, fees: SeriesFees, max_cost: Decimal) -> int | None:
    """The highest tick whose price plus the maker fee is at most ``max_cost``."""
    paid, _ = _net_levels(grid, fees)
    i = bisect_right(paid, max_cost) - 1
    return i if i >= 0 else None


def ask_limit(grid: PriceGrid, fees: SeriesFees, min_proceeds: Decimal) -> int | None:
    """The lowest tick whose price minus the maker fee is at least ``min_proceeds``."""
    _, kept = _net_levels(grid, fees)
    i = bisect_left(kept, min_proceeds)
    return i if i < len(kept) else None


def edge_limit(
    side: Side, theo: Decimal, min_edge: Decimal, grid: PriceGrid, fees: SeriesFees
) -> int | None:
    """The most aggressive tick that keeps ``min_edge`` against ``theo`` after the fee:
    the ceiling of a bid, the floor of an ask (None when no price on the grid does)."""
    if side is Side.BID:
        return bid_limit(grid, fees, theo - min_edge)
    return ask_limit(grid, fees, theo + min_edge)


def break_even_ceiling(
    side: Side, claim_cost: Decimal, grid: PriceGrid, fees: SeriesFees
) -> int | None:
    """The most aggressive tick at which an order that reduces a position still locks
    zero PnL on it (see the module doc).

    ``claim_cost`` is what each held claim cost, fees included: for an exposure to team X,
    a YES X bought at p cost p (+ its fee), a NO on the other team sold at a YES price s
    cost 1 − s (+ fee). ``side`` is the reducing order's side on the YES book it rests on:
    a ``BID`` buys the opposite claim (the other team's YES, or YES on this market when
    the held claims are NO), so it may pay up to x with x + fee(x) ≤ 1 − claim_cost; an
    ``ASK`` sells the held YES claim, so it may go down to a with a − fee(a) ≥ claim_cost.
    """
    if not 0 < claim_cost < 1 + ONE:  # a claim can cost up to $1 plus fees, never nothing
        raise ValueError(f"claim_cost = {claim_cost}: must be a cost per contract in (0, 2)")
    if side is Side.BID:
        return bid_limit(grid, fees, ONE - claim_cost)
    return ask_limit(grid, fees, claim_cost)


def more_aggressive(side: Side, a: int | None, b: int | None) -> int | None:
    """The more aggressive of two ticks for ``side`` (higher bid, lower ask); None loses."""
    if a is None or b is None:
        return a if b is None else b
    return max(a, b) if side is Side.BID else min(a, b)


def less_aggressive(side: Side, a: int, b: int) -> int:
    return min(a, b) if side is Side.BID else max(a, b)


def effective_cap(cap: int, quote_size: int, liquidity_factor: float, depth: Decimal) -> int:
    """The game's cap: the sport's, shrunk to ``liquidity_factor`` × the contracts others
    show in its books, but never below one quote (a cap below the quote size could never
    be quoted)."""
    if cap < 1 or quote_size < 1:
        raise ValueError(f"cap = {cap}, quote_size = {quote_size}: both must be at least 1")
    if not (math.isfinite(liquidity_factor) and liquidity_factor > 0) or depth < 0:
        raise ValueError(f"liquidity_factor = {liquidity_factor}, depth = {depth}: need > 0, >= 0")
    by_liquidity = int(float(depth) * liquidity_factor)
    return min(cap, max(quote_size, by_liquidity))


def reduces(side: GameSide, q: Decimal) -> bool:
    """Whether a fill on ``side`` moves the inventory toward zero (never when flat)."""
    return (q > 0 and side.q_sign < 0) or (q < 0 and side.q_sign > 0)


def over_exposed(q: Decimal, cap: int, fraction: float) -> bool:
    """|q| has reached ``fraction`` of the cap: break-even ceilings apply to reducing sides."""
    return q != 0 and abs(q) >= Decimal(repr(fraction)) * cap


def allocate_sizes(
    q: Decimal, cap: int, quote_size: int, sides: Iterable[GameSide]
) -> dict[GameSide, int]:
    """Whole-contract sizes for the sides that want to quote, such that every resting order
    of a direction can fill at once without passing the cap: raising sides share
    ``cap − q``, lowering sides ``cap + q``. Each side gets at most ``quote_size``; room
    that does not split evenly goes to the earlier sides (in ``GameSide`` order); a side
    left with nothing gets 0 (it must not quote)."""
    if cap < 0 or quote_size < 0:
        raise ValueError(f"cap = {cap}, quote_size = {quote_size}: must not be negative")
    room = {
        +1: _whole(Decimal(cap) - q),
        -1: _whole(Decimal(cap) + q),
    }
    wanted: Mapping[int, list[GameSide]] = {
        sign: sorted((s for s in set(sides) if s.q_sign == sign), key=_order) for sign in room
    }
    sizes: dict[GameSide, int] = {}
    for sign, group in wanted.items():
        left = max(room[sign], 0)
        for i, side in enumerate(group):
            share = -(-left // (len(group) - i))  # ceil: earlier sides take the odd contract
            sizes[side] = min(quote_size, share)
            left -= sizes[side]
    return sizes


_ORDER: Final = {side: i for i, side in enumerate(GameSide)}


def _order(side: GameSide) -> int:
    return _ORDER[side]


def _whole(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))
