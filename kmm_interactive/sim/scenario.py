"""Seeded scenarios: which games exist, when they start, and how their true probability moves.

A scenario is pure data drawn from one seed. Times are given in *scenario seconds* and
mapped to wall-clock epoch seconds as ``origin + s / speed``: a speed of 60 turns a game two
hours out into one starting in two minutes. Flow scales with it (``A`` is per wall second),
so a compressed day looks like a real one played fast, and every timestamp the exchange
prints is real wall time.

The true probability of each outcome is a step path: a slow drift before the start, news
jumps (the bookmakers learn of them late, informed takers at once), a faster walk in play,
and a result drawn from the final probability. The exchange's agents and the odds feed both
read this one path, which is what makes the simulated market coherent.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Final

from kmm_interactive.config import DEFAULT_SPORTS

try:  # the ticker's date code is Eastern time
    from zoneinfo import ZoneInfo

    EASTERN: timezone | ZoneInfo = ZoneInfo("America/New_York")
except Exception:  # pragma: no cover - a machine without tz data
    EASTERN = timezone(timedelta(hours=-5))

LINEAR_CENT: Final = (("0.0000", "1.0000", "0.0100"),)
TAPERED_DECI_CENT: Final = (
    ("0.0000", "0.1000", "0.0010"),
    ("0.1000", "0.9000", "0.0100"),
    ("0.9000", "1.0000", "0.0010"),
)


@dataclass(frozen=True)
class Team:
    """A team as Kalshi names it (``name``, the market's yes_sub_title) and as bookmakers do."""

    code: str
    name: str
    odds_name: str


@dataclass(frozen=True)
class SportSpec:
    """How one sport's games are listed and traded."""

    key: str  # the config profile name ("nba")
    series: str
    series_title: str
    odds_sport: str | None
    odds_title: str
    odds_group: str
    teams: tuple[Team, ...]
    fee_type: str = "quadratic"
    fee_multiplier: Decimal = Decimal(1)
    price_level_structure: str = "linear_cent"
    price_ranges: tuple[tuple[str, str, str], ...] = LINEAR_CENT
    #: Retail taker arrivals per scenario second on one side at zero distance, and the decay
    #: per cent of distance from the true probability: λ(δ) = A·e^(−kδ).
    A: float = 0.04
    k: float = 0.5
    in_play_seconds: float = 9000.0
    draw: bool = False
    time_in_ticker: bool = False


def _teams(*rows: tuple[str, str, str]) -> tuple[Team, ...]:
    return tuple(Team(*row) for row in rows)


def _series(key: str) -> str:
    return DEFAULT_SPORTS[key].series[0]


def _odds(key: str) -> str | None:
    return DEFAULT_SPORTS[key].odds_sport


# Team names differ from the bookmakers' in places, as they do in life (city names,
# abbreviations, accents, punctuation).
SPORTS: Final = {
    s.key: s
    for s in (
        SportSpec(
            "nba", _series("nba"), "Professional Basketball Game", _odds("nba"), "NBA",
            "Basketball",
            _teams(
                ("LAL", "Los Angeles L", "Los Angeles Lakers"),
                ("BOS", "Boston", "Boston Celtics"),
                ("NYK", "New York", "New York Knicks"),
                ("GSW", "Golden State", "Golden State Warriors"),
                ("MIA", "Miami", "Miami Heat"),
                ("DEN", "Denver", "Denver Nuggets"),
                ("PHX", "Phoenix", "Phoenix Suns"),
                ("MIL", "Milwaukee", "Milwaukee Bucks"),
                ("LAC", "Los Angeles C", "LA Clippers"),
                ("DAL", "Dallas", "Dallas Mavericks"),
                ("PHI", "Philadelphia", "Philadelphia 76ers"),
                ("HOU", "Houston", "Houston Rockets"),
            ),
            fee_type="quadratic_with_maker_fees", A=0.05, k=0.5, in_play_seconds=9000,
        ),
        SportSpec(
            "nfl", _series("nfl"), "Professional Football Game", _odds("nfl"), "NFL",
            "American Football",
            _teams(
                ("KC", "Kansas City", "Kansas City Chiefs"),
                ("BUF", "Buffalo", "Buffalo Bills"),
                ("PHI", "Philadelphia", "Philadelphia Eagles"),
                ("SF", "San Francisco", "San Francisco 49ers"),
                ("DAL", "Dallas", "Dallas Cowboys"),
                ("DET", "Detroit", "Detroit Lions"),
                ("BAL", "Baltimore", "Baltimore Ravens"),
                ("GB", "Green Bay", "Green Bay Packers"),
            ),
            fee_type="quadratic_with_maker_fees", A=0.08, k=0.6, in_play_seconds=11000,
        ),
        SportSpec(
            "nhl", _series("nhl"), "Professional Hockey Game", _odds("nhl"), "NHL",
            "Ice Hockey",
            _teams(
                ("TOR", "Toronto", "Toronto Maple Leafs"),
                ("MTL", "Montreal", "Montréal Canadiens"),
                ("BOS", "Boston", "Boston Bruins"),
                ("NYR", "New York R", "New York Rangers"),
                ("EDM", "Edmonton", "Edmonton Oilers"),
                ("VGK", "Vegas", "Vegas Golden Knights"),
                ("STL", "St. Louis", "St Louis Blues"),
            ),
            A=0.03, k=0.5, in_play_seconds=9000,
        ),
        SportSpec(
            "mlb", _series("mlb"), "Professional Baseball Game", _odds("mlb"), "MLB",
            "Baseball",
            _teams(
                ("NYY", "New York Y", "New York Yankees"),
                ("LAD", "Los Angeles D", "Los Angeles Dodgers"),
                ("BOS", "Boston", "Boston Red Sox"),
                ("CHC", "Chicago C", "Chicago Cubs"),
                ("ATL", "Atlanta", "Atlanta Braves"),
                ("HOU", "Houston", "Houston Astros"),
            ),
            A=0.03, k=0.5, in_play_seconds=10800, time_in_ticker=True,
        ),
        SportSpec(
            "epl", _series("epl"), "English Premier League Game", _odds("epl"), "EPL",
            "Soccer",
            _teams(
                ("ARS", "Arsenal", "Arsenal"),
                ("TOT", "Tottenham", "Tottenham Hotspur"),
                ("MCI", "Man City", "Manchester City"),
                ("MUN", "Man United", "Manchester United"),
                ("LIV", "Liverpool", "Liverpool"),
                ("CHE", "Chelsea", "Chelsea"),
                ("NFO", "Nott'm Forest", "Nottingham Forest"),
                ("WOL", "Wolves", "Wolverhampton Wanderers"),
                ("BHA", "Brighton", "Brighton and Hove Albion"),
            ),
            A=0.03, k=0.4, in_play_seconds=6600, draw=True,
        ),
        SportSpec(
            "ncaab", _series("ncaab"), "College Basketball Game", _odds("ncaab"), "NCAAB",
            "Basketball",
            _teams(
                ("DUKE", "Duke", "Duke Blue Devils"),
                ("UNC", "North Carolina", "North Carolina Tar Heels"),
                ("KU", "Kansas", "Kansas Jayhawks"),
                ("UK", "Kentucky", "Kentucky Wildcats"),
                ("GONZ", "Gonzaga", "Gonzaga Bulldogs"),
                ("CONN", "UConn", "UConn Huskies"),
            ),
            price_level_structure="tapered_deci_cent", price_ranges=TAPERED_DECI_CENT,
            A=0.03, k=0.4, in_play_seconds=8400,
        ),
    )
}  # fmt: skip

#: Sport mixes by name; the counts are games per sport.
MIXES: Final[dict[str, dict[str, int]]] = {
    "default": {"nba": 3, "nfl": 1, "nhl": 1, "mlb": 1, "epl": 1, "ncaab": 1},
    "nba": {"nba": 4},
    "small": {"nba": 1, "epl": 1},
    "day": {"nba": 6, "nfl": 3, "nhl": 3, "mlb": 3, "epl": 3, "ncaab": 2},
}


# --------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class TruthPath:
    """True outcome probabilities as a step function of wall time (one tuple per knot)."""

    times: tuple[float, ...]
    probs: tuple[tuple[float, ...], ...]

    def at(self, t: float) -> tuple[float, ...]:
        i = bisect.bisect_right(self.times, t) - 1
        return self.probs[max(i, 0)]


@dataclass(frozen=True)
class NewsJump:
    """A step in a game's true probability that the bookmakers only price in later."""

    event_ticker: str
    time: float
    before: tuple[float, ...]
    after: tuple[float, ...]


@dataclass(frozen=True)
class Outcome:
    """One market of a game: a team (or the tie), with its index into the truth path."""

    ticker: str
    code: str
    name: str
    odds_name: str
    index: int


@dataclass(frozen=True)
class GameSpec:
    event_ticker: str
    sport: SportSpec
    away: Team
    home: Team
    outcomes: tuple[Outcome, ...]
    odds_event_id: str
    start: float  # wall epoch seconds
    end: float  # the result is known
    settle: float  # settled and paid
    A: float  # per wall second (already scaled by speed)
    k: float
    path: TruthPath
    result_index: int

    @property
    def title(self) -> str:
        if self.sport.draw:
            return f"{self.home.name} vs {self.away.name}"
        return f"{self.away.name} at {self.home.name} Winner?"

    def outcome(self, ticker: str) -> Outcome:
        for o in self.outcomes:
            if o.ticker == ticker:
                return o
        raise KeyError(ticker)

    def truth(self, ticker: str, t: float) -> float:
        """True probability that ``ticker`` settles YES, at wall time ``t``."""
        return self.path.at(t)[self.outcome(ticker).index]


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    speed: float
    origin: float
    games: tuple[GameSpec, ...]
    news: tuple[NewsJump, ...]
    _by_ticker: dict[str, tuple[GameSpec, Outcome]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {o.ticker: (g, o) for g in self.games for o in g.outcomes}
        object.__setattr__(self, "_by_ticker", index)

    @property
    def sports(self) -> tuple[SportSpec, ...]:
        seen: dict[str, SportSpec] = {}
        for g in self.games:
            seen.setdefault(g.sport.key, g.sport)
        return tuple(seen.values())

    def game(self, event_ticker: str) -> GameSpec:
        for g in self.games:
            if g.event_ticker == event_ticker:
                return g
        raise KeyError(event_ticker)

    def market(self, ticker: str) -> tuple[GameSpec, Outcome]:
        return self._by_ticker[ticker]


# --------------------------------------------------------------------------- building


def _event_ticker(sport: SportSpec, away: Team, home: Team, start: float, taken: set[str]) -> str:
    local = datetime.fromtimestamp(start, UTC).astimezone(EASTERN)
    date = local.strftime("%y%b%d").upper()
    teams = f"{away.code}{home.code}"
    clock = local.strftime("%H%M")
    ticker = f"{sport.series}-{date}{clock if sport.time_in_ticker else ''}{teams}"
    if ticker in taken:  # a second meeting the same day: tell them apart by the start time
        ticker = f"{sport.series}-{date}{clock}{teams}"
    n = 2
    base = ticker
    while ticker in taken:
        ticker = f"{base}G{n}"
        n += 1
    taken.add(ticker)
    return ticker


#: The latent model, in units of the game's outcome noise (the in-play swing has sd 1).
HOME_EDGE: Final = 0.12  # home advantage in the latent margin
STRENGTH_SD: Final = 0.75  # spread of pre-game strength differences
DRIFT_STEP: Final = 300.0  # scenario seconds between pre-game drift steps
DRIFT_SD: Final = 0.02
NEWS_RATE: Final = 1.0 / 7200.0  # news jumps per scenario second (about one in 2 h)
NEWS_SD: Final = 0.25
IN_PLAY_STEP: Final = 60.0
MAX_GAMES: Final = 5000
#: A soccer game is level when the latent margin ends within ±DRAW_BAND: 26 % at an even start.
DRAW_BAND: Final = 0.332


def _phi(x: float) -> float:
    # erfc keeps precision in the tails, where 1 + erf(x) rounds to exactly 0 or 2; the clip
    # keeps a result that is only very likely from reading as certain before the end.
    p = 0.5 * math.erfc(-x / math.sqrt(2.0))
    return min(max(p, 1e-9), 1.0 - 1e-9)


def _outcome_probs(x: float, sd: float, draw: bool) -> tuple[float, ...]:
    """(away, home[, tie]) given latent home margin ``x`` and the noise ``sd`` still to come."""
    band = DRAW_BAND if draw else 0.0
    home = _phi((x - band) / sd)
    away = _phi((-x - band) / sd)
    return (away, home, max(0.0, 1.0 - home - away)) if draw else (away, home)


def _truth(
    rng: random.Random,
    sport: SportSpec,
    game_id: str,
    start: float,
    end: float,
    scn: _Frame,
    news_rate: float = NEWS_RATE,
) -> tuple[TruthPath, list[NewsJump], int]:
    """Draw one game's path of true probabilities, its news jumps and its result.

    A latent home margin X moves by small drift steps and news jumps before the start and
    by a Brownian swing of variance 1 over the game; the result is the sign of X at the end
    (a draw inside ±DRAW_BAND for soccer). The truth at any time is the probability of each
    result given X now and the variance still to come, so it is a martingale: a team priced
    at 60 % wins 60 % of the time, before the start and in play.
    """
    x = rng.gauss(HOME_EDGE, STRENGTH_SD)
    start_s = scn.scenario(start)
    # Expected pre-game variance still to come per scenario second: drift plus news.
    pre_rate = DRIFT_SD**2 / DRIFT_STEP + news_rate * NEWS_SD**2

    def pre_game(x: float, s: float) -> tuple[float, ...]:
        return _outcome_probs(x, math.sqrt(1.0 + pre_rate * max(start_s - s, 0.0)), sport.draw)

    times, path, news = [scn.origin], [pre_game(x, 0.0)], []
    s = 0.0
    while True:
        step = min(DRIFT_STEP, rng.expovariate(news_rate))
        s += step
        if s >= start_s:
            break
        if step < DRIFT_STEP:  # a news jump landed before the next drift step
            before = pre_game(x, s)
            x += rng.gauss(0.0, NEWS_SD)
            news.append(NewsJump(game_id, scn.wall(s), before, pre_game(x, s)))
        else:
            x += rng.gauss(0.0, DRIFT_SD)
        times.append(scn.wall(s))
        path.append(pre_game(x, s))
    n_steps = max(1, int(sport.in_play_seconds / IN_PLAY_STEP))
    step_sd = 1.0 / math.sqrt(n_steps)
    for i in range(n_steps):
        times.append(scn.wall(start_s + i * IN_PLAY_STEP))
        path.append(_outcome_probs(x, math.sqrt((n_steps - i) / n_steps), sport.draw))
        x += rng.gauss(0.0, step_sd)
    band = DRAW_BAND if sport.draw else 0.0
    result = 1 if x > band else 0 if x < -band else 2
    times.append(end)
    path.append(tuple(1.0 if i == result else 0.0 for i in range(len(path[-1]))))
    return TruthPath(tuple(times), tuple(path)), news, result


@dataclass(frozen=True)
class _Frame:
    origin: float
    speed: float

    def wall(self, s: float) -> float:
        return self.origin + s / self.speed

    def scenario(self, wall: float) -> float:
        return (wall - self.origin) * self.speed


def build_scenario(
    name: str = "default",
    *,
    seed: int = 7,
    now: float,
    speed: float = 1.0,
    n_games: int | None = None,
    first_start: float = 1200.0,
    last_start: float = 4 * 3600.0,
    settlement_delay: float = 300.0,
    news_rate: float = NEWS_RATE,
) -> Scenario:
    """Draw a scenario from ``seed``: the mix called ``name`` (or ``n_games`` spread over it).

    Start times fall between ``first_start`` and ``last_start`` scenario seconds from
    ``now``; the first game always starts at ``first_start`` so a demo sees a start soon.
    ``news_rate`` is news jumps per scenario second before the start (one in 2 h by default).
    """
    if name not in MIXES:
        raise ValueError(f"scenario {name!r} is unknown (allowed: {', '.join(sorted(MIXES))})")
    if not (isinstance(speed, int | float) and 0 < speed <= 10_000 and math.isfinite(speed)):
        raise ValueError(f"speed = {speed!r}: must be a number in (0, 10000]")
    if n_games is not None and not 1 <= n_games <= MAX_GAMES:
        raise ValueError(f"n_games = {n_games!r}: must be between 1 and {MAX_GAMES}")
    if not 0 < first_start <= last_start:
        raise ValueError("need 0 < first_start <= last_start")
    if not (isinstance(news_rate, int | float) and 0 < news_rate <= 0.1):
        raise ValueError(f"news_rate = {news_rate!r}: must be jumps per second in (0, 0.1]")
    rng = random.Random(seed)
    frame = _Frame(float(now), float(speed))
    mix = MIXES[name]
    sports = [key for key, n in mix.items() for _ in range(n)]
    if n_games is not None:
        sports = [sports[i % len(sports)] for i in range(n_games)]
    taken: set[str] = set()
    games: list[GameSpec] = []
    news: list[NewsJump] = []
    for i, key in enumerate(sports):
        sport = SPORTS[key]
        away, home = rng.sample(sport.teams, 2)
        lead = first_start if i == 0 else rng.uniform(first_start, last_start)
        start = frame.wall(lead)
        end = frame.wall(lead + sport.in_play_seconds)
        event = _event_ticker(sport, away, home, start, taken)
        outcomes = [
            Outcome(f"{event}-{away.code}", away.code, away.name, away.odds_name, 0),
            Outcome(f"{event}-{home.code}", home.code, home.name, home.odds_name, 1),
        ]
        if sport.draw:
            outcomes.append(Outcome(f"{event}-TIE", "TIE", "Tie", "Draw", 2))
        path, jumps, result = _truth(rng, sport, event, start, end, frame, news_rate)
        flow = math.exp(rng.gauss(0.0, 0.25))  # this game draws more or less interest
        games.append(
            GameSpec(
                event_ticker=event,
                sport=sport,
                away=away,
                home=home,
                outcomes=tuple(outcomes),
                odds_event_id=f"{rng.getrandbits(128):032x}",
                start=start,
                end=end,
                settle=frame.wall(lead + sport.in_play_seconds + settlement_delay),
                A=sport.A * flow * speed,
                k=sport.k,
                path=path,
                result_index=result,
            )
        )
        news.extend(jumps)
    games.sort(key=lambda g: (g.start, g.event_ticker))
    news.sort(key=lambda j: (j.time, j.event_ticker))
    return Scenario(name, seed, float(speed), float(now), tuple(games), tuple(news))
