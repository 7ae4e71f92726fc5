"""Value types shared by every layer: prices and the tick grid, sides, games, fills, orders.

Money and prices are exact here: ``Decimal`` dollars parsed from Kalshi's fixed-point
strings, or integer ticks of a market's price grid. Floats never enter this module.

A *tick* is the index of a valid price on one market's grid (tick 0 is the lowest valid
price above $0). Grids can be non-uniform (``tapered_deci_cent`` is $0.001 in the tails and
$0.01 in the middle), so "one tick better" means the next valid price, not a fixed step.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Final

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
#: Kalshi's ``FixedPointDollars`` allows up to six decimals; ``FixedPointCount`` two.
DOLLAR_DECIMALS: Final = 6
COUNT_DECIMALS: Final = 2
#: Prices go out with at least four decimals ("0.5600"), as Kalshi prints them.
WIRE_PRICE_DECIMALS: Final = 4


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC: every clock the engine is given by default."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------- fixed point


#: Plain decimal notation, ASCII digits only: what Kalshi prints ("0.5600", "-4.00", "10").
_PLAIN_DECIMAL: Final = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?|[+-]?\.[0-9]+")
#: No price, count or balance comes near 10^15; bigger values are hostile or broken input,
#: refused before any arithmetic (10^999999 would take the CPU for a minute).
_MAX_MAGNITUDE: Final = 15


def _to_decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool | float):
        # A float has already lost the exact value; refuse it rather than guess.
        raise TypeError(f"{what} must be a string, int or Decimal, not {type(value).__name__}")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 64 or not _PLAIN_DECIMAL.fullmatch(text):
            raise ValueError(f"{what} = {value[:64]!r} is not a plain decimal number")
        value = text
    if isinstance(value, Decimal | int | str):
        try:
            result = Decimal(value)
        except (InvalidOperation, ValueError):
            raise ValueError(f"{what} = {value!r} is not a number") from None
    else:
        raise TypeError(f"{what} must be a string, int or Decimal, not {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{what} = {value!r} is not a finite number")
    if result and result.adjusted() >= _MAX_MAGNITUDE:
        raise ValueError(f"{what} is too large (at most {_MAX_MAGNITUDE} digits before the point)")
    return result


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite values only reach here
    return max(0, -exponent)


def parse_dollars(value: object, what: str = "price") -> Decimal:
    """Parse a ``*_dollars`` value ("0.5600", Decimal or int) into exact dollars."""
    result = _to_decimal(value, what)
    if _decimals(result) > DOLLAR_DECIMALS:
        raise ValueError(f"{what} = {value!r} has more than {DOLLAR_DECIMALS} decimals")
    return result


def parse_count(value: object, what: str = "count", *, signed: bool = False) -> Decimal:
    """Parse a ``*_fp`` contract count ("10.00"); negative only when ``signed``."""
    result = _to_decimal(value, what)
    if _decimals(result) > COUNT_DECIMALS:
        raise ValueError(f"{what} = {value!r} has more than {COUNT_DECIMALS} decimals")
    if not signed and result < 0:
        raise ValueError(f"{what} = {value!r} must not be negative")
    return result


def format_dollars(value: Decimal) -> str:
    """Wire form of a dollar amount: four decimals, more only when the value needs them."""
    places = max(WIRE_PRICE_DECIMALS, _decimals(value))
    return f"{value:.{places}f}"


def format_count(value: Decimal) -> str:
    """Wire form of a contract count: exactly two decimals ("10.00")."""
    if _decimals(value) > COUNT_DECIMALS:
        raise ValueError(f"count {value} has more than {COUNT_DECIMALS} decimals")
    return f"{value:.{COUNT_DECIMALS}f}"


def validate_price(price: Decimal, what: str = "price") -> Decimal:
    """A tradable YES price lies strictly inside (0, 1)."""
    if not ZERO < price < ONE:
        raise ValueError(f"{what} = {price} must lie strictly between 0 and 1 dollars")
    return price


# --------------------------------------------------------------------------- price grid


class OffGridError(ValueError):
    """A price that is not one of the market's valid price levels."""


@dataclass(frozen=True)
class PriceBand:
    """One entry of a market's ``price_ranges``: prices start, start+step, …, end."""

    start: Decimal
    end: Decimal
    step: Decimal

    def __post_init__(self) -> None:
        for name in ("start", "end", "step"):
            object.__setattr__(self, name, parse_dollars(getattr(self, name), f"band {name}"))


@dataclass(frozen=True)
class PriceGrid:
    """The valid YES prices of one market, built from its ``price_ranges``.

    Conversions between dollars and ticks are exact; a price that is not on the grid is an
    error, never silently rounded. Use :meth:`tick_at_or_below` / :meth:`tick_at_or_above`
    when rounding is what you mean (bids round down, asks round up).
    """

    bands: tuple[PriceBand, ...]
    levels: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    _index: Mapping[Decimal, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.bands:
            raise ValueError("price_ranges is empty: a market needs at least one price band")
        previous_end: Decimal | None = None
        levels: list[Decimal] = []
        for i, band in enumerate(self.bands):
            where = f"price_ranges[{i}]"
            if band.step <= 0:
                raise ValueError(f"{where}.step = {band.step}: must be > 0")
            if not ZERO <= band.start < band.end <= ONE:
                raise ValueError(
                    f"{where} = [{band.start}, {band.end}]: need 0 <= start < end <= 1"
                )
            if (band.end - band.start) % band.step:
                raise ValueError(
                    f"{where}: step {band.step} does not divide [{band.start}, {band.end}]"
                )
            if previous_end is not None and band.start < previous_end:
                raise ValueError(
                    f"{where} starts at {band.start}, inside the previous band (ends "
                    f"{previous_end}); bands must be sorted and must not overlap"
                )
            previous_end = band.end
            n = int((band.end - band.start) / band.step)
            levels.extend(band.start + j * band.step for j in range(n + 1))
        inside = sorted({p.normalize() for p in levels if ZERO < p < ONE})
        if not inside:
            raise ValueError("price_ranges contain no price strictly between 0 and 1")
        object.__setattr__(self, "levels", tuple(inside))
        object.__setattr__(self, "_index", {p: i for i, p in enumerate(inside)})

    @classmethod
    def from_price_ranges(cls, ranges: Iterable[Mapping[str, object]]) -> PriceGrid:
        """Build from the wire form ``[{"start": "0.0000", "end": "1.0000", "step": "0.0100"}]``."""
        bands = []
        for i, entry in enumerate(ranges):
            try:
                start, end, step = entry["start"], entry["end"], entry["step"]
            except (KeyError, TypeError):
                raise ValueError(
                    f"price_ranges[{i}] = {entry!r}: need keys start, end and step"
                ) from None
            bands.append(
                PriceBand(
                    parse_dollars(start, f"price_ranges[{i}].start"),
                    parse_dollars(end, f"price_ranges[{i}].end"),
                    parse_dollars(step, f"price_ranges[{i}].step"),
                )
            )
        return cls(tuple(sorted(bands, key=lambda b: b.start)))

    @classmethod
    def uniform(cls, step: Decimal | str) -> PriceGrid:
        """One band over [0, 1] (``linear_cent`` is ``uniform("0.01")``)."""
        return cls((PriceBand(ZERO, ONE, parse_dollars(step, "step")),))

    @classmethod
    def linear_cent(cls) -> PriceGrid:
        return cls.uniform("0.01")

    def __len__(self) -> int:
        return len(self.levels)

    def tick(self, price: Decimal | str) -> int:
        """The tick of an exact on-grid price; :class:`OffGridError` otherwise."""
        value = validate_price(parse_dollars(price))
        try:
            return self._index[value.normalize()]
        except KeyError:
            raise OffGridError(
                f"price {value} is not on this market's grid ({self.describe()})"
            ) from None

    def price(self, tick: int) -> Decimal:
        """The exact dollar price of a tick."""
        if not 0 <= tick < len(self.levels):
            raise IndexError(f"tick {tick} is outside this grid (0 … {len(self.levels) - 1})")
        return self.levels[tick]

    def wire(self, tick: int) -> str:
        """The price of a tick as Kalshi's fixed-point string ("0.5600")."""
        return format_dollars(self.price(tick))

    def tick_at_or_below(self, price: Decimal | str) -> int | None:
        """The highest tick whose price is <= ``price`` (None below the lowest level)."""
        i = bisect.bisect_right(self.levels, parse_dollars(price)) - 1
        return i if i >= 0 else None

    def tick_at_or_above(self, price: Decimal | str) -> int | None:
        """The lowest tick whose price is >= ``price`` (None above the highest level)."""
        i = bisect.bisect_left(self.levels, parse_dollars(price))
        return i if i < len(self.levels) else None

    @cached_property
    def prices_float(self) -> tuple[float, ...]:
        """Level prices as floats, for the pricing math only (never for the wire)."""
        return tuple(float(p) for p in self.levels)

    def describe(self) -> str:
        return ", ".join(f"{b.start}–{b.end} step {b.step}" for b in self.bands)


# --------------------------------------------------------------------------- sides


class Side(enum.StrEnum):
    """A side of one market's YES book, as the V2 order API names it.

    ``BID`` buys YES at p (the same as selling NO at 1 − p); ``ASK`` sells YES at p (the same
    as buying NO at 1 − p). A NO bid at x on the wire is a YES ask at 1 − x.
    """

    BID = "bid"
    ASK = "ask"

    @property
    def sign(self) -> int:
        """+1 when a fill raises the YES position, −1 when it lowers it."""
        return 1 if self is Side.BID else -1

    @property
    def opposite(self) -> Side:
        return Side.ASK if self is Side.BID else Side.BID


def no_price(yes_price: Decimal) -> Decimal:
    """The NO price equivalent to a YES price (a YES ask at x is a NO bid at 1 − x)."""
    return ONE - yes_price


class Leg(enum.StrEnum):
    """Which of a two-team game's markets: A (the team q is measured in) or B."""

    A = "a"
    B = "b"

    @property
    def sign(self) -> int:
        """YES on A is +1 in team-A units; YES on B (≡ NO on A) is −1."""
        return 1 if self is Leg.A else -1


class GameSide(enum.Enum):
    """The four sides of a two-team game: bid A, ask A, bid B, ask B."""

    BID_A = (Leg.A, Side.BID)
    ASK_A = (Leg.A, Side.ASK)
    BID_B = (Leg.B, Side.BID)
    ASK_B = (Leg.B, Side.ASK)

    @property
    def leg(self) -> Leg:
        # ``_value_`` rather than ``value``: the enum property is slow, and every decision
        # asks this for every side.
        leg: Leg = self._value_[0]
        return leg

    @property
    def side(self) -> Side:
        side: Side = self._value_[1]
        return side

    @property
    def q_sign(self) -> int:
        """How a fill moves the game inventory q: bid A and ask B raise it (+1), the others
        lower it (−1)."""
        return _Q_SIGN[self]

    @classmethod
    def of(cls, leg: Leg, side: Side) -> GameSide:
        return cls((leg, side))

    def __str__(self) -> str:
        return f"{self.side.value} {self.leg.value.upper()}"


# --------------------------------------------------------------------------- markets and games


_Q_SIGN: Final[Mapping[GameSide, int]] = {
    s: (1 if s.leg is Leg.A else -1) * (1 if s.side is Side.BID else -1) for s in GameSide
}


class FeeType(enum.StrEnum):
    """A series' ``fee_type`` as Kalshi publishes it (the formulas live in pricing/fees.py)."""

    QUADRATIC = "quadratic"
    QUADRATIC_WITH_MAKER_FEES = "quadratic_with_maker_fees"
    QUADRATIC_WITH_COMBO_MAKER_FEES = "quadratic_with_combo_maker_fees"
    FLAT = "flat"
    MARGIN_MARKET_MAKER_PROGRAM_FEES = "margin_market_maker_program_fees"


@dataclass(frozen=True)
class SeriesFees:
    """How a series charges: its ``fee_type`` and ``fee_multiplier`` (formulas: pricing/fees.py)."""

    fee_type: FeeType = FeeType.QUADRATIC
    multiplier: Decimal = ONE

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "fee_type", FeeType(self.fee_type))
        except ValueError:
            allowed = ", ".join(t.value for t in FeeType)
            raise ValueError(
                f"fee_type = {self.fee_type!r}: unknown (allowed: {allowed})"
            ) from None
        multiplier = _to_decimal(self.multiplier, "fee_multiplier")
        if multiplier < 0:
            raise ValueError(f"fee_multiplier = {self.multiplier}: must be >= 0")
        object.__setattr__(self, "multiplier", multiplier)


@dataclass(frozen=True)
class Market:
    """One binary market (one team's YES book) and what pricing needs to know about it."""

    ticker: str
    event_ticker: str
    team: str
    grid: PriceGrid
    fees: SeriesFees = SeriesFees()

    def __post_init__(self) -> None:
        if not self.ticker or not self.event_ticker:
            raise ValueError("a market needs a ticker and an event ticker")


@dataclass(frozen=True)
class Game:
    """One game: a Kalshi event with a market per team (and a tie market for soccer).

    The game inventory is measured in team-A contracts: ``q = pos_A − pos_B``, because YES A
    is NO B. A soccer tie market is carried for display; each of its markets is quoted as
    its own binary inventory (a documented limitation of the two-team model).
    """

    event_ticker: str
    sport: str
    start_time: datetime
    market_a: Market
    market_b: Market
    tie: Market | None = None

    def __post_init__(self) -> None:
        if self.start_time.tzinfo is None:
            raise ValueError(f"{self.event_ticker}: start_time must be timezone-aware")
        tickers = [m.ticker for m in self.markets]
        if len(set(tickers)) != len(tickers):
            raise ValueError(f"{self.event_ticker}: markets must be distinct, got {tickers}")
        for m in self.markets:
            if m.event_ticker != self.event_ticker:
                raise ValueError(f"market {m.ticker} belongs to {m.event_ticker}, not this game")

    @property
    def markets(self) -> tuple[Market, ...]:
        return (self.market_a, self.market_b) + ((self.tie,) if self.tie else ())

    @property
    def teams(self) -> tuple[str, str]:
        return self.market_a.team, self.market_b.team

    def leg_of(self, ticker: str) -> Leg:
        if ticker == self.market_a.ticker:
            return Leg.A
        if ticker == self.market_b.ticker:
            return Leg.B
        raise KeyError(f"{ticker} is not one of {self.event_ticker}'s two team markets")

    def market(self, leg: Leg) -> Market:
        return self.market_a if leg is Leg.A else self.market_b

    def seconds_to_start(self, now: datetime) -> float:
        return (self.start_time - now).total_seconds()


def game_inventory(position_a: Decimal, position_b: Decimal) -> Decimal:
    """Signed game inventory in team-A units from the two markets' signed YES positions."""
    return position_a - position_b


# --------------------------------------------------------------------------- fills and orders


@dataclass(frozen=True)
class Fill:
    """One of our fills: ``count`` contracts traded on ``side`` of ``ticker``'s YES book."""

    fill_id: str
    order_id: str
    ticker: str
    side: Side
    price: Decimal
    count: Decimal
    fee: Decimal
    is_taker: bool
    ts: datetime
    client_order_id: str | None = None

    def __post_init__(self) -> None:
        where = f"fill {self.fill_id}"
        object.__setattr__(
            self, "price", validate_price(parse_dollars(self.price, f"{where} price"))
        )
        object.__setattr__(self, "count", parse_count(self.count, f"{where} count"))
        object.__setattr__(self, "fee", parse_dollars(self.fee, f"{where} fee"))
        if self.count <= 0:
            raise ValueError(f"fill {self.fill_id}: count {self.count} must be positive")
        # A fill's fee can be negative: Kalshi refunds an order's accumulated fee rounding in
        # whole cents, and the fill that carries the refund may get back more than it paid
        # (pricing.fees.charge_fill). A refund is never a dollar a contract.
        if self.fee <= -self.count:
            raise ValueError(
                f"fill {self.fill_id}: fee {self.fee} is a refund of $1 a contract or more"
            )

    @property
    def position_delta(self) -> Decimal:
        """Change in the signed YES position (+ YES, − NO)."""
        return self.side.sign * self.count

    @property
    def cash_delta(self) -> Decimal:
        """Change in cash: pay price × count on a bid, receive it on an ask; fees always out."""
        return -self.side.sign * self.price * self.count - self.fee


class OrderState(enum.StrEnum):
    """Where one of our orders stands, as the engine knows it.

    A timeout or transport error makes an order UNKNOWN until the exchange (WS
    ``user_orders``/``fill`` or REST) settles it; the engine never guesses.
    """

    PENDING_NEW = "pending_new"
    RESTING = "resting"
    PENDING_AMEND = "pending_amend"
    PENDING_CANCEL = "pending_cancel"
    DONE = "done"
    UNKNOWN = "unknown"


_TRANSITIONS: Final[Mapping[OrderState, frozenset[OrderState]]] = {
    # A cancel (or a kill switch's cancel-all) can go out before the create is acknowledged.
    OrderState.PENDING_NEW: frozenset(
        {OrderState.RESTING, OrderState.PENDING_CANCEL, OrderState.DONE, OrderState.UNKNOWN}
    ),
    OrderState.RESTING: frozenset(
        {
            OrderState.RESTING,  # a partial fill or a decrease keeps it resting
            OrderState.PENDING_AMEND,
            OrderState.PENDING_CANCEL,
            OrderState.DONE,
            OrderState.UNKNOWN,
        }
    ),
    OrderState.PENDING_AMEND: frozenset(
        {OrderState.RESTING, OrderState.PENDING_CANCEL, OrderState.DONE, OrderState.UNKNOWN}
    ),
    # A cancel that fails (the order had moved on) leaves it resting.
    OrderState.PENDING_CANCEL: frozenset({OrderState.RESTING, OrderState.DONE, OrderState.UNKNOWN}),
    OrderState.UNKNOWN: frozenset(
        {OrderState.UNKNOWN, OrderState.RESTING, OrderState.PENDING_CANCEL, OrderState.DONE}
    ),
    OrderState.DONE: frozenset(),
}


class InvalidTransition(ValueError):
    """An order state change the state machine does not allow."""


@dataclass(frozen=True)
class Order:
    """One of our orders on ``ticker``'s YES book; replace it with :meth:`transition`."""

    client_order_id: str
    ticker: str
    side: Side
    price: Decimal
    count: Decimal
    filled: Decimal = ZERO
    state: OrderState = OrderState.PENDING_NEW
    order_id: str | None = None

    def __post_init__(self) -> None:
        where = f"order {self.client_order_id}"
        object.__setattr__(
            self, "price", validate_price(parse_dollars(self.price, f"{where} price"))
        )
        object.__setattr__(self, "count", parse_count(self.count, f"{where} count"))
        object.__setattr__(self, "filled", parse_count(self.filled, f"{where} filled"))
        if self.count <= 0:
            raise ValueError(f"{where}: count {self.count} must be positive")
        if self.filled > self.count:
            raise ValueError(f"{where}: filled {self.filled} exceeds count {self.count}")

    @property
    def remaining(self) -> Decimal:
        return self.count - self.filled

    @property
    def is_live(self) -> bool:
        """True while the order may still rest on the book (including when we are unsure)."""
        return self.state is not OrderState.DONE

    def transition(self, state: OrderState, **changes: object) -> Order:
        """A copy in ``state`` (with any field ``changes``), if the state machine allows it."""
        if state not in _TRANSITIONS[self.state]:
            raise InvalidTransition(
                f"order {self.client_order_id}: {self.state.value} → {state.value} is not allowed"
            )
        return dataclasses.replace(self, state=state, **changes)  # type: ignore[arg-type]
