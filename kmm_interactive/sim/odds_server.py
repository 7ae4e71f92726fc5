"""The Odds API v4, embedded: bookmakers pricing the scenario's truth, served on 127.0.0.1.

Two layers:

* :class:`OddsFeed` is the bookmaker model, pure and deterministic. Each book quotes the
  truth as it was ``lag`` scenario seconds ago, re-priced at its own update cadence, with a
  small error in logit space (a persistent per-game bias plus a jitter drawn afresh at each
  update), then adds its margin with the power method (long shots carry more of it, as in
  life) and rounds: decimal books to 0.01, US books to whole American odds. What a book
  shows for (game, t) depends only on (seed, book, game, update step), never on who asked
  before, so two runs with one seed print the same JSON.
* The feed answers in the server's event loop, so it must be quick: a request prices all
  its (book, game) pairs in one vectorised batch (the margin by Newton's method, the jitter
  from a counter-based generator), and the latest quote per pair is memoised until that
  book's next update step. 200 games across all sports cost a few tens of milliseconds.
* :func:`make_odds_app` / :func:`start_odds_server` put the feed behind the v4 HTTP
  surface (reference/apis.md PART 2): the ``apiKey`` query parameter, the quota headers on
  every response, the documented cost rule, the 30-requests-per-second limit and the
  ``{"message", "error_code", "details_url"}`` error bodies.

The API key is never logged and never echoed: the access log redacts it and error messages
do not quote it.
"""

from __future__ import annotations

import functools
import hmac
import logging
import math
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote, quote_plus

import numpy as np
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from numpy.typing import NDArray

from kmm_interactive.sim.auth import archive_demo_secret
from kmm_interactive.sim.clock import Clock
from kmm_interactive.sim.faults import Faults
from kmm_interactive.sim.loopback import LOOPBACK, listen
from kmm_interactive.sim.scenario import GameSpec, Scenario

Json = dict[str, Any]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
UintArray = NDArray[np.uint64]
BoolArray = NDArray[np.bool_]

ERROR_DOCS: Final = "https://the-odds-api.com/liveapi/guides/v4/api-error-codes.html"
DEFAULT_QUOTA: Final = 20_000
FREQ_LIMIT: Final = 30  # requests per second on paid plans (apis.md §2.6)
BOOKS_PER_REGION: Final = 10  # with bookmakers=, every 10 keys cost as one region
UPCOMING: Final = "upcoming"
UPCOMING_COUNT: Final = 8  # sport=upcoming: live games plus the next 8 across all sports
FEATURED_MARKETS: Final = frozenset({"h2h", "spreads", "totals", "outrights"})
ODDS_FORMATS: Final = ("decimal", "american")
DATE_FORMATS: Final = ("iso", "unix")
#: Every region the real API accepts; the simulated books live in us, uk and eu only, so
#: the others are valid and return nothing.
REGIONS: Final = frozenset({"us", "us2", "us_ex", "us_dfs", "uk", "eu", "au", "fr", "se"})
#: Soccer books carry more margin on three outcomes than on a two-way line.
THREE_WAY_MARGIN: Final = 1.3
#: Decimal odds stay within [1.01, 1001], as printed by books (American −10000 … +100000).
MIN_DECIMAL: Final = 1.01
MAX_DECIMAL: Final = 1001.0

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_KEY = re.compile(r"[a-z0-9_]+")
_API_KEY_PARAM = re.compile(r"(?i)(apikey=)[^&#]*")
_TIME_PARAMS: Final = {
    "commenceTimeFrom": "INVALID_COMMENCE_TIME_FROM",
    "commenceTimeTo": "INVALID_COMMENCE_TIME_TO",
}


class OddsApiError(Exception):
    """A refused request: HTTP status, Odds-API error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> Json:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> Json:
    anchor = code.lower().replace("_", "-")
    return {"message": message, "error_code": code, "details_url": f"{ERROR_DOCS}#{anchor}"}


# --------------------------------------------------------------------------- bookmakers


@dataclass(frozen=True)
class Bookmaker:
    """One book's pricing habits. Times are scenario seconds; noise is in logit units."""

    key: str
    title: str
    regions: tuple[str, ...]
    margin: float  # booksum − 1 on a two-way line
    lag: float  # how stale the truth it prices is
    cadence: float  # time between re-pricings
    bias: float  # sd of its persistent error on a game
    jitter: float  # sd of the error re-drawn at each update
    coverage: float = 0.9  # share of games it lists
    american: bool = False  # quotes natively in American odds, rounded to `tick`
    tick: int = 1
    exchange: bool = False  # an exchange: h2h comes with h2h_lay


# Pinnacle is the sharp anchor: the least noise and the fastest to re-price of all books
# (5 s behind, every 4 s), a 2 % margin, and it lists everything. The exchanges follow close
# behind (8 s, every 5 s) with a thin back/lay spread; US retail books are 1-10 minutes
# behind with 4-6 % margins. Keys and regions as on the official bookmaker page (apis.md
# §2.7).
BOOKMAKERS: Final[tuple[Bookmaker, ...]] = (
    Bookmaker("pinnacle", "Pinnacle", ("eu",), 0.020, 5, 4, 0.01, 0.01, coverage=1.0),
    Bookmaker("betfair_ex_eu", "Betfair", ("eu",), 0.010, 8, 5, 0.015, 0.02,
              coverage=1.0, exchange=True),
    Bookmaker("marathonbet", "Marathon Bet", ("eu",), 0.035, 45, 30, 0.03, 0.02),
    Bookmaker("onexbet", "1xBet", ("eu",), 0.040, 60, 30, 0.03, 0.02, coverage=0.95),
    Bookmaker("williamhill", "William Hill", ("eu", "uk"), 0.050, 90, 60, 0.05, 0.03),
    Bookmaker("unibet_eu", "Unibet", ("eu",), 0.045, 120, 60, 0.05, 0.03),
    Bookmaker("betsson", "Betsson", ("eu",), 0.050, 150, 60, 0.06, 0.03, coverage=0.85),
    Bookmaker("sport888", "888sport", ("eu", "uk"), 0.055, 180, 90, 0.06, 0.03,
              coverage=0.85),
    Bookmaker("betonlineag", "BetOnline.ag", ("us", "eu"), 0.035, 60, 30, 0.03, 0.02,
              american=True),
    Bookmaker("draftkings", "DraftKings", ("us",), 0.045, 60, 30, 0.04, 0.02,
              coverage=0.95, american=True),
    Bookmaker("fanduel", "FanDuel", ("us",), 0.045, 90, 30, 0.04, 0.02, coverage=0.95,
              american=True),
    Bookmaker("betmgm", "BetMGM", ("us",), 0.050, 180, 60, 0.05, 0.03, american=True,
              tick=5),
    Bookmaker("williamhill_us", "Caesars", ("us",), 0.050, 240, 60, 0.05, 0.03,
              american=True, tick=5),
    Bookmaker("betrivers", "BetRivers", ("us",), 0.055, 300, 120, 0.06, 0.03,
              coverage=0.85, american=True),
    Bookmaker("lowvig", "LowVig.ag", ("us",), 0.030, 120, 60, 0.03, 0.02, coverage=0.85,
              american=True),
    Bookmaker("bovada", "Bovada", ("us",), 0.055, 600, 120, 0.06, 0.03, american=True,
              tick=5),
    Bookmaker("betus", "BetUS", ("us",), 0.060, 480, 120, 0.06, 0.03, coverage=0.8,
              american=True, tick=5),
    Bookmaker("mybookieag", "MyBookie.ag", ("us",), 0.060, 420, 120, 0.06, 0.03,
              coverage=0.8, american=True),
    Bookmaker("betfair_ex_uk", "Betfair", ("uk",), 0.010, 8, 5, 0.015, 0.02,
              coverage=1.0, exchange=True),
    Bookmaker("paddypower", "Paddy Power", ("uk",), 0.055, 120, 60, 0.05, 0.03),
    Bookmaker("skybet", "Sky Bet", ("uk",), 0.055, 150, 60, 0.05, 0.03, coverage=0.85),
    Bookmaker("ladbrokes_uk", "Ladbrokes", ("uk",), 0.060, 180, 60, 0.06, 0.03),
    Bookmaker("betway", "Betway", ("uk",), 0.050, 120, 60, 0.05, 0.03, coverage=0.85),
)  # fmt: skip
BOOKS_BY_KEY: Final = {b.key: b for b in BOOKMAKERS}


@dataclass(frozen=True)
class SportInfo:
    key: str
    group: str
    title: str
    description: str
    has_outrights: bool = False


# Descriptions as /v4/sports prints them; the keys that are not in a scenario are listed as
# out of season, so that ``all=true`` makes a difference.
KNOWN_SPORTS: Final[tuple[SportInfo, ...]] = (
    SportInfo("americanfootball_ncaaf", "American Football", "NCAAF", "US College Football"),
    SportInfo("americanfootball_nfl", "American Football", "NFL", "US Football"),
    SportInfo("baseball_mlb", "Baseball", "MLB", "Major League Baseball"),
    SportInfo("basketball_euroleague", "Basketball", "Basketball Euroleague",
              "Basketball Euroleague"),
    SportInfo("basketball_nba", "Basketball", "NBA", "US Basketball"),
    SportInfo("basketball_nba_championship_winner", "Basketball", "NBA Championship Winner",
              "Championship Winner", has_outrights=True),
    SportInfo("basketball_ncaab", "Basketball", "NCAAB", "US College Basketball"),
    SportInfo("basketball_wnba", "Basketball", "WNBA", "US Basketball"),
    SportInfo("boxing_boxing", "Boxing", "Boxing", "Boxing Bouts"),
    SportInfo("icehockey_nhl", "Ice Hockey", "NHL", "US Ice Hockey"),
    SportInfo("mma_mixed_martial_arts", "Mixed Martial Arts", "MMA", "Mixed Martial Arts"),
    SportInfo("soccer_epl", "Soccer", "EPL", "Premier League - England"),
    SportInfo("soccer_uefa_champs_league", "Soccer", "UEFA Champions League",
              "European Champions League"),
)  # fmt: skip


@dataclass(frozen=True)
class Quote:
    """What one book shows for one game at one moment (outcomes in truth-index order)."""

    book: str
    event_id: str
    names: tuple[str, ...]
    decimal: tuple[float, ...]
    american: tuple[int, ...]
    fair: tuple[float, ...]  # the book's own (noisy) probabilities, before margin
    last_update: float  # wall time of the update step that set these prices
    source_time: float  # the wall time whose truth they price
    lay_decimal: tuple[float, ...] | None = None  # exchanges only
    lay_american: tuple[int, ...] | None = None


# --------------------------------------------------------------------------- odds arithmetic


def decimal_to_american(odds: float) -> int:
    """1.91 → −110, 2.40 → +140 (the API rounds American odds to integers)."""
    return round(_american_exact(odds))


def _american_exact(odds: float) -> float:
    return (odds - 1.0) * 100.0 if odds >= 2.0 else -100.0 / (odds - 1.0)


def american_to_decimal(odds: int) -> float:
    """−110 → 1.909…, +140 → 2.40 (unrounded)."""
    if odds > 0:
        return 1.0 + odds / 100.0
    return 1.0 + 100.0 / -odds


def _power_margin(probs: FloatArray, booksum: FloatArray) -> FloatArray:
    """Implied probabilities ``p_ij^k_i`` with each row's k_i chosen so that row i sums to
    ``booksum[i]`` (the power method: long shots carry more of the margin).

    S(k) = Σ_j p_j^k falls and is convex in k (it is n at k = 0 and 1 at k = 1), so Newton's
    method from the first-order guess k = 1 + (booksum − 1)/S'(1) converges in a few steps;
    a bracket on each root keeps every step inside it (bisecting when Newton would leave it).
    All rows are solved at once.
    """
    logs = np.log(probs)
    lo = np.zeros(len(probs))
    hi = np.full(len(probs), np.inf)  # S(lo) > booksum >= S(hi)
    slope = (probs * logs).sum(axis=1)  # S'(1) < 0
    k = np.where(slope < 0.0, 1.0 + (booksum - 1.0) / np.minimum(slope, -1e-300), 1.0)
    k = np.where(k > 0.0, k, 1.0)
    for _ in range(200):
        powers = np.exp(k[:, None] * logs)
        excess = powers.sum(axis=1) - booksum
        above = excess > 0.0
        lo = np.where(above, k, lo)
        hi = np.where(above, hi, k)
        slope = (powers * logs).sum(axis=1)
        new = k - np.where(slope < 0.0, excess / np.minimum(slope, -1e-300), 0.0)
        # Newton left the bracket: bisect it instead (doubling while it is open above).
        outside = (new < lo) | (new > hi) | (new <= 0.0)
        new = np.where(outside, np.where(np.isinf(hi), 2.0 * lo, (lo + hi) / 2.0), new)
        done = np.abs(new - k) <= 1e-14 * k
        k = new
        if done.all():
            break
    implied: FloatArray = np.exp(k[:, None] * logs)
    return implied


def _price(
    implied: FloatArray, american: BoolArray, tick: FloatArray
) -> tuple[FloatArray, IntArray]:
    """Round fair-plus-margin probabilities to printed odds, in both formats, row by row.

    Rows of books that think in American odds (``american``) are rounded to whole multiples
    of their ``tick`` and their decimal odds derived from those; the others are rounded to
    0.01 in decimal and their American odds derived from that.
    """
    exact = np.clip(1.0 / np.maximum(implied, 1.0 / MAX_DECIMAL), MIN_DECIMAL, MAX_DECIMAL)
    decimal_first = np.round(exact, 2)
    tick = tick[:, None]
    rounded = np.rint(_american_array(exact) / tick) * tick
    # Nothing lies strictly between −100 and +100; both mean even money.
    rounded = np.where(np.abs(rounded) < 100.0, np.where(exact >= 2.0, 100.0, -100.0), rounded)
    from_american = np.round(
        np.where(rounded > 0, 1.0 + rounded / 100.0, 1.0 + 100.0 / np.abs(rounded)), 2
    )
    us = american[:, None]
    decimal = np.where(us, from_american, decimal_first)
    american_odds = np.where(us, rounded, np.rint(_american_array(decimal_first)))
    return decimal, american_odds.astype(np.int64)


def _american_array(odds: FloatArray) -> FloatArray:
    return np.where(odds >= 2.0, (odds - 1.0) * 100.0, -100.0 / np.maximum(odds - 1.0, 1e-12))


def _normals(keys: UintArray, n: int) -> FloatArray:
    """An (len(keys), n) array of standard normal draws, a pure function of each 64-bit key.

    A counter-based generator (SplitMix64 of key and counter, then Box–Muller): seeding a
    Mersenne Twister for every (book, game, update step) would cost more than the pricing.
    """
    counters = np.arange(2 * n, dtype=np.uint64) * _GOLDEN
    words = _splitmix64(keys[:, None] + counters)
    u = ((words >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53  # (0, 1]
    radius = np.sqrt(-2.0 * np.log(u[:, :n]))
    return radius * np.cos(2.0 * np.pi * u[:, n:])


_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: UintArray) -> UintArray:
    x = x + _GOLDEN  # uint64 arithmetic wraps around, as the generator intends
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def iso(t: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, whole seconds (floored: never a time still to come)."""
    return _iso_second(math.floor(t))


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    # Most stamps in one answer fall in the same few seconds: format each second once.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def parse_iso(value: str, param: str) -> float:
    """Epoch seconds from the API's ISO 8601 form, or a 422 naming the parameter."""
    code = _TIME_PARAMS[param]
    message = (
        f"Invalid {param} parameter. The format must be YYYY-MM-DDTHH:MM:SSZ, "
        "for example 2023-09-09T00:00:00Z"
    )
    if not _ISO.fullmatch(value):
        raise OddsApiError(422, code, message)
    try:
        parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise OddsApiError(422, code, message) from None
    return parsed.timestamp()


def split_list(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """A comma list (or an iterable of names) → unique, stripped, non-empty, in order."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    out: dict[str, None] = {}
    for item in items:
        name = item.strip()
        if name:
            out[name] = None
    return tuple(out)


def region_units(regions: str | Iterable[str] = (), bookmakers: str | Iterable[str] = ()) -> int:
    """The cost rule's region count: regions, or ⌈bookmakers / 10⌉ when bookmakers are given."""
    books = split_list(bookmakers)
    if books:
        return math.ceil(len(books) / BOOKS_PER_REGION)
    return len(split_list(regions))


# --------------------------------------------------------------------------- the feed


@dataclass(frozen=True)
class _Pair:
    """One book on one game: its fixed habits there, drawn once from the seed."""

    book: Bookmaker
    game: GameSpec
    cadence: float  # wall seconds between its re-pricings
    phase: float  # where in its cadence it re-prices, as a fraction of a period
    bias: tuple[float, ...]  # its persistent logit error per outcome
    stream: int  # the 64-bit key of its jitter stream (one draw per update step)


class OddsFeed:
    """The bookmakers' view of a scenario, read at ``clock.now()``."""

    def __init__(self, scenario: Scenario, clock: Clock, *, seed: int = 0) -> None:
        self.scenario = scenario
        self.clock = clock
        self.seed = seed
        # Games whose sport has no Odds-API key (esports) are not on the feed at all.
        self._games: dict[str, GameSpec] = {
            g.odds_event_id: g for g in scenario.games if g.sport.odds_sport is not None
        }
        self._active = {g.sport.odds_sport: g.sport for g in self._games.values()}
        self._names = {
            e: tuple(o.odds_name for o in sorted(g.outcomes, key=lambda o: o.index))
            for e, g in self._games.items()
        }
        # Memos of pure functions of the seed (see quote): bounded by books × games.
        self._listed: dict[tuple[str, str], bool] = {}
        self._pairs: dict[tuple[str, str], _Pair | None] = {}
        self._quotes: dict[tuple[str, str], tuple[int, Quote]] = {}

    # ------------------------------------------------------------------ lookups

    @property
    def games(self) -> tuple[GameSpec, ...]:
        return tuple(self._games.values())

    def game(self, event_id: str) -> GameSpec:
        return self._games[event_id]

    def is_listed(self, game: GameSpec, t: float | None = None) -> bool:
        """Upcoming and in-play games are listed; determined ones (t ≥ end) are gone."""
        return (self.clock.now() if t is None else t) < game.end

    def lists(self, book: str, event_id: str) -> bool:
        """Whether ``book`` offers this game at all (seeded; Pinnacle lists everything)."""
        key = (book, event_id)
        listed = self._listed.get(key)
        if listed is None:
            b = BOOKS_BY_KEY[book]
            draw = random.Random(f"{self.seed}-{book}-{event_id}-lists").random()
            listed = self._listed[key] = b.coverage >= 1.0 or draw < b.coverage
        return listed

    def true_probabilities(self, event_id: str, t: float | None = None) -> dict[str, float]:
        """The truth now (or at ``t``), keyed by the bookmakers' outcome names."""
        game = self._games[event_id]
        probs = game.path.at(self.clock.now() if t is None else t)
        return {o.odds_name: probs[o.index] for o in game.outcomes}

    def bookmakers(
        self, regions: str | Iterable[str] = (), bookmakers: str | Iterable[str] = ()
    ) -> tuple[Bookmaker, ...]:
        """The books a request selects: ``bookmakers`` if given (unknown keys are ignored, as
        a real book we do not simulate would simply have no odds), else those in ``regions``."""
        keys = split_list(bookmakers)
        if keys:
            return tuple(BOOKS_BY_KEY[k] for k in keys if k in BOOKS_BY_KEY)
        wanted = set(split_list(regions))
        return tuple(b for b in BOOKMAKERS if wanted.intersection(b.regions))

    # ------------------------------------------------------------------ the model

    def quote(self, book: str, event_id: str, t: float | None = None) -> Quote | None:
        """What ``book`` shows for the game at ``t`` (default now); None if not offered."""
        return self.quotes([(book, event_id)], t)[0]

    def quotes(
        self, pairs: Sequence[tuple[str, str]], t: float | None = None
    ) -> list[Quote | None]:
        """:meth:`quote` for many (book, event id) pairs at once, priced in one batch.

        A quote is a pure function of (book, game, update step), so the latest one per
        (book, game) is kept: asking again within the same step costs a dictionary lookup,
        and the memo never holds more than one quote per pair the feed lists.
        """
        now = self.clock.now() if t is None else t
        since = now - self.scenario.origin
        out: list[Quote | None] = []
        todo: dict[int, list[tuple[int, _Pair, int]]] = {}  # outcome count → (slot, pair, step)
        memo = self._quotes
        for key in pairs:
            pair = self._pairs[key] if key in self._pairs else self._pair(*key)
            if pair is None or now >= pair.game.end:  # not offered, or no longer listed
                out.append(None)
                continue
            # A per-(book, game) phase keeps the books from all re-pricing on the same tick.
            step = math.floor(since / pair.cadence + pair.phase)
            if (step - pair.phase) * pair.cadence > since:  # float rounding at a boundary
                step -= 1
            cached = memo.get(key)
            if cached is not None and cached[0] == step:
                out.append(cached[1])
                continue
            todo.setdefault(len(pair.bias), []).append((len(out), pair, step))
            out.append(None)
        for rows in todo.values():
            priced = self._price([pair for _, pair, _ in rows], [step for _, _, step in rows])
            for (slot, pair, step), quote_ in zip(rows, priced, strict=True):
                out[slot] = quote_
                memo[(pair.book.key, pair.game.odds_event_id)] = (step, quote_)
        return out

    def _pair(self, book: str, event_id: str) -> _Pair | None:
        """``book`` on the game ``event_id`` (None if it does not offer it), memoised."""
        b, game = BOOKS_BY_KEY[book], self._games[event_id]
        pair: _Pair | None = None
        if self.lists(book, event_id):
            tag = f"{self.seed}-{book}-{event_id}"
            rng = random.Random(f"{tag}-bias")
            pair = _Pair(
                book=b,
                game=game,
                cadence=b.cadence / self.scenario.speed,
                phase=random.Random(f"{tag}-phase").random(),
                bias=tuple(rng.gauss(0.0, b.bias) for _ in game.outcomes),
                stream=random.Random(f"{tag}-jitter").getrandbits(64),
            )
        self._pairs[(book, event_id)] = pair
        return pair

    def _price(self, pairs: Sequence[_Pair], steps: Sequence[int]) -> list[Quote]:
        """Price ``pairs`` (all with one outcome count) at update ``steps``, vectorised."""
        speed, origin = self.scenario.speed, self.scenario.origin
        books = [p.book for p in pairs]
        step = np.array(steps, dtype=np.int64)
        cadence = np.array([p.cadence for p in pairs])
        updated = origin + (step - np.array([p.phase for p in pairs])) * cadence
        source = updated - np.array([b.lag for b in books]) / speed
        updated_at, source_at = updated.tolist(), source.tolist()
        truth = np.array([p.game.path.at(s) for p, s in zip(pairs, source_at, strict=True)])
        n = truth.shape[1]
        # The book's view: the truth one lag ago, off by its persistent bias and a jitter
        # re-drawn at each update (both in logit units), renormalised.
        streams = np.array([p.stream for p in pairs], dtype=np.uint64)
        jitter = _normals(streams + step.astype(np.uint64) * _GOLDEN, n)
        scores = (
            np.log(np.clip(truth, 1e-9, 1.0))
            + np.array([p.bias for p in pairs])
            + np.array([b.jitter for b in books])[:, None] * jitter
        )
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        fair = np.clip(weights / weights.sum(axis=1, keepdims=True), 1e-6, 1.0 - 1e-6)
        margin = np.array([b.margin for b in books]) * (THREE_WAY_MARGIN if n == 3 else 1.0)
        american = np.array([b.american for b in books], dtype=np.bool_)
        tick = np.array([float(b.tick) for b in books])
        decimal, american_odds = _price(_power_margin(fair, 1.0 + margin), american, tick)
        backs = zip(map(tuple, decimal.tolist()), map(tuple, american_odds.tolist()), strict=True)
        # Exchanges' lay odds sit above their back odds: a booksum below one.
        ex = np.flatnonzero([b.exchange for b in books])
        lay_decimal, lay_american = _price(
            _power_margin(fair[ex], 1.0 - margin[ex]), american[ex], tick[ex]
        )
        lay_rows = zip(
            map(tuple, lay_decimal.tolist()), map(tuple, lay_american.tolist()), strict=True
        )
        lays = dict(zip(ex.tolist(), lay_rows, strict=True))
        rows = zip(pairs, backs, map(tuple, fair.tolist()), updated_at, source_at, strict=True)
        out = []
        for i, (p, (dec, ame), fair_i, at, seen) in enumerate(rows):
            event_id = p.game.odds_event_id
            lay = lays.get(i)
            lay_dec, lay_ame = lay if lay is not None else (None, None)
            quote_ = Quote(
                p.book.key, event_id, self._names[event_id], dec, ame, fair_i, at, seen,
                lay_dec, lay_ame,
            )  # fmt: skip
            out.append(quote_)
        return out

    # ------------------------------------------------------------------ the API's views

    def sports(self, *, all_sports: bool = False) -> list[Json]:
        """``GET /v4/sports``: in-season sports, or every known one with ``all_sports``."""
        rows: dict[str, Json] = {}
        for info in KNOWN_SPORTS:
            rows[info.key] = {
                "key": info.key,
                "group": info.group,
                "title": info.title,
                "description": info.description,
                "active": info.key in self._active,
                "has_outrights": info.has_outrights,
            }
        for key, spec in self._active.items():
            assert key is not None
            known = rows.get(key)
            rows[key] = {
                "key": key,
                "group": spec.odds_group,
                "title": spec.odds_title,
                "description": known["description"] if known else spec.odds_title,
                "active": True,
                "has_outrights": False,
            }
        out = [r for r in rows.values() if all_sports or r["active"]]
        return sorted(out, key=lambda r: (r["group"], r["title"], r["key"]))

    def _check_sport(self, sport: str) -> None:
        # The docs do not say which status an unknown sport gets; 404 is what a path naming
        # something that does not exist gets everywhere else on this API (EVENT_NOT_FOUND).
        if (
            sport != UPCOMING
            and sport not in self._active
            and not any(s.key == sport for s in KNOWN_SPORTS)
        ):
            raise OddsApiError(
                404, "UNKNOWN_SPORT", "Unknown sport. Find sport keys with GET /v4/sports"
            )

    def _selected(
        self,
        sport: str,
        event_ids: Collection[str] | str | None,
        commence_from: float | str | None,
        commence_to: float | str | None,
    ) -> list[GameSpec]:
        self._check_sport(sport)
        lo = (
            parse_iso(commence_from, "commenceTimeFrom")
            if isinstance(commence_from, str)
            else commence_from
        )
        hi = (
            parse_iso(commence_to, "commenceTimeTo")
            if isinstance(commence_to, str)
            else commence_to
        )
        if lo is not None and hi is not None and lo > hi:
            raise OddsApiError(
                422,
                "INVALID_COMMENCE_TIME_RANGE",
                "commenceTimeFrom must not be after commenceTimeTo",
            )
        now = self.clock.now()
        games = sorted(
            (g for g in self._games.values() if self.is_listed(g, now)),
            key=lambda g: (_commence(g), g.odds_event_id),
        )
        if sport == UPCOMING:
            # Live games plus the next few to start, across sports; time filters are ignored.
            live = [g for g in games if _commence(g) <= now]
            later = [g for g in games if _commence(g) > now][:UPCOMING_COUNT]
            games = live + later
        else:
            games = [g for g in games if g.sport.odds_sport == sport]
            if lo is not None:
                games = [g for g in games if _commence(g) >= lo]
            if hi is not None:
                games = [g for g in games if _commence(g) <= hi]
        ids = split_list(event_ids)
        if ids:
            wanted = set(ids)
            games = [g for g in games if g.odds_event_id in wanted]
        return games

    def events(
        self,
        sport: str,
        *,
        event_ids: Collection[str] | str | None = None,
        commence_from: float | str | None = None,
        commence_to: float | str | None = None,
        date_format: str = "iso",
    ) -> list[Json]:
        """``GET /v4/sports/{sport}/events``: listed games without odds."""
        _check_choice(date_format, DATE_FORMATS, "INVALID_DATE_FORMAT", "dateFormat")
        games = self._selected(sport, event_ids, commence_from, commence_to)
        return [_event_json(g, date_format) for g in games]

    def odds(
        self,
        sport: str,
        *,
        regions: str | Iterable[str] = (),
        bookmakers: str | Iterable[str] = (),
        markets: str | Iterable[str] = ("h2h",),
        odds_format: str = "decimal",
        date_format: str = "iso",
        commence_from: float | str | None = None,
        commence_to: float | str | None = None,
        event_ids: Collection[str] | str | None = None,
    ) -> list[Json]:
        """``GET /v4/sports/{sport}/odds``: listed games that at least one chosen book prices.

        Only ``h2h`` carries prices; ``spreads``, ``totals`` and ``outrights`` are accepted
        and come back empty. Events no chosen book offers are left out, so a request
        nobody can answer gets ``[]`` (which costs nothing).
        """
        self._check_sport(sport)  # an unknown sport is reported before bad parameters
        books, wanted = self._request(regions, bookmakers, markets, odds_format, date_format)
        _check_markets(wanted, featured_only=True)
        games = self._selected(sport, event_ids, commence_from, commence_to)
        # Price every (game, book) pair in one batch, then lay the answer out.
        quotes = self.quotes([(b.key, g.odds_event_id) for g in games for b in books])
        out = []
        for i, g in enumerate(games):
            row = quotes[i * len(books) : (i + 1) * len(books)]
            event = _event_json(g, date_format)
            event["bookmakers"] = _books_json(books, row, wanted, odds_format, date_format, True)
            if event["bookmakers"]:
                out.append(event)
        return out

    def event_odds(
        self,
        sport: str,
        event_id: str,
        *,
        regions: str | Iterable[str] = (),
        bookmakers: str | Iterable[str] = (),
        markets: str | Iterable[str] = ("h2h",),
        odds_format: str = "decimal",
        date_format: str = "iso",
    ) -> Json:
        """``GET /v4/sports/{sport}/events/{eventId}/odds``: one event object.

        Any well-formed market key is accepted (props, periods…), but only ``h2h`` has
        prices. As documented, ``last_update`` is given per market, not per bookmaker.
        """
        self._check_sport(sport)  # an unknown sport is reported before bad parameters
        books, wanted = self._request(regions, bookmakers, markets, odds_format, date_format)
        _check_markets(wanted, featured_only=False)
        game = self._games.get(event_id)
        if (
            game is None
            or not self.is_listed(game)
            or (sport != UPCOMING and game.sport.odds_sport != sport)
        ):
            raise OddsApiError(
                404,
                "EVENT_NOT_FOUND",
                "Event not found. The event may have expired or the event id is invalid.",
            )
        event = _event_json(game, date_format)
        quotes = self.quotes([(b.key, event_id) for b in books])
        event["bookmakers"] = _books_json(books, quotes, wanted, odds_format, date_format, False)
        return event

    def _request(
        self,
        regions: str | Iterable[str],
        bookmakers: str | Iterable[str],
        markets: str | Iterable[str],
        odds_format: str,
        date_format: str,
    ) -> tuple[tuple[Bookmaker, ...], tuple[str, ...]]:
        region_list, book_list = split_list(regions), split_list(bookmakers)
        if not region_list and not book_list:
            raise OddsApiError(422, "MISSING_REGION", "Missing regions or bookmakers key")
        for key in book_list:
            if not _KEY.fullmatch(key):
                raise OddsApiError(422, "INVALID_BOOKMAKERS", f"Invalid bookmaker key {key!r}")
        if not book_list:  # bookmakers, when given, override regions entirely
            for region in region_list:
                if region not in REGIONS:
                    allowed = ", ".join(sorted(REGIONS))
                    raise OddsApiError(
                        422, "INVALID_REGION", f"Invalid region {region!r}. Allowed: {allowed}"
                    )
        wanted = split_list(markets) or ("h2h",)
        _check_choice(odds_format, ODDS_FORMATS, "INVALID_ODDS_FORMAT", "oddsFormat")
        _check_choice(date_format, DATE_FORMATS, "INVALID_DATE_FORMAT", "dateFormat")
        return self.bookmakers(region_list, book_list), wanted


def _books_json(
    books: Sequence[Bookmaker],
    quotes: Sequence[Quote | None],
    markets: Sequence[str],
    odds_format: str,
    date_format: str,
    book_last_update: bool,
) -> list[Json]:
    """The ``bookmakers`` array of one event: ``quotes[i]`` is what ``books[i]`` shows."""
    if "h2h" not in markets and "h2h_lay" not in markets:
        return []
    out = []
    for b, q in zip(books, quotes, strict=True):
        if q is None:
            continue
        stamp = _stamp(q.last_update, date_format)
        # US books list the away side first, European books the home side.
        order = _US_ORDER[len(q.names)] if b.american else _EU_ORDER[len(q.names)]
        entries = []
        if "h2h" in markets:
            prices = q.american if odds_format == "american" else q.decimal
            entries.append(("h2h", prices))
        if b.exchange and q.lay_decimal is not None and q.lay_american is not None:
            # Exchanges add h2h_lay by themselves whenever h2h is asked for.
            lay = q.lay_american if odds_format == "american" else q.lay_decimal
            entries.append(("h2h_lay", lay))
        if not entries:
            continue
        book_json: Json = {"key": b.key, "title": b.title}
        if book_last_update:
            book_json["last_update"] = stamp
        book_json["markets"] = [
            {
                "key": key,
                "last_update": stamp,
                "outcomes": [{"name": q.names[i], "price": prices[i]} for i in order],
            }
            for key, prices in entries
        ]
        out.append(book_json)
    return out


_US_ORDER: Final = {2: (0, 1), 3: (0, 1, 2)}  # away, home, draw
_EU_ORDER: Final = {2: (1, 0), 3: (1, 0, 2)}  # home, away, draw


def _commence(game: GameSpec) -> float:
    # The API prints whole seconds; filters compare against the printed time.
    return float(round(game.start))


def _stamp(t: float, date_format: str) -> str | int:
    return math.floor(t) if date_format == "unix" else iso(t)


def _event_json(game: GameSpec, date_format: str) -> Json:
    assert game.sport.odds_sport is not None
    return {
        "id": game.odds_event_id,
        "sport_key": game.sport.odds_sport,
        "sport_title": game.sport.odds_title,
        "commence_time": _stamp(_commence(game), date_format),
        "home_team": game.home.odds_name,
        "away_team": game.away.odds_name,
    }


def _check_choice(value: str, allowed: Sequence[str], code: str, param: str) -> None:
    if value not in allowed:
        raise OddsApiError(422, code, f"Invalid {param}. Must be {' or '.join(allowed)}.")


def _check_markets(markets: Sequence[str], *, featured_only: bool) -> None:
    for m in markets:
        if featured_only and m not in FEATURED_MARKETS:
            featured = ", ".join(sorted(FEATURED_MARKETS))
            raise OddsApiError(
                422,
                "INVALID_MARKET",
                f"Markets not supported by this endpoint: {m}. This endpoint takes the "
                f"featured markets ({featured}); use the event odds endpoint for others.",
            )
        if not _KEY.fullmatch(m):
            raise OddsApiError(422, "INVALID_MARKET", f"Invalid market key: {m}")


def odds_cost(
    markets: str | Iterable[str], regions: str | Iterable[str], bookmakers: str | Iterable[str]
) -> int:
    """The documented cost of an /odds request that returned data: markets × regions."""
    return len(split_list(markets) or ("h2h",)) * region_units(regions, bookmakers)


# --------------------------------------------------------------------------- HTTP


@dataclass
class Quota:
    """The key's usage credits, as the ``x-requests-*`` headers report them."""

    limit: int
    used: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def headers(self, last: int) -> dict[str, str]:
        return {
            "x-requests-remaining": str(self.remaining),
            "x-requests-used": str(self.used),
            "x-requests-last": str(last),
        }


class FrequencyLimit:
    """At most ``limit`` requests in any sliding window of ``window`` seconds."""

    def __init__(
        self,
        limit: int = FREQ_LIMIT,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._times: deque[float] = deque()

    def allow(self) -> bool:
        now = self._clock()
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False  # refused requests do not count: a client that waits gets through
        self._times.append(now)
        return True


Handler = Callable[[web.Request], tuple[Any, int]]


class OddsApi:
    """The request handlers, sharing one feed, key, quota and frequency limit."""

    def __init__(
        self,
        feed: OddsFeed,
        *,
        api_key: str,
        faults: Faults | None = None,
        quota: int = DEFAULT_QUOTA,
        rate_limit: int = FREQ_LIMIT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty string")
        if quota < 0:
            raise ValueError(f"quota = {quota}: must be zero or more")
        self.feed = feed
        self.faults = faults
        self.quota = Quota(quota)
        self.freq = FrequencyLimit(rate_limit, 1.0, monotonic)
        self._key = api_key

    def _error(self, status: int, code: str, message: str) -> web.Response:
        # Messages may quote parameters; never let the key through, even if sent as one.
        message = message.replace(self._key, "***")
        return web.json_response(
            error_body(code, message), status=status, headers=self.quota.headers(0)
        )

    async def serve(self, request: web.Request, handler: Handler, *, paid: bool) -> web.Response:
        if self.faults is not None and self.faults.odds_down():
            return self._error(
                503,
                "SERVICE_UNAVAILABLE",
                "The service is temporarily unavailable. Please retry in a few seconds.",
            )
        key = request.query.get("apiKey", "")
        if not key:
            return self._error(401, "MISSING_KEY", "API key is missing. Pass it as apiKey=…")
        if not hmac.compare_digest(key.encode(), self._key.encode()):
            return self._error(
                401, "INVALID_KEY", "API key is not valid. Check the key or get a new one."
            )
        if not self.freq.allow():
            return self._error(
                429,
                "EXCEEDED_FREQ_LIMIT",
                "Requests are being sent too frequently. Retry after a couple of seconds "
                "or spread requests out.",
            )
        if paid and self.quota.remaining <= 0:
            return self._out_of_credits()
        try:
            payload, cost = handler(request)
        except OddsApiError as exc:
            return self._error(exc.status, exc.code, exc.message)
        if cost > self.quota.remaining:
            return self._out_of_credits()
        self.quota.used += cost
        response = web.json_response(payload, headers=self.quota.headers(cost))
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression()
        return response

    def _out_of_credits(self) -> web.Response:
        return self._error(
            401,
            "OUT_OF_USAGE_CREDITS",
            "Usage quota has been reached. Upgrade the plan or wait for the monthly reset.",
        )

    # ------------------------------------------------------------------ endpoints

    def sports(self, request: web.Request) -> tuple[Any, int]:
        flag = request.query.get("all", "false").lower()
        if flag not in ("true", "false"):
            raise OddsApiError(422, "INVALID_ALL_SPORTS_PARAM", "all must be true or false")
        return self.feed.sports(all_sports=flag == "true"), 0

    def events(self, request: web.Request) -> tuple[Any, int]:
        q = request.query
        payload = self.feed.events(
            request.match_info["sport"],
            event_ids=q.get("eventIds"),
            commence_from=q.get("commenceTimeFrom"),
            commence_to=q.get("commenceTimeTo"),
            date_format=q.get("dateFormat", "iso"),
        )
        return payload, 0

    def odds(self, request: web.Request) -> tuple[Any, int]:
        q = request.query
        regions, books, markets = q.get("regions"), q.get("bookmakers"), q.get("markets", "h2h")
        payload = self.feed.odds(
            request.match_info["sport"],
            regions=regions or (),
            bookmakers=books or (),
            markets=markets,
            odds_format=q.get("oddsFormat", "decimal"),
            date_format=q.get("dateFormat", "iso"),
            commence_from=q.get("commenceTimeFrom"),
            commence_to=q.get("commenceTimeTo"),
            event_ids=q.get("eventIds"),
        )
        # Markets *requested* × regions; an empty answer costs nothing.
        cost = odds_cost(split_list(markets), split_list(regions), split_list(books))
        return payload, cost if payload else 0

    def event_odds(self, request: web.Request) -> tuple[Any, int]:
        q = request.query
        regions, books = q.get("regions"), q.get("bookmakers")
        requested = split_list(q.get("markets", "h2h")) or ("h2h",)
        payload = self.feed.event_odds(
            request.match_info["sport"],
            request.match_info["event_id"],
            regions=regions or (),
            bookmakers=books or (),
            markets=requested,
            odds_format=q.get("oddsFormat", "decimal"),
            date_format=q.get("dateFormat", "iso"),
        )
        # Unique markets *returned* × regions. An exchange's automatic h2h_lay is not counted
        # unless it was asked for: the docs bill what is requested and returned.
        returned = {
            m["key"] for b in payload["bookmakers"] for m in b["markets"] if m["key"] in requested
        }
        return payload, len(returned) * region_units(split_list(regions), split_list(books))


ODDS_API: Final = web.AppKey("odds_api", OddsApi)


def make_odds_app(
    feed: OddsFeed,
    *,
    api_key: str,
    faults: Faults | None = None,
    quota: int = DEFAULT_QUOTA,
    rate_limit: int = FREQ_LIMIT,
    monotonic: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The v4 endpoints over ``feed``; ``monotonic`` drives the frequency limit. The key is
    archived when ``KMM_DEMO_KEY_ARCHIVE`` is set (``sim.auth.archive_demo_secret``)."""
    api = OddsApi(
        feed, api_key=api_key, faults=faults, quota=quota, rate_limit=rate_limit,
        monotonic=monotonic,
    )  # fmt: skip
    archive_demo_secret("odds-api-key", api_key=api_key)  # for the tests' artifact guard
    app = web.Application()
    app[ODDS_API] = api

    def route(handler: Handler, *, paid: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            return await api.serve(request, handler, paid=paid)

        return run

    app.router.add_get("/v4/sports", route(api.sports, paid=False))
    app.router.add_get("/v4/sports/", route(api.sports, paid=False))
    app.router.add_get("/v4/sports/{sport}/odds", route(api.odds, paid=True))
    app.router.add_get("/v4/sports/{sport}/events", route(api.events, paid=False))
    app.router.add_get(
        "/v4/sports/{sport}/events/{event_id}/odds", route(api.event_odds, paid=True)
    )
    return app


class RedactedAccessLogger(AbstractAccessLogger):
    """The access log, with the ``apiKey`` query parameter blanked out (and the key itself,
    wherever a careless client put it, when ``secret`` is set by :func:`_access_logger`)."""

    secret: ClassVar[str] = ""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = _API_KEY_PARAM.sub(r"\1***", request.path_qs)
        if self.secret:
            for form in {self.secret, quote(self.secret, safe=""), quote_plus(self.secret)}:
                path = path.replace(form, "***")
        self.logger.info(
            '%s "%s %s" %s %.3fs', request.remote, request.method, path, response.status, time
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def _access_logger(api_key: str) -> type[RedactedAccessLogger]:
    return type("OddsAccessLogger", (RedactedAccessLogger,), {"secret": api_key})


class OddsServer:
    """A running Odds-API server on 127.0.0.1: ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, runner: web.AppRunner, app: web.Application, port: int) -> None:
        self._runner = runner
        self.app = app
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"

    @property
    def api(self) -> OddsApi:
        return self.app[ODDS_API]

    @property
    def quota(self) -> Quota:
        return self.api.quota

    async def close(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> OddsServer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


async def start_odds_server(
    feed: OddsFeed,
    *,
    api_key: str,
    faults: Faults | None = None,
    host: str = LOOPBACK,
    port: int = 0,
    quota: int = DEFAULT_QUOTA,
    rate_limit: int = FREQ_LIMIT,
    monotonic: Callable[[], float] = time.monotonic,
) -> OddsServer:
    """Serve ``feed`` on 127.0.0.1 (port 0 picks a free one); no other host is allowed."""
    app = make_odds_app(
        feed, api_key=api_key, faults=faults, quota=quota, rate_limit=rate_limit,
        monotonic=monotonic,
    )  # fmt: skip
    runner, port = await listen(app, host=host, port=port, access_log_class=_access_logger(api_key))
    return OddsServer(runner, app, port)
