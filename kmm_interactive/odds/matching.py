"""Match Kalshi games to The Odds API events, and each Kalshi market to an Odds outcome.

The job: for each :class:`KalshiGame` (an event with one market per team, plus ``-TIE`` for
soccer), find the one :class:`~kmm_interactive.odds.client.OddsEvent` of its sport that
starts at the same time between the same two teams, and say which market is which outcome.

How:

* **Sport.** The series ticker's sport profile (``config.sports``) gives the Odds sport
  key; a series in no profile, or a profile without ``odds_sport`` (esports), is reported
  as not mapped. A soccer game (the Odds h2h line is three-way) must have exactly one
  ``-TIE`` market, any other game none.
* **Time.** The event ticker's date code (``SERIES-YYMONDD[HHMM]TEAMS``) is Eastern time.
  The start compared is the ticker's HHMM when it has one, else the markets'
  ``occurrence_datetime``; either must lie within ``time_tolerance`` of the Odds
  ``commence_time``. ``occurrence_datetime`` is "when the event occurred, if available",
  so it is cross-checked: off the ticker's HHMM by more than ``time_tolerance``, or outside
  the ticker's day, the game is reported bad rather than matched on either. A bare date
  admits any start from the Eastern midnight opening that day to ``date_tolerance`` past
  its end (a late game out west starts on the next Eastern day).
* **Names.** Both sides are normalised (accents, case, punctuation, "&"/"and", leading
  "The", a leading "FC"/"AFC"/"CF", "Utd"; "St." is "Saint" as the first word or after
  "Mount"/"Fort" and "State" elsewhere — "Michigan St Spartans" is the Odds API's own
  spelling), then an alias table maps short forms ("LA", "NY", "Man City", "Wolves",
  "Spurs"…) onto the bookmakers'. A Kalshi name then matches an Odds name exactly (score 1),
  as its leading words ("Boston" in "Boston Celtics", 0.9), or as its leading words with a
  truncated last one ("Los Angeles L" for the Lakers, 0.8: Kalshi's form when two teams
  share a city). The words left over must follow the matched ones and be a nickname: not a
  word that names another school or club ("State", "Tech", "A&M", "City", "Valley"…, and in
  soccer "United", "Rovers"…), and not after a hyphen or parenthesis ("Arkansas-Pine
  Bluff", "Miami (OH)"). So "Kansas" never matches "Kansas State Wildcats" nor "Kansas City
  Roos", nor "Tennessee" "Middle Tennessee". A name that is not exact must moreover fit
  exactly one team of its sport on the board, or the game is ambiguous ("New York" when
  the Rangers and the Islanders are both listed).
* **Order.** Home and away are tried both ways round; the game's score is its weaker team's.

Outcome convention: **team A is the Odds event's away team** (Kalshi game tickers list the
away team first, ``KXNBAGAME-26MAR31NYKHOU`` is New York at Houston); the side is decided by
the names. The ticker's order of the codes only breaks a tie between events (a home-and-home
series), and a match whose names put the teams the other way round from the ticker is
flagged (:attr:`GameMatch.venue_swapped`) — or, with only the date known, not taken: it may
be the other game of the series. :attr:`GameMatch.outcome_names` is ``(away, home)`` or
``(away, home, "Draw")`` and :attr:`GameMatch.tickers` lists the markets in that order,
ready for :meth:`OddsEvent.book_odds`.

Failure semantics: nothing is guessed. Two candidate events (or both home/away readings)
scoring alike, or two Kalshi games claiming one Odds event, is reported as ambiguous — except
that a known start time settles a rematch or doubleheader when exactly one of the events
starts within ``close_time`` of it (never "the nearer of two"), and the ticker's order of
the teams settles it when exactly one event lists them that way; every game that is not
matched is in :attr:`MatchReport.unmatched` with the reason. One game passed twice is
matched once; two different games under one event ticker are both reported bad.
:meth:`KalshiGame.from_markets` raises :class:`ValueError`, naming the event, on market
objects it cannot read.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
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
# YYMONDD, then HHMM only if a team code (letters) follows: "26APR291840COLCIN".
_DATE_CODE = re.compile(r"^(\d{2})([A-Z]{3})(\d{2})(?:([01]\d|2[0-3])([0-5]\d)(?=[A-Z]))?(.*)$")
_MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                  "DEC")  # fmt: skip

# Scores of the ways a Kalshi name can match an Odds name (see the module doc).
EXACT: Final = 1.0
LEADING: Final = 0.9
TRUNCATED: Final = 0.8

#: Marks a word after which the name goes on ("Arkansas-Pine Bluff", "Miami (OH)"): a
#: partial name may not stop there.
_GOES_ON: Final = "-"
#: Noise words dropped from every name.
_DROPPED: Final = frozenset({"the", "and", "of"})
#: Dropped in front only: "FC Dallas" is Dallas, but "Los Angeles FC" is not LA Galaxy.
_CLUB_PREFIXES: Final = frozenset({"fc", "afc", "cf"})
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
#: After these "St." is Saint ("Mount St. Mary's"); elsewhere but first it is State.
_BEFORE_SAINT: Final = frozenset({"mount", "fort"})
#: Whole names (after the word spellings) that stand for another, applied to both sides.
#: Club nicknames are scoped to soccer, where "Spurs" is Tottenham, not San Antonio; so are
#: the towns of one league club, whose club word ("City", "United"…) is otherwise needed.
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
                "lafc": "los angeles fc",
                "newcastle": "newcastle united",
                "west ham": "west ham united",
                "leeds": "leeds united",
                "leicester": "leicester city",
                "ipswich": "ipswich town",
                "luton": "luton town",
                "norwich": "norwich city",
                "stoke": "stoke city",
                "coventry": "coventry city",
            }
        ),
    }
)
_SCHOOL_WORDS: Final = frozenset(
    {"state", "tech", "am", "at", "oh", "fl", "north", "south", "east", "west", "northern",
     "southern", "eastern", "western", "central", "middle", "northeastern", "northwestern",
     "southeastern", "southwestern", "international", "atlantic", "gulf", "coastal",
     "upstate", "valley", "commonwealth", "city", "college", "christian", "baptist",
     "wesleyan", "poly", "saint", "mount", "fort", "marymount", "wednesday"}
)  # fmt: skip
#: Words that make a different school or club when left over ("Kansas" ≠ "Kansas State",
#: "Utah" ≠ "Utah Valley"); in soccer also the club words of cities with two clubs.
_QUALIFIERS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {"": _SCHOOL_WORDS, "soccer": _SCHOOL_WORDS | {"united", "rovers", "county", "town"}}
)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class KalshiGame:
    """A Kalshi game as the matcher needs it (built from REST market objects).

    ``markets`` are ``(ticker, yes_sub_title)`` pairs: one per team, plus the ``-TIE``
    market of a soccer game. ``start_time`` is the markets' ``occurrence_datetime`` when
    Kalshi gives one.
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

        The series is the event ticker's first part; the start is the markets'
        ``occurrence_datetime`` (``expected_expiration_time`` is "a few hours after the
        start" and is no start time). Raises :class:`ValueError` naming the event when the
        markets are not JSON objects of one event, a market has no ticker or a
        ``yes_sub_title`` that is not a string, an ``occurrence_datetime`` is not an ISO
        time with a zone (within the years 1 to 9999 in UTC), or the markets give
        different ones.
        """
        if not markets:
            raise ValueError("a game needs its markets")
        if not all(isinstance(m, Mapping) for m in markets):
            kinds = sorted({type(m).__name__ for m in markets if not isinstance(m, Mapping)})
            raise ValueError(f"a market is not a JSON object but {', '.join(kinds)}")
        events = [m.get("event_ticker") for m in markets]  # maybe unhashable: a list
        event = events[0]
        if not isinstance(event, str) or not event or any(e != event for e in events):
            seen = sorted({str(e)[:60] for e in events})
            raise ValueError(f"the markets are not of one event: {seen}")
        pairs: list[tuple[str, str]] = []
        starts: set[datetime] = set()
        for m in markets:
            ticker = m.get("ticker")
            if not isinstance(ticker, str) or not ticker:
                raise ValueError(f"{event}: a market has no ticker ({ticker!r:.60})")
            title = m.get("yes_sub_title")
            if title is not None and not isinstance(title, str):
                raise ValueError(
                    f"{event}: {ticker} has yes_sub_title {str(title)[:60]!r}, not a string"
                )
            pairs.append((ticker, title or ""))
            stamp = m.get("occurrence_datetime")
            if stamp is None or stamp == "":
                continue
            start = _aware(stamp)
            if start is None:
                raise ValueError(
                    f"{event}: {ticker} has occurrence_datetime {str(stamp)[:60]!r}, not an "
                    "ISO 8601 time with a zone (within the years 1 to 9999 in UTC)"
                )
            starts.add(start)
        if len(starts) > 1:
            shown = ", ".join(f"{t:%Y-%m-%d %H:%M}Z" for t in sorted(starts))
            raise ValueError(f"{event}: the markets give different occurrence_datetime: {shown}")
        start = next(iter(starts)) if starts else None
        return cls(event, event.split("-", 1)[0], start, tuple(pairs))

    @property
    def tie_ticker(self) -> str | None:
        ties = [t for t, title in self.markets if _is_tie(t, title)]
        return ties[0] if len(ties) == 1 else None

    @property
    def team_markets(self) -> tuple[tuple[str, str], ...]:
        return tuple((t, title) for t, title in self.markets if not _is_tie(t, title))


def _aware(stamp: object) -> datetime | None:
    """An ISO 8601 time with a zone, in UTC; None if ``stamp`` is not one."""
    if not isinstance(stamp, str):
        return None
    try:
        parsed = datetime.fromisoformat(stamp)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: out of range once in UTC
        return None


def _is_tie(ticker: str, title: str) -> bool:
    return ticker.endswith(TIE_SUFFIX) or _fold(title) in _TIE_TITLES


@dataclass(frozen=True)
class MatchParams:
    """Time tolerances and score thresholds of :func:`match_games`."""

    #: How far a known start (the ticker's HHMM or occurrence_datetime) may be from the
    #: commence_time, and from each other: kick-offs are scheduled to the minute; books
    #: round or lag a little.
    time_tolerance: timedelta = timedelta(hours=1)
    #: How far past the end of the ticker's Eastern day a game may start (a late game out
    #: west starts on the next Eastern day).
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
    #: The names put the teams the other way round from the ticker's codes (a neutral
    #: site, or a listing error on one side): the names decided, worth a look.
    venue_swapped: bool = False

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
        lines += [
            f"  {m.game.event_ticker}: matched {_describe(m.event)}, the teams the other way "
            "round from the ticker"
            for m in self.matches
            if m.venue_swapped
        ]
        lines += [f"  {u}" for u in self.unmatched]
        return "\n".join(lines)


# --------------------------------------------------------------------------- names


def _fold(text: str) -> str:
    """Lower case without accents ("Montréal" → "montreal")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def _group(sport_key: str) -> str:
    return "soccer" if sport_key.startswith("soccer") else ""


def _bare(word: str) -> str:
    return word.rstrip(_GOES_ON)


@functools.lru_cache(maxsize=8192)  # every Kalshi name is scored against the whole board
def _marked_words(name: str, group: str) -> tuple[str, ...]:
    """The words a name is compared on (see the module doc); a word followed by a hyphen or
    an opening parenthesis carries a trailing :data:`_GOES_ON`."""
    text = _fold(name)
    text = re.sub(r"\s&\s", " and ", text)  # "Brighton & Hove" but "Texas A&M" → "am"
    text = re.sub(r"['’.&]", "", text.replace(".", ". "))  # "St. John's" → "st johns"
    text = re.sub(r"\s*[-‐–(]\s*", f"{_GOES_ON} ", text)
    words: list[str] = []
    for token in re.sub(r"[^a-z0-9-]+", " ", text).split():
        word, goes_on = token.strip(_GOES_ON), token.endswith(_GOES_ON)
        if not word:
            continue
        if word == "st":
            word = "saint" if not words or _bare(words[-1]) in _BEFORE_SAINT else "state"
        spelled = _WORDS.get(word, word).split()
        if goes_on:
            spelled[-1] += _GOES_ON
        words.extend(spelled)
    kept = [
        w
        for i, w in enumerate(words)
        if _bare(w) not in _DROPPED and not (i == 0 and _bare(w) in _CLUB_PREFIXES)
    ] or words
    joined = " ".join(map(_bare, kept))
    aliased = joined
    for scope in ("", group):
        aliased = _ALIASES.get(scope, {}).get(aliased, aliased)
    return tuple(aliased.split()) if aliased != joined else tuple(kept)


def normalise_name(name: str, sport_key: str = "") -> tuple[str, ...]:
    """The words a team name is compared on (see the module doc for the rules)."""
    return tuple(map(_bare, _marked_words(name, _group(sport_key))))


def _one_way(short: Sequence[str], long: Sequence[str], group: str) -> float:
    """How well ``short`` names the same team as the longer ``long`` (0 = not at all): as
    its leading words, the rest of ``long`` a nickname (see the module doc)."""
    n = len(short)
    if n < len(long) and long[n - 1].endswith(_GOES_ON):
        return 0.0  # "Arkansas" in "Arkansas-Pine Bluff"
    qualifiers = _QUALIFIERS.get(group, _SCHOOL_WORDS)
    if any(_bare(w) in qualifiers for w in long[n:]):
        return 0.0
    head, words = [_bare(w) for w in long[:n]], [_bare(w) for w in short]
    if head == words:
        return LEADING
    # Kalshi's "Los Angeles L": the place in full, the nickname cut to a letter or two.
    if n >= 2 and head[:-1] == words[:-1] and head[-1].startswith(words[-1]):
        return TRUNCATED
    return 0.0


def team_score(kalshi_name: str, odds_name: str, sport_key: str = "") -> float:
    """How surely two names are one team: 1 exact, 0.9 / 0.8 partial, 0 not."""
    group = _group(sport_key)
    a, b = _marked_words(kalshi_name, group), _marked_words(odds_name, group)
    if not a or not b:
        return 0.0
    if list(map(_bare, a)) == list(map(_bare, b)):
        return EXACT
    return _one_way(a, b, group) if len(a) <= len(b) else _one_way(b, a, group)


def _fitting_teams(name: str, board_teams: Iterable[str], sport_key: str, least: float) -> set[str]:
    """The distinct teams (by normalised name) of the board that ``name`` fits: those it
    names exactly if any, else those it names in part."""
    scores = [(team_score(name, team, sport_key), team) for team in board_teams]
    exact = [team for score, team in scores if score == EXACT]
    fits = exact or [team for score, team in scores if score >= least]
    return {" ".join(normalise_name(team, sport_key)) for team in fits}


# --------------------------------------------------------------------------- times


@dataclass(frozen=True)
class _Ticker:
    """An event ticker's ``YYMONDD[HHMM]TEAMS`` read (Eastern time, given in UTC)."""

    day: datetime  # the Eastern midnight opening the ticker's date
    time: datetime | None  # the HHMM, if given
    teams: str  # what follows: the team codes, away first

    @property
    def day_end(self) -> datetime:
        # Aware arithmetic is wall-clock: the next Eastern midnight, on DST days too.
        return (self.day.astimezone(EASTERN) + timedelta(days=1)).astimezone(UTC)


def _starts_with(teams: str, codes: Sequence[str]) -> bool:
    return len(codes) == 2 and (
        teams.startswith(codes[0] + codes[1]) or teams.startswith(codes[1] + codes[0])
    )


def _read_ticker(event_ticker: str, codes: Sequence[str] = ()) -> _Ticker | None:
    """The date code of ``event_ticker``; None if it has none. Four digits are a time only
    if a valid HHMM followed by a letter, and, when the two team ``codes`` are known, only
    if the codes follow them (in "1234ABC" with codes "12" and "34ABC" they are codes)."""
    _, _, rest = event_ticker.partition("-")
    found = _DATE_CODE.match(rest)
    if found is None or found[2] not in _MONTHS:
        return None
    year, month, day = 2000 + int(found[1]), _MONTHS.index(found[2]) + 1, int(found[3])
    try:
        midnight = datetime(year, month, day, tzinfo=EASTERN)
    except ValueError:
        return None
    teams, time = found[6], None
    if found[4] is not None:
        digits = found[4] + found[5]
        if codes and not _starts_with(teams, codes) and _starts_with(digits + teams, codes):
            teams = digits + teams
        else:
            time = midnight.replace(hour=int(found[4]), minute=int(found[5])).astimezone(UTC)
    return _Ticker(midnight.astimezone(UTC), time, teams)


def ticker_start(event_ticker: str) -> tuple[datetime, bool] | None:
    """The start coded in ``SERIES-YYMONDD[HHMM]…`` (Eastern time) as UTC, and whether a
    time of day was given (if not, the Eastern midnight opening the day); None if the
    ticker has no date code."""
    coded = _read_ticker(event_ticker)
    if coded is None:
        return None
    return (coded.time, True) if coded.time is not None else (coded.day, False)


def _code(game: KalshiGame, ticker: str) -> str:
    prefix = game.event_ticker + "-"
    return ticker[len(prefix) :] if ticker.startswith(prefix) else ""


def _ticker_order(game: KalshiGame, coded: _Ticker | None) -> tuple[str, str] | None:
    """The team market tickers as (away, home) by the ticker's codes, None if unreadable."""
    (t1, _), (t2, _) = game.team_markets
    c1, c2 = _code(game, t1), _code(game, t2)
    if coded is None or not c1 or not c2:
        return None
    forward, backward = coded.teams.startswith(c1 + c2), coded.teams.startswith(c2 + c1)
    if forward == backward:
        return None
    return (t1, t2) if forward else (t2, t1)


@dataclass(frozen=True)
class _Window:
    lo: datetime
    hi: datetime
    source: str  # "occurrence", "ticker time" or "ticker date"
    start: datetime | None  # the known start time (None for a bare date)


def _window(game: KalshiGame, coded: _Ticker | None, params: MatchParams) -> _Window | str:
    """Where the game's start may be, or why its times cannot be trusted."""
    known = game.start_time
    if known is not None and coded is not None:
        if coded.time is not None and abs(known - coded.time) > params.time_tolerance:
            return (
                f"occurrence_datetime {known:%Y-%m-%d %H:%M}Z is not the ticker's time "
                f"({coded.time:%Y-%m-%d %H:%M}Z)"
            )
        if not coded.day <= known <= coded.day_end + params.date_tolerance:
            return (
                f"occurrence_datetime {known:%Y-%m-%d %H:%M}Z is not on the ticker's date "
                f"({coded.day.astimezone(EASTERN):%Y-%m-%d} Eastern)"
            )
    if coded is not None and coded.time is not None:
        start, source = coded.time, "ticker time"
    elif known is not None:
        start, source = known, "occurrence"
    elif coded is not None:
        return _Window(coded.day, coded.day_end + params.date_tolerance, "ticker date", None)
    else:
        return "no start time and no date code in the event ticker"
    return _Window(start - params.time_tolerance, start + params.time_tolerance, source, start)


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Candidate:
    event: OddsEvent
    score: float
    away: str  # Kalshi ticker of the away team
    home: str
    source: str = ""  # what the start was compared on
    venue_swapped: bool = False


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
    board_teams: Sequence[str],
    params: MatchParams,
) -> _Candidate | Unmatched:
    teams = game.team_markets
    ties = len(game.markets) - len(teams)
    # The Odds h2h line is three-way in soccer only: a draw priced for another sport, or a
    # soccer game priced two-way, would be a wrong theo.
    three_way = _group(odds_sport) == "soccer"
    if len(teams) != 2 or ties != int(three_way):
        wanted = "one tie market" if three_way else "no tie market"
        return Unmatched(
            game,
            Reason.BAD_GAME,
            f"{len(teams)} team market(s) and {ties} tie market(s); a {odds_sport} game has "
            f"two teams and {wanted}",
        )
    coded = _read_ticker(game.event_ticker, [_code(game, t) for t, _ in teams])
    window = _window(game, coded, params)
    if isinstance(window, str):
        return Unmatched(game, Reason.BAD_GAME, window)
    for _, name in teams:
        fits = _fitting_teams(name, board_teams, odds_sport, params.min_score)
        if len(fits) > 1:
            return Unmatched(
                game,
                Reason.AMBIGUOUS,
                f"{name!r} fits {len(fits)} {odds_sport} teams on the board: "
                + ", ".join(sorted(fits)),
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
    order = _ticker_order(game, coded)
    if len(alike) > 1 and order is not None:
        # A home-and-home series: the ticker lists the away team first.
        same = [c for c in alike if (c.away, c.home) == order]
        alike = same if len(same) == 1 else alike
    if len(alike) > 1:
        return Unmatched(
            game,
            Reason.AMBIGUOUS,
            f"{len(alike)} events fit {names} alike: "
            + ", ".join(_describe(c.event) for c in alike),
            tuple(c.event.id for c in alike),
        )
    best = alike[0]
    swapped = order is not None and (best.away, best.home) != order
    if swapped and window.start is None:
        home = dict(teams)[best.home]
        return Unmatched(
            game,
            Reason.AMBIGUOUS,
            f"{_describe(best.event)} has {home!r} at home, the ticker has it away; with "
            "only the date known this may be the other game of a home-and-home",
            (best.event.id,),
        )
    return dataclasses.replace(best, source=window.source, venue_swapped=swapped)


def match_games(
    games: Iterable[KalshiGame],
    events: Iterable[OddsEvent],
    sports: Mapping[str, SportProfile] = DEFAULT_SPORTS,
    params: MatchParams | None = None,
) -> MatchReport:
    """Match every game to at most one event of its sport (see the module doc)."""
    params = params or MatchParams()
    pool = list(events)
    board_teams: dict[str, list[str]] = defaultdict(list)
    for event in pool:
        board_teams[event.sport_key] += [event.away_team, event.home_team]
    series_sport = {s: p.odds_sport for p in sports.values() for s in p.series}
    copies: dict[str, list[KalshiGame]] = defaultdict(list)
    for game in games:
        copies[game.event_ticker].append(game)
    found: list[tuple[KalshiGame, _Candidate]] = []
    unmatched: list[Unmatched] = []
    for listed in copies.values():
        game = listed[0]
        if any(other != game for other in listed):
            why = f"listed {len(listed)} times with different markets or start times"
            unmatched += [Unmatched(g, Reason.BAD_GAME, why) for g in listed]
            continue
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
        teams = sorted(set(board_teams[odds_sport]))
        outcome = _match_one(game, odds_sport, pool, teams, params)
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
                candidate.score, candidate.source, candidate.venue_swapped,
            )
        )  # fmt: skip
    return MatchReport(tuple(matches), tuple(unmatched))
