"""``decide_tob``: the naive top-of-book baseline the strategy lab compares the models with.

"tob: one tick above the best, up to theo minus edge". Each side quotes one tick better
than the best price of everyone else on its side (our own size excluded, as
:class:`~kmm_interactive.strategy.quoter.BookView` shows it), never beyond its edge limit
(theo − minimum edge − maker fee for a bid, the mirror for an ask); with nobody on its side
it quotes at the edge limit itself; and it never crosses the others' opposite best (it stays
one tick inside it: a crossing order would take, not make).

It is deliberately naive so that a comparison measures what the model and the competition
layer add: no quote table (it quotes when ``unit.table`` is None, as long as a theo is
known), no inventory skew, no break-even ceiling, no back-off, no hysteresis, and it
ignores ``UnitState.widen``. What it shares with :func:`~kmm_interactive.strategy.quoter.decide`,
by importing the same code rather than copying it, is everything that keeps it safe and
comparable:

* the halts (the engine's and the clock's) and the trading state: REDUCING quotes only the
  sides that shrink |q|, HALTED quotes nothing;
* the edge limit (:func:`risk.edge_limit`, net of the maker fee);
* our own bid and ask in a market kept a tick apart (:func:`quoter.clear_own_cross`);
* the cap (shrunk by book depth) and the sizes: the worst case of every resting order
  filling together stays inside the cap (:func:`quoter.size_quotes`);
* the :class:`~kmm_interactive.strategy.quoter.Decision` it returns, in the same units
  (ticks of each market's grid, exact dollar prices) with reasons in the same style
  ("<what> <price> (<why>)"), so the same execution code runs it.

Its theo is ``unit.theo`` when given, else the table's (:func:`quoter.theo_in_force`); with
neither it does not quote ("no theo"). Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from kmm_interactive.domain import GameSide, Side
from kmm_interactive.strategy import risk
from kmm_interactive.strategy.halts import HaltReason, TradingState, trading_state
from kmm_interactive.strategy.quoter import (
    Decision,
    DesiredQuote,
    GameState,
    QuoteParams,
    UnitDecision,
    UnitState,
    clear_own_cross,
    clock_halts,
    halted_reason,
    no_quote,
    side_theo,
    size_quotes,
    theo_in_force,
    unit_cap,
)


class TobMode(enum.StrEnum):
    """Why a top-of-book side sits where it does (the first words of its reason)."""

    OUTBID = "outbid"
    AT_LIMIT = "at edge limit"
    INSIDE = "inside the opposite side"
    NO_ROOM = "no room inside the opposite side"


def decide_tob(state: GameState, params: QuoteParams, now: datetime) -> Decision:
    """The quotes the naive top-of-book bot wants for ``state``'s game at ``now`` (see the
    module doc). Same halts, limits, caps and sizes as ``decide``; ``min_rest``,
    ``back_off_hold`` and ``over_exposed`` (beyond the flag it reports) play no part."""
    halts = state.halts | clock_halts(state.game, state.theo_as_of, params, now)
    trading = trading_state(halts)
    units = tuple(_unit(unit, params, trading, halts) for unit in state.units)
    return Decision(state.game.event_ticker, trading, halts, units)


def _unit(
    unit: UnitState, params: QuoteParams, trading: TradingState, halts: frozenset[HaltReason]
) -> UnitDecision:
    tickers = tuple(m.ticker for m in unit.markets)
    cap = unit_cap(unit, params)
    exposed = risk.over_exposed(unit.q, cap, params.over_exposed)
    theo_a = theo_in_force(unit)
    if trading is TradingState.HALTED or theo_a is None:
        why = halted_reason(halts) if trading is TradingState.HALTED else "no theo"
        return UnitDecision(
            tickers, unit.q, cap, exposed, tuple(no_quote(unit, s, why) for s in unit.sides)
        )
    planned = {side: _price_side(unit, side, theo_a, params, trading) for side in unit.sides}
    planned = clear_own_cross(unit, planned)
    return UnitDecision(
        tickers, unit.q, cap, exposed, size_quotes(unit, cap, params.quote_size, planned)
    )


def _price_side(
    unit: UnitState,
    side: GameSide,
    theo_a: Decimal,
    params: QuoteParams,
    trading: TradingState,
) -> DesiredQuote:
    market, book = unit.market(side), unit.book(side)
    grid, yes_side = market.grid, side.side
    if trading is TradingState.REDUCING and not risk.reduces(side, unit.q):
        return no_quote(unit, side, "reducing only")
    limit = risk.edge_limit(yes_side, side_theo(theo_a, side), params.min_edge, grid, market.fees)
    if limit is None:
        return no_quote(unit, side, "no price clears the edge")
    mine, opposite = (
        (book.best_bid, book.best_ask) if yes_side is Side.BID else (book.best_ask, book.best_bid)
    )
    step = yes_side.sign  # one tick more aggressive: a bid up, an ask down
    if mine is None:
        tick, mode = limit, TobMode.AT_LIMIT
    else:
        tick = risk.less_aggressive(yes_side, mine + step, limit)
        mode = TobMode.OUTBID if tick == mine + step else TobMode.AT_LIMIT
    if opposite is not None and (tick >= opposite if yes_side is Side.BID else tick <= opposite):
        tick, mode = opposite - step, TobMode.INSIDE
    if not 0 <= tick < len(grid):
        return no_quote(unit, side, str(TobMode.NO_ROOM))
    price = grid.price(tick)
    who = f"competitor {grid.price(mine)}" if mine is not None else "no competitor"
    reason = f"{mode} {price} ({who}, edge limit {grid.price(limit)})"
    return DesiredQuote(market.ticker, yes_side, side, tick, price, 0, reason, limit, mine)
