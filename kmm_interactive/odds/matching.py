"""Match Kalshi games to The Odds API events, and each Kalshi market to an Odds outcome.

The job: for each :class:`KalshiGame` (an event with one market per team, plus ``-TIE`` for
soccer), find the one :class:`~kmm_interactive.odds.client.OddsEvent` of its sport that
starts at the same time between the same two teams, and say which market is which outcome.

How:

* **Sport.** The series ticker's sport profile (``config.sports``) gives the Odds sport
  key; a series in no profile, or a profile without ``odds_sport`` (esports), is reported
  as not mapped.
* **Time.** The game's start is its ``occurrence_datetime`` when known, else the time in
  the event ticker's date code (``SERIES-YYMONDD[HHMM]TEAMS``, Eastern time), else the
  ticker's date. A known time must lie within ``time_tolerance`` of the Odds
  ``commence_time``; a bare date admits any start on that Eastern day, widened by
  ``date_tolerance`` on each side.
* **Names.** Both sides are normalised (accents, case, punctuation, "&"/"and", leading
  "The", "FC"/"AFC", "St." = "Saint" leading and "State" trailing, "Utd"), then an alias
  table maps short forms ("LA", "NY", "Man City", "Wolves", "Spurs"…) onto the bookmakers'.
  A Kalshi name then matches an Odds name exactly (score 1), as its leading words ("Boston"
  in "Boston Celtics", 0.9), with a truncated last word ("Los Angeles L" for the Lakers,
  0.8: Kalshi's form when two teams share a city), or as words in order elsewhere in it
  (0.6). Words that name a different school or club ("State", "Tech", "A&M"…) may not be
  left over, so "Kansas" never matches "Kansas State Wildcats".
* **Order.** Home and away are tried both ways round; the game's score is its weaker team's.

Outcome convention: **team A is the Odds event's away team** (Kalshi game tickers list the
away team first, ``KXNBAGAME-26MAR31NYKHOU`` is New York at Houston); the side is decided by
the names, never by the order of the codes in the ticker. :attr:`GameMatch.outcome_names`
is ``(away, home)`` or ``(away, home, "Draw")`` and :attr:`GameMatch.tickers` lists the
markets in that order, ready for :meth:`OddsEvent.book_odds`.

Failure semantics: nothing is guessed. Two candidate events (or both home/away readings)
scoring alike, or two Kalshi games claiming one Odds event, is reported as ambiguous — except
that a known start time settles a rematch or doubleheader when exactly one of the events
starts within ``close_time`` of it (never "the nearer of two"); every
game that is not matched is in :attr:`MatchReport.unmatched` with the reason.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Any, Final

from kmm_interactive.config import DEFAULT_SPORTS, SportProfile
from kmm_interactive.odds.client import DRAW, OddsEvent

try:  # Kalshi's ticker date codes are Eastern time
    from zoneinfo import ZoneInfo

    EASTERN: tzinfo = ZoneInfo("America/New_York")
except Exception:  # pragma: no cover - a machine without tz data
    EASTERN = timezone(timedelta(hours=-5))

TIE_SUFFIX: Final = "-TIE"
_TIE_TITLES: Final = frozenset({"tie", "draw"})
_DATE_CODE = re.compile(r"^(\d{2})([A-Z]{3})(\d{2})(?:([01]\d|2[0-3])([0-5]\d))?")
_MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                  "DEC")  # fmt: skip

# Scores of the ways a Kalshi name can match an Odds name (see the module doc).
EXACT: Final = 1.0
LEADING: Final = 0.9
TRUNCATED: Final = 0.8
IN_ORDER: Final = 0.6

#: Noise words dropped from every name.
_DROPPED: Final = frozenset({"fc", "afc", "cf", "the", "and", "of"})
#: Word-level spellings, applied to both sides.
_WORDS: Final = MappingProxyType(
    {
        "utd": "united",
        "la": "los angeles",
        "ny": "new york",
        "nj": "new jersey",
        "mt": "mount",
        "ft": "fort",
        "munchen": "munich",
    }
)
#: Whole names (after the word spellings) that stand for another, applied to both sides.
#: Club nicknames are scoped to soccer, where "Spurs" is Tottenham, not San Antonio.
_ALIASES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        "": MappingProxyType({"connecticut": "uconn"}),
        "soccer": MappingProxyType(
            {
                "man city": "manchester city",
                "man united": "manchester united",
                "man u": "manchester united",
                "spurs": "tottenham hotspur",
                "wolves": "wolverhampton wanderers",
                "nottm forest": "nottingham forest",
                "notts forest": "nottingham forest",
                "sheff united": "sheffield united",
                "sheff wed": "sheffield wednesday",
                "west brom": "west bromwich albion",
                "inter": "inter milan",
                "internazionale": "inter milan",
                "inter milano": "inter milan",
                "ac milan": "milan",
                "psg": "paris saint germain",
                "paris sg": "paris saint germain",
                "atletico": "atletico madrid",
                "atleti": "atletico madrid",
                "athletic club": "athletic bilbao",
                "bayern": "bayern munich",
                "gladbach": "borussia monchengladbach",
                "leverkusen": "bayer leverkusen",
                "dortmund": "borussia dortmund",
                "bvb": "borussia dortmund",
            }
        ),
    }
)
#: Words that make a different school or club when left over ("Kansas" ≠ "Kansas State").
_QUALIFIERS: Final = frozenset(
    {"state", "tech", "am", "oh", "fl", "north", "south", "east", "west", "northern",
     "southern", "eastern", "western", "central", "international", "atlantic", "gulf",
     "wednesday"}
)  # fmt: skip


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class KalshiGame:
    """A Kalshi game as the matcher needs it (built from REST market objects).

    ``markets`` are ``(ticker, yes_sub_title)`` pairs: one per team, plus the ``-TIE``
    market of a soccer game. ``start_time`` is the markets' ``occurrence_datetime`` when
    Kalshi gives one; without it the event ticker's date code is used.
    """

    event_ticker: str
    series_ticker: str
    start_time: datetime | None
    markets: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if self.start_time is not None and self.start_time.tzinfo is None:
            raise ValueError(f"{self.event_ticker}: start_time must be timezone-aware")

    @classmethod
    def from_markets(cls, markets: Sequence[Mapping[str, Any]]) -> KalshiGame:
        """From the JSON market objects of one event (``GET /markets?event_ticker=…``).

        The series is the event ticker's first part; the start is the first
        ``occurrence_datetime`` given (``expected_expiration_time`` is "a few hours after
        the start" and is no start time).
        """
        if not markets:
            raise ValueError("a game needs its markets")
        events = {m.get("event_ticker") for m in markets}
        event = next(iter(events))
        if len(events) != 1 or not isinstance(event, str) or not event:
            raise ValueError(f"the markets are not of one event: {sorted(map(str, events))}")
        start = None
        for m in markets:
            stamp = m.get("occurrence_datetime")
            if isinstance(stamp, str) and stamp:
                start = datetime.fromisoformat(stamp)
                break
        pairs = tuple((str(m["ticker"]), str(m.get("yes_sub_title") or "")) for m in markets)
        return cls(event, event.split("-", 1)[0], start, pairs)

    @property
    def tie_ticker(self) -> str | None:
        ties = [t for t, title in self.markets if _is_tie(t, title)]
        return ties[0] if len(ties) == 1 else None

    @property
    def team_markets(self) -> tuple[tuple[str, str], ...]:
        return tuple((t, title) for t, title in self.markets if not _is_tie(t, title))


def _is_tie(ticker: str, title: str) -> bool:
    return ticker.endswith(TIE_SUFFIX) or _fold(title) in _TIE_TITLES


@dataclass(frozen=True)
class MatchParams:
    """Time tolerances and score thresholds of :func:`match_games`."""

    #: How far a known start (occurrence_datetime or the ticker's HHMM) may be from the
    #: commence_time: kick-offs are scheduled to the minute; books round or lag a little.
    time_tolerance: timedelta = timedelta(hours=1)
    #: How far beyond the ticker's Eastern day a date-only game may start.
    date_tolerance: timedelta = timedelta(hours=3)
    #: With the start known, of candidates alike by name the one this close is taken
    #: when it is the only one.
    close_time: timedelta = timedelta(minutes=15)
    #: The least name score that counts as a match.
    min_score: float = 0.5
    #: Candidates closer than this in score are ambiguous.
    tie_margin: float = 0.05

    def __post_init__(self) -> None:
        if min(self.time_tolerance, self.date_tolerance, self.close_time) < timedelta(0):
            raise ValueError("tolerances must not be negative")
        if not 0.0 < self.min_score <= 1.0:
            raise ValueError(f"min_score = {self.min_score}: must be in (0, 1]")
        if not 0.0 <= self.tie_margin < 1.0:
            raise ValueError(f"tie_margin = {self.tie_margin}: must be in [0, 1)")


# --------------------------------------------------------------------------- outputs


class Reason(enum.StrEnum):
    """Why a game was not matched."""

    SPORT_NOT_MAPPED = "sport not mapped"
    BAD_GAME = "not a two-team game"
    NO_EVENT_IN_WINDOW = "no event in the time window"
    NAMES_NOT_RECOGNISED = "names not recognised"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class GameMatch:
    """A Kalshi game and its Odds event. Team A is the away team (see the module doc)."""

    game: KalshiGame
    event: OddsEvent
    team_a: str  # the Kalshi ticker of the away team
    team_b: str  # the Kalshi ticker of the home team
    tie: str | None  # the -TIE ticker, priced by the Odds "Draw" outcome
    score: float
    start_source: str  # what the start was compared on: occurrence, ticker time, ticker date

    @property
    def tickers(self) -> tuple[str, ...]:
        """The markets in outcome order: (team A, team B[, tie])."""
        return (self.team_a, self.team_b) + ((self.tie,) if self.tie else ())

    @property
    def outcome_names(self) -> tuple[str, ...]:
        """The Odds outcome names in the order of :attr:`tickers`."""
        names = (self.event.away_team, self.event.home_team)
        return names + ((DRAW,) if self.tie else ())

    @property
    def outcomes(self) -> Mapping[str, str]:
        """Kalshi ticker → Odds outcome name."""
        return MappingProxyType(dict(zip(self.tickers, self.outcome_names, strict=True)))


@dataclass(frozen=True)
class Unmatched:
    """A game left unmatched: the reason, what went wrong, and the candidate event ids."""

    game: KalshiGame
    reason: Reason
    detail: str
    candidates: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.game.event_ticker}: {self.reason} — {self.detail}"


@dataclass(frozen=True)
class MatchReport:
    matches: tuple[GameMatch, ...]
    unmatched: tuple[Unmatched, ...]

    def by_ticker(self) -> Mapping[str, GameMatch]:
        """Every matched Kalshi market ticker → its game's match."""
        return MappingProxyType({t: m for m in self.matches for t in m.tickers})

    def by_event_ticker(self) -> Mapping[str, GameMatch]:
        return MappingProxyType({m.game.event_ticker: m for m in self.matches})

    def summary(self) -> str:
        lines = [f"{len(self.matches)} matched, {len(self.unmatched)} not matched"]
        lines += [f"  {u}" for u in self.unmatched]
        return "\n".join(lines)


# --------------------------------------------------------------------------- names


def _fold(text: str) -> str:
    """Lower case without accents ("Montréal" → "montreal")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def _group(sport_key: str) -> str:
    return "soccer" if sport_key.startswith("soccer") else ""


def normalise_name(name: str, sport_key: str = "") -> tuple[str, ...]:
    """The words a team name is compared on (see the module doc for the rules)."""
    text = _fold(name)
    text = re.sub(r"\s&\s", " and ", text)  # "Brighton & Hove" but "Texas A&M" → "am"
    text = re.sub(r"['’.&]", "", text.replace(".", ". "))  # "St. John's" → "st johns"
    words = re.sub(r"[^a-z0-9]+", " ", text).split()
    spelled: list[str] = []
    for i, word in enumerate(words):
        if word == "st":  # "St. Louis", "Mount St. Mary's" lead with Saint; "Ohio St." ends
            word = "state" if i == len(words) - 1 and i > 0 else "saint"
        spelled.extend(_WORDS.get(word, word).split())
    kept = [w for w in spelled if w not in _DROPPED] or spelled
    joined = " ".join(kept)
    for scope in ("", _group(sport_key)):
        joined = _ALIASES.get(scope, {}).get(joined, joined)
    return tuple(joined.split())


def _in_order(short: Sequence[str], long: Sequence[str], truncate: bool) -> list[int] | None:
    """Positions in ``long`` of the words of ``short``, in order (the last word of ``short``
    may be a prefix of its partner when ``truncate``); None if there are none."""
    positions: list[int] = []
    start = 0
    for i, word in enumerate(short):
        last = truncate and i == len(short) - 1
        for j in range(start, len(long)):
            if long[j] == word or (last and long[j].startswith(word)):
                positions.append(j)
                start = j + 1
                break
        else:
            return None
    return positions


def _one_way(short: Sequence[str], long: Sequence[str]) -> float:
    """How well ``short`` names the same team as the longer ``long`` (0 = not at all)."""
    best = 0.0
    for truncate in (False, True):
        found = _in_order(short, long, truncate)
        if found is None:
            continue
        left = [long[j] for j in range(len(long)) if j not in found]
        if any(w in _QUALIFIERS for w in left):
            continue
        exact = [long[j] for j in found] == list(short)
        leading = found == list(range(len(short)))
        score = (LEADING if exact else TRUNCATED) if leading else IN_ORDER
        best = max(best, score)
    return best


def team_score(kalshi_name: str, odds_name: str, sport_key: str = "") -> float:
    """How surely two names are one team: 1 exact, 0.9 / 0.8 / 0.6 partial, 0 not."""
    a, b = normalise_name(kalshi_name, sport_key), normalise_name(odds_name, sport_key)
    if not a or not b:
        return 0.0
    if a == b:
        return EXACT
    return _one_way(a, b) if len(a) <= len(b) else _one_way(b, a)


# --------------------------------------------------------------------------- times


def ticker_start(event_ticker: str) -> tuple[datetime, bool] | None:
    """The start coded in ``SERIES-YYMONDD[HHMM]…`` (Eastern time) as UTC, and whether a
    time of day was given (if not, the Eastern midnight opening the day); None if the
    ticker has no date code."""
    _, _, rest = event_ticker.partition("-")
    found = _DATE_CODE.match(rest)
    if found is None or found[2] not in _MONTHS:
        return None
    year, month, day = 2000 + int(found[1]), _MONTHS.index(found[2]) + 1, int(found[3])
    has_time = found[4] is not None
    hour, minute = (int(found[4]), int(found[5])) if has_time else (0, 0)
    try:
        local = datetime(year, month, day, hour, minute, tzinfo=EASTERN)
    except ValueError:
        return None
    return local.astimezone(UTC), has_time


@dataclass(frozen=True)
class _Window:
    lo: datetime
    hi: datetime
    source: str  # "occurrence", "ticker time" or "ticker date"
    start: datetime | None  # the known start time (None for a bare date)


def _window(game: KalshiGame, params: MatchParams) -> _Window | None:
    coded = ticker_start(game.event_ticker)
    if game.start_time is not None:
        start, source = game.start_time, "occurrence"
    elif coded is not None and coded[1]:
        start, source = coded[0], "ticker time"
    elif coded is not None:
        day = coded[0]
        # Aware arithmetic is wall-clock: the next Eastern midnight, on DST days too.
        end = (day.astimezone(EASTERN) + timedelta(days=1)).astimezone(UTC)
        return _Window(
            day - params.date_tolerance, end + params.date_tolerance, "ticker date", None
        )
    else:
        return None
    return _Window(start - params.time_tolerance, start + params.time_tolerance, source, start)


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Candidate:
    event: OddsEvent
    score: float
    away: str  # Kalshi ticker of the away team
    home: str
    source: str = ""  # what the start was compared on


def _pairing(
    teams: tuple[tuple[str, str], ...], event: OddsEvent, params: MatchParams
) -> tuple[_Candidate | None, bool]:
    """The better home/away reading of ``event`` for the two team markets, and whether the
    two readings score alike (then neither is taken)."""
    (t1, n1), (t2, n2) = teams
    sport = event.sport_key
    readings = []
    for away, away_name, home, home_name in ((t1, n1, t2, n2), (t2, n2, t1, n1)):
        score = min(
            team_score(away_name, event.away_team, sport),
            team_score(home_name, event.home_team, sport),
        )
        if score >= params.min_score:
            readings.append(_Candidate(event, score, away, home))
    readings.sort(key=lambda c: -c.score)
    if len(readings) == 2 and readings[0].score - readings[1].score < params.tie_margin:
        return None, True
    return (readings[0] if readings else None), False


def _describe(event: OddsEvent) -> str:
    return f"{event.away_team} at {event.home_team} ({event.commence_time:%Y-%m-%d %H:%M}Z)"


def _match_one(
    game: KalshiGame,
    odds_sport: str,
    events: Sequence[OddsEvent],
    params: MatchParams,
) -> _Candidate | Unmatched:
    teams = game.team_markets
    ties = len(game.markets) - len(teams)
    if len(teams) != 2 or ties > 1:
        return Unmatched(
            game, Reason.BAD_GAME, f"{len(teams)} team market(s) and {ties} tie market(s)"
        )
    window = _window(game, params)
    if window is None:
        return Unmatched(
            game, Reason.BAD_GAME, "no start time and no date code in the event ticker"
        )
    lo, hi = window.lo, window.hi
    near = [e for e in events if e.sport_key == odds_sport and lo <= e.commence_time <= hi]
    if not near:
        return Unmatched(
            game,
            Reason.NO_EVENT_IN_WINDOW,
            f"no {odds_sport} event starts between {lo:%Y-%m-%d %H:%M}Z and "
            f"{hi:%Y-%m-%d %H:%M}Z ({window.source})",
        )
    scored: list[_Candidate] = []
    split: list[OddsEvent] = []
    for event in near:
        candidate, both_ways = _pairing(teams, event, params)
        if both_ways:
            split.append(event)
        elif candidate is not None:
            scored.append(candidate)
    names = f"{teams[0][1]!r} and {teams[1][1]!r}"
    if split:
        return Unmatched(
            game,
            Reason.AMBIGUOUS,
            f"{names} read both ways round in {', '.join(map(_describe, split))}",
            tuple(e.id for e in split),
        )
    if not scored:
        seen = "; ".join(map(_describe, near[:5])) + ("; …" if len(near) > 5 else "")
        return Unmatched(
            game,
            Reason.NAMES_NOT_RECOGNISED,
            f"no event in the window is {names}; there: {seen}",
            tuple(e.id for e in near),
        )
    scored.sort(key=lambda c: -c.score)
    alike = [c for c in scored if scored[0].score - c.score < params.tie_margin]
    if len(alike) > 1 and window.start is not None:
        # Same teams twice in the window (a rematch, a doubleheader): a known start time
        # decides when exactly one of them is close to it, never the nearer of two.
        start = window.start
        close = [c for c in alike if abs(c.event.commence_time - start) <= params.close_time]
        alike = close if len(close) == 1 else alike
    if len(alike) > 1:
        return Unmatched(
            game,
            Reason.AMBIGUOUS,
            f"{len(alike)} events fit {names} alike: "
            + ", ".join(_describe(c.event) for c in alike),
            tuple(c.event.id for c in alike),
        )
    return dataclasses.replace(alike[0], source=window.source)


def match_games(
    games: Iterable[KalshiGame],
    events: Iterable[OddsEvent],
    sports: Mapping[str, SportProfile] = DEFAULT_SPORTS,
    params: MatchParams | None = None,
) -> MatchReport:
    """Match every game to at most one event of its sport (see the module doc)."""
    params = params or MatchParams()
    pool = list(events)
    series_sport = {s: p.odds_sport for p in sports.values() for s in p.series}
    found: list[tuple[KalshiGame, _Candidate]] = []
    unmatched: list[Unmatched] = []
    for game in games:
        odds_sport = series_sport.get(game.series_ticker)
        if odds_sport is None:
            why = (
                "the sport profile has no odds_sport (manual theo only)"
                if game.series_ticker in series_sport
                else "the series is in no sport profile"
            )
            why = f"{game.series_ticker}: {why}"
            unmatched.append(Unmatched(game, Reason.SPORT_NOT_MAPPED, why))
            continue
        outcome = _match_one(game, odds_sport, pool, params)
        if isinstance(outcome, Unmatched):
            unmatched.append(outcome)
        else:
            found.append((game, outcome))
    # One Odds event is one game: two Kalshi games claiming it (a doubleheader known only
    # by its date) cannot be told apart, so neither is taken.
    claims: dict[str, list[KalshiGame]] = defaultdict(list)
    for game, candidate in found:
        claims[candidate.event.id].append(game)
    matches: list[GameMatch] = []
    for game, candidate in found:
        rivals = [g.event_ticker for g in claims[candidate.event.id] if g is not game]
        if rivals:
            unmatched.append(
                Unmatched(
                    game,
                    Reason.AMBIGUOUS,
                    f"{_describe(candidate.event)} is also the best fit of {', '.join(rivals)}",
                    (candidate.event.id,),
                )
            )
            continue
        matches.append(
            GameMatch(
                game, candidate.event, candidate.away, candidate.home, game.tie_ticker,
                candidate.score, candidate.source,
            )
        )  # fmt: skip
    return MatchReport(tuple(matches), tuple(unmatched))
