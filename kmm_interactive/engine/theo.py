"""The theo service: every tracked game's fair probabilities, where they came from, how old.

The job:

* **Feed theos.** :meth:`TheoService.refresh` pulls each tracked sport's h2h board once
  (:meth:`OddsClient.pull`, which keeps the last good board), matches the tracked Kalshi
  games to its events (:func:`match_games`) and prices each match with the Pinnacle-anchored
  consensus (:func:`consensus`, outcomes in :attr:`GameMatch.outcome_names` order). A theo's
  ``as_of`` is when the odds behind it were pulled, so a theo priced on a last good board
  keeps its old ``as_of`` and visibly ages; a board no newer than the odds a game was last
  priced on is not looked at again, so nothing goes backwards and nothing is said twice.
* **Overrides.** A trader's probability for one market (or for team A, given the event
  ticker) with a TTL and a reason beats the feed until it expires, at ``expires_at``
  exactly; the feed's theo stays visible beside it (:meth:`TheoService.feed_theo`).
* **Adverse-selection rechecks** (the seed: "we also pull odds on a per event basis when
  inventory skews dramatically ... or fills burst"). The rule is in
  :mod:`kmm_interactive.strategy.recheck`; a recheck is pending, and the engine quotes only
  exposure-reducing sides, until a per-event pull gives a usable theo (source ``RECHECK``).
* :meth:`TheoService.run` is the task: a full refresh every ``refresh.odds`` (the first at
  once), rechecks as soon as they are asked for, overrides expired on time.

Failure semantics:

* Odds failures never raise out of :meth:`refresh` or :meth:`run`: each becomes an
  ``odds_error`` event and the last good theos stay, ageing (the strategy halts a game whose
  theo is older than ``theo.max_age``). A consensus without a theo (too few usable books)
  keeps the previous theo and says why, also as ``odds_error``. A failed refresh is retried
  sooner than the next scheduled one, with a backoff that stops at ``refresh.odds``.
* A failed recheck stays pending and is retried with a bounded backoff; it is abandoned
  (the flag cleared, so that it cannot leak) once the game's feed theo is stale, when the
  game halts on ``STALE_THEO`` anyway, or when the game is no longer matched.
* While the client refuses calls locally (a key or credit error, :attr:`refused_until`),
  nothing is sent until then: the service waits rather than spins.
* Bad input to :meth:`override` (a probability outside (0, 1), a TTL that is not a
  positive duration of at most 24 h, an empty reason, a ticker of no tracked game) raises
  :class:`ValueError` saying what was wrong and what is allowed, and changes nothing.
* The Odds API key is never in a log record, repr, exception or event of this module: the
  client redacts every error before it gets here, and nothing here holds the key.

Callbacks: ``on_change(event_ticker, theo)`` whenever the theo in force for a game changes
(a new feed or recheck theo while not overridden, an override set, cleared or expired, a game
no longer tracked); ``on_event(kind, data)`` for the journal, with kinds ``theo``,
``override``, ``override_cleared``, ``recheck`` and ``odds_error`` and JSON-ready data. Call
the service from its event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from kmm_interactive.config import Config, ConfigError, parse_duration
from kmm_interactive.domain import utc_now
from kmm_interactive.odds.client import (
    OddsBoard,
    OddsClient,
    OddsError,
    OddsQuota,
    OddsRefusedError,
)
from kmm_interactive.odds.matching import (
    GameMatch,
    KalshiGame,
    MatchReport,
    Reason,
    Unmatched,
    match_games,
)
from kmm_interactive.pricing.consensus import BookOdds, Consensus, consensus
from kmm_interactive.strategy.recheck import burst_reason, recent_one_way, skew_level, skew_reason

log = logging.getLogger(__name__)

#: The longest TTL an override may have: a forgotten override must not price a game for days.
MAX_OVERRIDE_TTL: Final = 86400.0
#: The shortest override TTL: the clock counts microseconds, so less is no time at all.
MIN_OVERRIDE_TTL: Final = 1e-6
#: A failed recheck is retried after this long, doubling each time up to the cap.
RECHECK_RETRY_BASE: Final = 1.0
RECHECK_RETRY_CAP: Final = 30.0
#: A refresh that failed is retried after this long, doubling up to ``refresh.odds``.
REFRESH_RETRY_BASE: Final = 30.0
#: How long a loop of :meth:`TheoService.run` pauses after an unexpected error (a callback's).
ERROR_PAUSE: Final = 1.0
#: Tolerance of a theo's probabilities summing to one.
SUM_TOLERANCE: Final = 1e-9
NO_FEED: Final = "no odds feed is configured (manual theo only)"
#: Inventory assumed before the engine reports any: flat (any cap gives no skew at q = 0).


# --------------------------------------------------------------------------- values


class TheoSource(enum.StrEnum):
    CONSENSUS = "consensus"
    RECHECK = "recheck"
    OVERRIDE = "override"


def _check_probs(probs: Mapping[str, float], owner: str) -> Mapping[str, float]:
    """A read-only copy of ``probs`` after checking that they are probabilities summing to 1."""
    if not probs:
        raise ValueError(f"{owner}: no probabilities")
    if not all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in probs.values()):
        raise ValueError(f"{owner}: probabilities must be floats in [0, 1], got {dict(probs)}")
    total = math.fsum(probs.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ValueError(f"{owner}: probabilities sum to {total!r}, not 1")
    return MappingProxyType(dict(probs))


@dataclass(frozen=True)
class Theo:
    """A game's fair probabilities: Kalshi market ticker → probability its YES wins (each
    team market, and the -TIE market of a soccer game), summing to 1.

    ``as_of`` is when the odds behind it were pulled (or when the override was set);
    ``books`` the bookmakers used (none for an override); ``detail`` the override's reason or
    what the consensus said.
    """

    event_ticker: str
    probs: Mapping[str, float]
    as_of: datetime
    source: TheoSource
    books: tuple[str, ...]
    dispersion: float
    detail: str

    def __post_init__(self) -> None:
        if self.as_of.tzinfo is None:
            raise ValueError(f"{self.event_ticker}: as_of must be timezone-aware")
        object.__setattr__(self, "probs", _check_probs(self.probs, self.event_ticker))


@dataclass(frozen=True)
class Override:
    """A trader's theo for one game, in force from ``set_at`` until ``expires_at``."""

    event_ticker: str
    probs: Mapping[str, float]
    set_at: datetime
    expires_at: datetime
    reason: str

    def __post_init__(self) -> None:
        if self.set_at.tzinfo is None or self.expires_at <= self.set_at:
            raise ValueError(f"{self.event_ticker}: an override needs aware set_at < expires_at")
        object.__setattr__(self, "probs", _check_probs(self.probs, self.event_ticker))

    def live(self, now: datetime) -> bool:
        return self.set_at <= now < self.expires_at

    def as_theo(self) -> Theo:
        return Theo(
            self.event_ticker, self.probs, self.set_at, TheoSource.OVERRIDE, (), 0.0, self.reason
        )


@dataclass(frozen=True)
class _Recheck:
    """A pending per-event pull: why it was asked for and when it is next tried."""

    why: str
    attempts: int
    next_at: datetime


# --------------------------------------------------------------------------- pure rules


def team_a_ticker(game: KalshiGame, match: GameMatch | None) -> str:
    """Team A's market: the match's away team, else the game's first team market (Kalshi
    lists the away team first). Raises :class:`ValueError` for a game without a team."""
    if match is not None:
        return match.team_a
    teams = game.team_markets
    if not teams:
        raise ValueError(f"{game.event_ticker}: the game has no team market")
    return teams[0][0]


def _outcome_tickers(game: KalshiGame, match: GameMatch | None) -> tuple[str, ...]:
    """The game's markets as (team A, team B[, tie])."""
    if match is not None:
        return match.tickers
    teams = [t for t, _ in game.team_markets]
    ties = [t for t, _ in game.markets if t not in teams]
    if len(teams) != 2 or len(ties) > 1:
        raise ValueError(
            f"{game.event_ticker}: {len(teams)} team market(s) and {len(ties)} tie market(s); "
            "a theo needs two teams and at most one tie market"
        )
    return (teams[0], teams[1], *ties)


def _shared(
    tickers: Sequence[str], ticker: str, prob: float, feed: Theo | None
) -> dict[str, float]:
    """``prob`` for ``ticker`` and 1 − prob shared by the other markets in the proportions of
    the feed's theo (equally without one)."""
    others = [t for t in tickers if t != ticker]
    weights = (
        [feed.probs[t] for t in others]
        if feed is not None and all(feed.probs.get(t, 0.0) > 0.0 for t in others)
        else [1.0] * len(others)
    )
    total = math.fsum(weights)
    probs = {ticker: prob} | {
        t: (1.0 - prob) * w / total for t, w in zip(others, weights, strict=True)
    }
    return {t: probs[t] for t in tickers}


def _describe(c: Consensus, anchor: str) -> str:
    how = f"anchored on {anchor}" if c.anchored else f"median of the books, {anchor} missing"
    text = f"{len(c.books_used)} books, {how}"
    if c.dropped:
        text += f"; dropped {len(c.dropped)}: " + ", ".join(
            f"{book} ({why})" for book, why in sorted(c.dropped.items())
        )
    return text


def _theo_data(theo: Theo) -> dict[str, object]:
    return {
        "event_ticker": theo.event_ticker,
        "source": theo.source.value,
        "probs": dict(theo.probs),
        "as_of": theo.as_of,
        "books": list(theo.books),
        "dispersion": theo.dispersion,
        "detail": theo.detail,
    }


async def _wait(wake: asyncio.Event, timeout: float | None) -> None:
    """Until ``wake`` is set or ``timeout`` seconds pass (None: no timeout); then re-arm it."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await wake.wait()
    wake.clear()


# --------------------------------------------------------------------------- the service


class TheoService:
    """Theos for the tracked games: feed, rechecks and overrides (see the module doc).

    ``odds`` None means no feed: games trade on manual overrides only.
    """

    def __init__(
        self,
        odds: OddsClient | None,
        config: Config,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_change: Callable[[str, Theo | None], None] | None = None,
        on_event: Callable[[str, dict[str, object]], None] | None = None,
    ) -> None:
        self._odds = odds
        self._config = config
        self._clock = clock
        self._on_change = on_change
        self._on_event = on_event
        self._games: dict[str, KalshiGame] = {}
        self._market_event: dict[str, str] = {}
        self._report: MatchReport | None = None
        self._matches: dict[str, GameMatch] = {}
        self._feed: dict[str, Theo] = {}
        # Per game, the newest pull time of the odds it was priced on (or failed to be).
        self._judged: dict[str, datetime] = {}
        self._overrides: dict[str, Override] = {}
        self._rechecks: dict[str, _Recheck] = {}
        self._last_recheck: dict[str, datetime] = {}
        self._fills: dict[str, list[tuple[datetime, int]]] = {}
        #: The highest skew level rechecked per game since its inventory was last below it.
        self._skew_checked: dict[str, int] = {}
        self._refreshing = asyncio.Lock()
        self._recheck_wake = asyncio.Event()
        self._override_wake = asyncio.Event()

    def __repr__(self) -> str:
        return (
            f"TheoService(games={len(self._games)}, feed_theos={len(self._feed)}, "
            f"overrides={len(self._overrides)}, rechecks={len(self._rechecks)}, "
            f"feed={'on' if self._odds is not None else 'off'})"
        )

    # ------------------------------------------------------------------ reading

    @property
    def report(self) -> MatchReport | None:
        """The latest refresh's match report (None before the first)."""
        return self._report

    @property
    def quota(self) -> OddsQuota | None:
        return self._odds.quota if self._odds is not None else None

    @property
    def refused_until(self) -> datetime | None:
        return self._odds.refused_until if self._odds is not None else None

    def match(self, event_ticker: str) -> GameMatch | None:
        return self._matches.get(event_ticker)

    def theo(self, event_ticker: str) -> Theo | None:
        """The live override if any, else the feed's last theo whatever its age."""
        override = self._live_override(event_ticker, self._clock())
        return override.as_theo() if override is not None else self._feed.get(event_ticker)

    def override_of(self, event_ticker: str) -> Override | None:
        """The game's override while it lasts (its theo does not age before it expires)."""
        return self._live_override(event_ticker, self._clock())

    def feed_theo(self, event_ticker: str) -> Theo | None:
        """The feed's theo even when overridden (so that a fat finger is visible)."""
        return self._feed.get(event_ticker)

    def recheck_pending(self, event_ticker: str) -> bool:
        return event_ticker in self._rechecks

    # ------------------------------------------------------------------ tracking

    def track(self, games: Sequence[KalshiGame]) -> None:
        """Price these games from now on (the set is replaced). A game no longer tracked, or
        listed again with other markets, loses its theo, override and recheck state."""
        new: dict[str, KalshiGame] = {}
        owner: dict[str, str] = {}
        for game in games:
            if not isinstance(game, KalshiGame):
                raise TypeError(f"track() takes KalshiGame values, not {type(game).__name__}")
            if new.get(game.event_ticker, game) != game:
                raise ValueError(f"{game.event_ticker} is listed twice with different markets")
            new[game.event_ticker] = game
            for ticker, _ in game.markets:
                if owner.setdefault(ticker, game.event_ticker) != game.event_ticker:
                    raise ValueError(
                        f"market {ticker} is in {owner[ticker]} and {game.event_ticker}"
                    )
        gone = [e for e, g in self._games.items() if new.get(e) != g]
        had_theo = {e for e in gone if self.theo(e) is not None}
        self._games, self._market_event = new, owner
        for state in (
            self._matches, self._feed, self._judged, self._overrides, self._rechecks,
            self._last_recheck, self._fills, self._skew_checked,
        ):  # fmt: skip
            for event in gone:
                state.pop(event, None)
        for event in sorted(had_theo):
            self._notify(event)

    # ------------------------------------------------------------------ the feed

    async def refresh(self) -> MatchReport:
        """Pull every tracked sport's board once, match the games and price them (see the
        module doc); odds failures are reported, never raised."""
        report, _ = await self._refresh()
        return report

    async def _refresh(self) -> tuple[MatchReport, bool]:
        """The report, and whether every board was pulled fresh."""
        async with self._refreshing:
            games = list(self._games.values())
            if self._odds is None:
                unmatched = tuple(Unmatched(g, Reason.SPORT_NOT_MAPPED, NO_FEED) for g in games)
                report = MatchReport((), unmatched)
                self._report = report
                return report, True
            boards: dict[str, OddsBoard] = {}
            fresh = True
            for sport in self._sports(games):
                board, ok = await self._pull(self._odds, sport)
                fresh = fresh and ok
                if board is not None:
                    boards[sport] = board
            events = [e for b in boards.values() for e in b.events]
            report = match_games(games, events, self._config.sports)
            self._report = report
            # Games may have been re-tracked while the boards were pulled.
            self._matches = {
                m.game.event_ticker: m
                for m in report.matches
                if self._games.get(m.game.event_ticker) == m.game
            }
            for event, m in self._matches.items():
                board = boards[m.event.sport_key]
                judged = self._judged.get(event)
                if judged is None or board.fetched_at > judged:
                    self._judge(m, m.event.book_odds(m.outcome_names), board.fetched_at)
            return report, fresh

    def _sports(self, games: Sequence[KalshiGame]) -> list[str]:
        sports = set()
        for game in games:
            found = self._config.profile_for_series(game.series_ticker)
            if found is not None and found[1].odds_sport is not None:
                sports.add(found[1].odds_sport)
        return sorted(sports)

    async def _pull(self, odds: OddsClient, sport: str) -> tuple[OddsBoard | None, bool]:
        """The board to price ``sport`` on (the last good one after a failure), and whether
        it was pulled fresh; a failure is reported."""
        try:
            result = await odds.pull(sport)
        except ValueError as exc:  # a sport key in the config that the API cannot take
            self._emit("odds_error", {"sport": sport, "error": str(exc)})
            return None, False
        if result.error is not None:
            age = result.age
            self._emit(
                "odds_error",
                {
                    "sport": sport,
                    "error": str(result.error),
                    "board_age": None if age is None else age.total_seconds(),
                    "refused_until": self.refused_until,
                },
            )
        return result.board, result.error is None

    def _judge(self, match: GameMatch, books: Sequence[BookOdds], as_of: datetime) -> None:
        """Price one game on the books of a board pulled at ``as_of``; without a consensus,
        keep the previous theo and say why."""
        event = match.game.event_ticker
        self._judged[event] = as_of
        found = self._consensus(match, books, as_of)
        if isinstance(found, str):
            self._emit("odds_error", {"event_ticker": event, "error": found, "as_of": as_of})
            return
        probs, c = found
        self._accept(
            Theo(event, probs, as_of, TheoSource.CONSENSUS, c.books_used, c.dispersion,
                 _describe(c, self._config.theo.anchor))
        )  # fmt: skip

    def _consensus(
        self, match: GameMatch, books: Sequence[BookOdds], now: datetime
    ) -> tuple[dict[str, float], Consensus] | str:
        """The theo by market ticker with the consensus it came from, or why there is none."""
        c = consensus(books, now, self._config.theo.consensus_params())
        if c.probabilities is None:
            return f"no consensus: {c.reason}"
        return dict(zip(match.tickers, c.probabilities, strict=True)), c

    def _accept(self, theo: Theo) -> None:
        event = theo.event_ticker
        self._feed[event] = theo
        overridden = self._live_override(event, self._clock()) is not None
        self._emit("theo", _theo_data(theo) | {"overridden": overridden})
        if not overridden:
            self._notify(event)

    # ------------------------------------------------------------------ overrides

    def override(self, ticker: str, prob: float, *, ttl: float | str, reason: str) -> Override:
        """Set a trader's theo (see the module doc): ``ticker`` is a market (its YES
        probability) or a game (team A's). The other markets share 1 − prob: the other
        team takes it all in a two-team game; in a three-way game the two others split it
        in the proportions of the feed's theo (equally without one). ``ttl`` is seconds or
        a duration such as "30m", above zero and at most 24 h."""
        game, market = self._resolve(ticker)
        # 1 − p must be inside (0, 1) too: p = 1e-300 leaves the other side at 1.0.
        if (
            isinstance(prob, bool)
            or not isinstance(prob, int | float)
            or not 0.0 < prob < 1.0
            or not 0.0 < 1.0 - prob < 1.0
        ):
            raise ValueError(
                f"override probability {prob!r:.40} for {ticker}: must be a number strictly "
                "between 0 and 1 (the YES probability), and so must 1 − p"
            )
        try:
            seconds = parse_duration(ttl, "ttl")
        except ConfigError as exc:
            if exc.allowed:  # not a duration at all: said with the forms allowed
                raise
            seconds = math.nan  # negative or infinite: said below, with the limits
        if not MIN_OVERRIDE_TTL <= seconds <= MAX_OVERRIDE_TTL:
            raise ValueError(
                f"ttl = {ttl!r:.40}: must be a positive duration of at most 24 h and at least "
                "a microsecond, the clock's step (seconds, or e.g. '30m', '2h')"
            )
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"an override needs a reason saying why, got {reason!r}")
        event = game.event_ticker
        feed = self._feed.get(event)
        tickers = _outcome_tickers(game, self._matches.get(event))
        now = self._clock()
        override = Override(
            event,
            _shared(tickers, market, float(prob), feed),
            now,
            now + timedelta(seconds=seconds),
            reason.strip(),
        )
        self._overrides[event] = override
        log.info("%s: theo overridden (%s = %.4f for %g s): %s", event, market, prob, seconds,
                 override.reason)  # fmt: skip
        self._emit(
            "override",
            {
                "event_ticker": event,
                "ticker": market,
                "prob": float(prob),
                "probs": dict(override.probs),
                "feed_probs": None if feed is None else dict(feed.probs),
                "set_at": override.set_at,
                "expires_at": override.expires_at,
                "reason": override.reason,
            },
        )
        self._override_wake.set()
        self._notify(event)
        return override

    def clear_override(self, ticker: str) -> bool:
        """Remove the game's override (``ticker``: the game or one of its markets); False if
        there was none in force."""
        game, _ = self._resolve(ticker)
        return self._drop_override(game.event_ticker, "cleared", self._clock())

    def _resolve(self, ticker: str) -> tuple[KalshiGame, str]:
        """The tracked game of ``ticker`` and the market it names (team A for a game)."""
        game = self._games.get(ticker) if isinstance(ticker, str) else None
        if game is not None:
            return game, team_a_ticker(game, self._matches.get(ticker))
        event = self._market_event.get(ticker) if isinstance(ticker, str) else None
        if event is not None:
            return self._games[event], ticker
        some = ", ".join(sorted(self._games)[:3]) or "none"
        raise ValueError(
            f"{ticker!r} is not a tracked game or market: give an event ticker or a market "
            f"ticker of one of the {len(self._games)} tracked games (e.g. {some})"
        )

    def _live_override(self, event: str, now: datetime) -> Override | None:
        override = self._overrides.get(event)
        return override if override is not None and override.live(now) else None

    def _drop_override(self, event: str, why: str, now: datetime) -> bool:
        override = self._overrides.pop(event, None)
        if override is None:
            return False
        log.info("%s: theo override %s (%s)", event, why, override.reason)
        self._emit(
            "override_cleared",
            {"event_ticker": event, "why": why, "reason": override.reason, "at": now},
        )
        self._notify(event)
        return True

    def _expire_overrides(self, now: datetime) -> None:
        for event, override in list(self._overrides.items()):
            if now >= override.expires_at:
                self._drop_override(event, "expired", now)

    # ------------------------------------------------------------------ rechecks

    def note_fill(self, event_ticker: str, at: datetime, direction: int) -> None:
        """One of our fills in the game at ``at``, moving its inventory up (``direction``
        +1) or down (−1); a burst of one-way fills asks for a recheck
        (:func:`~kmm_interactive.strategy.recheck.recent_one_way`). Fills of a game that is
        not tracked are ignored (bad input raises ``ValueError`` all the same)."""
        cfg = self._config.theo
        try:
            kept, one_way = recent_one_way(self._fills.get(event_ticker, []), at, direction, cfg)
        except ValueError as exc:
            raise ValueError(f"{event_ticker}: {exc}") from None
        if event_ticker not in self._games:
            return
        self._fills[event_ticker] = kept
        why = burst_reason(one_way, cfg)
        if why is not None:
            self.request_recheck(event_ticker, why)

    def note_inventory(self, event_ticker: str, q: Decimal, cap: int) -> None:
        """The game's signed inventory and cap; a skew into a level not yet rechecked asks
        for a recheck (:func:`~kmm_interactive.strategy.recheck.skew_reason`). Bursts are
        judged when fills arrive (:meth:`note_fill`)."""
        cfg = self._config.theo
        level = skew_level(q, cap, cfg)
        if event_ticker not in self._games:
            return
        checked = self._skew_checked.get(event_ticker, 0)
        if level == 0:
            self._skew_checked.pop(event_ticker, None)
            return
        why = skew_reason(q, cap, checked, cfg)
        if why is not None and (
            self.request_recheck(event_ticker, why) or event_ticker in self._rechecks
        ):
            self._skew_checked[event_ticker] = level

    def request_recheck(self, event_ticker: str, why: str) -> bool:
        """Pull this game's odds at once; False if it is not matched, a recheck is already
        pending, or the last one was asked for within ``recheck_min_interval``."""
        if not isinstance(why, str) or not why.strip():
            raise ValueError(f"a recheck needs a reason saying why, got {why!r}")
        if self._odds is None or event_ticker not in self._matches:
            return False
        if event_ticker in self._rechecks:
            return False
        now = self._clock()
        last = self._last_recheck.get(event_ticker)
        if last is not None and now - last < timedelta(
            seconds=self._config.theo.recheck_min_interval
        ):
            return False
        self._last_recheck[event_ticker] = now
        self._rechecks[event_ticker] = _Recheck(why, 0, now)
        log.info("%s: odds recheck requested: %s", event_ticker, why)
        self._emit("recheck", {"event_ticker": event_ticker, "state": "requested", "why": why})
        self._recheck_wake.set()
        return True

    async def _recheck(self, odds: OddsClient, event: str) -> None:
        """One attempt at a pending recheck."""
        pending = self._rechecks[event]
        match = self._matches.get(event)
        if match is None:
            self._end_recheck(event, "abandoned", "the game is no longer matched")
            return
        refused: datetime | None = None
        try:
            odds_event = await odds.event_odds(match.event.sport_key, match.event.id)
        except (OddsError, ValueError) as exc:
            found: tuple[dict[str, float], Consensus] | str = str(exc)
            refused = exc.until if isinstance(exc, OddsRefusedError) else None
        else:
            books = odds_event.book_odds(match.outcome_names)
            found = self._consensus(match, books, self._clock())
        if self._rechecks.get(event) is not pending:  # untracked while the pull was out
            return
        now = self._clock()
        if isinstance(found, str):
            attempts = pending.attempts + 1
            delay = min(RECHECK_RETRY_BASE * 2.0 ** (attempts - 1), RECHECK_RETRY_CAP)
            next_at = max(now + timedelta(seconds=delay), refused or now)
            self._rechecks[event] = dataclasses.replace(pending, attempts=attempts, next_at=next_at)
            self._emit("odds_error", {"event_ticker": event, "error": found, "attempt": attempts})
            return
        probs, c = found
        self._judged[event] = max(now, self._judged.get(event, now))
        # The new theo is in force before the recheck ends: the exposed side resumes on it.
        self._accept(
            Theo(event, probs, now, TheoSource.RECHECK, c.books_used, c.dispersion,
                 f"recheck ({pending.why}): {_describe(c, self._config.theo.anchor)}")
        )  # fmt: skip
        self._end_recheck(event, "done", pending.why)

    def _end_recheck(self, event: str, state: str, why: str) -> None:
        pending = self._rechecks.pop(event)
        self._emit(
            "recheck",
            {"event_ticker": event, "state": state, "why": why, "attempts": pending.attempts},
        )

    def _stale_at(self, event: str) -> datetime | None:
        """When the game's feed theo reaches ``theo.max_age`` (None without one)."""
        feed = self._feed.get(event)
        return None if feed is None else feed.as_of + timedelta(seconds=self._config.theo.max_age)

    def _drop_stale_rechecks(self, now: datetime, refused: bool) -> None:
        # A recheck is abandoned only once tried (or untryable while refused): a stale game
        # halts on STALE_THEO anyway, and a flag that outlives its reason would leak.
        for event, pending in list(self._rechecks.items()):
            stale_at = self._stale_at(event)
            if (stale_at is None or now >= stale_at) and (pending.attempts > 0 or refused):
                self._end_recheck(event, "abandoned", "the theo went stale before a recheck")

    # ------------------------------------------------------------------ the task

    async def run(self) -> None:
        """Refresh every ``refresh.odds`` (the first at once), run rechecks as they are asked
        for and expire overrides on time, until cancelled; never raises otherwise."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._refresh_loop(), name="theo-refresh")
            tasks.create_task(self._recheck_loop(), name="theo-recheck")
            tasks.create_task(self._expiry_loop(), name="theo-expiry")

    async def _refresh_loop(self) -> None:
        failures = 0
        interval = self._config.refresh.odds
        while True:
            try:
                refused = self.refused_until
                if refused is not None:
                    wait = (refused - self._clock()).total_seconds()
                else:
                    _, fresh = await self._refresh()
                    failures = 0 if fresh else failures + 1
                    wait = (
                        interval
                        if fresh
                        else min(REFRESH_RETRY_BASE * 2.0 ** (failures - 1), interval)
                    )
            except Exception:  # a callback's failure must not stop the theos
                log.exception("theo refresh failed")
                wait = ERROR_PAUSE
            await asyncio.sleep(max(wait, 0.0))

    async def _recheck_loop(self) -> None:
        while True:
            timeout: float | None = ERROR_PAUSE
            try:
                timeout = await self._recheck_step()
            except Exception:
                log.exception("theo recheck failed")
            await _wait(self._recheck_wake, timeout)

    async def _recheck_step(self) -> float | None:
        """Try the rechecks that are due, drop the stale; seconds to the next thing to do."""
        odds = self._odds
        if odds is None:
            return None
        now = self._clock()
        refused = self.refused_until
        for event, pending in list(self._rechecks.items()):
            if pending.next_at > now or self._rechecks.get(event) is not pending:
                continue
            if refused is not None:
                self._rechecks[event] = dataclasses.replace(pending, next_at=refused)
            else:
                await self._recheck(odds, event)
        now = self._clock()
        self._drop_stale_rechecks(now, self.refused_until is not None)
        times = [p.next_at for p in self._rechecks.values()]
        times += [t for e in self._rechecks if (t := self._stale_at(e)) is not None]
        if not times:
            return None
        return max((min(times) - now).total_seconds(), 0.0)

    async def _expiry_loop(self) -> None:
        while True:
            timeout: float | None = ERROR_PAUSE
            try:
                now = self._clock()
                self._expire_overrides(now)
                nxt = min((o.expires_at for o in self._overrides.values()), default=None)
                timeout = None if nxt is None else max((nxt - now).total_seconds(), 0.0)
            except Exception:
                log.exception("theo override expiry failed")
            await _wait(self._override_wake, timeout)

    # ------------------------------------------------------------------ callbacks

    def _notify(self, event: str) -> None:
        if self._on_change is not None:
            self._on_change(event, self.theo(event))

    def _emit(self, kind: str, data: dict[str, object]) -> None:
        if self._on_event is not None:
            self._on_event(kind, data)
