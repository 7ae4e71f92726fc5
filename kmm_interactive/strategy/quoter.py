"""``decide(game_state, params, now)``: the quotes one game wants, from theo to sizes.

For each inventory of the game (a two-team game is one inventory over its two books; a
three-way soccer game is three single-book inventories, a documented limitation), and for
each of its sides (bid A, ask A, bid B, ask B):

1. **State.** Halts in force (the engine's, plus the two this function derives from the
   clock: the game is about to start, the theo is too old) give ACTIVE, REDUCING (only
   sides that shrink |q|) or HALTED (nothing).
2. **Quote table.** The monopsony tick at (q, τ), τ = seconds until we stop quoting
   (start − buffer). The table was solved at the theo in force, or at the one before while
   a new table is solved; the limits below always use the theo in force.
   **Widen hook.** ``UnitState.widen`` then moves that tick away from theo by a whole
   number of ticks per side (positive: wider, a bid down and an ask up; negative:
   tighter), clamped to the grid. It is how optional layers (strategy/layers.py: fill
   rate, book imbalance, flow toxicity) act on the quote without a new table; because it
   acts before the limits and competition, no widen can take a side through its edge.
3. **Limits.** The edge limit (min edge after the maker fee); for the reducing sides of an
   over-exposed inventory, the break-even ceiling when it is more aggressive (risk.py).
   The monopsony tick is pulled inside the limit.
4. **Competition.** Outbid, join or back off (competition.py), with hysteresis. Our own
   bid and ask in one market are then kept a tick apart (:func:`clear_own_cross`).
5. **Sizes.** The worst case of every resting order filling together stays inside the cap
   (risk.py); a side left with no room does not quote.

Every side gets a reason string for the UI. Pure: no I/O, no clock reads; the engine and
the strategy lab call the same function.

The naive top-of-book baseline (strategy/naive.py) shares steps 1, 3 (the edge limit) and
5 through the public helpers below (:func:`clock_halts`, :func:`theo_in_force`,
:func:`unit_cap`, :func:`no_quote`, :func:`clear_own_cross`, :func:`size_quotes`), so a
comparison in the lab differs only in where each side is priced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

from kmm_interactive.domain import ONE, ZERO, Game, GameSide, Market, Side
from kmm_interactive.pricing.quote_table import QuoteTable
from kmm_interactive.strategy import risk
from kmm_interactive.strategy.competition import Mode, compete
from kmm_interactive.strategy.halts import HaltReason, TradingState, describe, trading_state


@dataclass(frozen=True)
class BookView:
    """One market's book as the others show it: best prices as ticks of the market's grid
    with our own resting size removed (None for an empty side), and their total size."""

    best_bid: int | None = None
    best_ask: int | None = None
    depth: Decimal = ZERO


@dataclass(frozen=True)
class Resting:
    """Our live order on one side: its tick, what rests, when its price last changed."""

    tick: int
    size: Decimal
    since: datetime


@dataclass(frozen=True)
class UnitState:
    """One inventory: ``markets`` is (A, B) for a two-team game or (X,) for one market of a
    three-way game; ``books`` lines up with it. ``q`` is signed in units of the first
    market's YES; ``claim_cost`` is the average cost of the claims q is made of, fees
    included (None when flat). ``table`` is None while none is solved."""

    markets: tuple[Market, ...]
    books: tuple[BookView, ...]
    table: QuoteTable | None
    q: Decimal = ZERO
    claim_cost: Decimal | None = None
    resting: Mapping[GameSide, Resting] = field(default_factory=lambda: MappingProxyType({}))
    #: When each side started backing off from a competitor (the last decision's
    #: ``backed_off_since``, carried forward by the caller).
    backed_off: Mapping[GameSide, datetime] = field(default_factory=lambda: MappingProxyType({}))
    #: The first market's theo in force, when it is newer than the table's (a new table is
    #: being solved): the limits use it, so a quote from the older table is still held
    #: inside the edge of the newer theo. None: the table's theo. (The naive top-of-book
    #: bot, strategy/naive.py, needs no table and prices from this alone.)
    theo: float | None = None
    #: Ticks by which each side's model (monopsony) tick moves away from theo before the
    #: limits and competition: positive widens (a bid down, an ask up), negative tightens;
    #: clamped to the grid. A side not in the mapping is not moved. The optional layers in
    #: strategy/layers.py produce it; the edge limit still binds whatever it says.
    widen: Mapping[GameSide, int] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if len(self.markets) not in (1, 2) or len(self.books) != len(self.markets):
            raise ValueError("a unit is one or two markets, with one book view each")
        for side, ticks in self.widen.items():
            if (
                not isinstance(side, GameSide)
                or isinstance(ticks, bool)
                or not isinstance(ticks, int)
            ):
                raise ValueError(
                    f"widen[{side!r}] = {ticks!r}: keys must be GameSide and values whole ticks"
                )

    @property
    def sides(self) -> tuple[GameSide, ...]:
        return tuple(GameSide) if len(self.markets) == 2 else (GameSide.BID_A, GameSide.ASK_A)

    def market(self, side: GameSide) -> Market:
        return self.markets[0 if side.leg.sign > 0 else 1]

    def book(self, side: GameSide) -> BookView:
        return self.books[0 if side.leg.sign > 0 else 1]


@dataclass(frozen=True)
class GameState:
    """Everything ``decide`` looks at for one game."""

    game: Game
    units: tuple[UnitState, ...]
    theo_as_of: datetime | None
    halts: frozenset[HaltReason] = frozenset()


@dataclass(frozen=True)
class QuoteParams:
    """The game's risk and quoting parameters (the sport profile with the trader's changes).
    γ, σ, A and k are in the quote table; these act after it."""

    cap: int
    quote_size: int
    min_edge: Decimal
    liquidity_factor: float
    over_exposed: float
    min_rest: float
    back_off_hold: float
    start_buffer: float
    theo_max_age: float

    def __post_init__(self) -> None:
        if self.cap < 1 or not 1 <= self.quote_size <= self.cap:
            raise ValueError(f"need 1 <= quote_size ({self.quote_size}) <= cap ({self.cap})")
        if self.min_edge < 0 or min(self.min_rest, self.back_off_hold, self.start_buffer) < 0:
            raise ValueError(
                "min_edge, min_rest, back_off_hold and start_buffer must not be negative"
            )
        if not 0 < self.over_exposed <= 1 or self.theo_max_age <= 0:
            raise ValueError("need 0 < over_exposed <= 1 and theo_max_age > 0")


@dataclass(frozen=True)
class DesiredQuote:
    """What one side wants: a tick and size, or nothing (``tick`` None, ``size`` 0)."""

    ticker: str
    side: Side
    game_side: GameSide
    tick: int | None
    price: Decimal | None
    size: int
    reason: str
    ceiling: int | None = None
    competitor: int | None = None
    #: Set while this side stays backed off from a competitor above its ceiling: the
    #: caller passes it back as ``UnitState.backed_off`` on the next decision.
    backed_off_since: datetime | None = None

    @property
    def quoting(self) -> bool:
        return self.tick is not None and self.size > 0


@dataclass(frozen=True)
class UnitDecision:
    tickers: tuple[str, ...]
    q: Decimal
    cap: int
    over_exposed: bool
    quotes: tuple[DesiredQuote, ...]


@dataclass(frozen=True)
class Decision:
    """The game's wanted quotes, keyed by (market ticker, side) for the order manager."""

    event_ticker: str
    state: TradingState
    halts: frozenset[HaltReason]
    units: tuple[UnitDecision, ...]

    @property
    def quotes(self) -> Mapping[tuple[str, Side], DesiredQuote]:
        return {(d.ticker, d.side): d for u in self.units for d in u.quotes}


def clock_halts(
    game: Game, theo_as_of: datetime | None, params: QuoteParams, now: datetime
) -> frozenset[HaltReason]:
    """The halts that follow from the time alone: the start is within the buffer, or the
    theo is missing or older than its maximum age."""
    found = set()
    if game.seconds_to_start(now) <= params.start_buffer:
        found.add(HaltReason.GAME_STARTED)
    if theo_as_of is None or (now - theo_as_of).total_seconds() > params.theo_max_age:
        found.add(HaltReason.STALE_THEO)
    return frozenset(found)


def theo_in_force(unit: UnitState) -> Decimal | None:
    """The first market's theo the limits use: ``unit.theo`` when set, else the table's
    (None with neither, e.g. a naive bot with no table and no theo given).

    Converted through ``repr`` (the shortest decimal that is this float), so the limits'
    Decimal arithmetic works on a few digits rather than the float's exact 50-digit
    expansion."""
    if unit.theo is not None:
        return Decimal(repr(unit.theo))
    if unit.table is not None:
        return Decimal(repr(unit.table.problem.p))
    return None


def side_theo(theo_a: Decimal, side: GameSide) -> Decimal:
    """The theo of ``side``'s own market: A's, or 1 − A's for team B's book."""
    return theo_a if side.leg.sign > 0 else ONE - theo_a


def unit_cap(unit: UnitState, params: QuoteParams) -> int:
    """The inventory's cap: the sport's, shrunk by the depth others show in its books."""
    depth = sum((b.depth for b in unit.books), ZERO)
    return risk.effective_cap(params.cap, params.quote_size, params.liquidity_factor, depth)


def halted_reason(halts: frozenset[HaltReason]) -> str:
    """The reason every side of a HALTED game shows."""
    return f"halted: {describe(halts)}"


def no_quote(unit: UnitState, side: GameSide, reason: str) -> DesiredQuote:
    """``side`` quotes nothing, and says why."""
    return DesiredQuote(unit.market(side).ticker, side.side, side, None, None, 0, reason)


def clear_own_cross(
    unit: UnitState, planned: Mapping[GameSide, DesiredQuote]
) -> dict[GameSide, DesiredQuote]:
    """``planned`` with our own bid and ask in each market kept apart by at least a tick.

    The book each side competes in has our own orders removed, so nothing above sees our
    other side; and when the break-even ceiling takes a reducing side past theo, the other
    side may meet it (a bid outbidding up to its edge limit, say). The exchange would cancel
    the later order as crossing (post-only) and the next decision would send it again, many
    times a second. So the side that does not reduce the inventory steps back to one tick
    off the other (the bid, when neither or both reduce), or does not quote."""
    out = dict(planned)
    sides: dict[str, dict[Side, DesiredQuote]] = {}
    for d in planned.values():
        if d.tick is not None:
            sides.setdefault(d.ticker, {})[d.side] = d
    for pair in sides.values():
        bid, ask = pair.get(Side.BID), pair.get(Side.ASK)
        if bid is None or ask is None or bid.tick is None or ask.tick is None:
            continue
        if bid.tick < ask.tick:
            continue
        bid_alone_reduces = risk.reduces(bid.game_side, unit.q) and not risk.reduces(
            ask.game_side, unit.q
        )
        keep, moved = (bid, ask) if bid_alone_reduces else (ask, bid)
        assert keep.tick is not None
        tick = keep.tick - moved.side.sign
        grid = unit.market(moved.game_side).grid
        mine = f"our own {keep.side.value}"
        if not 0 <= tick < len(grid):
            why = f"no room beside {mine} {grid.price(keep.tick)}"
            out[moved.game_side] = no_quote(unit, moved.game_side, why)
            continue
        price = grid.price(tick)
        out[moved.game_side] = DesiredQuote(
            moved.ticker,
            moved.side,
            moved.game_side,
            tick,
            price,
            0,
            f"clear of {mine} {price} (it is at {grid.price(keep.tick)})",
            moved.ceiling,
            moved.competitor,
            moved.backed_off_since,
        )
    return out


def size_quotes(
    unit: UnitState, cap: int, quote_size: int, planned: Mapping[GameSide, DesiredQuote]
) -> tuple[DesiredQuote, ...]:
    """Give the priced sides of ``planned`` their sizes (built with size 0, never shared
    yet): every resting order can fill at once and the inventory stays inside ``cap``
    (:func:`risk.allocate_sizes`); a side left with no room becomes "at cap". One place,
    so every strategy that goes through it has the same worst case."""
    sizes = risk.allocate_sizes(
        unit.q, cap, quote_size, [s for s, d in planned.items() if d.tick is not None]
    )
    quotes: list[DesiredQuote] = []
    for side, wanted in planned.items():
        size = sizes.get(side, 0)
        if wanted.tick is None:
            quotes.append(wanted)
        elif size == 0:
            quotes.append(no_quote(unit, side, f"at cap ({cap}, q = {unit.q})"))
        else:
            # Built by the caller and not yet shared: its size is set once here, as a frozen
            # dataclass's __post_init__ would (a copy costs more than the whole side).
            object.__setattr__(wanted, "size", size)
            quotes.append(wanted)
    return tuple(quotes)


def widened(side: Side, tick: int, ticks: int, levels: int) -> int:
    """``tick`` moved ``ticks`` away from theo (a bid down, an ask up; negative: toward
    theo), clamped to the grid's ``levels``."""
    moved = tick - ticks if side is Side.BID else tick + ticks
    return min(max(moved, 0), levels - 1)


def decide(state: GameState, params: QuoteParams, now: datetime) -> Decision:
    """The quotes ``state``'s game wants at ``now`` (see the module doc)."""
    halts = state.halts | clock_halts(state.game, state.theo_as_of, params, now)
    trading = trading_state(halts)
    tau = state.game.seconds_to_start(now) - params.start_buffer
    units = tuple(_decide_unit(unit, params, now, trading, halts, tau) for unit in state.units)
    return Decision(state.game.event_ticker, trading, halts, units)


def _decide_unit(
    unit: UnitState,
    params: QuoteParams,
    now: datetime,
    trading: TradingState,
    halts: frozenset[HaltReason],
    tau: float,
) -> UnitDecision:
    tickers = tuple(m.ticker for m in unit.markets)
    cap = unit_cap(unit, params)
    exposed = risk.over_exposed(unit.q, cap, params.over_exposed)
    theo_a = theo_in_force(unit)
    if trading is TradingState.HALTED or unit.table is None or theo_a is None:
        why = halted_reason(halts) if trading is TradingState.HALTED else "no quote table"
        idle = tuple(no_quote(unit, s, why) for s in unit.sides)
        return UnitDecision(tickers, unit.q, cap, exposed, idle)
    monopsony = unit.table.quote(unit.q, tau)
    planned: dict[GameSide, DesiredQuote] = {}
    for side in unit.sides:
        planned[side] = _price_side(
            unit, side, monopsony[side], theo_a, params, now, trading, exposed
        )
    planned = clear_own_cross(unit, planned)
    return UnitDecision(
        tickers, unit.q, cap, exposed, size_quotes(unit, cap, params.quote_size, planned)
    )


def _price_side(
    unit: UnitState,
    side: GameSide,
    own: int | None,
    theo_a: Decimal,
    params: QuoteParams,
    now: datetime,
    trading: TradingState,
    exposed: bool,
) -> DesiredQuote:
    market, book = unit.market(side), unit.book(side)
    grid, fees, yes_side = market.grid, market.fees, side.side
    if trading is TradingState.REDUCING and not risk.reduces(side, unit.q):
        return no_quote(unit, side, "reducing only")
    if own is None:
        return no_quote(unit, side, "no price pays at this inventory")
    shift = unit.widen.get(side, 0)
    if shift:
        own = widened(yes_side, own, shift, len(grid))
    theo = side_theo(theo_a, side)
    ceiling = risk.edge_limit(yes_side, theo, params.min_edge, grid, fees)
    limit_note = "edge"
    if exposed and unit.claim_cost is not None and risk.reduces(side, unit.q):
        even = risk.break_even_ceiling(yes_side, unit.claim_cost, grid, fees)
        if risk.more_aggressive(yes_side, ceiling, even) != ceiling:
            ceiling, limit_note = even, "break-even"
    if ceiling is None:
        return no_quote(unit, side, "no price clears the edge")
    own = risk.less_aggressive(yes_side, own, ceiling)
    resting = unit.resting.get(side)
    since = unit.backed_off.get(side)
    backing = since is not None and (now - since).total_seconds() < params.back_off_hold
    mine, other = (
        (book.best_bid, book.best_ask)
        if yes_side is Side.BID
        else (
            book.best_ask,
            book.best_bid,
        )
    )
    result = compete(
        yes_side,
        own,
        ceiling,
        best_other=mine,
        opposite_other=other,
        levels=len(grid),
        resting=resting.tick if resting else None,
        resting_age=(now - resting.since).total_seconds() if resting else None,
        min_rest=params.min_rest,
        backing_off=backing,
    )
    if result.mode is Mode.BACK_OFF:
        memory = since if backing else now
    else:
        memory = since if result.mode is Mode.HOLD else None
    if result.tick is None:
        return no_quote(unit, side, str(result.mode))
    price = grid.price(result.tick)
    reason = f"{result.mode} {price}"
    if result.mode in (Mode.OUTBID, Mode.JOIN, Mode.BACK_OFF) and mine is not None:
        reason += f" (competitor {grid.price(mine)}, {limit_note} limit {grid.price(ceiling)})"
    elif limit_note == "break-even":
        reason += f" (break-even limit {grid.price(ceiling)})"
    if shift:
        reason += f" (widen {shift:+d})"
    return DesiredQuote(
        market.ticker,
        yes_side,
        side,
        result.tick,
        price,
        0,
        reason,
        ceiling,
        result.competitor,
        memory,
    )
