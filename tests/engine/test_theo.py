"""The theo service against the embedded Odds API (real HTTP on loopback, a virtual clock) and
against hand-written boards: consensus theos near the scenario's truth, overrides and their
expiry, outages, the adverse-selection recheck, quota and the secrecy of the key."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from kmm_interactive.config import Config, ConfigError
from kmm_interactive.engine.theo import (
    NO_FEED,
    Theo,
    TheoService,
    TheoSource,
    team_a_ticker,
)
from kmm_interactive.odds.client import OddsClient
from kmm_interactive.odds.matching import KalshiGame, Reason
from kmm_interactive.pricing.consensus import BookOdds, consensus
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.faults import Faults
from kmm_interactive.sim.odds_server import OddsFeed, OddsServer, start_odds_server
from kmm_interactive.sim.scenario import GameSpec, Scenario, build_scenario

NOW = 1_700_000_000.0
KEY = "theo-s3cret-key-4d1f0e9a7c2b"
CONFIG = Config()
MAX_AGE = CONFIG.theo.max_age


# --------------------------------------------------------------------------- helpers


@dataclass
class Recorder:
    changes: list[tuple[str, Theo | None]] = field(default_factory=list)
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def on_change(self, event: str, theo: Theo | None) -> None:
        self.changes.append((event, theo))

    def on_event(self, kind: str, data: dict[str, object]) -> None:
        self.events.append((kind, data))

    def of(self, kind: str) -> list[dict[str, object]]:
        return [d for k, d in self.events if k == kind]


def service(
    odds: OddsClient | None, clock: Callable[[], datetime], config: Config = CONFIG
) -> tuple[TheoService, Recorder]:
    rec = Recorder()
    svc = TheoService(odds, config, clock=clock, on_change=rec.on_change, on_event=rec.on_event)
    return svc, rec


def kalshi_game(g: GameSpec) -> KalshiGame:
    start = datetime.fromtimestamp(g.start, UTC)
    markets = tuple((o.ticker, o.name) for o in g.outcomes)
    return KalshiGame(g.event_ticker, g.event_ticker.split("-")[0], start, markets)


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(svc: TheoService) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(svc.run())
    try:
        yield task
        assert not task.done(), "run() ended by itself"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class Feed:
    scenario: Scenario
    clock: VirtualClock
    faults: Faults
    server: OddsServer
    client: OddsClient

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def games(self) -> list[KalshiGame]:
        return [kalshi_game(g) for g in self.scenario.games]

    def game(self, sport: str) -> GameSpec:
        return next(g for g in self.scenario.games if g.sport.key == sport)

    def client_with(self, key: str) -> OddsClient:
        return feed_client(self.server.url, key, self.clock)


def feed_client(url: str, key: str, clock: VirtualClock) -> OddsClient:
    """The configured ten books, on the feed's clock, failing at once (no retries)."""
    return OddsClient.from_config(
        CONFIG.odds,
        key,
        base_url=url,
        clock=lambda: datetime.fromtimestamp(clock.now(), UTC),
        max_retries=0,
    )


@pytest.fixture
async def feed() -> AsyncIterator[Feed]:
    """The "default" scenario's eight games (six sports, one soccer) on a virtual clock."""
    scenario = build_scenario("default", seed=7, now=NOW)
    clock = VirtualClock(NOW + 60)
    faults = Faults(seed=1)
    server = await start_odds_server(OddsFeed(scenario, clock, seed=1), api_key=KEY, faults=faults)
    f = Feed(scenario, clock, faults, server, feed_client(server.url, KEY, clock))
    try:
        yield f
    finally:
        await f.client.aclose()
        await server.close()


# --------------------------------------------------------------------------- the feed


async def test_refresh_matches_every_game_and_prices_it_near_the_truth(feed: Feed) -> None:
    svc, rec = service(feed.client, feed.now)
    svc.track(feed.games())
    assert svc.quota is None
    report = await svc.refresh()
    assert report.unmatched == ()
    assert len(report.matches) == len(feed.scenario.games) == 8
    assert svc.report is report
    for g in feed.scenario.games:
        theo = svc.theo(g.event_ticker)
        assert theo is not None
        assert theo.source is TheoSource.CONSENSUS
        assert theo.as_of == feed.now()
        assert list(theo.probs) == [o.ticker for o in g.outcomes]
        assert math.fsum(theo.probs.values()) == pytest.approx(1.0, abs=1e-12)
        for o in g.outcomes:
            assert abs(theo.probs[o.ticker] - g.truth(o.ticker, feed.clock.now())) < 0.03
        assert theo.books[0] == "pinnacle"
        assert len(theo.books) >= 5
        assert theo.detail.startswith(f"{len(theo.books)} books, anchored on pinnacle")
        assert svc.match(g.event_ticker) is not None
    assert [e for e, _ in rec.changes] == [m.game.event_ticker for m in report.matches]
    assert all(theo == svc.theo(e) for e, theo in rec.changes)
    assert len(rec.of("theo")) == 8
    assert rec.of("odds_error") == []
    # Six sports, ten books each: one credit per pull.
    quota = svc.quota
    assert quota is not None
    assert (quota.used, quota.last, quota.remaining) == (6, 1, feed.server.quota.remaining)


async def test_a_soccer_game_has_three_probabilities_the_tie_priced_by_the_draw(
    feed: Feed,
) -> None:
    svc, _ = service(feed.client, feed.now)
    svc.track(feed.games())
    await svc.refresh()
    g = feed.game("epl")
    away, home, tie = (o.ticker for o in g.outcomes)
    assert tie.endswith("-TIE")
    theo = svc.theo(g.event_ticker)
    assert theo is not None
    assert list(theo.probs) == [away, home, tie]
    match = svc.match(g.event_ticker)
    assert match is not None
    assert match.outcome_names[2] == "Draw"
    expected = consensus(
        match.event.book_odds(match.outcome_names), feed.now(), CONFIG.theo.consensus_params()
    ).probabilities
    assert tuple(theo.probs.values()) == expected
    truth_draw = feed.scenario.game(g.event_ticker).truth(tie, feed.clock.now())
    assert 0.15 < theo.probs[tie]
    assert abs(theo.probs[tie] - truth_draw) < 0.03


async def test_an_outage_keeps_the_last_theos_with_their_old_as_of(feed: Feed) -> None:
    svc, rec = service(feed.client, feed.now)
    svc.track(feed.games())
    await svc.refresh()
    before = {g.event_ticker: svc.theo(g.event_ticker) for g in feed.scenario.games}
    pulled_at = feed.now()
    rec.changes.clear()
    feed.faults.set(odds_outage=True)
    feed.clock.advance(600)
    report = await svc.refresh()
    assert len(report.matches) == 8  # still matched, on the last good boards
    after = {g.event_ticker: svc.theo(g.event_ticker) for g in feed.scenario.games}
    assert after == before
    assert all(t is not None and t.as_of == pulled_at for t in after.values())
    assert rec.changes == []
    assert len(rec.of("theo")) == 8
    errors = rec.of("odds_error")
    assert sorted(str(e["sport"]) for e in errors) == sorted(
        {str(g.sport.odds_sport) for g in feed.scenario.games}
    )
    assert all("503 SERVICE_UNAVAILABLE" in str(e["error"]) for e in errors)
    assert all(e["board_age"] == 600.0 for e in errors)
    # Back up: new theos, new as_of, every game told.
    feed.faults.set(odds_outage=False)
    await svc.refresh()
    assert {t.as_of for t in map(svc.theo, before) if t is not None} == {feed.now()}
    assert len(rec.changes) == 8


async def test_a_refused_key_is_waited_out_not_hammered(
    feed: Feed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bad = feed.client_with("not-the-key")
    try:
        svc, rec = service(bad, feed.now)
        svc.track(feed.games())
        async with running(svc):
            await wait_until(lambda: len(rec.of("odds_error")) == 6)
            await asyncio.sleep(0.3)
        until = feed.now() + bad.auth_backoff
        assert svc.refused_until == until
        errors = rec.of("odds_error")
        assert len(errors) == 6  # one per sport, and no retry while refused
        assert "401 INVALID_KEY" in str(errors[0]["error"])
        assert all(e["refused_until"] == until for e in errors)
        sent = [r for r in caplog.records if r.getMessage().startswith("HTTP Request:")]
        assert len(sent) == 1
        assert all("not-the-key" not in r.getMessage() for r in caplog.records)
    finally:
        await bad.aclose()


# --------------------------------------------------------------------------- overrides


async def test_an_override_beats_the_feed_and_the_other_team_gets_the_rest(feed: Feed) -> None:
    svc, rec = service(feed.client, feed.now)
    svc.track(feed.games())
    await svc.refresh()
    g = feed.game("nba")
    away, home = (o.ticker for o in g.outcomes)
    feed_theo = svc.feed_theo(g.event_ticker)
    assert feed_theo is not None
    rec.changes.clear()

    o = svc.override(g.event_ticker, 0.61, ttl="30m", reason="starter ruled out")
    assert team_a_ticker(kalshi_game(g), svc.match(g.event_ticker)) == away
    assert dict(o.probs) == {away: 0.61, home: 1.0 - 0.61}
    assert o.expires_at == feed.now() + timedelta(minutes=30)
    theo = svc.theo(g.event_ticker)
    assert theo == Theo(
        g.event_ticker, {away: 0.61, home: 0.39}, feed.now(), TheoSource.OVERRIDE, (), 0.0,
        "starter ruled out",
    )  # fmt: skip
    assert svc.feed_theo(g.event_ticker) is feed_theo  # both visible: a fat finger shows
    assert rec.changes == [(g.event_ticker, theo)]
    (journaled,) = rec.of("override")
    assert journaled == {
        "event_ticker": g.event_ticker, "ticker": away, "prob": 0.61,
        "probs": {away: 0.61, home: 1.0 - 0.61}, "feed_probs": dict(feed_theo.probs),
        "set_at": feed.now(), "expires_at": o.expires_at, "reason": "starter ruled out",
    }  # fmt: skip

    # A market ticker sets that market; the other team takes 1 − p.
    svc.override(home, 0.3, ttl=90, reason="line moved")
    theo = svc.theo(g.event_ticker)
    assert theo is not None
    assert dict(theo.probs) == {away: 1.0 - 0.3, home: 0.3}

    # A new feed theo while overridden is journaled but does not change the theo in force.
    rec.changes.clear()
    feed.clock.advance(60)
    await svc.refresh()
    assert g.event_ticker not in [e for e, _ in rec.changes]
    assert svc.theo(g.event_ticker) == theo
    assert svc.feed_theo(g.event_ticker) != feed_theo

    assert svc.clear_override(away) is True
    assert rec.changes[-1] == (g.event_ticker, svc.feed_theo(g.event_ticker))
    assert rec.of("override_cleared")[-1]["why"] == "cleared"
    assert svc.clear_override(g.event_ticker) is False


async def test_a_three_way_override_rescales_the_others_in_the_feed_proportions(
    feed: Feed,
) -> None:
    svc, _ = service(feed.client, feed.now)
    svc.track(feed.games())
    await svc.refresh()
    g = feed.game("epl")
    away, home, tie = (o.ticker for o in g.outcomes)
    f = svc.feed_theo(g.event_ticker)
    assert f is not None
    o = svc.override(tie, 0.4, ttl=600, reason="heavy rain")
    share = f.probs[away] + f.probs[home]
    assert o.probs[tie] == 0.4
    assert o.probs[away] == pytest.approx(0.6 * f.probs[away] / share, rel=1e-12)
    assert o.probs[home] == pytest.approx(0.6 * f.probs[home] / share, rel=1e-12)
    assert list(o.probs) == [away, home, tie]
    # The event ticker means team A, the away team.
    o = svc.override(g.event_ticker, 0.5, ttl=600, reason="team news")
    assert o.probs[away] == 0.5
    assert o.probs[tie] == pytest.approx(0.5 * f.probs[tie] / (f.probs[home] + f.probs[tie]))


def esports_and_soccer() -> tuple[KalshiGame, KalshiGame]:
    cs2 = KalshiGame(
        "KXCS2GAME-26MAR31NAVIFAZE", "KXCS2GAME", None,
        (("KXCS2GAME-26MAR31NAVIFAZE-NAVI", "Natus Vincere"),
         ("KXCS2GAME-26MAR31NAVIFAZE-FAZE", "FaZe")),
    )  # fmt: skip
    epl = KalshiGame(
        "KXEPLGAME-26MAR31ARSCHE", "KXEPLGAME", None,
        (("KXEPLGAME-26MAR31ARSCHE-ARS", "Arsenal"), ("KXEPLGAME-26MAR31ARSCHE-CHE", "Chelsea"),
         ("KXEPLGAME-26MAR31ARSCHE-TIE", "Tie")),
    )  # fmt: skip
    return cs2, epl


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


T0 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


async def test_without_a_feed_games_trade_on_overrides_only() -> None:
    clock = FakeClock(T0)
    svc, rec = service(None, clock)
    cs2, epl = esports_and_soccer()
    svc.track([cs2, epl])
    report = await svc.refresh()
    assert report.matches == ()
    assert [(u.game, u.reason, u.detail) for u in report.unmatched] == [
        (cs2, Reason.SPORT_NOT_MAPPED, NO_FEED),
        (epl, Reason.SPORT_NOT_MAPPED, NO_FEED),
    ]
    assert svc.theo(cs2.event_ticker) is None
    assert svc.request_recheck(cs2.event_ticker, "skew") is False
    assert (svc.quota, svc.refused_until) == (None, None)
    # Team A is the first team market; the three-way game shares equally without a feed.
    o = svc.override(cs2.event_ticker, 0.55, ttl=60, reason="roster swap")
    assert dict(o.probs) == {cs2.markets[0][0]: 0.55, cs2.markets[1][0]: 1.0 - 0.55}
    o = svc.override("KXEPLGAME-26MAR31ARSCHE-CHE", 0.5, ttl=60, reason="red card risk")
    assert dict(o.probs) == {
        "KXEPLGAME-26MAR31ARSCHE-ARS": 0.25,
        "KXEPLGAME-26MAR31ARSCHE-CHE": 0.5,
        "KXEPLGAME-26MAR31ARSCHE-TIE": 0.25,
    }
    # In force up to, not at, expires_at.
    clock.advance(60 - 1e-6)
    assert svc.theo(cs2.event_ticker) is not None
    clock.advance(1e-6)
    assert svc.theo(cs2.event_ticker) is None
    # A game no longer tracked loses its theo, and the engine is told.
    clock.now = T0
    rec.changes.clear()
    svc.track([cs2])
    assert rec.changes == [(epl.event_ticker, None)]
    with pytest.raises(ValueError, match="not a tracked game or market"):
        svc.override(epl.event_ticker, 0.5, ttl=60, reason="gone")


async def test_run_expires_an_override_on_time_and_says_so() -> None:
    svc, rec = service(None, lambda: datetime.now(UTC))
    cs2, _ = esports_and_soccer()
    svc.track([cs2])
    async with running(svc):
        await asyncio.sleep(0.05)  # run() is idle, waiting on nothing
        started = time.monotonic()
        o = svc.override(cs2.event_ticker, 0.7, ttl=0.3, reason="quick look")
        await wait_until(lambda: len(rec.changes) == 2)
        elapsed = time.monotonic() - started
    assert 0.29 <= elapsed < 0.7
    assert rec.changes == [(cs2.event_ticker, o.as_theo()), (cs2.event_ticker, None)]
    (cleared,) = rec.of("override_cleared")
    assert cleared["why"] == "expired"
    assert cleared["reason"] == "quick look"
    assert isinstance(cleared["at"], datetime)
    assert cleared["at"] >= o.expires_at


@pytest.mark.parametrize(
    ("ticker", "prob", "ttl", "reason", "message"),
    [
        ("GAME", 0.0, 60, "r", "strictly between 0 and 1"),
        ("GAME", 1.0, 60, "r", "strictly between 0 and 1"),
        ("GAME", 1.2, 60, "r", "strictly between 0 and 1"),
        ("GAME", -0.1, 60, "r", "strictly between 0 and 1"),
        ("GAME", math.nan, 60, "r", "strictly between 0 and 1"),
        ("GAME", True, 60, "r", "strictly between 0 and 1"),
        ("GAME", "0.6", 60, "r", "strictly between 0 and 1"),
        ("GAME", 0.6, 0, "r", "positive duration of at most 24 h"),
        ("GAME", 0.6, "25h", "r", "positive duration of at most 24 h"),
        ("GAME", 0.6, 86400.5, "r", "positive duration of at most 24 h"),
        ("GAME", 0.6, -5, "r", "positive duration of at most 24 h"),
        ("GAME", 0.6, "soon", "r", "not a duration"),
        ("GAME", 0.6, "30m", "", "needs a reason"),
        ("GAME", 0.6, "30m", "   ", "needs a reason"),
        ("KXNBAGAME-26MAR31BOSLAL", 0.6, "30m", "r", "not a tracked game or market"),
        ("KXNBAGAME-26MAR31NYKHOU-LAL", 0.6, "30m", "r", "not a tracked game or market"),
    ],
)
async def test_a_bad_override_is_refused_and_changes_nothing(
    ticker: str, prob: Any, ttl: Any, reason: str, message: str
) -> None:
    clock = FakeClock(T0)
    svc, rec = service(mock_client(clock, [board(T0, BOOKS)]), clock)
    svc.track([NBA])
    await svc.refresh()
    before = svc.theo(NBA.event_ticker)
    events = list(rec.events)
    ticker = NBA.event_ticker if ticker == "GAME" else ticker
    with pytest.raises(ValueError, match=message) as caught:
        svc.override(ticker, prob, ttl=ttl, reason=reason)
    if message.endswith("duration"):
        assert isinstance(caught.value, ConfigError)
    assert svc.theo(NBA.event_ticker) == before
    assert before is not None
    assert before.source is TheoSource.CONSENSUS
    assert rec.events == events
    assert len(rec.changes) == 1


# --------------------------------------------------------------------------- hand boards

NBA = KalshiGame(
    "KXNBAGAME-26MAR31NYKHOU", "KXNBAGAME", None,
    (("KXNBAGAME-26MAR31NYKHOU-NYK", "New York"), ("KXNBAGAME-26MAR31NYKHOU-HOU", "Houston")),
)  # fmt: skip
BOOKS = {"pinnacle": (2.50, 1.60), "draftkings": (2.45, 1.58)}  # (away NYK, home HOU)


def board(at: datetime, books: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")

    def line(key: str, away: float, home: float) -> dict[str, Any]:
        outcomes = [
            {"name": "Houston Rockets", "price": home},
            {"name": "New York Knicks", "price": away},
        ]
        market = {"key": "h2h", "last_update": stamp, "outcomes": outcomes}
        return {"key": key, "title": key, "last_update": stamp, "markets": [market]}

    return [
        {
            "id": "e0a1b2c3", "sport_key": "basketball_nba", "sport_title": "NBA",
            "commence_time": "2026-03-31T23:30:00Z", "home_team": "Houston Rockets",
            "away_team": "New York Knicks",
            "bookmakers": [line(k, a, h) for k, (a, h) in books.items()],
        }
    ]  # fmt: skip


def mock_client(clock: Callable[[], datetime], boards: list[list[dict[str, Any]]]) -> OddsClient:
    """A client whose /odds answers are ``boards`` in turn (the last one repeated)."""
    served: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v4/sports/basketball_nba/odds"
        served.append(1)
        body = boards[min(len(served), len(boards)) - 1]
        quota = {"x-requests-remaining": "499", "x-requests-used": str(len(served)),
                 "x-requests-last": "1"}  # fmt: skip
        return httpx.Response(200, json=body, headers=quota)

    return OddsClient(
        "https://odds.test", KEY, bookmakers=["pinnacle", "draftkings"],
        transport=httpx.MockTransport(handle), clock=clock, max_retries=0,
    )  # fmt: skip


async def test_without_a_consensus_the_previous_theo_stays_and_the_reason_is_told() -> None:
    clock = FakeClock(T0)
    later = T0 + timedelta(minutes=10)
    boards = [board(T0, BOOKS), board(later, {"pinnacle": (2.6, 1.55)})]
    svc, rec = service(mock_client(clock, boards), clock)
    svc.track([NBA])
    await svc.refresh()
    theo = svc.theo(NBA.event_ticker)
    nyk, hou = (t for t, _ in NBA.markets)
    books = [BookOdds(k, odds, T0) for k, odds in BOOKS.items()]
    expected = consensus(books, T0, CONFIG.theo.consensus_params()).probabilities
    assert expected is not None
    assert expected[0] < 0.4
    assert theo is not None
    assert dict(theo.probs) == {nyk: expected[0], hou: expected[1]}
    assert (theo.as_of, theo.books) == (T0, ("pinnacle", "draftkings"))
    clock.now = later
    await svc.refresh()
    assert svc.theo(NBA.event_ticker) is theo  # kept, ageing from T0
    (error,) = rec.of("odds_error")
    assert error == {
        "event_ticker": NBA.event_ticker,
        "error": "no consensus: 1 usable book(s), need 2",
        "as_of": later,
    }
    assert rec.changes == [(NBA.event_ticker, theo)]
    # The same board again is not judged again: nothing new to say.
    await svc.refresh()
    assert len(rec.of("odds_error")) == 1


# --------------------------------------------------------------------------- rechecks


async def test_a_burst_of_fills_asks_for_a_recheck(feed: Feed) -> None:
    svc, rec = service(feed.client, feed.now)
    svc.track(feed.games())
    await svc.refresh()
    event = feed.game("nba").event_ticker
    t = feed.now()
    for seconds in (0, 30, 61, 62):  # the fill at 0 falls out of the 60 s window
        svc.note_fill(event, t + timedelta(seconds=seconds), +1)
    assert not svc.recheck_pending(event)
    svc.note_fill(event, t + timedelta(seconds=63), -1)  # two-way flow is no burst
    svc.note_fill(event, t + timedelta(seconds=64), +1)
    assert not svc.recheck_pending(event)
    for seconds in (65, 66, 67):  # 64, 65, 66, 67: four one way within 60 s
        svc.note_fill(event, t + timedelta(seconds=seconds), +1)
    assert svc.recheck_pending(event)
    svc.note_fill(event, t + timedelta(seconds=90), +1)  # already pending: asked once
    assert rec.of("recheck") == [
        {"event_ticker": event, "state": "requested", "why": "4 one-way fills in 60 s"}
    ]
    svc.note_fill("KXNBAGAME-NOT-TRACKED", t, +1)  # ignored
    with pytest.raises(ValueError, match="timezone-aware"):
        svc.note_fill(event, datetime(2026, 1, 1), +1)
    with pytest.raises(ValueError, match="direction"):
        svc.note_fill(event, t, 0)


async def test_a_skew_recheck_is_pending_until_the_pull_returns_then_rate_limited(
    feed: Feed,
) -> None:
    svc, rec = service(feed.client, feed.now)
    svc.track(feed.games())
    await svc.refresh()
    event = feed.game("nba").event_ticker
    first = svc.feed_theo(event)
    assert first is not None
    svc.note_inventory(event, Decimal(-30), 100)
    assert not svc.recheck_pending(event)
    feed.faults.set(odds_outage=True)
    async with running(svc):
        feed.clock.advance(30)
        asked_at = feed.now()
        svc.note_inventory(event, Decimal(-60), 100)
        assert svc.recheck_pending(event)
        assert rec.of("recheck") == [
            {"event_ticker": event, "state": "requested", "why": "|q| = 60 ≥ 0.5 × cap 100"}
        ]
        await wait_until(lambda: any(e.get("event_ticker") == event for e in rec.of("odds_error")))
        assert svc.recheck_pending(event)
        assert svc.feed_theo(event) is first
        failed = next(e for e in rec.of("odds_error") if e.get("event_ticker") == event)
        assert failed["attempt"] == 1
        assert "503" in str(failed["error"])

        feed.faults.set(odds_outage=False)
        feed.clock.advance(1)  # the retry is due a second after the failure
        await wait_until(lambda: not svc.recheck_pending(event))
        theo = svc.feed_theo(event)
        assert theo is not None
        assert theo.source is TheoSource.RECHECK
        assert theo.as_of == feed.now() == asked_at + timedelta(seconds=1)
        assert theo.detail.startswith("recheck (|q| = 60 ≥ 0.5 × cap 100): ")
        assert math.fsum(theo.probs.values()) == pytest.approx(1.0, abs=1e-12)
        assert rec.changes[-1] == (event, theo)
        assert rec.of("recheck")[-1] == {
            "event_ticker": event, "state": "done", "why": "|q| = 60 ≥ 0.5 × cap 100",
            "attempts": 1,
        }  # fmt: skip

        # At most one recheck per recheck_min_interval (120 s) from the last request.
        feed.clock.advance(118)
        assert svc.request_recheck(event, "skew") is False
        feed.clock.advance(1)
        assert svc.request_recheck(event, "skew") is True
        assert svc.request_recheck(event, "skew") is False  # already pending
        await wait_until(lambda: not svc.recheck_pending(event))
    assert len(rec.of("recheck")) == 4


async def test_a_skew_is_rechecked_once_per_level_not_while_it_lasts(feed: Feed) -> None:
    svc, rec = service(feed.client, feed.now)
    svc.track(feed.games())
    await svc.refresh()
    event = feed.game("nba").event_ticker

    def requested() -> list[str]:
        return [str(r["why"]) for r in rec.of("recheck") if r["state"] == "requested"]

    async with running(svc):
        svc.note_inventory(event, Decimal(60), 100)
        await wait_until(lambda: not svc.recheck_pending(event))
        for q in (70, 55, 99):  # still skewed, long after the minimum interval: no new pull
            feed.clock.advance(300)
            svc.note_inventory(event, Decimal(q), 100)
            assert not svc.recheck_pending(event)
        assert requested() == ["|q| = 60 ≥ 0.5 × cap 100"]
        feed.clock.advance(300)
        svc.note_inventory(event, Decimal(-100), 100)  # a new level: at the cap
        await wait_until(lambda: not svc.recheck_pending(event))
        feed.clock.advance(300)
        svc.note_inventory(event, Decimal(10), 100)  # back below: the next skew counts again
        svc.note_inventory(event, Decimal(50), 100)
        await wait_until(lambda: not svc.recheck_pending(event))
        # Refused by the minimum interval: asked again on the next look, not forgotten.
        svc.note_inventory(event, Decimal(0), 100)
        svc.note_inventory(event, Decimal(-80), 100)
        assert not svc.recheck_pending(event)
        feed.clock.advance(121)
        svc.note_inventory(event, Decimal(-80), 100)
        assert svc.recheck_pending(event)
        await wait_until(lambda: not svc.recheck_pending(event))
    assert requested() == [
        "|q| = 60 ≥ 0.5 × cap 100", "|q| = 100 ≥ 0.5 × cap 100",
        "|q| = 50 ≥ 0.5 × cap 100", "|q| = 80 ≥ 0.5 × cap 100",
    ]  # fmt: skip


async def test_a_recheck_is_abandoned_once_the_theo_is_stale(feed: Feed) -> None:
    svc, rec = service(feed.client, feed.now)
    svc.track(feed.games())
    await svc.refresh()
    event = feed.game("nhl").event_ticker
    feed.faults.set(odds_outage=True)
    feed.clock.advance(MAX_AGE)
    async with running(svc):
        assert svc.request_recheck(event, "skew") is True
        await wait_until(lambda: not svc.recheck_pending(event))
    assert [r["state"] for r in rec.of("recheck")] == ["requested", "abandoned"]
    assert rec.of("recheck")[-1]["attempts"] == 1
    theo = svc.feed_theo(event)
    assert theo is not None
    assert theo.source is TheoSource.CONSENSUS


async def test_unmatched_games_are_not_rechecked(feed: Feed) -> None:
    svc, _ = service(feed.client, feed.now)
    cs2, _ = esports_and_soccer()
    svc.track([*feed.games(), cs2])
    report = await svc.refresh()
    assert [u.game for u in report.unmatched] == [cs2]
    assert svc.request_recheck(cs2.event_ticker, "skew") is False
    svc.note_inventory(cs2.event_ticker, Decimal(25), 25)
    assert not svc.recheck_pending(cs2.event_ticker)
    with pytest.raises(ValueError, match="needs a reason"):
        svc.request_recheck(cs2.event_ticker, " ")


# --------------------------------------------------------------------------- the key


async def test_the_api_key_is_in_no_log_record_repr_or_event(
    feed: Feed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    svc, rec = service(feed.client, feed.now)
    svc.track(feed.games())
    await svc.refresh()
    event = feed.game("nba").event_ticker
    feed.faults.set(odds_outage=True)
    feed.clock.advance(60)
    async with running(svc):
        svc.note_inventory(event, Decimal(100), 100)
        await wait_until(lambda: any(e.get("event_ticker") == event for e in rec.of("odds_error")))
    override = svc.override(event, 0.5, ttl=60, reason="check")
    assert any("HTTP Request:" in r.getMessage() for r in caplog.records)
    texts = [r.getMessage() for r in caplog.records]
    texts += [repr(svc), repr(svc.theo(event)), repr(override), repr(rec.events), repr(feed.client)]
    assert all(KEY not in text for text in texts)
