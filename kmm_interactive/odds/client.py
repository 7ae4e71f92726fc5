"""The Odds API v4 client: h2h boards pulled over HTTP and parsed into bookmaker odds.

The job: pull ``/v4/sports/{sport}/odds`` (``markets=h2h``, decimal odds, ISO dates) for a
list of at most ten bookmakers (ten keys cost one region per market; more is refused unless
the caller accepts the cost), parse it into frozen :class:`OddsEvent` /
:class:`BookmakerOdds` values, and keep, per sport and request (bookmakers or regions, time
filters), the last good board so that the theo service can keep pricing on it (and show its
age) while the feed is down. A board pulled for other books or another time window is never
served in its place; a time filter that moves with every pull therefore gets no fallback.

Failure semantics:

* A board that is not a JSON array, or a non-empty one of which no event can be read, fails
  the pull (:class:`OddsPayloadError`). Inside a board, a malformed event (or one of another
  sport, or with one team on both sides) or bookmaker is skipped and recorded on the board
  (:attr:`OddsBoard.problems`), never the whole board lost for one bad row.
* Bad arguments (a bookmaker, region or event id that is not a key, a string where a list
  of keys is due, options out of range) raise :class:`ValueError` before anything is sent.
* An error body ``{"message", "error_code", "details_url"}`` becomes :class:`OddsApiError`
  with advice on what to do. 429 ``EXCEEDED_FREQ_LIMIT`` is retried after a couple of
  seconds with jitter, 5xx and network failures with exponential backoff, both a bounded
  number of times, no wait longer than ``retry_cap``. A 401 for the key (``MISSING_KEY``,
  ``INVALID_KEY``, ``DEACTIVATED_KEY``, or a 401 without a documented code, e.g. from a
  proxy) refuses every further call locally for ``auth_backoff``; a 401
  ``OUT_OF_USAGE_CREDITS`` refuses the paid calls only (``/sports`` and ``/events`` are
  free) — :class:`OddsRefusedError` — rather than hammering the API.
* :meth:`OddsClient.pull` never raises an API, network or payload failure: it returns a
  :class:`PullResult` with the last good board, its age and the error.

The API key travels as the ``apiKey`` query parameter, so every URL carries it. It never
appears in a log record (a filter on the httpx/httpcore loggers redacts it, see
:func:`install_log_redaction`), a repr or an exception message, nor in an exception's
``__cause__`` / ``__context__`` chain: httpx exceptions, whose messages and requests hold the
URL, are replaced by redacted :class:`OddsTransportError` raised outside the handler, and
whatever an error body or status line says (message, code, details URL, reason phrase) is
redacted before it is cut short.
Quota headers (``x-requests-remaining``, ``-used``, ``-last``) are read from every response,
errors included, into :attr:`OddsClient.quota`; a value that is not a count (negative,
fractional, absurdly large) is ignored, with a warning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
import reprlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import quote

import httpx

from kmm_interactive.config import OddsConfig
from kmm_interactive.pricing.consensus import BookOdds

log = logging.getLogger(__name__)

#: With ``bookmakers=``, every group of ten keys costs as one region (apis.md §2.6).
BOOKS_PER_REGION: Final = 10
H2H: Final = "h2h"
DRAW: Final = "Draw"

_KEY_CODES: Final = frozenset({"MISSING_KEY", "INVALID_KEY", "DEACTIVATED_KEY"})
_CREDIT_CODES: Final = frozenset({"OUT_OF_USAGE_CREDITS"})
#: Sport, bookmaker and region keys are all of this form ("basketball_nba", "williamhill_us").
_KEY = re.compile(r"^[a-z0-9_]+$")
_EVENT_ID = re.compile(r"^[A-Za-z0-9_-]+$")
#: More than any plan's monthly credits: a quota header above it is not a count.
_MAX_QUOTA: Final = 10**9
#: How much of a non-JSON error body is quoted in the error.
_BODY_QUOTE: Final = 200
# The key in a URL's query, whatever the case of the name, up to the next parameter.
_API_KEY_PARAM = re.compile(r"(?i)(apikey=)[^&#\s\"'>]*")

#: What to do about each documented error code (apis.md §2.6).
ADVICE: Final = MappingProxyType(
    {
        "MISSING_KEY": "no API key was sent: set the environment variable named by "
        "odds.api_key_env",
        "INVALID_KEY": "the API key is not valid: check the value of the variable named by "
        "odds.api_key_env against the-odds-api.com account page",
        "DEACTIVATED_KEY": "the API key is deactivated: renew the subscription or get a new key",
        "OUT_OF_USAGE_CREDITS": "the usage credits are spent: wait for the monthly reset or "
        "upgrade the plan; fewer pulls or fewer bookmakers use fewer credits",
        "HISTORICAL_UNAVAILABLE_ON_FREE_USAGE_PLAN": "historical odds need a paid plan",
        "EXCEEDED_FREQ_LIMIT": "requests were sent too often (30 per second on paid plans): "
        "spread pulls out",
        "MISSING_REGION": "pass bookmakers= (at most 10) or regions=",
        "INVALID_MARKET": "/odds takes the featured markets only (h2h, spreads, totals, "
        "outrights); ask for others per event",
        "UNKNOWN_SPORT": "the sport key is not known: list keys with OddsClient.sports() "
        "(GET /v4/sports, free) and fix odds_sport in the sport profile",
        "EVENT_NOT_FOUND": "the event has finished or the id is wrong: list the sport's events "
        "again",
    }
)


# --------------------------------------------------------------------------- redaction


def redact(text: str, secret: str | None = None) -> str:
    """``text`` with any ``apiKey=…`` value, and ``secret`` itself, replaced by ``***``."""
    text = _API_KEY_PARAM.sub(r"\1***", text)
    if secret:
        for form in {secret, quote(secret, safe="")}:
            text = text.replace(form, "***")
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with the ``apiKey`` query value blanked out.

    httpx logs every request URL at INFO, query included; the message is rendered here
    (with its arguments) so that the key cannot come back when a handler formats it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


#: Filters on a logger do not see records of its children, so each logger that may print
#: a URL gets one: httpx's request log and httpcore's (proxy) traces.
_URL_LOGGERS: Final = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


def install_log_redaction() -> None:
    """Put a :class:`RedactingFilter` on the loggers that print URLs (idempotent)."""
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


# --------------------------------------------------------------------------- errors


class OddsError(Exception):
    """Anything that made an Odds API call fail (the base of the errors below)."""


def _is_key_problem(status: int, error_code: str) -> bool:
    # A 401 with no documented code (a proxy's, or a new code) is treated as one about the
    # key: sending every pull again would only hammer the API.
    return error_code in _KEY_CODES or (status == 401 and error_code not in ADVICE)


class OddsApiError(OddsError):
    """The API refused a request: HTTP status, its ``error_code`` and ``message``.

    The fields are shown as given: :class:`OddsClient` redacts them before building this.
    """

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        details_url: str | None = None,
        *,
        note: str = "",
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.message = message
        self.details_url = details_url
        advice = ADVICE.get(error_code)
        if advice is None:
            advice = (
                "the Odds API is failing: the last good board is kept; retry later"
                if status >= 500
                else "the API (or a proxy before it) refused the key: check the key and the "
                "network path"
                if _is_key_problem(status, error_code)
                else f"see {details_url}"
                if details_url
                else "check the request"
            )
        self.advice = advice + note
        super().__init__(f"The Odds API answered {status} {error_code}: {message} — {self.advice}")

    @property
    def is_key_problem(self) -> bool:
        return _is_key_problem(self.status, self.error_code)

    @property
    def is_out_of_credits(self) -> bool:
        return self.error_code in _CREDIT_CODES


class OddsTransportError(OddsError):
    """No HTTP answer (timeout, refused connection…); the message is redacted."""


class OddsRefusedError(OddsError):
    """Refused locally: an earlier key or credit error is still within its backoff."""

    def __init__(self, until: datetime, cause: OddsApiError) -> None:
        self.until = until
        self.cause = cause
        super().__init__(
            f"Odds API calls are paused until {until:%Y-%m-%d %H:%M:%S} UTC after "
            f"{cause.status} {cause.error_code}: {cause.advice}"
        )


class OddsPayloadError(OddsError):
    """A response that does not have the documented shape, naming where it went wrong."""

    def __init__(
        self,
        problem: str,
        *,
        event_id: str | None = None,
        bookmaker: str | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.event_id = event_id
        self.bookmaker = bookmaker
        self.field = field
        where = [
            f"{label} {value}"
            for label, value in (("event", event_id), ("bookmaker", bookmaker), ("field", field))
            if value
        ]
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


class TooManyBookmakersError(ValueError):
    """More than ten bookmakers asked for without accepting the extra cost."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class OddsQuota:
    """The ``x-requests-*`` headers of the latest response (None where a header was absent)."""

    remaining: int | None
    used: int | None
    last: int | None
    seen_at: datetime


@dataclass(frozen=True)
class Sport:
    """One row of ``GET /v4/sports``."""

    key: str
    group: str
    title: str
    description: str
    active: bool
    has_outrights: bool


@dataclass(frozen=True)
class BookmakerOdds:
    """One book's h2h line: decimal price per outcome name, and when the line last moved."""

    key: str
    last_update: datetime
    outcomes: Mapping[str, float]

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("a bookmaker needs a key")
        if self.last_update.tzinfo is None:
            raise ValueError(f"{self.key}: last_update must be timezone-aware")
        # The one place where a line's shape and prices are checked (the parser reports
        # what is raised here).
        if len(self.outcomes) < 2:
            raise ValueError(
                f"{self.key}: {len(self.outcomes)} outcome(s), an h2h line needs two or more"
            )
        prices = {n: _check_price(p, n, f"{self.key}: {n!r}") for n, p in self.outcomes.items()}
        object.__setattr__(self, "outcomes", MappingProxyType(prices))


@dataclass(frozen=True)
class OddsEvent:
    """One game as the API lists it, with the books' h2h lines (none from ``/events``).

    ``skipped`` holds the bookmakers dropped while parsing, with why.
    """

    id: str
    sport_key: str
    commence_time: datetime
    home_team: str
    away_team: str
    bookmakers: tuple[BookmakerOdds, ...] = ()
    skipped: tuple[OddsPayloadError, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.commence_time.tzinfo is None:
            raise ValueError(f"{self.id}: commence_time must be timezone-aware")

    def book_odds(self, outcome_names: Sequence[str]) -> list[BookOdds]:
        """Each book's decimal odds in the caller's outcome order, e.g. ``(away, home)`` or
        ``(away, home, "Draw")``.

        A book whose outcomes are not exactly these names (one missing, or a draw the caller
        did not ask for) is left out: devigging a partial or a different line would give a
        wrong theo.
        """
        names = tuple(outcome_names)
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError(f"outcome names must be two or more distinct names, got {names}")
        wanted = set(names)
        return [
            BookOdds(b.key, tuple(b.outcomes[n] for n in names), b.last_update)
            for b in self.bookmakers
            if set(b.outcomes) == wanted
        ]

    def bookmaker(self, key: str) -> BookmakerOdds | None:
        return next((b for b in self.bookmakers if b.key == key), None)


@dataclass(frozen=True)
class OddsBoard:
    """One sport's events from one pull, and the rows skipped as malformed."""

    sport: str
    events: tuple[OddsEvent, ...]
    fetched_at: datetime
    problems: tuple[OddsPayloadError, ...] = ()

    @property
    def skipped_events(self) -> int:
        return sum(1 for p in self.problems if p.bookmaker is None)

    @property
    def skipped_bookmakers(self) -> int:
        return sum(1 for p in self.problems if p.bookmaker is not None)

    def event(self, event_id: str) -> OddsEvent | None:
        return next((e for e in self.events if e.id == event_id), None)

    def age(self, now: datetime) -> timedelta:
        return now - self.fetched_at


@dataclass(frozen=True)
class PullResult:
    """The outcome of :meth:`OddsClient.pull`: the board to price on and how fresh it is.

    ``board`` is the board just pulled, or after a failure the last good one (None if there
    never was one); ``error`` is why this pull failed (None when it succeeded); ``age`` is
    the board's age at ``attempted_at``.
    """

    sport: str
    board: OddsBoard | None
    error: OddsError | None
    attempted_at: datetime

    @property
    def fresh(self) -> bool:
        return self.error is None

    @property
    def age(self) -> timedelta | None:
        return None if self.board is None else self.board.age(self.attempted_at)


# --------------------------------------------------------------------------- parsing


class _BadPrice(ValueError):
    """A price that is not decimal odds, naming its outcome (for the payload error's field)."""

    def __init__(self, outcome: str, message: str) -> None:
        self.outcome = outcome
        super().__init__(message)


def _check_price(price: object, outcome: str, what: str) -> float:
    # JSON numbers arrive as int or float; a bool is an int in Python and is not a price.
    if isinstance(price, bool) or not isinstance(price, int | float):
        raise _BadPrice(outcome, f"{what}: price {_show(price)} is not a number")
    try:
        value = float(price)
    except OverflowError:  # an integer beyond any float
        value = math.inf
    if not math.isfinite(value) or value <= 1.0:
        raise _BadPrice(outcome, f"{what}: price {_show(price)} is not decimal odds above 1.0")
    return value


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60


def _show(value: object) -> str:
    """A short repr of a value off the wire, bounded in length and depth: a deeply nested
    value must not exhaust the stack while an error about it is being worded."""
    return _SHOWN.repr(value)


_NOT_JSON: Final = object()


def _loads(content: bytes) -> Any:
    """The decoded body, or :data:`_NOT_JSON`. Never raises, so that no error of ours is
    raised inside a handler and carries the decoder's (whose ``doc`` is the whole body) as
    its ``__context__``; nesting deeper than the stack is a RecursionError, not a crash."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _text(
    data: Mapping[str, Any],
    name: str,
    *,
    event_id: str | None = None,
    bookmaker: str | None = None,
    path: str | None = None,
) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise OddsPayloadError(
            f"{_show(value)} is not a non-empty string",
            event_id=event_id,
            bookmaker=bookmaker,
            field=path or name,
        )
    return value.strip()


def _time(data: Mapping[str, Any], name: str, **where: str | None) -> datetime:
    value = data.get(name)
    stamp = None
    if isinstance(value, str):  # fromisoformat raises TypeError, not ValueError, on others
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            stamp = None
    if stamp is None:
        raise OddsPayloadError(f"{_show(value)} is not an ISO 8601 time", field=name, **where)
    if stamp.tzinfo is None:
        raise OddsPayloadError(f"{_show(value)} has no time zone", field=name, **where)
    try:
        return stamp.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is in year 0 in UTC
        problem = f"{_show(value)} is outside the years 1 to 9999 in UTC"
    raise OddsPayloadError(problem, field=name, **where)


def parse_bookmaker(data: object, event_id: str | None = None) -> BookmakerOdds:
    """One ``bookmakers[]`` entry's h2h market (other markets, e.g. ``h2h_lay``, ignored).

    ``last_update`` is the h2h market's, else the bookmaker's: the per-event endpoint gives
    it per market only, /odds gives both. The line itself is checked by
    :class:`BookmakerOdds`; its complaint is raised as :class:`OddsPayloadError` naming the
    outcome.
    """
    if not isinstance(data, Mapping):
        raise OddsPayloadError("a bookmaker is not an object", event_id=event_id)
    key = _text(data, "key", event_id=event_id)
    where: dict[str, str | None] = {"event_id": event_id, "bookmaker": key}
    markets = data.get("markets")
    if not isinstance(markets, list):
        raise OddsPayloadError(f"{_show(markets)} is not a list", field="markets", **where)
    h2h = [m for m in markets if isinstance(m, Mapping) and m.get("key") == H2H]
    if len(h2h) != 1:
        raise OddsPayloadError(f"{len(h2h)} h2h markets, expected one", field="markets", **where)
    market = h2h[0]
    stamp_of = market if "last_update" in market else data
    last_update = _time(stamp_of, "last_update", **where)
    outcomes = market.get("outcomes")
    if not isinstance(outcomes, list):
        raise OddsPayloadError(f"{_show(outcomes)} is not a list", field="h2h.outcomes", **where)
    prices: dict[str, Any] = {}
    paths: dict[str, str] = {}
    for i, outcome in enumerate(outcomes):
        path = f"h2h.outcomes[{i}]"
        if not isinstance(outcome, Mapping):
            raise OddsPayloadError("not an object", field=path, **where)
        name = _text(outcome, "name", **where, path=f"{path}.name")
        if name in prices:
            raise OddsPayloadError(f"{name!r} is listed twice", field=f"{path}.name", **where)
        prices[name], paths[name] = outcome.get("price"), path
    try:
        return BookmakerOdds(key, last_update, prices)
    except _BadPrice as exc:
        raise OddsPayloadError(str(exc), field=f"{paths[exc.outcome]}.price", **where) from None
    except ValueError as exc:
        raise OddsPayloadError(str(exc), field="h2h.outcomes", **where) from None


def parse_event(data: object, *, with_odds: bool = True) -> OddsEvent:
    """One event object (from /odds, the per-event odds endpoint, or /events with
    ``with_odds=False``). A malformed bookmaker is skipped and kept in ``skipped``; a
    malformed event, or one whose home and away teams are the same, raises
    :class:`OddsPayloadError`."""
    if not isinstance(data, Mapping):
        raise OddsPayloadError("an event is not an object")
    event_id = _text(data, "id")
    where = {"event_id": event_id}
    event = OddsEvent(
        id=event_id,
        sport_key=_text(data, "sport_key", **where),
        commence_time=_time(data, "commence_time", **where),
        home_team=_text(data, "home_team", **where),
        away_team=_text(data, "away_team", **where),
    )
    if event.home_team == event.away_team:
        # Which side a price is for could not be told, nor which Kalshi market it prices.
        raise OddsPayloadError(
            f"{event.home_team!r} is both the home and the away team", field="away_team", **where
        )
    if not with_odds:
        return event
    books = data.get("bookmakers")
    if not isinstance(books, list):
        raise OddsPayloadError(f"{_show(books)} is not a list", field="bookmakers", **where)
    parsed: list[BookmakerOdds] = []
    skipped: list[OddsPayloadError] = []
    teams = {event.home_team, event.away_team}
    for i, book in enumerate(books):
        try:
            line = parse_bookmaker(book, event_id)
            # An h2h line must name both teams; a third outcome can only be the draw.
            if not teams <= set(line.outcomes) or not set(line.outcomes) <= teams | {DRAW}:
                raise OddsPayloadError(
                    f"outcomes {sorted(line.outcomes)} are not the two teams (and Draw)",
                    event_id=event_id,
                    bookmaker=line.key,
                    field="h2h.outcomes",
                )
            if any(b.key == line.key for b in parsed):
                raise OddsPayloadError(
                    "listed twice", event_id=event_id, bookmaker=line.key, field="key"
                )
            parsed.append(line)
        except OddsPayloadError as exc:
            if exc.bookmaker is None:  # no key to name it by (so not counted as an event)
                exc = OddsPayloadError(
                    exc.problem, event_id=event_id, bookmaker=f"bookmakers[{i}]", field=exc.field
                )
            skipped.append(exc)
    return OddsEvent(
        event.id,
        event.sport_key,
        event.commence_time,
        event.home_team,
        event.away_team,
        tuple(parsed),
        tuple(skipped),
    )


def parse_board(
    data: object, sport: str, fetched_at: datetime, *, with_odds: bool = True
) -> OddsBoard:
    """A JSON array of ``sport``'s events (any sport's for ``upcoming``).

    Not an array, or a non-empty array of which no event can be read: :class:`OddsPayloadError`
    (an empty board is a sport with nothing listed; a board of junk is a failure, and must
    not replace a good one). A bad event, an event of another sport, or a bad bookmaker:
    skipped, and listed in :attr:`OddsBoard.problems`.
    """
    if not isinstance(data, list):
        raise OddsPayloadError(f"the {sport} board is not a JSON array but {type(data).__name__}")
    events: list[OddsEvent] = []
    problems: list[OddsPayloadError] = []
    seen: set[str] = set()
    for item in data:
        try:
            event = parse_event(item, with_odds=with_odds)
        except OddsPayloadError as exc:
            problems.append(exc)
            continue
        if sport != "upcoming" and event.sport_key != sport:
            problems.append(
                OddsPayloadError(
                    f"{event.sport_key!r} is not the sport asked for ({sport})",
                    event_id=event.id,
                    field="sport_key",
                )
            )
            continue
        if event.id in seen:
            problems.append(OddsPayloadError("listed twice", event_id=event.id, field="id"))
            continue
        seen.add(event.id)
        events.append(event)
        problems.extend(event.skipped)
    for problem in problems:
        log.warning("Odds API %s board: skipped %s", sport, problem)
    if data and not events:
        raise OddsPayloadError(
            f"none of the {len(data)} events of the {sport} board could be read; the first "
            f"problem: {problems[0]}"
        )
    return OddsBoard(sport, tuple(events), fetched_at, tuple(problems))


def parse_sports(data: object) -> list[Sport]:
    """The ``/v4/sports`` list. Not an array, or no row readable out of a non-empty one:
    :class:`OddsPayloadError`; a bad row is skipped, and the skipped rows are counted in a
    warning."""
    if not isinstance(data, list):
        raise OddsPayloadError("the sports list is not a JSON array")
    out: list[Sport] = []
    problems: list[OddsPayloadError] = []
    for i, row in enumerate(data):
        try:
            if not isinstance(row, Mapping):
                raise OddsPayloadError("not an object", field=f"[{i}]")
            key = _text(row, "key", path=f"[{i}].key")
        except OddsPayloadError as exc:
            problems.append(exc)
            continue
        out.append(
            Sport(
                key=key,
                group=str(row.get("group", "")),
                title=str(row.get("title", "")),
                description=str(row.get("description", "")),
                active=row.get("active") is True,
                has_outrights=row.get("has_outrights") is True,
            )
        )
    if problems:
        log.warning(
            "Odds API sports list: skipped %d of %d rows, the first: %s",
            len(problems),
            len(data),
            problems[0],
        )
        if not out:
            raise OddsPayloadError(f"no row of the sports list could be read: {problems[0]}")
    return out


# --------------------------------------------------------------------------- the client


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError(f"{t!r}: commence times must be timezone-aware")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    """The header's count of credits, None if absent or not a count (with a warning: a
    quota read as -3 or 1e30 would mislead whoever budgets the pulls)."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)  # the API has sent "495.0" as well as "495"
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number.is_integer() and 0 <= number <= _MAX_QUOTA):
        log.warning("Odds API header %s = %r is not a count of credits: ignored", name, value)
        return None
    return int(number)


def _keys(values: Iterable[str], what: str, pattern: re.Pattern[str] = _KEY) -> tuple[str, ...]:
    """``values`` checked one by one against ``pattern``, duplicates dropped. A string is
    refused: iterated, "pinnacle" would be sent as p,i,n,n,a,c,l,e."""
    if isinstance(values, str):
        raise ValueError(f"{what} = {values!r}: give a list of keys, not a string")
    keys = tuple(dict.fromkeys(values))
    for key in keys:
        if not isinstance(key, str) or not pattern.match(key):
            raise ValueError(f"{what}: {key!r} is not an Odds API key ({pattern.pattern})")
    return keys


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} = {value!r}: must be a number")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} = {value!r}: must be finite and above zero")


class OddsClient:
    """An async client of The Odds API v4 over one ``httpx.AsyncClient``.

    ``base_url`` is ``https://api.the-odds-api.com`` in production or the embedded feed's
    ``http://127.0.0.1:PORT``; ``api_key`` is passed in (the caller reads it from the
    variable named by ``odds.api_key_env``). ``bookmakers`` (or else ``regions``) is the
    default selection of every odds call. ``clock``, ``sleep`` and ``rng`` are injectable
    so tests run without waiting; ``transport`` lets them use ``httpx.MockTransport``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        bookmakers: Sequence[str] = (),
        regions: Sequence[str] = (),
        timeout: float = 10.0,
        max_retries: int = 3,
        rate_limit_delay: float = 2.0,
        retry_base: float = 1.0,
        retry_cap: float = 30.0,
        auth_backoff: timedelta = timedelta(minutes=15),
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key must be a non-empty string")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries = {max_retries!r}: must be a whole number, 0 or more")
        for name, value in (
            ("timeout", timeout),
            ("rate_limit_delay", rate_limit_delay),
            ("retry_base", retry_base),
            ("retry_cap", retry_cap),
        ):
            _positive(name, value)
        if auth_backoff <= timedelta(0):
            raise ValueError(f"auth_backoff = {auth_backoff}: must be above zero")
        install_log_redaction()
        self.base_url = base_url.rstrip("/")
        self.bookmakers = _keys(bookmakers, "bookmakers")
        self.regions = _keys(regions, "regions")
        self.max_retries = max_retries
        self.rate_limit_delay = rate_limit_delay
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.auth_backoff = auth_backoff
        self._key = api_key
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._quota: OddsQuota | None = None
        self._refusal: tuple[datetime, OddsApiError] | None = None
        # Keyed by sport and the request's parameters (see _board_key).
        self._last_good: dict[tuple[str, tuple[tuple[str, str], ...]], OddsBoard] = {}

    @classmethod
    def from_config(
        cls, config: OddsConfig, api_key: str, *, base_url: str | None = None, **options: Any
    ) -> OddsClient:
        """A client for ``config``'s host and bookmakers (``base_url`` overrides the host,
        e.g. for the embedded feed)."""
        return cls(base_url or config.base_url, api_key, bookmakers=config.bookmakers, **options)

    def __repr__(self) -> str:
        selection = (
            f"bookmakers={list(self.bookmakers)}"
            if self.bookmakers
            else f"regions={list(self.regions)}"
        )
        return f"OddsClient({self.base_url!r}, api_key='***', {selection})"

    async def __aenter__(self) -> OddsClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ state

    @property
    def quota(self) -> OddsQuota | None:
        """The quota headers of the latest response (None before the first)."""
        return self._quota

    @property
    def refused_until(self) -> datetime | None:
        """While set and in the future, calls are refused locally (see the module doc)."""
        if self._refusal is None or self._refusal[0] <= self._clock():
            return None
        return self._refusal[0]

    def last_good(
        self,
        sport: str,
        *,
        bookmakers: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        commence_from: datetime | None = None,
        commence_to: datetime | None = None,
    ) -> OddsBoard | None:
        """The last good board :meth:`pull` got for ``sport`` with this selection and these
        filters (the defaults: the client's own selection, no time filter)."""
        key = self._board_key(sport, bookmakers, regions, commence_from, commence_to, True)
        return self._last_good.get(key)

    # ------------------------------------------------------------------ endpoints

    async def sports(self, *, all_sports: bool = False) -> list[Sport]:
        """``GET /v4/sports`` (free): in-season sports, or all with ``all_sports``."""
        params = {"all": "true"} if all_sports else {}
        return parse_sports(await self._get("/v4/sports", params, paid=False))

    async def events(
        self,
        sport: str,
        *,
        event_ids: Iterable[str] = (),
        commence_from: datetime | None = None,
        commence_to: datetime | None = None,
    ) -> OddsBoard:
        """``GET /v4/sports/{sport}/events`` (free): the games, without odds."""
        params = {"dateFormat": "iso"} | _filters(event_ids, commence_from, commence_to)
        data = await self._get(f"/v4/sports/{_sport(sport)}/events", params, paid=False)
        return parse_board(data, sport, self._clock(), with_odds=False)

    async def odds(
        self,
        sport: str,
        *,
        bookmakers: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        event_ids: Iterable[str] = (),
        commence_from: datetime | None = None,
        commence_to: datetime | None = None,
        accept_cost: bool = False,
    ) -> OddsBoard:
        """``GET /v4/sports/{sport}/odds`` for h2h: one board, raising on failure.

        Costs one credit per region: ≤ 10 bookmakers count as one region, more are refused
        (:class:`TooManyBookmakersError`) unless ``accept_cost``.
        """
        params = self._odds_params(
            bookmakers, regions, event_ids, commence_from, commence_to, accept_cost
        )
        return await self._odds(sport, params)

    async def _odds(self, sport: str, params: Mapping[str, str]) -> OddsBoard:
        data = await self._get(f"/v4/sports/{_sport(sport)}/odds", params, paid=True)
        return parse_board(data, sport, self._clock())

    async def event_odds(
        self,
        sport: str,
        event_id: str,
        *,
        bookmakers: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        accept_cost: bool = False,
    ) -> OddsEvent:
        """``GET /v4/sports/{sport}/events/{id}/odds`` for h2h: one game at once (the
        adverse-selection check). Malformed bookmakers are in the event's ``skipped``."""
        _keys((event_id,), "event_id", _EVENT_ID)
        params = self._selection(bookmakers, regions, accept_cost) | {
            "markets": H2H,
            "oddsFormat": "decimal",
            "dateFormat": "iso",
        }
        path = f"/v4/sports/{_sport(sport)}/events/{event_id}/odds"
        return parse_event(await self._get(path, params, paid=True))

    async def pull(
        self,
        sport: str,
        *,
        bookmakers: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        commence_from: datetime | None = None,
        commence_to: datetime | None = None,
        accept_cost: bool = False,
    ) -> PullResult:
        """:meth:`odds`, keeping the last good board of ``sport`` per selection and filters:
        never raises an API, network or payload failure (bad arguments still raise, before
        anything is sent or kept)."""
        key = self._board_key(sport, bookmakers, regions, commence_from, commence_to, accept_cost)
        attempted = self._clock()
        try:
            board = await self._odds(sport, dict(key[1]))
        except OddsError as exc:
            log.warning("Odds API %s pull failed, keeping the last good board: %s", sport, exc)
            return PullResult(sport, self._last_good.get(key), exc, attempted)
        self._last_good[key] = board
        return PullResult(sport, board, None, attempted)

    # ------------------------------------------------------------------ plumbing

    def _odds_params(
        self,
        bookmakers: Sequence[str] | None,
        regions: Sequence[str] | None,
        event_ids: Iterable[str],
        commence_from: datetime | None,
        commence_to: datetime | None,
        accept_cost: bool,
    ) -> dict[str, str]:
        return (
            self._selection(bookmakers, regions, accept_cost)
            | {"markets": H2H, "oddsFormat": "decimal", "dateFormat": "iso"}
            | _filters(event_ids, commence_from, commence_to)
        )

    def _board_key(
        self,
        sport: str,
        bookmakers: Sequence[str] | None,
        regions: Sequence[str] | None,
        commence_from: datetime | None,
        commence_to: datetime | None,
        accept_cost: bool,
    ) -> tuple[str, tuple[tuple[str, str], ...]]:
        # A board stands in only for a pull of the same sport with the same books or
        # regions and the same time filters: anything else priced on it is another line.
        params = self._odds_params(bookmakers, regions, (), commence_from, commence_to, accept_cost)
        return _sport(sport), tuple(sorted(params.items()))

    def _selection(
        self, bookmakers: Sequence[str] | None, regions: Sequence[str] | None, accept_cost: bool
    ) -> dict[str, str]:
        if bookmakers is not None and regions is not None:
            raise ValueError("give bookmakers or regions, not both (bookmakers override regions)")
        if bookmakers is None and regions is None:
            bookmakers, regions = self.bookmakers or None, self.regions or None
        if bookmakers is not None:
            bookmakers = _keys(bookmakers, "bookmakers")
        if regions is not None:
            regions = _keys(regions, "regions")
        if bookmakers:
            books = bookmakers
            units = math.ceil(len(books) / BOOKS_PER_REGION)
            if units > 1 and not accept_cost:
                raise TooManyBookmakersError(
                    f"{len(books)} bookmakers cost {units} regions per market per pull "
                    f"(every {BOOKS_PER_REGION} count as one): list at most "
                    f"{BOOKS_PER_REGION}, or pass accept_cost=True"
                )
            return {"bookmakers": ",".join(books)}
        if regions:
            return {"regions": ",".join(regions)}
        raise ValueError("no bookmakers and no regions: the API needs one of them")

    def _check_refusal(self, paid: bool) -> None:
        if self._refusal is None:
            return
        until, cause = self._refusal
        if until <= self._clock():
            self._refusal = None
        elif paid or cause.is_key_problem:
            raise OddsRefusedError(until, cause)

    async def _get(self, path: str, params: Mapping[str, str], *, paid: bool) -> Any:
        """One call with the retry policy of the module doc; the decoded JSON body."""
        self._check_refusal(paid)
        attempt = 0
        while True:
            response: httpx.Response | None = None
            failure, retry = "", False
            try:
                response = await self._http.get(path, params={**params, "apiKey": self._key})
            except httpx.HTTPError as exc:
                # Only words leave this block: an error raised in it would keep the httpx
                # exception, whose request URL holds the key, as its __context__.
                failure = f"GET {path} failed: {type(exc).__name__}: {redact(str(exc), self._key)}"
                # Network failures are retried; others (e.g. too many redirects) are not.
                retry = isinstance(exc, httpx.TransportError)
            if response is None:
                error: OddsError = OddsTransportError(failure)
                if not retry:
                    raise error
                delay = self._backoff(attempt)
            else:
                self._note_quota(response)
                if response.is_success:
                    return self._decode(response, path)
                api_error = self._api_error(response)
                self._note_refusal(api_error)
                if response.status_code != 429 and response.status_code < 500:
                    raise api_error
                error = api_error
                delay = (
                    min(self.rate_limit_delay + self._rng.uniform(0.0, 1.0), self.retry_cap)
                    if response.status_code == 429
                    else self._backoff(attempt)
                )
            if attempt >= self.max_retries:
                raise error
            attempt += 1
            log.warning(
                "Odds API GET %s: %s; retry %d/%d in %.1f s",
                path,
                error,
                attempt,
                self.max_retries,
                delay,
            )
            await self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        # Exponential with jitter (so that many clients do not retry in step), jitter
        # included never above retry_cap.
        return min(self.retry_base * 2.0**attempt, self.retry_cap) * self._rng.uniform(0.5, 1.0)

    def _decode(self, response: httpx.Response, path: str) -> Any:
        data = _loads(response.content)
        if data is _NOT_JSON:
            raise OddsPayloadError(f"GET {path}: the body is not JSON (or nests too deeply)")
        return data

    def _note_quota(self, response: httpx.Response) -> None:
        remaining, used, last = (
            _header_int(response.headers, f"x-requests-{name}")
            for name in ("remaining", "used", "last")
        )
        if (remaining, used, last) != (None, None, None):
            self._quota = OddsQuota(remaining, used, last, self._clock())

    def _api_error(self, response: httpx.Response) -> OddsApiError:
        """The error a refusal stands for. Whatever the server wrote is redacted first and
        cut short after: cut first, a key straddling the cut would keep its first chars."""

        def clean(text: str, limit: int = _BODY_QUOTE) -> str:
            return redact(text, self._key)[:limit].strip()

        status = response.status_code
        body = _loads(response.content)
        if isinstance(body, Mapping) and isinstance(body.get("error_code"), str):
            message = clean(str(body.get("message", "")))
            url = body.get("details_url")
            url = clean(url) if isinstance(url, str) else None
            code = clean(body["error_code"], 60)
        else:
            message = clean(response.text) or clean(response.reason_phrase)
            code, url = f"HTTP_{status}", None
        minutes = self.auth_backoff.total_seconds() / 60
        note = (
            f" (calls pause for {minutes:.0f} min)"
            if _is_key_problem(status, code)
            else f" (paid calls pause for {minutes:.0f} min)"
            if code in _CREDIT_CODES
            else ""
        )
        return OddsApiError(status, code, message, url, note=note)

    def _note_refusal(self, error: OddsApiError) -> None:
        if error.is_key_problem or error.is_out_of_credits:
            self._refusal = (self._clock() + self.auth_backoff, error)


def _sport(sport: str) -> str:
    if sport == "upcoming" or _KEY.match(sport):
        return sport
    raise ValueError(f"{sport!r} is not an Odds API sport key (e.g. basketball_nba)")


def _filters(
    event_ids: Iterable[str], commence_from: datetime | None, commence_to: datetime | None
) -> dict[str, str]:
    params: dict[str, str] = {}
    ids = _keys(event_ids, "event_ids", _EVENT_ID)
    if ids:
        params["eventIds"] = ",".join(ids)
    if commence_from is not None:
        params["commenceTimeFrom"] = _iso(commence_from)
    if commence_to is not None:
        params["commenceTimeTo"] = _iso(commence_to)
    return params
