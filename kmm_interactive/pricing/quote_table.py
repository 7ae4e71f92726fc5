"""What every quoting model takes and gives: a :class:`QuoteProblem` in, a :class:`QuoteTable` out.

A problem is one game: one book (single market) or two books that move one inventory
(team A's market and team B's). Each book has its own grid, theo, fill intensity
``λ(δ) = A·e^(−k·δ)`` (A in fills per second at zero distance, k per cent of distance) and
fees; risk aversion γ (per dollar), theo volatility σ (dollars per √second) and the
inventory cap Q belong to the game, because they act on its one inventory.

The table is indexed by time to start τ (seconds, dense near 0) and inventory q ∈ [−Q, Q]
and holds, for each side, the tick to quote or nothing. With heavy inventory a model may
put the reducing side through theo (paying edge to cut risk); whether such a quote goes out
is the strategy layer's call (its ceilings), not the table's.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from kmm_interactive.domain import GameSide, Leg, PriceGrid, SeriesFees
from kmm_interactive.pricing.fees import check_fee_type

if TYPE_CHECKING:
    import pandas as pd

NO_QUOTE: Final = -1
CENTS_PER_DOLLAR: Final = 100.0
MAX_A: Final = 1000.0
MAX_K: Final = 5.0
MAX_GAMMA: Final = 10.0
MAX_Q: Final = 2000
THEO_SUM_TOLERANCE: Final = 1e-9


class QuoteModel(enum.StrEnum):
    """The quoting models behind :func:`~kmm_interactive.pricing.hjb.solve_quote_table`."""

    HJB = "hjb"
    GLFT = "glft"
    AVELLANEDA_STOIKOV = "avellaneda_stoikov"
    LINEAR_SKEW = "linear_skew"


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class BookInputs:
    """One market's book as the quoting math sees it."""

    grid: PriceGrid
    theo: float
    A: float
    k: float
    fees: SeriesFees = SeriesFees()

    def __post_init__(self) -> None:
        _check(
            math.isfinite(self.theo) and 0.0 < self.theo < 1.0,
            f"theo = {self.theo}: must lie strictly between 0 and 1",
        )
        _check(
            math.isfinite(self.A) and 0.0 < self.A <= MAX_A,
            f"A = {self.A}: fills per second at zero distance must be in (0, {MAX_A}]",
        )
        # e^(k·100·d) for |d| < 1 must stay inside floating range.
        _check(
            math.isfinite(self.k) and 0.0 < self.k <= MAX_K,
            f"k = {self.k}: decay per cent of distance must be in (0, {MAX_K}]",
        )
        check_fee_type(self.fees.fee_type)

    @property
    def k_per_dollar(self) -> float:
        return self.k * CENTS_PER_DOLLAR


@dataclass(frozen=True, kw_only=True)
class QuoteProblem:
    """One game's quoting problem (see the module doc for units)."""

    book_a: BookInputs
    book_b: BookInputs | None = None
    gamma: float
    q_max: int
    sigma: float = 0.0
    horizon: float = 6 * 3600.0
    n_tau: int = 64
    #: Linear skew only: dollars of reservation shift per contract (default γ·p(1 − p), the
    #: marginal certainty-equivalent cost of one more contract held to settlement).
    theta: float | None = None
    q_target: int = 0

    def __post_init__(self) -> None:
        _check(
            math.isfinite(self.gamma) and 0.0 < self.gamma <= MAX_GAMMA,
            f"gamma = {self.gamma}: risk aversion per dollar must be in (0, {MAX_GAMMA}]",
        )
        _check(
            isinstance(self.q_max, int) and 1 <= self.q_max <= MAX_Q,
            f"q_max = {self.q_max}: must be an integer in 1 … {MAX_Q}",
        )
        _check(
            math.isfinite(self.sigma) and self.sigma >= 0.0, f"sigma = {self.sigma}: must be >= 0"
        )
        _check(
            math.isfinite(self.horizon) and self.horizon >= 60.0,
            f"horizon = {self.horizon}: must be at least 60 seconds",
        )
        _check(
            isinstance(self.n_tau, int) and 4 <= self.n_tau <= 4096,
            f"n_tau = {self.n_tau}: must be an integer in 4 … 4096",
        )
        _check(
            self.theta is None or (math.isfinite(self.theta) and self.theta >= 0.0),
            f"theta = {self.theta}: must be >= 0",
        )
        _check(
            abs(self.q_target) <= self.q_max, f"q_target = {self.q_target}: must lie within ±q_max"
        )
        # The terminal condition uses book A's theo; B's edges use B's. They must agree.
        if self.book_b is not None:
            total = self.book_a.theo + self.book_b.theo
            _check(
                abs(total - 1.0) <= THEO_SUM_TOLERANCE,
                f"theos {self.book_a.theo} + {self.book_b.theo} = {total}: the two teams of "
                "one game must sum to 1 (override both books together)",
            )

    @property
    def p(self) -> float:
        """Probability that team A wins: the terminal condition's p."""
        return self.book_a.theo

    @property
    def sides(self) -> tuple[GameSide, ...]:
        if self.book_b is None:
            return (GameSide.BID_A, GameSide.ASK_A)
        return tuple(GameSide)

    def book(self, leg: Leg) -> BookInputs:
        if leg is Leg.A:
            return self.book_a
        if self.book_b is None:
            raise ValueError("this problem has a single book")
        return self.book_b

    @property
    def q(self) -> NDArray[np.float64]:
        return np.arange(-self.q_max, self.q_max + 1, dtype=np.float64)

    def tau_grid(self) -> NDArray[np.float64]:
        """0, then geometrically spaced from 1 s to the horizon: dense where quotes move."""
        return np.concatenate(([0.0], np.geomspace(1.0, self.horizon, self.n_tau - 1)))

    def terminal_log_phi(self) -> NDArray[np.float64]:
        """ln φ_q(0) = ln(p·e^(−γq(1−p)) + (1−p)·e^(γqp)): holding q to settlement."""
        p, g, q = self.p, self.gamma, self.q
        return np.logaddexp(math.log(p) - g * q * (1.0 - p), math.log1p(-p) + g * q * p)


@dataclass(frozen=True)
class SideTicks:
    """The tick to quote on each side at one (q, τ), or None for no quote."""

    bid_a: int | None = None
    ask_a: int | None = None
    bid_b: int | None = None
    ask_b: int | None = None

    def __getitem__(self, side: GameSide) -> int | None:
        return getattr(self, side.name.lower())  # type: ignore[no-any-return]

    @property
    def bid(self) -> int | None:
        """Single-book alias for ``bid_a``."""
        return self.bid_a

    @property
    def ask(self) -> int | None:
        """Single-book alias for ``ask_a``."""
        return self.ask_a


@dataclass(frozen=True, eq=False)
class QuoteTable:
    """Precomputed quotes: ``ticks[τ_i, q + Q, side]`` with ``NO_QUOTE`` for no quote."""

    problem: QuoteProblem
    model: QuoteModel
    tau: NDArray[np.float64]
    ticks: NDArray[np.int32]
    #: How the solve went (the HJB solver's counts of solves, policy iterations, halvings,
    #: and ``dent_levels``: the largest smoothing a row needed, in price levels).
    diagnostics: Mapping[str, float] = field(default_factory=dict)
    sides: tuple[GameSide, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sides", self.problem.sides)
        expected = (len(self.tau), 2 * self.problem.q_max + 1, len(self.sides))
        if self.ticks.shape != expected:
            raise ValueError(f"ticks shape {self.ticks.shape}, expected {expected}")
        self.ticks.setflags(write=False)

    @property
    def q_max(self) -> int:
        return self.problem.q_max

    def tau_index(self, tau_seconds: float) -> int:
        """The grid row used at ``tau_seconds``: the last grid τ at or below it."""
        return max(0, int(np.searchsorted(self.tau, tau_seconds, side="right")) - 1)

    def quote(self, q: int | Decimal, tau_seconds: float) -> SideTicks:
        """Ticks to quote holding ``q`` contracts of team A with ``tau_seconds`` to start.

        A fractional inventory (fills can be fractional) is rounded away from zero: the
        table is read as if holding slightly more, which only makes it more careful. Nothing
        is quoted once the game has started (τ < 0). Beyond the cap, the sides that would
        grow exposure are off and the others quote as at the cap.
        """
        if tau_seconds < 0 or not math.isfinite(tau_seconds):
            return SideTicks()
        q = whole_contracts(q)
        row = self.ticks[
            self.tau_index(tau_seconds), min(max(q, -self.q_max), self.q_max) + self.q_max
        ]
        values: dict[str, int | None] = {}
        for i, side in enumerate(self.sides):
            grows = (q >= self.q_max and side.q_sign > 0) or (q <= -self.q_max and side.q_sign < 0)
            tick = int(row[i])
            values[side.name.lower()] = None if grows or tick == NO_QUOTE else tick
        return SideTicks(**values)

    def price(self, side: GameSide, tick: int | None) -> Decimal | None:
        """The exact dollar price of a side's tick."""
        return None if tick is None else self.problem.book(side.leg).grid.price(tick)

    def frame(self, tau_seconds: float) -> pd.DataFrame:
        """Quotes at one τ as a table: one row per q, one column per side, in dollars.

        For display and plots (floats); orders use :meth:`quote` and exact ticks.
        """
        import pandas as pd

        rows = {}
        for q in range(-self.q_max, self.q_max + 1):
            ticks = self.quote(q, tau_seconds)
            rows[q] = {
                str(side): (
                    float(p) if (p := self.price(side, ticks[side])) is not None else math.nan
                )
                for side in self.sides
            }
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = "q"
        return frame


def whole_contracts(q: int | Decimal) -> int:
    """A signed inventory in whole contracts, rounded away from zero."""
    if isinstance(q, Decimal):
        if not q.is_finite():
            raise ValueError(f"inventory {q} is not a finite number")
        return int(q.to_integral_value(rounding=ROUND_UP))
    if isinstance(q, bool) or not isinstance(q, numbers.Integral):
        raise TypeError(f"inventory must be an int or Decimal, not {type(q).__name__}")
    return int(q)


def snap_ticks(grid: PriceGrid, prices: NDArray[np.float64]) -> NDArray[np.int32]:
    """Nearest ticks to continuous model prices; ``NO_QUOTE`` where a price is not a number
    or lies outside (0, 1)."""
    levels = np.array(grid.prices_float)
    valid = np.isfinite(prices) & (prices > 0.0) & (prices < 1.0)
    x = np.where(valid, prices, 0.5)
    above = np.clip(np.searchsorted(levels, x), 0, len(levels) - 1)
    below = np.clip(above - 1, 0, len(levels) - 1)
    nearest = np.where(np.abs(levels[below] - x) <= np.abs(levels[above] - x), below, above)
    return np.where(valid, nearest, NO_QUOTE).astype(np.int32)
