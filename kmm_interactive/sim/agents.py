"""The simulated market's other participants, driven by one seeded event loop.

The exchange core only matches what it is sent; this module sends it a market worth making:

* **Retail takers**, one Poisson process per market and side. An arrival draws how far from
  the true probability it is willing to trade, ``d ~ Exponential(k)`` cents, and sends an
  immediate-or-cancel order at the grid price reaching that far. A resting quote at distance
  δ beyond the truth is therefore lifted at exactly ``A·e^(−kδ)`` times the bias factors
  (:func:`taker_rate`): the demand curve the HJB quoter assumes, so its A and k mean
  something here. YES buyers outnumber YES sellers (``yes_bias``) and more flow backs
  favourites (``favourite_bias``). Retail keeps trading in play, as on Kalshi.

  **A counts taker arrivals (orders), not contracts.** Each arrival sends ``taker_size``
  contracts (1–10 by default) and takes as many of them as the book holds at its price, so
  a quote is *hit* at ``A·e^(−kδ)`` hits per wall second while contracts trade at about the
  mean order size times that. The HJB model's λ(δ) is in unit fills per second: read its A
  as hits (count fills, not contracts, when estimating it from this market), and expect a
  hit to move inventory by several contracts at once.
* **Stale deep liquidity**: a few resting orders far from the money (asks 5 @ 95¢, bids
  5 @ 3¢), placed once at the start and never moved.
* **Competing market makers**: firms ``agent-mm-1`` … ``agent-mm-N`` (``market_makers``),
  each with its own account. How many of them quote a game is drawn per game
  (``market_maker_count``, 0–N by default): a game nobody else quotes is a monopsony whose
  book holds only the stale deep orders, the case the HJB quoter is built for. Each firm
  sees the truth through a persistent error and refreshes that view only every
  ``mm_refresh`` scenario seconds (so news leaves it stale). Its ceiling bid is
  theo − edge and its floor ask theo + edge. It quotes one tick better than the best *other*
  quote, capped at its ceiling/floor and never worse than its opening level (theo ∓
  ``mm_open``): so competitors outbid each other up to their ceilings, join at a shared
  ceiling, and walk back down when a competitor leaves. Outbid *beyond* its ceiling, a firm
  does what its style says (a share ``mm_back_off`` of firms, chosen from the seed, back
  off; the rest hold): ``"hold"`` sits at its ceiling, ``"back_off"`` retreats to its
  opening level and comes back once the better quote is gone. Two firms of which one backs
  off can cycle (climb, back off, walk down, climb again): the bidding war the competition
  layer's hysteresis must not join in. Firms also come and go: one quotes a game for
  ``mm_stay`` scenario seconds on average, pulls its orders for ``mm_away`` on average, then
  returns (both exponential), so "a competitor leaves" happens in every default market.
  They pull every order at game start and never quote in play, as the market maker this
  project builds does; in-play books are left to retail and stale orders.
* **Informed takers**: for a short window after each news jump they sweep every quote
  priced more than ``informed_margin`` better than the new truth, with larger sizes.
* **Lifecycle**: at ``game.end`` each market is determined (the ``result_index`` outcome
  YES, the others NO); at ``game.settle`` it is settled and paid.

:class:`Simulation` owns the event heap of (time, sequence, action). ``advance_to(t)`` runs
every action due by ``t`` in time order; on a :class:`VirtualClock` it first sets the clock
to each action's time, so timestamps are exact and a run is a pure function of the seed.
On the wall clock (the server calls ``advance_to(clock.now())`` every ~50 ms) actions just
run a little late, each still using its scheduled time for the truth. Every agent draws
from its own ``random.Random`` seeded from (seed, agent, market or game), and draws the same
numbers whatever the book looks like, so one agent's stream never depends on another's, and
a game plays out the same whichever other games share its scenario.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from kmm_interactive.domain import PriceGrid
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.exchange import (
    CC,
    Book,
    BookSide,
    Exchange,
    ExchangeError,
    SimMarket,
    SimOrder,
    cc_to_count,
)
from kmm_interactive.sim.scenario import GameSpec, NewsJump, Outcome, Scenario

RETAIL_USER: Final = "agent-retail"
INFORMED_USER: Final = "agent-informed"
STALE_USER: Final = "agent-stale"
#: Agents never run out of money: a rejected order for lack of funds would bend the model.
AGENT_BALANCE: Final = Decimal(10) ** 12

SIDES: Final[tuple[BookSide, ...]] = ("bid", "ask")
#: How a competing firm reacts when outbid beyond its ceiling (see the module doc).
MMStyle = Literal["hold", "back_off"]
MM_STYLES: Final[tuple[MMStyle, ...]] = ("hold", "back_off")
#: An action runs at its scheduled time (epoch seconds), which it receives.
Action = Callable[[float], None]


def mm_user(firm: int) -> str:
    """The account of competing market-maker firm ``firm`` (1-based; one per firm, all games)."""
    return f"agent-mm-{firm}"


# --------------------------------------------------------------------------- configuration


def _size_range(name: str, value: object) -> None:
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 1 <= value[0] <= value[1] <= 1_000_000
    )
    if not ok:
        raise ValueError(f"{name} = {value!r}: must be (min, max) whole contracts, 1 <= min <= max")


def _number(name: str, value: float, low: float, high: float, *, open_low: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} = {value!r}: must be a finite number")
    if value < low or value > high or (open_low and value == low):
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} = {value!r}: must lie in {bracket}{low}, {high}]")


@dataclass(frozen=True)
class AgentConfig:
    """Which agents run and how they behave. Distances are in cents of the YES price."""

    retail: bool = True
    #: YES buyers arrive at (1 + yes_bias)× and YES sellers at (1 − yes_bias)× the base rate.
    yes_bias: float = 0.15
    #: The YES-buying side's rate is scaled by 1 + favourite_bias·(p − 0.5), the YES-selling
    #: side's by 1 − favourite_bias·(p − 0.5): more flow backs whichever side is favoured.
    favourite_bias: float = 0.3
    taker_size: tuple[int, int] = (1, 10)
    stale_liquidity: bool = True
    #: Fraction of markets that carry stale orders, and their sizes.
    stale_share: float = 0.6
    stale_size: tuple[int, int] = (2, 10)
    #: Competing firms (the accounts agent-mm-1 … agent-mm-N): the most that quote one game.
    market_makers: int = 3
    #: How many firms quote one game: drawn uniformly from [low, high] per game (seeded),
    #: which firms from the seed too. None means (0, market_makers); 0 is a monopsony.
    market_maker_count: tuple[int, int] | None = None
    #: Share of firms whose style is "back_off" rather than "hold" (see the module doc),
    #: rounded to whole firms; which firms is drawn from the seed.
    mm_back_off: float = 0.5
    #: Mean scenario seconds a firm quotes a game before stepping away (math.inf: never),
    #: and mean scenario seconds it stays away; both exponential.
    mm_stay: float = 1800.0
    mm_away: float = 300.0
    mm_theo_error: float = 1.0  # standard deviation, cents; drawn once per firm and market
    mm_edge: float = 2.0  # cents between a competitor's theo and its ceiling / floor
    mm_open: float = 8.0  # cents from theo where it quotes with nobody to outbid
    mm_refresh: float = 300.0  # scenario seconds between refreshes of its view of the truth
    mm_requote: float = 1.0  # wall seconds, on average, between looks at the book
    mm_size: tuple[int, int] = (10, 30)
    informed: bool = True
    informed_window: float = 60.0  # scenario seconds after a news jump
    informed_sweeps: int = 6  # sweeps spread over the window
    informed_margin: float = 1.0  # cents of mispricing left alone
    informed_size: tuple[int, int] = (20, 100)
    lifecycle: bool = True

    def __post_init__(self) -> None:
        for flag in ("retail", "stale_liquidity", "informed", "lifecycle"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} = {getattr(self, flag)!r}: must be True or False")
        # Both multipliers must stay positive for every p in [0, 1].
        _number("yes_bias", self.yes_bias, -0.99, 0.99)
        _number("favourite_bias", self.favourite_bias, -1.98, 1.98)
        _number("stale_share", self.stale_share, 0.0, 1.0)
        _number("mm_theo_error", self.mm_theo_error, 0.0, 50.0)
        _number("mm_edge", self.mm_edge, 0.0, 50.0)
        _number("mm_open", self.mm_open, 0.0, 99.0)
        if self.mm_open < self.mm_edge:
            raise ValueError(
                f"mm_open = {self.mm_open!r} is inside mm_edge = {self.mm_edge!r}: a competitor "
                "opens no closer to its theo than its ceiling"
            )
        _number("mm_back_off", self.mm_back_off, 0.0, 1.0)
        if self.mm_stay != math.inf:
            _number("mm_stay", self.mm_stay, 0.0, 1e7, open_low=True)
        _number("mm_away", self.mm_away, 0.0, 1e7, open_low=True)
        _number("mm_refresh", self.mm_refresh, 0.0, 1e7, open_low=True)
        _number("mm_requote", self.mm_requote, 0.0, 3600.0, open_low=True)
        _number("informed_window", self.informed_window, 0.0, 1e6, open_low=True)
        _number("informed_margin", self.informed_margin, 0.0, 50.0)
        for name in ("taker_size", "stale_size", "mm_size", "informed_size"):
            _size_range(name, getattr(self, name))
        for name, count, top in (
            ("market_makers", self.market_makers, 20),
            ("informed_sweeps", self.informed_sweeps, 1000),
        ):
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= top:
                raise ValueError(f"{name} = {count!r}: must be a whole number in [0, {top}]")
        if self.informed_sweeps < 1:
            raise ValueError("informed_sweeps = 0: need at least one sweep per news jump")
        per_game = self.market_maker_count
        if per_game is not None and not (
            isinstance(per_game, tuple)
            and len(per_game) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in per_game)
            and 0 <= per_game[0] <= per_game[1] <= self.market_makers
        ):
            raise ValueError(
                f"market_maker_count = {per_game!r}: must be (low, high) whole firms with "
                f"0 <= low <= high <= market_makers = {self.market_makers}"
            )

    @property
    def firms_per_game(self) -> tuple[int, int]:
        """The range the number of competitors on one game is drawn from."""
        count = self.market_maker_count
        return count if count is not None else (0, self.market_makers)


# --------------------------------------------------------------------------- the flow model


def _bias(p: float, buys_yes: bool, config: AgentConfig) -> float:
    tilt = config.favourite_bias * (p - 0.5)
    if buys_yes:
        return (1.0 + config.yes_bias) * (1.0 + tilt)
    return (1.0 - config.yes_bias) * (1.0 - tilt)


def _bias_bound(buys_yes: bool, config: AgentConfig) -> float:
    """The largest :func:`_bias` over p in [0, 1]: the thinning envelope."""
    yes = 1.0 + config.yes_bias if buys_yes else 1.0 - config.yes_bias
    return yes * (1.0 + abs(config.favourite_bias) / 2)


def taker_rate(
    game: GameSpec,
    ticker: str,
    book_side: BookSide,
    delta_cents: float,
    t: float,
    config: AgentConfig,
) -> float:
    """Retail arrivals per wall second that lift a resting quote ``delta_cents`` from the truth.

    ``book_side`` is the resting quote's side: an ask at truth + δ is lifted by YES buyers, a
    bid at truth − δ is hit by YES sellers. The rate is ``A·e^(−k·δ)`` times the YES and
    favourite biases at the truth of time ``t``; a quote better than the truth (δ < 0) is
    reached by every arrival on that side. It assumes the quote is the best on its side.

    The rate counts taker *orders* (hits on the quote), not contracts: each brings
    ``config.taker_size`` contracts (1–10 by default), so contracts trade at about the mean
    order size times this rate.
    """
    if book_side not in ("bid", "ask"):
        raise ValueError(f"book_side {book_side!r} (allowed: bid, ask)")
    if not config.retail:
        return 0.0
    p = game.truth(ticker, t)
    bias = _bias(p, book_side == "ask", config)
    return game.A * bias * math.exp(-game.k * max(delta_cents, 0.0))


#: A float price this close to a grid level *is* that level (0.45 + 0.03 lands on 0.48).
_SNAP: Final = 1e-9


def _tick_at_or_below(grid: PriceGrid, price: float) -> int | None:
    """The highest tick priced at or below ``price`` (None below the grid).

    The one snapping rule of this module: agents think in float probabilities, so this is
    :meth:`PriceGrid.tick_at_or_below` on the grid's float levels, with float rounding
    (within 1e-9) counted as a tie.
    """
    i = bisect.bisect_right(grid.prices_float, price + _SNAP) - 1
    return i if i >= 0 else None


def _tick_at_or_above(grid: PriceGrid, price: float) -> int | None:
    """The lowest tick priced at or above ``price`` (None above the grid); see above."""
    levels = grid.prices_float
    i = bisect.bisect_left(levels, price - _SNAP)
    return i if i < len(levels) else None


def _draw_size(rng: random.Random, bounds: tuple[int, int]) -> int:
    return rng.randint(bounds[0], bounds[1])


# --------------------------------------------------------------------------- agents


class _RetailTaker:
    """Retail flow on one side of one market: a thinned Poisson process of IOC orders."""

    def __init__(
        self, sim: Simulation, game: GameSpec, outcome: Outcome, buys_yes: bool, seed: int
    ) -> None:
        self.sim = sim
        self.game = game
        self.index = outcome.index
        self.market = sim.exchange.markets[outcome.ticker]
        self.buys_yes = buys_yes
        name = "retail-buy" if buys_yes else "retail-sell"
        self.rng = random.Random(f"{seed}|{name}|{outcome.ticker}")
        # Thinning: arrivals at the envelope rate, each kept with probability rate/envelope,
        # make an exact Poisson process whose rate follows the truth as it moves.
        self.envelope = game.A * _bias_bound(buys_yes, sim.config)

    def start(self, t0: float) -> None:
        if self.envelope > 0 and t0 < self.game.end:
            self.sim.schedule(t0 + self.rng.expovariate(self.envelope), self)

    def __call__(self, t: float) -> None:
        game, rng, config = self.game, self.rng, self.sim.config
        if t >= game.end:  # the market closes with the result: this flow ends
            return
        self.sim.schedule(t + rng.expovariate(self.envelope), self)
        keep, d, size = rng.random(), rng.expovariate(game.k), _draw_size(rng, config.taker_size)
        p = game.path.at(t)[self.index]
        if keep * self.envelope >= game.A * _bias(p, self.buys_yes, config):
            return
        market = self.market
        if not market.trading:
            return
        grid = market.grid
        book = market.book
        if self.buys_yes:
            tick = _tick_at_or_below(grid, p + d / 100)
            best = book.best("ask")
            # An IOC that reaches no resting order would only be cancelled: skip the call.
            if tick is None or best is None or best > tick:
                return
            self.sim.take(RETAIL_USER, market, "bid", tick, size)
        else:
            tick = _tick_at_or_above(grid, p - d / 100)
            best = book.best("bid")
            if tick is None or best is None or best < tick:
                return
            self.sim.take(RETAIL_USER, market, "ask", tick, size)


class _StaleLiquidity:
    """Deep resting orders far from the money, placed once and never touched again."""

    def __init__(self, sim: Simulation, seed: int) -> None:
        self.sim = sim
        self.seed = seed

    def __call__(self, t: float) -> None:
        sim, config = self.sim, self.sim.config
        for game in sim.scenario.games:
            if t >= game.end:
                continue
            for outcome in game.outcomes:
                rng = random.Random(f"{self.seed}|stale|{outcome.ticker}")
                chosen = rng.random() < config.stale_share
                has_ask, has_bid = rng.random() < 0.8, rng.random() < 0.8
                ask_cents, bid_cents = rng.randint(94, 97), rng.randint(2, 5)
                ask_size, bid_size = (_draw_size(rng, config.stale_size) for _ in range(2))
                market = sim.exchange.markets[outcome.ticker]
                if not chosen or not market.trading:
                    continue
                p = game.path.at(t)[outcome.index]
                # "Far from the money": never within 15¢ of the truth, or it is not stale.
                if has_ask and ask_cents / 100 - p >= 0.15:
                    tick = _tick_at_or_above(market.grid, ask_cents / 100)
                    if tick is not None:
                        sim.rest(STALE_USER, market, "ask", tick, ask_size, post_only=False)
                if has_bid and p - bid_cents / 100 >= 0.15:
                    tick = _tick_at_or_below(market.grid, bid_cents / 100)
                    if tick is not None:
                        sim.rest(STALE_USER, market, "bid", tick, bid_size, post_only=False)


@dataclass
class _Quotes:
    """One competitor's state on one market."""

    market: SimMarket
    index: int
    error: float  # cents, persistent
    rng: random.Random
    theo: float | None = None
    bid: SimOrder | None = None
    ask: SimOrder | None = None


class CompetitorMM:
    """One competing market-maker firm on one game (see the module doc for its rules)."""

    def __init__(
        self, sim: Simulation, game: GameSpec, firm: int, seed: int, style: MMStyle = "hold"
    ) -> None:
        if style not in MM_STYLES:
            raise ValueError(f"style {style!r} (allowed: {', '.join(MM_STYLES)})")
        self.sim = sim
        self.game = game
        self.firm = firm
        self.style: MMStyle = style
        self.user_id = mm_user(firm)
        self.event_ticker = game.event_ticker
        #: False once it has left the game for good (game start, or :meth:`withdraw`).
        self.active = True
        #: Whether it is in the market now (it steps away for a while now and then).
        self.present = False
        #: How many times it has stepped away and how many times it has (re-)entered.
        self.departures = 0
        self.entries = 0
        config = sim.config
        self.rng = random.Random(f"{seed}|{self.user_id}|{game.event_ticker}")
        self.presence = random.Random(f"{seed}|{self.user_id}|{game.event_ticker}|presence")
        self.quotes: dict[str, _Quotes] = {}
        for outcome in game.outcomes:
            rng = random.Random(f"{seed}|{self.user_id}|{outcome.ticker}")
            error = rng.gauss(0.0, config.mm_theo_error)
            market = sim.exchange.markets[outcome.ticker]
            self.quotes[outcome.ticker] = _Quotes(market, outcome.index, error, rng)
        self.refresh_every = config.mm_refresh / sim.scenario.speed  # wall seconds
        self.next_refresh = -math.inf
        self.back_at = math.inf  # wall time it (re-)enters, while away
        self.leave_at = math.inf  # wall time it next steps away, while present

    # ---------------------------------------------------------------- what it thinks

    def _level(self, ticker: str, cents: float, side: BookSide) -> int | None:
        theo = self.quotes[ticker].theo
        if theo is None:
            return None
        grid = self.quotes[ticker].market.grid
        if side == "bid":
            return _tick_at_or_below(grid, theo - cents / 100)
        return _tick_at_or_above(grid, theo + cents / 100)

    def ceiling(self, ticker: str) -> int | None:
        """The highest bid tick it will pay: theo − edge (None if below the grid)."""
        return self._level(ticker, self.sim.config.mm_edge, "bid")

    def floor(self, ticker: str) -> int | None:
        """The lowest ask tick it will sell at: theo + edge (None if above the grid)."""
        return self._level(ticker, self.sim.config.mm_edge, "ask")

    def opening(self, ticker: str, side: BookSide) -> int | None:
        """Where it quotes ``side`` with nobody to outbid: theo ∓ mm_open."""
        return self._level(ticker, self.sim.config.mm_open, side)

    def order(self, ticker: str, side: BookSide) -> SimOrder | None:
        """Its live order on ``side`` of ``ticker``, if any."""
        q = self.quotes[ticker]
        order = q.bid if side == "bid" else q.ask
        return order if order is not None and order.live else None

    # ---------------------------------------------------------------- what it does

    def _wall(self, mean_scenario_seconds: float) -> float:
        """An exponential duration with this mean, in wall seconds (inf stays inf)."""
        if math.isinf(mean_scenario_seconds):
            return math.inf
        draw = self.presence.expovariate(1.0 / mean_scenario_seconds)
        return draw / self.sim.scenario.speed

    def start(self, t0: float) -> None:
        game, config = self.game, self.sim.config
        if t0 >= game.start:
            return
        # Start in the long-run mix of present and away, as if the market had been running.
        stay, away = config.mm_stay, config.mm_away
        away_share = 0.0 if math.isinf(stay) else away / (stay + away)
        self.back_at = t0 + self._wall(away) if self.presence.random() < away_share else t0
        self.leave_at = self.back_at + self._wall(stay)
        first = max(t0 + self.rng.uniform(0.0, config.mm_requote), self.back_at)
        self.sim.schedule(min(first, game.start), self)

    def withdraw(self) -> None:
        """Cancel its orders on this game and stop quoting it for good."""
        self.active = False
        self._pull()

    def _pull(self) -> None:
        self.present = False
        for ticker, q in self.quotes.items():
            for side in SIDES:
                order = self.order(ticker, side)
                if order is not None:
                    self.sim.cancel(order)
            q.bid = q.ask = None

    def __call__(self, t: float) -> None:
        if not self.active:
            return
        game, config = self.game, self.sim.config
        if t >= game.start:  # it never quotes in play
            self.withdraw()
            return
        if self.present and t >= self.leave_at:  # it steps away for a while
            self._pull()
            self.departures += 1
            self.back_at = t + self._wall(config.mm_away)
            self.leave_at = self.back_at + self._wall(config.mm_stay)
            self.sim.schedule(min(self.back_at, game.start), self)
            return
        if not self.present:
            if t < self.back_at:  # not due back yet (only if called early by hand)
                self.sim.schedule(min(self.back_at, game.start), self)
                return
            self.present = True
            self.entries += 1
            self.next_refresh = -math.inf  # it looks at the truth afresh on arrival
        interval = self.rng.uniform(0.5, 1.5) * config.mm_requote
        self.sim.schedule(min(t + interval, game.start), self)
        if t >= self.next_refresh:
            probs = game.path.at(t)
            for q in self.quotes.values():
                q.theo = min(max(probs[q.index] + q.error / 100, 0.001), 0.999)
            self.next_refresh = t + self.refresh_every
        for ticker, q in self.quotes.items():
            if q.market.trading:
                q.bid = self._requote(q, ticker, "bid", q.bid)
                q.ask = self._requote(q, ticker, "ask", q.ask)

    def _requote(
        self, q: _Quotes, ticker: str, side: BookSide, order: SimOrder | None
    ) -> SimOrder | None:
        if order is not None and not order.live:
            order = None
        target = self._target(q, ticker, side, order)
        sim = self.sim
        size = _draw_size(q.rng, sim.config.mm_size)
        if target is None:
            if order is not None:
                sim.cancel(order)
            return None
        if order is None:
            return sim.rest(self.user_id, q.market, side, target, size, post_only=True)
        # Amend keeps the order (and its queue place when only shrinking); top up a quote
        # eaten below half its size, as a market maker refreshing after fills does.
        if order.tick != target or order.remaining * 2 < size * CC:
            return sim.amend(order, q.market, target, size)
        return order

    def _target(self, q: _Quotes, ticker: str, side: BookSide, own: SimOrder | None) -> int | None:
        limit = self.ceiling(ticker) if side == "bid" else self.floor(ticker)
        if limit is None:
            return None
        opening = self.opening(ticker, side)
        book = q.market.book
        other = _best_other(book, side, own)
        backs_off = self.style == "back_off"
        if side == "bid":
            base = min(opening if opening is not None else 0, limit)
            if other is None or (backs_off and other > limit):
                target = base  # nobody to outbid, or outbid beyond its ceiling: back off
            else:
                target = max(base, min(other + 1, limit))
            best_ask = book.best("ask")
            # Never cross the book: a competitor makes markets, it does not take.
            if best_ask is not None:
                target = min(target, best_ask - 1)
            return target if target >= 0 else None
        top = len(q.market.grid.levels) - 1
        base = max(opening if opening is not None else top, limit)
        if other is None or (backs_off and other < limit):
            target = base
        else:
            target = min(base, max(other - 1, limit))
        best_bid = book.best("bid")
        if best_bid is not None:
            target = max(target, best_bid + 1)
        return target if target <= top else None


def _best_other(book: Book, side: BookSide, own: SimOrder | None) -> int | None:
    """The best tick on ``side`` held by anyone but ``own`` (a few levels: a plain scan)."""
    own_tick = own.tick if own is not None else None
    own_size = own.remaining if own is not None else 0
    best: int | None = None
    for tick, size in book.sizes[side].items():
        if tick == own_tick and size <= own_size:
            continue
        if best is None or (tick > best if side == "bid" else tick < best):
            best = tick
    return best


class _InformedSweep:
    """One sweep after a news jump: take every quote mispriced against the new truth."""

    def __init__(self, sim: Simulation, game: GameSpec, rngs: dict[str, random.Random]) -> None:
        self.sim = sim
        self.game = game
        self.rngs = rngs

    def __call__(self, t: float) -> None:
        sim, config = self.sim, self.sim.config
        margin = config.informed_margin / 100
        probs = self.game.path.at(t)
        for outcome in self.game.outcomes:
            rng = self.rngs[outcome.ticker]
            buy_size = _draw_size(rng, config.informed_size)
            sell_size = _draw_size(rng, config.informed_size)
            market = sim.exchange.markets[outcome.ticker]
            if not market.trading:
                continue
            p = probs[outcome.index]
            book, grid = market.book, market.grid
            best_ask = book.best("ask")
            limit = _tick_at_or_below(grid, p - margin)
            if best_ask is not None and limit is not None and best_ask <= limit:
                sim.take(INFORMED_USER, market, "bid", limit, buy_size)
            best_bid = book.best("bid")
            limit = _tick_at_or_above(grid, p + margin)
            if best_bid is not None and limit is not None and best_bid >= limit:
                sim.take(INFORMED_USER, market, "ask", limit, sell_size)


class _Lifecycle:
    """Determine a game's markets when the result is known, or settle them."""

    def __init__(self, sim: Simulation, game: GameSpec, settle: bool) -> None:
        self.sim = sim
        self.game = game
        self.settle = settle

    def __call__(self, _t: float) -> None:
        exchange = self.sim.exchange
        for outcome in self.game.outcomes:
            try:
                if self.settle:
                    exchange.settle(outcome.ticker)
                else:
                    won = outcome.index == self.game.result_index
                    exchange.determine(outcome.ticker, "yes" if won else "no")
            except ExchangeError as exc:
                self.sim.errors[exc.code] += 1


# --------------------------------------------------------------------------- the driver


class Simulation:
    """The agents of one scenario on one exchange, and the event heap that runs them."""

    def __init__(
        self,
        scenario: Scenario,
        exchange: Exchange,
        config: AgentConfig | None = None,
        *,
        seed: int,
    ) -> None:
        self.scenario = scenario
        self.exchange = exchange
        self.config = config if config is not None else AgentConfig()
        self.seed = seed
        clock = exchange.clock
        self._virtual = clock if isinstance(clock, VirtualClock) else None
        self.t0 = clock.now()
        self._heap: list[tuple[float, int, Action]] = []
        self._sequence = itertools.count()
        #: Rejections the agents shrugged off, by error code (a market closing under them).
        self.errors: Counter[str] = Counter()
        self.actions_run = 0
        #: The competing firms quoting each game (one object per firm and game).
        self.market_makers: list[CompetitorMM] = []
        cfg = self.config
        firms = range(1, cfg.market_makers + 1)
        # Each firm's style, for all its games: an exact share back off, which ones is seeded.
        backing = math.floor(cfg.mm_back_off * cfg.market_makers + 0.5)
        backs_off = set(random.Random(f"{seed}|mm-styles").sample(firms, backing))
        self.styles: dict[int, MMStyle] = {
            firm: "back_off" if firm in backs_off else "hold" for firm in firms
        }
        users = [RETAIL_USER, INFORMED_USER, STALE_USER]
        users += [mm_user(i) for i in firms]
        for user in users:
            if user not in exchange.accounts:
                exchange.open_account(user, AGENT_BALANCE, keep_history=False)
        t0 = self.t0
        if cfg.stale_liquidity:
            self.schedule(t0, _StaleLiquidity(self, seed))
        for game in scenario.games:
            if cfg.retail:
                for outcome in game.outcomes:
                    for buys in (True, False):
                        _RetailTaker(self, game, outcome, buys, seed).start(t0)
            low, high = cfg.firms_per_game
            pick = random.Random(f"{seed}|mm-count|{game.event_ticker}")
            for firm in sorted(pick.sample(firms, pick.randint(low, high))):
                mm = CompetitorMM(self, game, firm, seed, self.styles[firm])
                self.market_makers.append(mm)
                mm.start(t0)
            if cfg.lifecycle:
                self.schedule(max(game.end, t0), _Lifecycle(self, game, settle=False))
                self.schedule(max(game.settle, t0), _Lifecycle(self, game, settle=True))
        if cfg.informed:
            for jump in scenario.news:
                self._schedule_sweeps(jump)

    def competitors(self, event_ticker: str) -> list[CompetitorMM]:
        """The firms quoting ``event_ticker`` (none: a monopsony), in firm order."""
        return [mm for mm in self.market_makers if mm.event_ticker == event_ticker]

    def _schedule_sweeps(self, jump: NewsJump) -> None:
        game = self.scenario.game(jump.event_ticker)
        cfg = self.config
        # Seeded by the jump itself, not its place in the day: a game's agents draw the same
        # numbers whichever other games share the scenario (the lab splits a day by games).
        tag = f"{self.seed}|informed|{jump.event_ticker}|{jump.time!r}"
        rngs = {o.ticker: random.Random(f"{tag}|{o.ticker}") for o in game.outcomes}
        timing = random.Random(f"{tag}|{jump.event_ticker}")
        window = cfg.informed_window / self.scenario.speed  # wall seconds
        sweep = _InformedSweep(self, game, rngs)
        for i in range(cfg.informed_sweeps):
            at = jump.time + window * (i + timing.random()) / cfg.informed_sweeps
            if at >= self.t0:
                self.schedule(at, sweep)

    # ---------------------------------------------------------------- the event loop

    def schedule(self, t: float, action: Action) -> None:
        """Run ``action(t)`` at epoch time ``t`` (ties run in the order scheduled)."""
        heapq.heappush(self._heap, (t, next(self._sequence), action))

    def next_time(self) -> float | None:
        """When the next action is due, or None when nothing is left to do."""
        return self._heap[0][0] if self._heap else None

    def advance_to(self, t: float) -> int:
        """Run every action due at or before ``t``, in time order; returns how many ran."""
        heap, clock = self._heap, self._virtual
        ran = 0
        while heap and heap[0][0] <= t:
            when, _, action = heapq.heappop(heap)
            if clock is not None:
                self._move_clock(clock, when)
            action(when)
            ran += 1
        if clock is None:
            self.exchange.advance()
        self.actions_run += ran
        return ran

    def run_until(self, t: float) -> int:
        """:meth:`advance_to` ``t``, then (on a virtual clock) move the clock to ``t``."""
        ran = self.advance_to(t)
        if self._virtual is not None:
            self._move_clock(self._virtual, t)
        return ran

    def _move_clock(self, clock: VirtualClock, t: float) -> None:
        now = clock.now()
        if t <= now:  # the clock was moved past this action by hand: run it now
            return
        # Order expirations are whole Unix seconds: apply them at the second they fall due.
        second = math.floor(t)
        if second > now:
            clock.set(float(second))
            self.exchange.advance()
        clock.set(t)

    # ---------------------------------------------------------------- exchange calls

    def take(self, user: str, market: SimMarket, side: BookSide, tick: int, size: int) -> None:
        """An immediate-or-cancel order; a rejection is counted and shrugged off."""
        try:
            self.exchange.create_order(
                user,
                ticker=market.ticker,
                side=side,
                price=market.grid.price(tick),
                count=size,
                time_in_force="immediate_or_cancel",
                self_trade_prevention_type="taker_at_cross",
            )
        except ExchangeError as exc:
            self.errors[exc.code] += 1

    def rest(
        self,
        user: str,
        market: SimMarket,
        side: BookSide,
        tick: int,
        size: int,
        *,
        post_only: bool,
    ) -> SimOrder | None:
        """A good-till-cancelled order; returns it if it rests, else None."""
        try:
            order = self.exchange.create_order(
                user,
                ticker=market.ticker,
                side=side,
                price=market.grid.price(tick),
                count=size,
                time_in_force="good_till_canceled",
                self_trade_prevention_type="maker",
                post_only=post_only,
            )
        except ExchangeError as exc:
            self.errors[exc.code] += 1
            return None
        return order if order.live else None

    def amend(self, order: SimOrder, market: SimMarket, tick: int, size: int) -> SimOrder | None:
        """Move ``order`` to ``tick`` with ``size`` contracts left; None if it is gone."""
        try:
            self.exchange.amend_order(
                order.user_id,
                order.order_id,
                ticker=market.ticker,
                side=order.book_side,
                price=market.grid.price(tick),
                count=cc_to_count(order.filled + size * CC),
            )
        except ExchangeError as exc:
            self.errors[exc.code] += 1
        return order if order.live else None

    def cancel(self, order: SimOrder) -> None:
        try:
            self.exchange.cancel_order(order.user_id, order.order_id)
        except ExchangeError as exc:
            self.errors[exc.code] += 1
