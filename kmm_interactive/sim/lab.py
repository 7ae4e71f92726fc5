"""The strategy lab: a day of games in virtual time, in-process, with the live strategy unchanged.

One run (:func:`run`) is one scenario, one strategy and one seed:

* **The market** is the embedded exchange's own core and agents (``Exchange`` and
  ``Simulation`` on a :class:`VirtualClock`): retail flow, competing firms, stale liquidity
  and informed sweeps after news, exactly as the demo serves them, minus HTTP.
* **The theo** comes from the embedded odds feed's bookmakers (:class:`OddsFeed`) through
  the product's consensus, refreshed every ``refresh.odds`` and, when inventory skews or
  one-way fills burst, rechecked for one game after ``odds_latency`` (the rule of
  :mod:`~kmm_interactive.strategy.recheck`; while a recheck is pending the game only reduces).
* **The decisions** are ``strategy.decide`` (or the naive ``decide_tob``), fed the same
  :class:`GameState` the live engine builds: the others' best prices and depth, our resting
  orders, the inventory and claim cost from the same ledger, the halts derived from the
  clock. A game is decided again ``feed_latency`` after a fill, a new theo, a write that
  lands with more to do, or a change to the others' best prices (any change to its books
  while their depth limits the cap), and at least every ``requote_every`` seconds.
* **Execution** models what the engine cannot avoid: a write reaches the exchange
  ``order_latency`` (± ``latency_jitter``) after the decision, one write in flight per side,
  and a new order joins the back of its price level's FIFO queue (the exchange core keeps
  price-time priority; an amend that moves the price loses its place, a decrease keeps it).
  Writes follow the engine's rules (:mod:`~kmm_interactive.strategy.writes`): which write
  takes a side to its quote, and growing writes wait until nothing is in flight and no
  shrinking write goes with them, so the cap holds however the writes race.
* **Measured** per game (:mod:`~kmm_interactive.sim.lab_results`): PnL (realized plus
  settlement at the drawn result), fees, fills and our share of the traded contracts,
  max |q| and the worst case (q plus every resting order of one direction) against the
  cap, |q| held into the start, the adverse-selection loss (markout of fills in the window
  after a news jump), and writes against the tier's token budget.

A run stops once every game has started (nothing is quoted in play) and settles what is
held at each game's drawn result, so in-play flow costs nothing. ``run_to_settlement`` plays
on to the exchange's own settlement instead, which the tests use to prove both accounts
agree.

Determinism: everything random is drawn from the seed (agents, odds, latency jitter) and
nothing iterates a set or reads the wall clock, so one (scenario, config, seed) gives the
same result in any process; :func:`sweep` returns results in job order whatever the
executor, so a parallel sweep equals a serial one.

Failure semantics: a bad :class:`LabConfig` or :class:`LabScenario` raises ``ValueError``
naming the field and what is allowed, before anything runs. Inside a run, a write the
exchange refuses is counted by its error code (``RunResult.rejected``) and the side is
decided again; a quote table that cannot be solved leaves its game unquoted until the next
theo and is counted (``RunResult.model_errors``).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from kmm_interactive.config import Config, ConfigError
from kmm_interactive.domain import ZERO, Fill, Game, GameSide, Leg, Market, Side
from kmm_interactive.ledger import PositionBook
from kmm_interactive.pricing.consensus import BookOdds, consensus
from kmm_interactive.pricing.fees import expected_fee
from kmm_interactive.pricing.hjb import SolveError, solve_quote_table
from kmm_interactive.pricing.intensity import IntensityPrior, IntensitySource
from kmm_interactive.pricing.intensity_tracker import IntensityTracker
from kmm_interactive.pricing.quote_table import QuoteModel, QuoteProblem, QuoteTable
from kmm_interactive.sim import lab_layers
from kmm_interactive.sim.agents import SIDES, AgentConfig, Simulation
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.exchange import (
    CC,
    BookChange,
    Exchange,
    ExchangeError,
    ExchangeEvent,
    FillEvent,
    SimMarket,
    SimOrder,
    TradeEvent,
    cc_to_count,
)
from kmm_interactive.sim.lab_pool import SubprocessExecutor
from kmm_interactive.sim.lab_results import FillRow, GameResult, LabResults, RunResult
from kmm_interactive.sim.odds_server import OddsFeed
from kmm_interactive.sim.ratelimit import CANCEL_COST, DEFAULT_COST, TIERS
from kmm_interactive.sim.scenario import (
    MAX_GAMES,
    MIXES,
    NEWS_RATE,
    GameSpec,
    Scenario,
    build_scenario,
)
from kmm_interactive.strategy.halts import HaltReason
from kmm_interactive.strategy.inputs import (
    fill_direction,
    inventories,
    quote_params,
    quote_problem,
)
from kmm_interactive.strategy.layers import BookDepth
from kmm_interactive.strategy.naive import decide_tob
from kmm_interactive.strategy.quoter import (
    BookView,
    Decision,
    DesiredQuote,
    GameState,
    QuoteParams,
    Resting,
    UnitState,
    decide,
)
from kmm_interactive.strategy.recheck import burst_reason, recent_one_way, skew_level, skew_reason
from kmm_interactive.strategy.writes import WriteKind, grows, may_grow, side_change

#: Our account on the lab's exchange.
LAB_USER: Final = "lab-mm"
LAB_BALANCE: Final = Decimal(10_000_000)
#: Virtual time starts here (a fixed instant, so ticker dates and results never depend on
#: the day a run happens).
ORIGIN: Final = datetime(2026, 1, 10, 15, 0, tzinfo=UTC).timestamp()
#: ``run(workers=n)`` splits a day into this many parts per process.
PARTS_PER_WORKER: Final = 3
#: Quote tables kept per run (a parameter set back, a recheck that brings back a theo).
TABLE_CACHE: Final = 256


class Strategy(enum.StrEnum):
    """The one switch: which quoting rule a run uses."""

    HJB = "hjb"  # exact discrete-tick HJB table + competition + risk (the product)
    GLFT = "glft"  # the GLFT closed form snapped to ticks, same competition and risk
    AS2008 = "as2008"  # Avellaneda–Stoikov 2008, same competition and risk
    LINEAR = "linear"  # linear inventory skew, same competition and risk
    TOB = "tob"  # naive: one tick better than the best, up to theo − edge

    @property
    def model(self) -> QuoteModel | None:
        """The quote table behind it (None: the naive rule needs none)."""
        return _MODELS.get(self)


_MODELS: Final = {
    Strategy.HJB: QuoteModel.HJB,
    Strategy.GLFT: QuoteModel.GLFT,
    Strategy.AS2008: QuoteModel.AVELLANEDA_STOIKOV,
    Strategy.LINEAR: QuoteModel.LINEAR_SKEW,
}


class Layer(enum.StrEnum):
    """The optional layers of the second seed, each off unless named in ``LabConfig.layers``."""

    ADAPTIVE_SPREAD = "adaptive_spread"  # tighten when unfilled, widen when filled fast
    IMBALANCE = "imbalance"  # shade toward the heavier side of the book
    TOXICITY = "toxicity"  # widen while recent fills mark out against us
    REESTIMATE = "reestimate"  # refit A and k from our own quotes and fills


def _positive(name: str, value: object, top: float = 1e7) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} = {value!r}: must be a number")
    if not (math.isfinite(value) and 0 < value <= top):
        raise ValueError(f"{name} = {value!r}: must be a number in (0, {top:g}]")


@dataclass(frozen=True)
class LabScenario:
    """A market to test against: the games drawn and how the other participants behave.

    The agents' parameters belong to the scenario and are the same for every strategy run
    on it (never tune the market to favour one)."""

    name: str
    mix: str = "day"  # a scenario mix of sim/scenario.py ("day" is 20 games)
    games: int | None = None  # None: the mix's own count
    agents: AgentConfig = field(default_factory=AgentConfig)
    news_rate: float = NEWS_RATE  # news jumps per second before the start
    first_start: float = 1200.0  # seconds from the run's start to the first game
    last_start: float = 4 * 3600.0  # ... and to the last

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a scenario needs a name")
        if self.mix not in MIXES:
            raise ValueError(f"mix = {self.mix!r}: allowed {', '.join(sorted(MIXES))}")
        if self.games is not None and (
            isinstance(self.games, bool)
            or not isinstance(self.games, int)
            or not 1 <= self.games <= MAX_GAMES
        ):
            raise ValueError(
                f"games = {self.games!r}: must be a whole number in [1, {MAX_GAMES}], or None"
            )
        if not isinstance(self.agents, AgentConfig):
            raise ValueError(f"agents = {self.agents!r}: must be an AgentConfig")
        _positive("news_rate", self.news_rate, 0.1)
        _positive("first_start", self.first_start)
        _positive("last_start", self.last_start)
        if self.last_start < self.first_start:
            raise ValueError("need first_start <= last_start")

    def build(self, seed: int) -> Scenario:
        return build_scenario(
            self.mix,
            seed=seed,
            now=ORIGIN,
            n_games=self.games,
            first_start=self.first_start,
            last_start=self.last_start,
            news_rate=self.news_rate,
        )


#: Competitors requote every 2 s on average in the lab's scenarios (1 s in the demo): the
#: same behaviour at half the cost, for every strategy alike.
_LAB_AGENTS: Final = AgentConfig(mm_requote=2.0)

#: The standard scenario set of the benchmark (issue 7): each stresses one thing.
SCENARIOS: Final[dict[str, LabScenario]] = {
    # Two or three competing firms on every game: outbidding, backing off, sharing ceilings.
    "competition": LabScenario(
        "competition", agents=AgentConfig(mm_requote=2.0, market_maker_count=(2, 3))
    ),
    # Four times the news: informed sweeps after each jump, bookmakers late to price it.
    "news": LabScenario(
        "news",
        agents=AgentConfig(mm_requote=2.0, market_maker_count=(0, 1)),
        news_rate=4 * NEWS_RATE,
    ),
    # Retail leaning hard on YES and on favourites, few competitors: inventory builds one way.
    "retail_bias": LabScenario(
        "retail_bias",
        agents=AgentConfig(
            mm_requote=2.0, market_maker_count=(0, 1), yes_bias=0.5, favourite_bias=1.2
        ),
    ),
}


@dataclass(frozen=True)
class LabConfig:
    """How the strategy runs in the lab: the switch, its layers, the product configuration
    (sport profiles, theo, quoting, risk: what the live engine reads) and the execution model.
    Times are seconds."""

    strategy: Strategy = Strategy.HJB
    layers: frozenset[Layer] = frozenset()
    config: Config = field(default_factory=Config)
    #: Per-sport changes to the profiles, e.g. ``{"nba": {"gamma": 0.05, "prior_k": 0.8}}``
    #: (kept as sorted tuples, so that equal configs compare equal however they were written).
    params: (
        Mapping[str, Mapping[str, Any]] | tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    ) = ()
    label: str = ""  # how results name this configuration (default: strategy + layers)
    order_latency: float = 0.05  # decision → exchange, one way
    latency_jitter: float = 0.5  # ± this share of order_latency, uniform
    feed_latency: float = 0.02  # exchange → our next decision
    requote_every: float = 5.0  # a decision at least this often (τ moves, holds expire)
    odds_recheck: bool = True  # the per-event odds recheck after skew or one-way fills
    odds_latency: float = 1.0  # a recheck's pull takes this long
    markout_horizon: float = 300.0  # a fill's markout: the truth this long after it
    news_window: float = 600.0  # fills this long after a news jump are its adverse selection
    reestimate_every: float = 600.0  # the REESTIMATE layer refits this often per game
    tier: str = "basic"  # the API tier whose write budget the writes are measured against
    run_to_settlement: bool = False  # play on to the exchange's settlement (tests)

    def __post_init__(self) -> None:
        params = self.params
        if isinstance(params, Mapping):
            if not all(isinstance(v, Mapping) for v in params.values()):
                raise ValueError(f"params = {params!r}: must map sport -> {{parameter: value}}")
            params = tuple(sorted((k, tuple(sorted(v.items()))) for k, v in params.items()))
        object.__setattr__(self, "params", params)
        try:
            object.__setattr__(self, "strategy", Strategy(self.strategy))
        except ValueError:
            allowed = ", ".join(s.value for s in Strategy)
            raise ValueError(f"strategy = {self.strategy!r}: allowed {allowed}") from None
        try:
            object.__setattr__(self, "layers", frozenset(Layer(x) for x in self.layers))
        except ValueError:
            allowed = ", ".join(x.value for x in Layer)
            raise ValueError(f"layers = {self.layers!r}: allowed {allowed}") from None
        if not isinstance(self.config, Config):
            raise ValueError(f"config = {self.config!r}: must be a kmm_interactive Config")
        for name in ("order_latency", "requote_every", "odds_latency", "markout_horizon"):
            _positive(name, getattr(self, name), 3600.0)
        for name in ("news_window", "reestimate_every"):
            _positive(name, getattr(self, name), 86400.0)
        _positive("feed_latency", self.feed_latency, 60.0)
        jitter = self.latency_jitter
        if isinstance(jitter, bool) or not (isinstance(jitter, int | float) and 0 <= jitter < 1):
            raise ValueError(f"latency_jitter = {self.latency_jitter!r}: must be in [0, 1)")
        if self.tier not in TIERS:
            raise ValueError(f"tier = {self.tier!r}: allowed {', '.join(TIERS)}")
        if self.strategy is Strategy.TOB and self.layers:
            raise ValueError(
                "layers with strategy 'tob': the naive rule has no model price to move or "
                "refit; the layers apply to hjb, glft, as2008 and linear"
            )
        if self.strategy is Strategy.GLFT and Layer.REESTIMATE in self.layers:
            raise ValueError(
                "layer 'reestimate' with strategy 'glft': the GLFT closed form needs one k for "
                "both books of a game, and the refit gives each market its own"
            )
        # Check every parameter change now, with the profile's own rules.
        self.profiles()

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        return "+".join([self.strategy.value, *sorted(x.value for x in self.layers)])

    def profiles(self) -> Config:
        """The product configuration with ``params`` applied (a bad value raises)."""
        config = self.config
        items: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = self.params  # type: ignore[assignment]  # normalised in __post_init__
        for sport, changes in items:
            if sport not in config.sports:
                allowed = ", ".join(sorted(config.sports))
                raise ValueError(f"params: sport {sport!r} is unknown (allowed: {allowed})")
            known = {f.name for f in dataclasses.fields(config.sports[sport])}
            unknown = sorted(set(dict(changes)) - known)
            if unknown:
                raise ValueError(
                    f"params for {sport}: {unknown[0]!r} is not a profile setting "
                    f"(allowed: {', '.join(sorted(known))})"
                )
            try:
                profile = dataclasses.replace(config.sports[sport], **dict(changes))
            except ConfigError as exc:
                raise ValueError(f"params for {sport}: {exc}") from None
            config = dataclasses.replace(config, sports={**config.sports, sport: profile})
        return config


# --------------------------------------------------------------------------- one run


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@dataclass(eq=False)
class _Side:
    """One side of one of our markets: the order resting there and whether a write is in flight."""

    order: SimOrder | None = None
    since: float = 0.0  # when its price last changed (the competition layer's min rest)
    busy: bool = False
    #: A decision found the side busy: decide again when the write lands.
    again: bool = False
    observed: float = 0.0  # resting time already given to the intensity tracker, up to here


@dataclass(frozen=True, eq=False)
class _Write:
    """One planned write to one side; ``filled`` is the order's filled size (centi) when the
    write was planned."""

    side_state: _Side
    kind: WriteKind
    ticker: str
    side: Side
    tick: int | None = None
    size: int = 0
    grows: bool = False
    filled: int = 0


@dataclass(eq=False)
class _Game:
    spec: GameSpec
    game: Game
    params: QuoteParams  # its cap is the sport's cap (the liquidity cap is decide's)
    units: tuple[tuple[Market, ...], ...]
    intensity: dict[str, IntensityPrior]
    sides: dict[tuple[str, Side], _Side]
    tables: list[QuoteTable | None]
    backed_off: list[dict[GameSide, datetime]]
    probs: dict[str, float] | None = None
    theo_as_of: float | None = None
    requote_due: bool = False
    recheck_pending: bool = False
    skew_checked: int = 0  # the highest skew level rechecked (strategy.recheck.skew_reason)
    last_recheck: float = -math.inf
    rechecks: int = 0
    one_way: list[tuple[datetime, int]] = field(default_factory=list)
    done: bool = False
    max_abs_q: Decimal = ZERO
    max_worst: Decimal = ZERO  # q plus every resting order of one direction, at its peak
    last_decided: float = -math.inf
    held_back: bool = False  # growing writes waited: decide again when a write lands
    depth_binds: bool = False  # the last decision's cap was the book's depth, not the sport's
    q_at_start: Decimal = ZERO
    traded_cc: int = 0  # every contract traded in its markets before the start (centi)
    writes: Counter[str] = field(default_factory=Counter)
    tokens: int = 0
    fills: list[FillRow] = field(default_factory=list)
    #: Latency jitter, drawn per game so that a game runs the same in any split of the day.
    rng: random.Random = field(default_factory=random.Random)
    last_refit: float = -math.inf
    layer_books: list[lab_layers.LayerBook] = field(default_factory=list)  # one per inventory
    #: The others' best (bid, ask) price per market at the last decision: a book change
    #: behind them changes no price, and unless the depth limits the cap (``depth_binds``)
    #: no size either, so it waits for the next timed decision.
    tops: dict[str, tuple[Decimal | None, Decimal | None]] = field(default_factory=dict)

    def unit_of(self, ticker: str) -> int:
        """The index of the inventory ``ticker`` belongs to."""
        return next(i for i, u in enumerate(self.units) if ticker in (m.ticker for m in u))


class _Run:
    """One run's state and the actions it schedules on the simulation's event heap."""

    def __init__(
        self, spec: LabScenario, config: LabConfig, seed: int, only: Sequence[str] | None = None
    ) -> None:
        self.spec, self.config, self.seed = spec, config, seed
        self.product = config.profiles()
        day = spec.build(seed)
        self.end = _end_of(day, config)
        self.scenario = day if only is None else _restricted(day, only)
        self.clock = VirtualClock(ORIGIN)
        self.exchange = Exchange.from_scenario(self.scenario, self.clock)
        self.exchange.open_account(LAB_USER, LAB_BALANCE)
        self.sim = Simulation(self.scenario, self.exchange, spec.agents, seed=seed)
        self.feed = OddsFeed(self.scenario, self.clock, seed=seed)
        self.books = self.feed.bookmakers(bookmakers=self.product.odds.bookmakers)
        self.consensus_params = self.product.theo.consensus_params()
        self.ledger = PositionBook()
        self.tracker = IntensityTracker()
        self.model = config.strategy.model
        self.tables: OrderedDict[tuple[QuoteProblem, QuoteModel], QuoteTable] = OrderedDict()
        self.rejected: Counter[str] = Counter()
        self.model_errors = 0
        self.decisions = 0
        self.games: dict[str, _Game] = {}
        self.views: dict[str, BookView] = {}
        self.by_ticker: dict[str, _Game] = {}
        for spec_game in self.scenario.games:
            g = self._make_game(spec_game)
            if g is not None:
                self.games[g.game.event_ticker] = g
                self.by_ticker.update({m.ticker: g for m in g.game.markets})
        self.exchange.listeners.append(self._on_event)

    # ------------------------------------------------------------------ set-up

    def _make_game(self, spec: GameSpec) -> _Game | None:
        sport = spec.sport
        if sport.odds_sport is None or sport.key not in self.product.sports:
            return None  # no odds feed (esports) or no profile: the engine skips it too
        profile = self.product.sports[sport.key]

        def market(ticker: str, team: str) -> Market:
            m = self.exchange.market(ticker)
            return Market(ticker, spec.event_ticker, team, m.grid, m.fees)

        away, home = spec.outcomes[0], spec.outcomes[1]  # team A is the feed's away team
        tie = spec.outcomes[2] if len(spec.outcomes) > 2 else None
        game = Game(
            spec.event_ticker,
            sport.key,
            _dt(spec.start),
            market(away.ticker, away.name),
            market(home.ticker, home.name),
            market(tie.ticker, tie.name) if tie else None,
        )
        units = inventories(game)
        sides = {(m.ticker, s): _Side() for m in game.markets for s in Side}
        return _Game(
            spec=spec,
            game=game,
            params=quote_params(self.product, profile),
            units=units,
            intensity={m.ticker: profile.intensity_prior for m in game.markets},
            sides=sides,
            tables=[None] * len(units),
            backed_off=[{} for _ in units],
            layer_books=[lab_layers.LayerBook() for _ in units],
            rng=random.Random(f"{self.seed}|lab-latency|{spec.event_ticker}"),
        )

    # ------------------------------------------------------------------ the run

    def execute(self, progress: Callable[[float], None] | None = None) -> RunResult:
        wall = time.perf_counter()
        sim, t0 = self.sim, ORIGIN
        sim.schedule(t0, self._refresh)
        for g in self.games.values():
            # Each game's timed decisions have their own phase (drawn per game, like all
            # its randomness), so that twenty games do not all decide in the same instant.
            phase = self.config.requote_every * g.rng.random()
            sim.schedule(t0 + phase, self._ticker(g))
            sim.schedule(g.spec.start, self._at_start(g))
        end = self.end
        step = 600.0
        t = t0
        while t < end:
            t = min(t + step, end)
            sim.run_until(t)
            if progress is not None:
                progress((t - t0) / (end - t0))
        return self._result(time.perf_counter() - wall, end - t0)

    def _ticker(self, g: _Game) -> Callable[[float], None]:
        every = self.config.requote_every

        def tick(t: float) -> None:
            # As the engine's game task: a decision at least every ``requote_every``, counted
            # from the last one, whatever asked for it.
            if g.done:
                return
            due = g.last_decided + every
            if t < due:
                self.sim.schedule(due, tick)
                return
            self._requote(g, t)
            if not g.done:
                self.sim.schedule(t + every, tick)

        return tick

    def _at_start(self, g: _Game) -> Callable[[float], None]:
        def record(_t: float) -> None:
            g.q_at_start = max((abs(self._exposure(u)[0]) for u in g.units), default=ZERO)

        return record

    def _soon(self, g: _Game, t: float) -> None:
        """Decide ``g`` again after the feed latency (once, however many changes arrive)."""
        if g.done or g.requote_due:
            return
        g.requote_due = True

        def due(when: float) -> None:
            g.requote_due = False
            self._requote(g, when)

        self.sim.schedule(t + self.config.feed_latency, due)

    # ------------------------------------------------------------------ theo

    def _refresh(self, t: float) -> None:
        """The full odds refresh: every game not yet started, then again after the interval."""
        live = [g for g in self.games.values() if not g.done and t < g.spec.start]
        self._pull(live, t, recheck=False)
        if live:
            self.sim.schedule(t + self.product.refresh.odds, self._refresh)

    def _pull(self, games: Sequence[_Game], t: float, *, recheck: bool) -> None:
        pairs = [(b.key, g.spec.odds_event_id) for g in games for b in self.books]
        quotes = iter(self.feed.quotes(pairs, t))
        now = _dt(t)
        for g in games:
            books = []
            for _ in self.books:
                q = next(quotes)
                if q is not None:
                    books.append(BookOdds(q.book, q.decimal, _dt(q.last_update)))
            found = consensus(books, now, self.consensus_params)
            if found.probabilities is not None:
                probs = found.probabilities
                g.probs = {o.ticker: probs[o.index] for o in g.spec.outcomes}
                g.theo_as_of = t
                if recheck:
                    g.recheck_pending = False
                self._solve(g)
            elif recheck:
                self._retry_recheck(g, t)
            self._soon(g, t)

    def _note_skew(self, g: _Game, decision: Decision, t: float) -> None:
        """The engine's skew rule (runtime._requote → TheoService.note_inventory): the most
        skewed inventory against the sport's cap, rechecked once per level."""
        worst = max(decision.units, key=lambda u: abs(u.q))
        theo = self.product.theo
        level = skew_level(worst.q, g.params.cap, theo)
        if level == 0:
            g.skew_checked = 0
        elif (
            t < g.spec.start
            and skew_reason(worst.q, g.params.cap, g.skew_checked, theo) is not None
            and (self._request_recheck(g, t) or g.recheck_pending)
        ):
            g.skew_checked = level

    def _retry_recheck(self, g: _Game, t: float) -> None:
        """A recheck without a usable theo stays pending and is tried again, as the engine's
        does, until the game's theo is stale anyway (it halts on that)."""
        age = math.inf if g.theo_as_of is None else t - g.theo_as_of
        if age > self.product.theo.max_age:
            g.recheck_pending = False
            return
        retry = max(self.config.odds_latency, 1.0)
        self.sim.schedule(t + retry, lambda when: self._pull([g], when, recheck=True))

    def _request_recheck(self, g: _Game, t: float) -> bool:
        gap = self.product.theo.recheck_min_interval
        if not self.config.odds_recheck or g.recheck_pending or t - g.last_recheck < gap:
            return False
        g.recheck_pending, g.last_recheck = True, t
        g.rechecks += 1
        self.sim.schedule(
            t + self.config.odds_latency, lambda when: self._pull([g], when, recheck=True)
        )
        return True

    # ------------------------------------------------------------------ tables

    def _solve(self, g: _Game) -> None:
        if self.model is None:
            return
        for i, markets in enumerate(g.units):
            p = g.probs.get(markets[0].ticker) if g.probs is not None else None
            profile = self.product.sports[g.game.sport]
            problem = quote_problem(markets, p, g.intensity, profile, self.product.quoting)
            g.tables[i] = None if problem is None else self._table(problem, self.model)

    def _table(self, problem: QuoteProblem, model: QuoteModel) -> QuoteTable | None:
        key = (problem, model)
        table = self.tables.get(key)
        if table is not None:
            self.tables.move_to_end(key)
            return table
        try:
            table = solve_quote_table(problem, model)
        except (SolveError, ValueError):
            self.model_errors += 1
            return None
        self.tables[key] = table
        if len(self.tables) > TABLE_CACHE:
            self.tables.popitem(last=False)
        return table

    # ------------------------------------------------------------------ deciding

    def _exposure(self, markets: tuple[Market, ...]) -> tuple[Decimal, Decimal | None]:
        tickers = tuple(m.ticker for m in markets)
        e = self.ledger.exposure(tickers)  # type: ignore[arg-type]  # one or two
        return e.q, e.claim_cost

    def _book_view(self, g: _Game, market: Market) -> BookView:
        """The others' best prices and depth: the book less our own resting size (kept until
        the next change to that book, ours included: every change is a BookChange)."""
        view = self.views.get(market.ticker)
        if view is None:
            view = self.views[market.ticker] = self._read_book(g, market)
        return view

    def _read_book(self, g: _Game, market: Market) -> BookView:
        book = self.exchange.market(market.ticker).book
        own: dict[tuple[str, int], int] = {}
        for side in Side:
            o = g.sides[(market.ticker, side)].order
            if o is not None and o.live:
                own[(o.book_side, o.tick)] = o.remaining
        best: list[int | None] = [None, None]
        depth = 0
        for i, side_name in enumerate(SIDES):
            levels = book.sizes[side_name]
            for tick in sorted(levels, reverse=side_name == "bid"):
                left = levels[tick] - own.get((side_name, tick), 0)
                if left > 0:
                    depth += left
                    if best[i] is None:
                        best[i] = tick
        bid, ask = best
        price = market.grid.price
        g.tops[market.ticker] = (
            None if bid is None else price(bid),
            None if ask is None else price(ask),
        )
        return BookView(bid, ask, cc_to_count(depth))

    def state(self, g: _Game, t: float) -> GameState:
        """The snapshot ``decide`` takes, as the live engine builds it (the parity test)."""
        units = []
        halts = frozenset({HaltReason.ODDS_RECHECK}) if g.recheck_pending else frozenset()
        for i, markets in enumerate(g.units):
            views = tuple(self._book_view(g, m) for m in markets)
            resting: dict[GameSide, Resting] = {}
            for j, m in enumerate(markets):
                leg = Leg.A if j == 0 else Leg.B
                for side in Side:
                    s = g.sides[(m.ticker, side)]
                    if s.order is not None and s.order.live:
                        resting[GameSide.of(leg, side)] = Resting(
                            s.order.tick, cc_to_count(s.order.remaining), _dt(s.since)
                        )
            q, cost = self._exposure(markets)
            theo = g.probs.get(markets[0].ticker) if g.probs is not None else None
            widen = self._widen(g, i, views, t) if self.config.layers else {}
            units.append(
                UnitState(
                    markets, views, g.tables[i], q, cost, resting, g.backed_off[i], theo,
                    widen=widen,
                )
            )  # fmt: skip
        as_of = _dt(g.theo_as_of) if g.theo_as_of is not None else None
        return GameState(g.game, tuple(units), as_of, halts)

    def decide_now(self, g: _Game, t: float) -> Decision:
        """Decide ``g`` at ``t`` and keep the competition layer's memory, as the engine does."""
        now = _dt(t)
        state = self.state(g, t)
        for book in g.layer_books:
            book.last_seen = t
        decision: Decision = (
            decide_tob(state, g.params, now)
            if self.config.strategy is Strategy.TOB
            else decide(state, g.params, now)
        )
        self.decisions += 1
        for i, unit in enumerate(decision.units):
            g.backed_off[i] = {
                q.game_side: q.backed_off_since for q in unit.quotes if q.backed_off_since
            }
        return decision

    def _requote(self, g: _Game, t: float) -> None:
        if g.done:
            return
        g.last_decided = t
        if Layer.REESTIMATE in self.config.layers:
            self._observe(g, t)
            if t - g.last_refit >= self.config.reestimate_every:
                self._refit(g, t)
        decision = self.decide_now(g, t)
        # While the liquidity cap binds, a change anywhere in the book moves it.
        g.depth_binds = any(u.cap < g.params.cap for u in decision.units)
        self._note_skew(g, decision, t)
        planned = [
            w
            for (ticker, side), wanted in sorted(decision.quotes.items())
            if (w := self._plan(g, ticker, side, wanted)) is not None
        ]
        shrinking = [w for w in planned if not w.grows]
        growing = [w for w in planned if w.grows]
        settled = not any(s.busy for s in g.sides.values())
        if growing and not may_grow(bool(shrinking), settled):
            growing = []  # the engine's rule: decide again once what is in flight lands
            g.held_back = True
        for w in shrinking + growing:
            self._send(g, w, t)
        if HaltReason.GAME_STARTED in decision.halts and not any(
            s.busy or (s.order is not None and s.order.live) for s in g.sides.values()
        ):
            g.done = True

    # ------------------------------------------------------------------ the optional layers

    def _widen(
        self, g: _Game, unit: int, views: tuple[BookView, ...], t: float
    ) -> dict[GameSide, int]:
        """The optional layers' ticks for one inventory's sides (lab_layers keeps the data)."""
        book, markets = g.layer_books[unit], g.units[unit]
        seconds = 0.0 if book.last_seen is None else t - book.last_seen
        sides: list[GameSide] = []
        depths: dict[Leg, BookDepth] = {}
        intensity: dict[GameSide, tuple[float, float]] = {}
        for j, (m, view) in enumerate(zip(markets, views, strict=True)):
            leg = Leg.A if j == 0 else Leg.B
            sizes = self.exchange.market(m.ticker).book.sizes
            own = {side: g.sides[(m.ticker, side)].order for side in Side}
            held = {
                side: (o.tick, o.remaining) if o is not None and o.live else None
                for side, o in own.items()
            }
            depths[leg] = BookDepth(
                lab_layers.near_depth(sizes["bid"], view.best_bid, True, held[Side.BID]),
                lab_layers.near_depth(sizes["ask"], view.best_ask, False, held[Side.ASK]),
            )
            prior = g.intensity[m.ticker]
            for side, o in own.items():
                gs = GameSide.of(leg, side)
                sides.append(gs)
                intensity[gs] = (prior.A, prior.k)
                if o is not None and o.live and g.probs is not None and seconds > 0:
                    fee = expected_fee(o.price, maker=True, fees=m.fees)
                    distance = lab_layers.distance_cents(side, o.price, g.probs[m.ticker], fee)
                    book.rested(gs, seconds, distance)
        book.roll(t, intensity)
        return lab_layers.widen(
            book, frozenset(x.value for x in self.config.layers), depths, tuple(sides)
        )

    def _observe(self, g: _Game, t: float) -> None:
        """Give the intensity tracker our quotes' resting time since the last look."""
        if g.probs is None:
            return
        for (ticker, side), s in g.sides.items():
            o = s.order
            if o is None or not o.live:
                s.observed = t
                continue
            seconds = t - max(s.observed, s.since)
            if seconds > 0:
                self.tracker.observe(ticker, side, o.price, g.probs[ticker], seconds)
            s.observed = t

    def _refit(self, g: _Game, t: float) -> None:
        g.last_refit = t
        profile = self.product.sports[g.game.sport]
        changed = False
        for m in g.game.markets:
            est = self.tracker.estimate(m.ticker, profile.intensity_prior)
            if est.source is IntensitySource.PRIOR:
                continue
            prior = IntensityPrior(est.A, est.k)
            if prior != g.intensity[m.ticker]:
                g.intensity[m.ticker] = prior
                changed = True
        if changed:
            self._solve(g)

    # ------------------------------------------------------------------ execution

    def _plan(self, g: _Game, ticker: str, side: Side, wanted: DesiredQuote) -> _Write | None:
        """The write that takes one side to what ``decide`` wants (the engine's rule), or None."""
        s = g.sides[(ticker, side)]
        if s.busy:
            s.again = True  # one write in flight per side: look again when it lands
            return None
        order = s.order if s.order is not None and s.order.live else None
        if not wanted.quoting or wanted.price is None or wanted.tick is None:
            return None if order is None else _Write(s, WriteKind.CANCEL, ticker, side)
        if order is None:
            return _Write(s, WriteKind.CREATE, ticker, side, wanted.tick, wanted.size, grows=True)
        size, remaining = Decimal(wanted.size), cc_to_count(order.remaining)
        kind = side_change(
            wanted.price, size, order.price, remaining, cc_to_count(order.initial),
            self.product.quoting.refill_below,
        )  # fmt: skip
        if kind is None:
            return None
        growing = grows(kind, size, order.price, wanted.price, remaining)
        # An amend sets the order's total to what had filled when it was sent plus the size
        # wanted, as the engine's does: fills on the way are not topped back up.
        return _Write(s, kind, ticker, side, wanted.tick, wanted.size, growing, order.filled)

    def _send(self, g: _Game, w: _Write, t: float) -> None:
        s = w.side_state
        s.busy = True
        g.writes[w.kind.value] += 1
        g.tokens += CANCEL_COST if w.kind is WriteKind.CANCEL else DEFAULT_COST
        jitter = self.config.latency_jitter * (2.0 * g.rng.random() - 1.0)
        arrive = t + self.config.order_latency * (1.0 + jitter)
        if w.kind is WriteKind.CREATE:
            s.since = t  # the engine's min rest runs from when the order was sent

        def land(when: float) -> None:
            s.busy = False
            try:
                self._apply(w, when)
            except ExchangeError as exc:
                self.rejected[exc.code] += 1
                s.again = True
            self._note_worst(g)
            if s.again or g.held_back:
                s.again = g.held_back = False
                self._soon(g, when)

        self.sim.schedule(arrive, land)

    def _apply(self, w: _Write, when: float) -> None:
        ex, s = self.exchange, w.side_state
        order, ticker, side = s.order, w.ticker, w.side
        market: SimMarket = ex.market(ticker)
        if w.kind is WriteKind.CREATE:
            assert w.tick is not None
            placed = ex.create_order(
                LAB_USER, ticker=ticker, side=side.value, price=market.grid.price(w.tick),
                count=w.size, time_in_force="good_till_canceled",
                self_trade_prevention_type="maker", post_only=True,
            )  # fmt: skip
            s.order, s.observed = (placed if placed.live else None), when
            return
        if order is None or not order.live:
            self.rejected["order_gone"] += 1  # filled or cancelled while the write travelled
            return
        if w.kind is WriteKind.CANCEL:
            ex.cancel_order(LAB_USER, order.order_id)
        elif w.kind is WriteKind.DECREASE:
            if w.size * CC < order.remaining:  # fills on the way may have done it already
                ex.decrease_order(LAB_USER, order.order_id, reduce_to=w.size)
        else:
            assert w.tick is not None
            total = w.filled + w.size * CC
            if total <= order.filled:
                self.rejected["order_gone"] += 1  # what the amend asked for has filled
                return
            moved = w.tick != order.tick
            ex.amend_order(
                LAB_USER, order.order_id, ticker=ticker, side=side.value,
                price=market.grid.price(w.tick), count=cc_to_count(total),
            )  # fmt: skip
            if moved:
                s.since = when
        if not order.live:
            s.order = None

    def _note_worst(self, g: _Game) -> None:
        """The worst case of every resting order filling at once, against the sport's cap:
        what ``decide`` sizes against and the growing-writes rule protects (a metric)."""
        for markets in g.units:
            q, _ = self._exposure(markets)
            up = down = ZERO
            for j, m in enumerate(markets):
                leg = Leg.A if j == 0 else Leg.B
                for side in Side:
                    o = g.sides[(m.ticker, side)].order
                    if o is None or not o.live:
                        continue
                    if GameSide.of(leg, side).q_sign > 0:
                        up += cc_to_count(o.remaining)
                    else:
                        down += cc_to_count(o.remaining)
            g.max_worst = max(g.max_worst, q + up, down - q)

    # ------------------------------------------------------------------ what the exchange says

    def _on_event(self, event: ExchangeEvent) -> None:
        if isinstance(event, BookChange):
            self.views.pop(event.ticker, None)
            if event.user_id != LAB_USER:
                g = self.by_ticker.get(event.ticker)
                if g is not None and (g.depth_binds or self._at_top(g, event)):
                    self._soon(g, event.ts)
        elif isinstance(event, TradeEvent):
            g = self.by_ticker.get(event.trade.ticker)
            if g is not None and event.trade.ts < g.spec.start:
                g.traded_cc += event.trade.count
        elif isinstance(event, FillEvent) and event.fill.user_id == LAB_USER:
            self._on_fill(event)

    @staticmethod
    def _at_top(g: _Game, change: BookChange) -> bool:
        """Whether a change by someone else reaches the best price we last saw on its side."""
        bid, ask = g.tops.get(change.ticker, (None, None))
        if change.book_side == "bid":
            return bid is None or change.price >= bid
        return ask is None or change.price <= ask

    def _on_fill(self, event: FillEvent) -> None:
        f = event.fill
        g = self.by_ticker[f.ticker]
        side = Side(f.book_side)
        count = cc_to_count(f.count)
        fill = Fill(
            f.fill_id, f.order_id, f.ticker, side, f.price, count, f.fee, f.is_taker, _dt(f.ts)
        )
        self.ledger.apply_fill(fill)
        theo = g.probs.get(f.ticker) if g.probs is not None else None
        if theo is not None and Layer.REESTIMATE in self.config.layers:
            self.tracker.note_fill(f.ticker, side, f.price, theo)
        truth = g.spec.truth(f.ticker, f.ts)
        # No later than the start: what the game does in play is not the news a fill missed.
        later = g.spec.truth(f.ticker, min(f.ts + self.config.markout_horizon, g.spec.start))
        g.fills.append(
            FillRow(
                g.game.event_ticker, f.ticker, side.value, f.price, count, f.fee, f.ts, truth,
                later, theo,
            )
        )  # fmt: skip
        unit_index = g.unit_of(f.ticker)
        unit = g.units[unit_index]
        q, _ = self._exposure(unit)
        g.max_abs_q = max(g.max_abs_q, abs(q))
        leg = Leg.A if f.ticker == unit[0].ticker else Leg.B
        direction = fill_direction(g.game, f.ticker, side)
        if self.config.layers:
            g.layer_books[unit_index].filled(GameSide.of(leg, side))
            self.sim.schedule(
                f.ts + lab_layers.MARKOUT_AFTER, lambda _t: self._mark(g, f.ticker, side, f.price)
            )
        g.one_way, burst = recent_one_way(g.one_way, fill.ts, direction, self.product.theo)
        if f.ts < g.spec.start and burst_reason(burst, self.product.theo) is not None:
            self._request_recheck(g, f.ts)
        self._soon(g, f.ts)

    def _mark(self, g: _Game, ticker: str, side: Side, price: Decimal) -> None:
        """A fill's markout against the others' mid a minute later (what a bot can see)."""
        view = self._book_view(
            g,
            g.game.market(Leg.A)
            if ticker == g.game.market_a.ticker
            else next(m for m in g.game.markets if m.ticker == ticker),
        )
        if view.best_bid is None or view.best_ask is None:
            return
        grid = self.exchange.market(ticker).grid
        mid = (grid.price(view.best_bid) + grid.price(view.best_ask)) / 2
        g.layer_books[g.unit_of(ticker)].marked(float(side.sign * (mid - price) * 100))

    # ------------------------------------------------------------------ results

    def _result(self, wall: float, virtual: float) -> RunResult:
        scenario = self.scenario
        news: dict[str, list[float]] = {}
        for jump in scenario.news:
            news.setdefault(jump.event_ticker, []).append(jump.time)
        tier = TIERS[self.config.tier]
        games = []
        for g in self.games.values():
            spec = g.spec
            realized_before = sum(
                (self.ledger.holding(m.ticker).realized for m in g.game.markets), ZERO
            )
            for o in spec.outcomes:
                self.ledger.settle(o.ticker, "yes" if o.index == spec.result_index else "no")
            holdings = [self.ledger.holding(m.ticker) for m in g.game.markets]
            pnl = sum((h.realized for h in holdings), ZERO)
            quoted = max(spec.start - self.product.risk.start_buffer - ORIGIN, 1.0)
            games.append(
                GameResult.of(
                    g.game.event_ticker, spec.sport.key, g.params.cap, pnl,
                    pnl - realized_before, g.fills, g.max_abs_q, g.max_worst, g.q_at_start,
                    cc_to_count(g.traded_cc), news.get(spec.event_ticker, []),
                    self.config.news_window, dict(g.writes), g.tokens,
                    tier.write_rate * quoted, g.rechecks,
                )
            )  # fmt: skip
        balance = self.exchange.account(LAB_USER).balance - LAB_BALANCE
        return RunResult(
            scenario=self.spec.name,
            strategy=self.config.name,
            seed=self.seed,
            games=tuple(games),
            rejected=tuple(sorted(self.rejected.items())),
            model_errors=self.model_errors,
            decisions=self.decisions,
            exchange_cash=balance,
            virtual_seconds=virtual,
            wall_seconds=wall,
        )


def _end_of(day: Scenario, config: LabConfig) -> float:
    """When a run of ``day`` stops: a minute after the last start (nothing is quoted in
    play), or after the last settlement."""
    if config.run_to_settlement:
        return max(g.settle for g in day.games) + 1.0
    return max(g.start for g in day.games) + 60.0


def _restricted(day: Scenario, only: Sequence[str]) -> Scenario:
    keep = set(only)
    games = tuple(g for g in day.games if g.event_ticker in keep)
    news = tuple(j for j in day.news if j.event_ticker in keep)
    return dataclasses.replace(day, games=games, news=news)


def split_games(day: Scenario, parts: int) -> list[tuple[str, ...]]:
    """The day's games in ``parts`` groups of about equal work (pre-game time), each in
    scenario order. Games share nothing but the clock, so groups run apart give the same
    results as the whole day (the tests check it)."""
    groups: list[list[GameSpec]] = [[] for _ in range(max(1, min(parts, len(day.games))))]
    load = [0.0] * len(groups)
    for g in sorted(day.games, key=lambda g: (-(g.start - day.origin), g.event_ticker)):
        i = load.index(min(load))
        groups[i].append(g)
        load[i] += g.start - day.origin
    order = {g.event_ticker: n for n, g in enumerate(day.games)}
    return [tuple(sorted((g.event_ticker for g in grp), key=order.__getitem__)) for grp in groups]


def _merge(parts: Sequence[RunResult], day: Scenario) -> RunResult:
    order = {g.event_ticker: n for n, g in enumerate(day.games)}
    games = sorted((g for p in parts for g in p.games), key=lambda g: order[g.event_ticker])
    rejected: Counter[str] = Counter()
    for p in parts:
        rejected.update(dict(p.rejected))
    first = parts[0]
    return dataclasses.replace(
        first,
        games=tuple(games),
        rejected=tuple(sorted(rejected.items())),
        model_errors=sum(p.model_errors for p in parts),
        decisions=sum(p.decisions for p in parts),
        exchange_cash=sum((p.exchange_cash for p in parts), ZERO),
        wall_seconds=max(p.wall_seconds for p in parts),
    )


# --------------------------------------------------------------------------- the API


def run(
    scenario: LabScenario | str = "competition",
    config: LabConfig | None = None,
    seed: int = 1,
    *,
    progress: bool = False,
    workers: int = 1,
) -> RunResult:
    """One scenario, one strategy, one seed, in virtual time (see the module doc).

    ``workers`` > 1 splits the day's games over that many processes (:func:`split_games`)
    and merges the results, which equal a one-process run's; the wall time is the slowest
    part's."""
    spec = _scenario(scenario)
    cfg = config if config is not None else LabConfig()
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed = {seed!r}: must be a whole number")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers = {workers!r}: must be a whole number >= 1")
    if workers > 1:
        wall = time.perf_counter()
        day = spec.build(seed)
        # More parts than processes: games cost unequally (three-way games solve three
        # tables, busy books mean more decisions), and a free process takes the next part.
        parts_wanted = PARTS_PER_WORKER * workers
        jobs = [(spec, cfg, seed, part) for part in split_games(day, parts_wanted)]
        bar = _bar(len(jobs), progress, f"{spec.name} {cfg.name} seed {seed}", "part")
        try:
            with local_executor(min(workers, len(jobs))) as pool:
                futures = [pool.submit(_part, job) for job in jobs]
                for _ in as_completed(futures):
                    bar.update(1)
                parts = [f.result() for f in futures]
        finally:
            bar.close()
        merged = _merge(parts, day)
        return dataclasses.replace(merged, wall_seconds=time.perf_counter() - wall)
    lab_run = _Run(spec, cfg, seed)
    if not progress:
        return lab_run.execute()
    with _bar(100, True, f"{spec.name} {cfg.name} seed {seed}", "%") as bar:

        def show(share: float) -> None:
            bar.update(round(100 * share) - bar.n)

        return lab_run.execute(show)


def _scenario(scenario: LabScenario | str) -> LabScenario:
    if isinstance(scenario, LabScenario):
        return scenario
    if scenario in SCENARIOS:
        return SCENARIOS[scenario]
    raise ValueError(f"scenario {scenario!r} is unknown (allowed: {', '.join(SCENARIOS)})")


def _job(job: tuple[LabScenario, LabConfig, int]) -> RunResult:
    return run(*job)


def _part(job: tuple[LabScenario, LabConfig, int, tuple[str, ...]]) -> RunResult:
    spec, cfg, seed, only = job
    return _Run(spec, cfg, seed, only).execute()


def sweep(
    configs: LabConfig | Iterable[LabConfig],
    seeds: Iterable[int],
    scenarios: LabScenario | str | Iterable[LabScenario | str] = "competition",
    *,
    executor: Executor | None = None,
    progress: bool = True,
) -> LabResults:
    """Every (scenario, config, seed), run by ``executor`` (in this process without one).

    Any :class:`concurrent.futures.Executor` works: :func:`local_executor` for the cores of
    this machine, ``distributed.Client(...).get_executor()`` for a Dask cluster. Results come
    back in job order (scenarios, then configs, then seeds), so they equal a serial run's."""
    config_list = [configs] if isinstance(configs, LabConfig) else list(configs)
    if isinstance(scenarios, LabScenario | str):
        scenarios = [scenarios]
    specs = [_scenario(s) for s in scenarios]
    seed_list = list(seeds)
    if not config_list or not seed_list or not specs:
        raise ValueError("a sweep needs at least one config, one seed and one scenario")
    for what, names in (
        ("configs", [c.name for c in config_list]),
        ("scenarios", [s.name for s in specs]),
        ("seeds", seed_list),
    ):
        if len(set(names)) != len(names):
            raise ValueError(
                f"{what} must be distinct (results are keyed by scenario, config and seed; "
                f"set label= on configs), got {names}"
            )
    jobs = [(s, c, seed) for s in specs for c in config_list for seed in seed_list]
    bar = _bar(len(jobs), progress)
    try:
        if executor is None:
            results = []
            for job in jobs:
                results.append(_job(job))
                bar.update(1)
            return LabResults(tuple(results))
        futures: list[Future[RunResult]] = [executor.submit(_job, job) for job in jobs]
        for _ in as_completed(futures):
            bar.update(1)
        return LabResults(tuple(f.result() for f in futures))
    finally:
        bar.close()


def _bar(total: int, show: bool, desc: str = "lab runs", unit: str = "run") -> Any:
    """A progress bar that draws as a widget in a notebook and as text in a terminal (and
    nothing when ``show`` is false)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not show)


def local_executor(workers: int | None = None) -> Executor:
    """A pool of worker processes over this machine's cores (one each by default), usable
    from notebooks and scripts alike (:mod:`~kmm_interactive.sim.lab_pool`)."""
    import os

    n = workers if workers is not None else (os.cpu_count() or 1)
    return SubprocessExecutor(n)
