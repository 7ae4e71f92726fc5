"""One game at run time: its markets, its parameters, its quote tables, and the snapshot of
everything ``strategy.decide`` looks at.

* **Inventories.** A two-team game is one inventory over its two books (team A is the Odds
  event's away team); a three-way soccer game is three single-book inventories (a
  documented limitation, DESIGN §1).
* **Parameters.** The sport profile with the trader's changes for this game (γ, σ, cap,
  quote size, min edge, liquidity factor) and, per market, the fill intensity (A, k).
  Changes are validated by the profile's own rules (``config.SportProfile``): a bad value
  raises ``ConfigError`` naming what is allowed and changes nothing.
* **Quote tables.** One per inventory, for the theo in force and the parameters: a
  :class:`~kmm_interactive.pricing.quote_table.QuoteProblem` is built by
  :func:`~kmm_interactive.strategy.inputs.quote_problem` (once per theo or parameter
  change) and solved off the event loop by the runtime; ``problem_changed`` says when a new
  solve is due.

Pure apart from the asyncio.Event that marks the game dirty; the runtime does the I/O.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from kmm_interactive.config import Config, ConfigError, SportProfile
from kmm_interactive.domain import ZERO, Game, GameSide, Leg, Market, PriceGrid, Side
from kmm_interactive.kalshi.book import OrderBook
from kmm_interactive.odds.matching import KalshiGame
from kmm_interactive.pricing.intensity import IntensityPrior
from kmm_interactive.pricing.quote_table import QuoteModel, QuoteProblem, QuoteTable
from kmm_interactive.strategy.halts import HaltReason
from kmm_interactive.strategy.inputs import fill_direction, inventories, quote_params, quote_problem
from kmm_interactive.strategy.quoter import (
    BookView,
    Decision,
    GameState,
    QuoteParams,
    Resting,
    UnitState,
)

#: The per-game parameters a trader may change, and the per-market ones.
GAME_PARAMS: Final = ("gamma", "sigma", "cap", "quote_size", "min_edge", "liquidity_factor")
MARKET_PARAMS: Final = ("A", "k")
_PROFILE_KEY: Final = {"A": "prior_A", "k": "prior_k"}


@dataclass(frozen=True)
class OwnOrder:
    """Our live order on one side, as the order manager knows it."""

    ticker: str
    side: Side
    price: Decimal
    remaining: Decimal
    since: datetime


def book_view(
    book: OrderBook | None, own: Mapping[tuple[Side, Decimal], Decimal], grid: PriceGrid
) -> BookView:
    """The others' best prices (as ticks of ``grid``) and depth: ``book`` without our sizes."""
    if book is None:
        return BookView()
    bid, ask, depth = book.competition(own)
    return BookView(
        grid.tick_at_or_below(bid[0]) if bid else None,
        grid.tick_at_or_above(ask[0]) if ask else None,
        depth,
    )


class GameRuntime:
    """One game's run-time state (see the module doc)."""

    def __init__(
        self,
        game: Game,
        sport: str,
        profile: SportProfile,
        config: Config,
        kalshi: KalshiGame | None = None,
    ) -> None:
        self.game = game
        self.kalshi = kalshi  # the game as matched to the odds feed
        self.sport = sport
        self.profile = profile
        self.config = config
        self.intensity: dict[str, IntensityPrior] = {
            m.ticker: profile.intensity_prior for m in game.markets
        }
        self.units = inventories(game)
        self.tables: list[QuoteTable | None] = [None] * len(self.units)
        self.solving: list[QuoteProblem | None] = [None] * len(self.units)
        self._problems: dict[int, QuoteProblem | None] = {}
        self.backed_off: list[dict[GameSide, datetime]] = [{} for _ in self.units]
        self.probs: Mapping[str, float] | None = None
        self.theo_as_of: datetime | None = None
        self.fresh_until: datetime | None = None
        self.decision: Decision | None = None
        self.dirty = asyncio.Event()
        self.finished = False
        self.model_error: str | None = None

    @property
    def event_ticker(self) -> str:
        return self.game.event_ticker

    @property
    def tickers(self) -> tuple[str, ...]:
        return tuple(m.ticker for m in self.game.markets)

    def market(self, ticker: str) -> Market:
        for m in self.game.markets:
            if m.ticker == ticker:
                return m
        raise KeyError(f"{ticker} is not a market of {self.event_ticker}")

    def q_direction(self, ticker: str, side: Side) -> int:
        """+1 if a fill on ``side`` of ``ticker`` raises its inventory, −1 if it lowers it
        (a three-way game's inventories are its markets' own positions)."""
        return fill_direction(self.game, ticker, side)

    def mark_dirty(self) -> None:
        self.dirty.set()

    def release(self) -> None:
        """Once the game quotes no more (it started, or settled), let go of its quote tables
        and problems: a table is about 200 KB, and a long day finishes hundreds of games.
        What the views and the PnL read (markets, last theo, last decision) stays."""
        self.tables = [None] * len(self.units)
        self.solving = [None] * len(self.units)
        self._problems.clear()

    # ------------------------------------------------------------------ parameters

    def params(self) -> dict[str, Any]:
        """The parameters in force: the game's, and A and k per market."""
        out: dict[str, Any] = {name: getattr(self.profile, name) for name in GAME_PARAMS}
        for ticker, prior in self.intensity.items():
            out[f"A[{ticker}]"] = prior.A
            out[f"k[{ticker}]"] = prior.k
        return out

    def set_params(self, ticker: str | None = None, **changes: Any) -> dict[str, Any]:
        """Change parameters: game-level ones (γ, σ, cap, size, min edge, liquidity factor)
        and, with ``ticker``, A and k of that market (without it, of every market). All
        changes are checked before any is applied; returns what changed (old, new)."""
        unknown = sorted(set(changes) - set(GAME_PARAMS) - set(MARKET_PARAMS))
        if unknown:
            allowed = ", ".join(GAME_PARAMS + MARKET_PARAMS)
            raise ConfigError(unknown[0], changes[unknown[0]], "is not a parameter", allowed)
        if ticker is not None:
            self.market(ticker)
        game_changes = {k: v for k, v in changes.items() if k in GAME_PARAMS}
        profile = (
            dataclasses.replace(self.profile, **game_changes) if game_changes else self.profile
        )
        targets = [ticker] if ticker is not None else list(self.intensity)
        intensity = dict(self.intensity)
        for t in targets:
            market_changes = {_PROFILE_KEY[k]: v for k, v in changes.items() if k in MARKET_PARAMS}
            if market_changes:
                checked = dataclasses.replace(
                    profile,
                    **({"prior_A": intensity[t].A, "prior_k": intensity[t].k} | market_changes),
                )
                intensity[t] = checked.intensity_prior
        before = self.params()
        self.profile, self.intensity = profile, intensity
        self._problems.clear()
        after = self.params()
        return {k: (before[k], after[k]) for k in after if before[k] != after[k]}

    def quote_params(self) -> QuoteParams:
        """The parameters ``decide`` takes for this game (its profile as changed)."""
        return quote_params(self.config, self.profile)

    # ------------------------------------------------------------------ quote tables

    def set_theo(
        self,
        probs: Mapping[str, float] | None,
        as_of: datetime | None,
        fresh_until: datetime | None = None,
    ) -> None:
        """The theo in force; ``fresh_until``: a manual override's expiry (until then it does
        not age: the trader chose how long it holds)."""
        self.probs, self.theo_as_of, self.fresh_until = probs, as_of, fresh_until
        self._problems.clear()

    def theo_age_reference(self, now: datetime) -> datetime | None:
        """The time decide measures the theo's age from."""
        if self.fresh_until is not None and now < self.fresh_until:
            return now
        return self.theo_as_of

    def problem(self, unit: int) -> QuoteProblem | None:
        """The quoting problem of one inventory at the theo in force (None without one);
        built once per theo or parameter change (every requote asks for it)."""
        if unit not in self._problems:
            markets = self.units[unit]
            p = self.probs.get(markets[0].ticker) if self.probs is not None else None
            self._problems[unit] = quote_problem(
                markets, p, self.intensity, self.profile, self.config.quoting
            )
        return self._problems[unit]

    @property
    def model(self) -> QuoteModel:
        return QuoteModel(self.config.quoting.model)

    def problem_changed(self, unit: int) -> QuoteProblem | None:
        """The problem to solve for ``unit`` if it differs from the table in force and from
        the one being solved; None when nothing is due."""
        problem = self.problem(unit)
        table = self.tables[unit]
        if problem is None:
            self.tables[unit] = None
            return None
        if (table is not None and table.problem == problem) or self.solving[unit] == problem:
            return None
        return problem

    # ------------------------------------------------------------------ what decide sees

    def state(
        self,
        books: Mapping[str, OrderBook],
        own: Mapping[str, Mapping[tuple[Side, Decimal], Decimal]],
        orders: list[OwnOrder],
        exposure: Mapping[tuple[str, ...], tuple[Decimal, Decimal | None]],
        halts: frozenset[HaltReason],
        now: datetime,
    ) -> GameState:
        """The snapshot ``decide`` takes. ``exposure`` maps each inventory's tickers to
        (q, claim cost); ``own`` our resting size per market, (side, price)."""
        units = []
        for i, markets in enumerate(self.units):
            tickers = tuple(m.ticker for m in markets)
            views = tuple(
                book_view(books.get(m.ticker), own.get(m.ticker, {}), m.grid) for m in markets
            )
            resting: dict[GameSide, Resting] = {}
            for o in orders:
                if o.ticker not in tickers:
                    continue
                leg = Leg.A if o.ticker == tickers[0] else Leg.B
                market = markets[0 if leg is Leg.A else 1]
                tick = market.grid.tick_at_or_below(o.price)
                if tick is not None:
                    resting[GameSide.of(leg, o.side)] = Resting(tick, o.remaining, o.since)
            q, cost = exposure.get(tickers, (ZERO, None))
            theo = self.probs.get(tickers[0]) if self.probs is not None else None
            units.append(
                UnitState(
                    markets, views, self.tables[i], q, cost, resting, self.backed_off[i], theo
                )
            )
        return GameState(self.game, tuple(units), self.theo_age_reference(now), halts)

    def remember(self, decision: Decision) -> None:
        """Keep the decision (for the UI) and the competition layer's memory."""
        self.decision = decision
        for i, unit in enumerate(decision.units):
            self.backed_off[i] = {
                q.game_side: q.backed_off_since for q in unit.quotes if q.backed_off_since
            }

    def desired(self) -> dict[tuple[str, Side], tuple[Decimal, int] | None]:
        """The last decision as the order manager takes it."""
        if self.decision is None:
            return {}
        return {
            key: (q.price, q.size) if q.quoting and q.price is not None else None
            for key, q in self.decision.quotes.items()
        }
