"""The embedded Odds API v4: real HTTP over loopback against a feed read on a virtual clock.

What is checked comes from reference/apis.md PART 2: shapes, the cost rule and quota
headers, the error bodies, and that the bookmakers price the scenario's truth late by
their lag, sharp books first.
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import pytest

from kmm_interactive.pricing.devig import devig
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.faults import Faults
from kmm_interactive.sim.odds_server import (
    BOOKS_BY_KEY,
    OddsFeed,
    OddsServer,
    _power_margin,
    american_to_decimal,
    iso,
    start_odds_server,
)
from kmm_interactive.sim.scenario import GameSpec, NewsJump, Scenario, build_scenario

NOW = 1_700_000_000.0
KEY = "s3cret-odds-key-0123456789abcdef"
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
HEX32 = re.compile(r"[0-9a-f]{32}")
SOFT_BOOKS = ("draftkings", "fanduel", "betmgm", "williamhill_us", "bovada", "williamhill")
SLOW_BOOKS = ("bovada", "betus", "mybookieag")


class Ticker:
    """A stand-in for time.monotonic: each reading moves it on by ``step`` seconds."""

    def __init__(self, step: float = 1.0) -> None:
        self.t = 0.0
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


@dataclass
class Odds:
    scenario: Scenario
    clock: VirtualClock
    feed: OddsFeed
    faults: Faults
    server: OddsServer
    session: aiohttp.ClientSession
    ticker: Ticker

    async def get(
        self, path: str, *, key: str | None = KEY, **params: str
    ) -> tuple[int, dict[str, str], Any]:
        query = dict(params)
        if key is not None:
            query["apiKey"] = key
        async with self.session.get(self.server.url + path, params=query) as r:
            return r.status, dict(r.headers), json.loads(await r.text())

    def game(self, sport: str) -> GameSpec:
        return next(g for g in self.scenario.games if g.sport.odds_sport == sport)


async def _odds(quota: int = 20_000, seed: int = 1) -> Odds:
    scenario = build_scenario("default", seed=7, now=NOW, speed=1.0)
    clock = VirtualClock(NOW + 60)
    feed = OddsFeed(scenario, clock, seed=seed)
    faults = Faults(seed=1)
    ticker = Ticker()
    server = await start_odds_server(
        feed, api_key=KEY, faults=faults, quota=quota, monotonic=ticker
    )
    return Odds(scenario, clock, feed, faults, server, aiohttp.ClientSession(), ticker)


@pytest.fixture
async def odds() -> AsyncIterator[Odds]:
    world = await _odds()
    try:
        yield world
    finally:
        await world.session.close()
        await world.server.close()


def _h2h(book: dict[str, Any]) -> dict[str, float]:
    market = next(m for m in book["markets"] if m["key"] == "h2h")
    return {o["name"]: o["price"] for o in market["outcomes"]}


def _booksum(prices: dict[str, float]) -> float:
    return math.fsum(1.0 / p for p in prices.values())


def _fair(prices: dict[str, float], game: GameSpec) -> tuple[float, ...]:
    """Power-devigged probabilities in the truth path's outcome order."""
    names = [o.odds_name for o in sorted(game.outcomes, key=lambda o: o.index)]
    return devig([prices[n] for n in names], "power")


def _by_id(scenario: Scenario) -> dict[str, GameSpec]:
    return {g.odds_event_id: g for g in scenario.games}


# --------------------------------------------------------------------------- shapes


async def test_sports_lists_the_scenario_in_season_and_all_adds_the_rest(odds: Odds) -> None:
    status, headers, sports = await odds.get("/v4/sports")
    assert status == 200
    assert headers["x-requests-last"] == "0"
    keys = {s["key"] for s in sports}
    assert keys == {g.sport.odds_sport for g in odds.scenario.games}
    for s in sports:
        assert set(s) == {"key", "group", "title", "description", "active", "has_outrights"}
        assert s["active"] is True
    nba = next(s for s in sports if s["key"] == "basketball_nba")
    assert (nba["group"], nba["title"]) == ("Basketball", "NBA")

    status, _, everything = await odds.get("/v4/sports", all="true")
    assert status == 200
    inactive = {s["key"] for s in everything if not s["active"]}
    assert "basketball_wnba" in inactive
    assert keys.isdisjoint(inactive)

    status, _, body = await odds.get("/v4/sports", all="maybe")
    assert (status, body["error_code"]) == (422, "INVALID_ALL_SPORTS_PARAM")


async def test_events_are_free_and_filter_by_time_and_id(odds: Odds) -> None:
    status, headers, events = await odds.get("/v4/sports/basketball_nba/events")
    assert status == 200
    assert headers["x-requests-last"] == "0"
    nba = sorted(
        (g for g in odds.scenario.games if g.sport.odds_sport == "basketball_nba"),
        key=lambda g: g.start,
    )
    assert [e["id"] for e in events] == [g.odds_event_id for g in nba]
    for e in events:
        assert set(e) == {"id", "sport_key", "sport_title", "commence_time", "home_team",
                          "away_team"}  # fmt: skip
        assert HEX32.fullmatch(e["id"])
        assert ISO.fullmatch(e["commence_time"])
        assert (e["sport_key"], e["sport_title"]) == ("basketball_nba", "NBA")

    cut = events[-1]["commence_time"]
    _, _, late = await odds.get("/v4/sports/basketball_nba/events", commenceTimeFrom=cut)
    assert [e["commence_time"] for e in late] == [cut]
    _, _, early = await odds.get("/v4/sports/basketball_nba/events", commenceTimeTo=cut)
    assert len(early) == len(events)
    _, _, one = await odds.get("/v4/sports/basketball_nba/events", eventIds=events[0]["id"])
    assert [e["id"] for e in one] == [events[0]["id"]]
    _, _, unix = await odds.get("/v4/sports/basketball_nba/events", dateFormat="unix")
    assert unix[0]["commence_time"] == round(nba[0].start)

    status, _, body = await odds.get(
        "/v4/sports/basketball_nba/events", commenceTimeFrom="2023-09-09 00:00"
    )
    assert (status, body["error_code"]) == (422, "INVALID_COMMENCE_TIME_FROM")
    assert "YYYY-MM-DDTHH:MM:SSZ" in body["message"]


async def test_odds_shape(odds: Odds) -> None:
    status, headers, events = await odds.get("/v4/sports/basketball_nba/odds", regions="us,eu")
    assert status == 200
    assert events
    assert int(headers["x-requests-last"]) == 2
    games = _by_id(odds.scenario)
    for e in events:
        game = games[e["id"]]
        assert set(e) == {"id", "sport_key", "sport_title", "commence_time", "home_team",
                          "away_team", "bookmakers"}  # fmt: skip
        assert "pinnacle" in {b["key"] for b in e["bookmakers"]}
        for b in e["bookmakers"]:
            assert set(b) == {"key", "title", "last_update", "markets"}
            assert b["title"] == BOOKS_BY_KEY[b["key"]].title
            assert ISO.fullmatch(b["last_update"])
            assert b["last_update"] <= iso(NOW + 60)
            keys = [m["key"] for m in b["markets"]]
            assert keys == (["h2h", "h2h_lay"] if b["key"] == "betfair_ex_eu" else ["h2h"])
            for m in b["markets"]:
                assert set(m) == {"key", "last_update", "outcomes"}
                names = {o["name"] for o in m["outcomes"]}
                assert names == {game.home.odds_name, game.away.odds_name}
                assert all(isinstance(o["price"], float) and o["price"] > 1 for o in m["outcomes"])
    pinnacle = next(b for b in events[0]["bookmakers"] if b["key"] == "pinnacle")
    assert pinnacle["title"] == "Pinnacle"


async def test_event_odds_is_one_object_with_last_update_per_market(odds: Odds) -> None:
    game = odds.game("basketball_nba")
    path = f"/v4/sports/basketball_nba/events/{game.odds_event_id}/odds"
    status, _, event = await odds.get(path, regions="us", oddsFormat="american")
    assert status == 200
    assert isinstance(event, dict)
    assert event["id"] == game.odds_event_id
    assert event["bookmakers"]
    for b in event["bookmakers"]:
        assert "last_update" not in b
        for m in b["markets"]:
            assert ISO.fullmatch(m["last_update"])
            assert all(isinstance(o["price"], int) for o in m["outcomes"])

    status, _, body = await odds.get(
        "/v4/sports/basketball_nba/events/" + "0" * 32 + "/odds", regions="us"
    )
    assert (status, body["error_code"]) == (404, "EVENT_NOT_FOUND")


async def test_team_names_are_the_bookmakers_and_soccer_has_a_draw(odds: Odds) -> None:
    _, _, events = await odds.get("/v4/sports/basketball_nba/events")
    games = _by_id(odds.scenario)
    for e in events:
        game = games[e["id"]]
        assert (e["home_team"], e["away_team"]) == (game.home.odds_name, game.away.odds_name)
        assert e["home_team"] != game.home.name  # "Boston Celtics", not Kalshi's "Boston"

    _, _, soccer = await odds.get("/v4/sports/soccer_epl/odds", regions="eu,uk,us")
    assert soccer
    for e in soccer:
        for b in e["bookmakers"]:
            names = {o["name"] for o in b["markets"][0]["outcomes"]}
            assert names == {e["home_team"], e["away_team"], "Draw"}


async def test_decimal_and_american_agree(odds: Odds) -> None:
    params = {"regions": "us,eu,uk"}
    _, _, dec = await odds.get("/v4/sports/basketball_nba/odds", **params)
    _, _, ame = await odds.get("/v4/sports/basketball_nba/odds", oddsFormat="american", **params)
    assert [e["id"] for e in dec] == [e["id"] for e in ame]
    compared = 0
    for de, ae in zip(dec, ame, strict=True):
        for db, ab in zip(de["bookmakers"], ae["bookmakers"], strict=True):
            for name, d in _h2h(db).items():
                a = _h2h(ab)[name]
                assert isinstance(a, int)
                assert abs(a) >= 100
                # Books that price in one format and print the other round once more.
                assert american_to_decimal(a) == pytest.approx(d, abs=0.006)
                compared += 1
    assert compared > 50

    status, _, body = await odds.get(
        "/v4/sports/basketball_nba/odds", regions="us", oddsFormat="fractional"
    )
    assert (status, body["error_code"]) == (422, "INVALID_ODDS_FORMAT")


# --------------------------------------------------------------------------- the model


async def test_pinnacle_is_sharpest_and_soft_books_carry_more_margin(odds: Odds) -> None:
    _, _, events = await odds.get(
        "/v4/sports/upcoming/odds", bookmakers=",".join(("pinnacle", *SOFT_BOOKS))
    )
    sums: dict[str, list[float]] = {}
    for e in events:
        for b in e["bookmakers"]:
            prices = _h2h(b)
            if len(prices) == 2:
                sums.setdefault(b["key"], []).append(_booksum(prices))
    assert all(1.005 < s < 1.035 for s in sums["pinnacle"])
    sharp = statistics.mean(sums["pinnacle"])
    assert sharp == pytest.approx(1.02, abs=0.006)
    for book in SOFT_BOOKS:
        assert statistics.mean(sums[book]) > sharp + 0.01, book


async def test_devigged_pinnacle_is_the_truth_one_lag_ago(odds: Odds) -> None:
    pinnacle = BOOKS_BY_KEY["pinnacle"]
    games = _by_id(odds.scenario)
    for wait in (0.0, 950.0, 1300.0, 2400.0):  # upcoming, then in play for some games
        odds.clock.set(NOW + 60 + wait)
        _, _, events = await odds.get("/v4/sports/upcoming/odds", bookmakers="pinnacle")
        assert events
        for e in events:
            game = games[e["id"]]
            quote = odds.feed.quote("pinnacle", e["id"])
            assert quote is not None
            now = odds.clock.now()
            # It prices the truth as of one lag before its last update.
            assert now - pinnacle.lag - pinnacle.cadence < quote.source_time <= now - pinnacle.lag
            truth = odds.feed.true_probabilities(e["id"], quote.source_time)
            assert truth == dict(zip(quote.names, game.path.at(quote.source_time), strict=True))
            fair = _fair(_h2h(e["bookmakers"][0]), game)
            assert fair == pytest.approx([truth[name] for name in quote.names], abs=0.015)


def test_pinnacle_is_the_fastest_and_least_noisy_book() -> None:
    pinnacle = BOOKS_BY_KEY["pinnacle"]
    others = [b for b in BOOKS_BY_KEY.values() if b.key != "pinnacle"]
    for b in others:  # strictly first on every count; the exchanges come close behind
        assert pinnacle.lag < b.lag, b.key
        assert pinnacle.cadence < b.cadence, b.key
        assert pinnacle.bias < b.bias, b.key
        assert pinnacle.jitter < b.jitter, b.key
    # And it shows: across 200 games its own probabilities sit closest to the truth it prices.
    scenario = build_scenario("default", n_games=200, seed=2, now=NOW, speed=60.0)
    feed = OddsFeed(scenario, VirtualClock(NOW + 30), seed=2)
    error: dict[str, float] = {}
    for b in BOOKS_BY_KEY.values():
        quotes = [q for q in feed.quotes([(b.key, g.odds_event_id) for g in feed.games]) if q]
        assert len(quotes) > 100
        error[b.key] = statistics.mean(
            abs(f - t)
            for q in quotes
            for f, t in zip(q.fair, feed.game(q.event_id).path.at(q.source_time), strict=True)
        )
    assert min(error, key=error.__getitem__) == "pinnacle", error


def _clean_jump(odds: Odds) -> tuple[NewsJump, GameSpec, str]:
    """The largest news jump with no other news for its game within 1000 s either side."""
    by_ticker = {g.event_ticker: g for g in odds.scenario.games}
    best: tuple[float, NewsJump, GameSpec, str] | None = None
    for jump in odds.scenario.news:
        game = by_ticker[jump.event_ticker]
        if any(
            j is not jump and j.event_ticker == jump.event_ticker and abs(j.time - jump.time) < 1000
            for j in odds.scenario.news
        ):
            continue
        slow = next((b for b in SLOW_BOOKS if odds.feed.lists(b, game.odds_event_id)), None)
        size = max(abs(a - b) for a, b in zip(jump.after, jump.before, strict=True))
        if slow is not None and (best is None or size > best[0]):
            best = (size, jump, game, slow)
    assert best is not None, "the scenario needs a news jump a slow book prices"
    return best[1], best[2], best[3]


def _nearer(fair: tuple[float, ...], to: tuple[float, ...], than: tuple[float, ...]) -> bool:
    def distance(x: tuple[float, ...]) -> float:
        return sum(abs(a - b) for a, b in zip(fair, x, strict=True))

    return distance(to) < distance(than)


async def test_news_shows_at_pinnacle_before_a_slow_us_book(odds: Odds) -> None:
    jump, game, slow = _clean_jump(odds)
    assert max(abs(a - b) for a, b in zip(jump.after, jump.before, strict=True)) > 0.03
    lag, cadence = BOOKS_BY_KEY[slow].lag, BOOKS_BY_KEY[slow].cadence

    async def fair(book: str) -> tuple[float, ...]:
        _, _, events = await odds.get(
            "/v4/sports/upcoming/odds", bookmakers=book, eventIds=game.odds_event_id
        )
        return _fair(_h2h(events[0]["bookmakers"][0]), game)

    pinnacle = BOOKS_BY_KEY["pinnacle"]
    odds.clock.set(jump.time + pinnacle.lag + pinnacle.cadence + 1)  # Pinnacle has re-priced
    assert _nearer(await fair("pinnacle"), jump.after, jump.before)
    assert _nearer(await fair(slow), jump.before, jump.after)
    odds.clock.set(jump.time + lag + cadence + 1)
    assert _nearer(await fair(slow), jump.after, jump.before)


async def test_in_play_games_are_listed_and_determined_ones_disappear(odds: Odds) -> None:
    game = odds.game("basketball_nba")
    sport = "/v4/sports/basketball_nba"
    odds.clock.set(game.start + 120)
    _, _, events = await odds.get(f"{sport}/odds", regions="eu")
    live = next(e for e in events if e["id"] == game.odds_event_id)
    assert live["commence_time"] < iso(odds.clock.now())
    odds.clock.set(game.end)
    for path, params in ((f"{sport}/odds", {"regions": "eu"}), (f"{sport}/events", {})):
        _, _, events = await odds.get(path, **params)
        assert game.odds_event_id not in {e["id"] for e in events}
    status, _, body = await odds.get(f"{sport}/events/{game.odds_event_id}/odds", regions="eu")
    assert (status, body["error_code"]) == (404, "EVENT_NOT_FOUND")


def _snapshot(seed: int, at: float, *, warm: float | None = None) -> str:
    scenario = build_scenario("default", seed=7, now=NOW, speed=60.0)
    clock = VirtualClock(NOW)
    feed = OddsFeed(scenario, clock, seed=seed)
    if warm is not None:  # ask at another time first: the answer must not depend on it
        clock.set(warm)
        feed.odds("upcoming", regions="us,eu,uk")
    clock.set(at)
    return json.dumps(
        [feed.odds(s["key"], regions="us,eu,uk", odds_format=f)
         for s in feed.sports() for f in ("decimal", "american")]
    )  # fmt: skip


def test_power_margin_solves_every_row_exactly() -> None:
    rows = [(0.5, 0.5), (0.41, 0.59), (0.999999, 0.000001), (0.2, 0.3, 0.5), (1e-6, 0.4, 0.6)]
    for booksum in (1.02, 1.065, 0.98, 0.935):
        for row in rows:
            probs = np.array([row])
            implied = _power_margin(probs, np.array([booksum]))
            assert implied.sum() == pytest.approx(booksum, rel=1e-12)
            # One exponent for the whole row: p_i^k (read off the favourite, which never
            # underflows).
            top = int(np.argmax(probs[0]))
            k = math.log(implied[0, top]) / math.log(probs[0, top])
            assert implied[0] == pytest.approx(probs[0] ** k, rel=1e-9, abs=1e-300)
            # A dearer book (booksum up) means k down: long shots carry more of the margin.
            assert (k < 1.0) == (booksum > 1.0)
    # Rows are solved together and independently of each other.
    mixed = np.array([(0.41, 0.59), (0.999999, 0.000001), (0.7, 0.3)])
    sums = np.array([1.02, 0.98, 1.045])
    together = _power_margin(mixed, sums)
    for i in range(3):
        alone = _power_margin(mixed[i : i + 1], sums[i : i + 1])
        assert together[i] == pytest.approx(alone[0], rel=1e-12)


def _all_sports(feed: OddsFeed) -> list[Any]:
    return [feed.odds(s["key"], regions="us,eu") for s in feed.sports()]


def test_quotes_are_memoised_per_update_step() -> None:
    scenario = build_scenario("default", n_games=200, seed=1, now=NOW, speed=60.0)
    clock = VirtualClock(NOW + 60)
    feed = OddsFeed(scenario, clock, seed=1)
    game = feed.games[0]
    first = feed.quote("pinnacle", game.odds_event_id)
    assert first is not None
    # Within one update step a book shows the same prices: the memo hands back that quote.
    assert feed.quote("pinnacle", game.odds_event_id) is first
    pinnacle = BOOKS_BY_KEY["pinnacle"]
    clock.set(clock.now() + pinnacle.cadence / scenario.speed)
    again = feed.quote("pinnacle", game.odds_event_id)
    assert again is not None
    assert again.last_update > first.last_update
    # A fresh feed asked only now prices the same: the memo changes nothing but the cost.
    assert OddsFeed(scenario, clock, seed=1).quote("pinnacle", game.odds_event_id) == again


def test_the_feed_is_deterministic() -> None:
    at = NOW + 90.0
    first = _snapshot(3, at)
    assert first == _snapshot(3, at)
    assert first == _snapshot(3, at, warm=NOW + 30.0)
    assert first != _snapshot(4, at)


async def test_same_seed_serves_identical_json() -> None:
    worlds = [await _odds(seed=5), await _odds(seed=5), await _odds(seed=6)]
    try:
        bodies = [(await w.get("/v4/sports/upcoming/odds", regions="us,eu,uk"))[2] for w in worlds]
    finally:
        for w in worlds:
            await w.session.close()
            await w.server.close()
    assert bodies[0] == bodies[1]
    assert bodies[0] != bodies[2]


# --------------------------------------------------------------------------- cost and quota


async def test_cost_rule_and_quota_headers(odds: Odds) -> None:
    nba = "/v4/sports/basketball_nba"
    used = 0

    async def cost(path: str, expected: int, **params: str) -> None:
        nonlocal used
        status, headers, _ = await odds.get(path, **params)
        assert status == 200
        used += expected
        assert headers["x-requests-last"] == str(expected), params
        assert headers["x-requests-used"] == str(used)
        assert headers["x-requests-remaining"] == str(20_000 - used)

    ten = list(BOOKS_BY_KEY)[:10]
    eleven = list(BOOKS_BY_KEY)[:11]
    await cost(f"{nba}/odds", 1, regions="us")
    await cost(f"{nba}/odds", 2, regions="us,eu")
    await cost(f"{nba}/odds", 2, regions="us,eu,us")  # a region counts once
    await cost(f"{nba}/odds", 1, bookmakers=",".join(ten))
    await cost(f"{nba}/odds", 2, bookmakers=",".join(eleven))
    await cost(f"{nba}/odds", 1, bookmakers="pinnacle", regions="us,eu,uk")  # books override
    await cost(f"{nba}/odds", 2, regions="us", markets="h2h,spreads")  # markets requested
    await cost(f"{nba}/odds", 6, regions="us,eu,uk", markets="h2h,spreads")
    await cost(f"{nba}/odds", 0, regions="us", eventIds="f" * 32)  # empty: free
    await cost("/v4/sports/basketball_wnba/odds", 0, regions="us")  # out of season: empty
    await cost(f"{nba}/events", 0)
    await cost("/v4/sports", 0)
    event = odds.game("basketball_nba").odds_event_id
    # The event endpoint bills markets *returned*: spreads come back empty here.
    await cost(f"{nba}/events/{event}/odds", 2, regions="us,eu", markets="h2h,spreads")
    await cost(f"{nba}/events/{event}/odds", 0, regions="us", markets="player_points")
    assert odds.server.quota.used == used


async def test_an_exhausted_quota_refuses_paid_calls_only() -> None:
    world = await _odds(quota=3)
    try:
        path = "/v4/sports/basketball_nba/odds"
        status, headers, _ = await world.get(path, regions="us,eu")
        assert (status, headers["x-requests-remaining"]) == (200, "1")
        status, headers, body = await world.get(path, regions="us,eu")  # 2 > 1 left
        assert (status, body["error_code"]) == (401, "OUT_OF_USAGE_CREDITS")
        assert body["message"].startswith("Usage quota has been reached")
        assert headers["x-requests-last"] == "0"
        assert (await world.get(path, regions="us"))[0] == 200
        status, headers, body = await world.get(path, regions="us")
        assert (status, body["error_code"]) == (401, "OUT_OF_USAGE_CREDITS")
        assert (headers["x-requests-remaining"], headers["x-requests-used"]) == ("0", "3")
        assert (await world.get("/v4/sports"))[0] == 200
        assert (await world.get("/v4/sports/basketball_nba/events"))[0] == 200
    finally:
        await world.session.close()
        await world.server.close()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/v4/sports/basketball_nba/odds", {"regions": "us", "key": None}, 401, "MISSING_KEY"),
        ("/v4/sports", {"key": None}, 401, "MISSING_KEY"),
        ("/v4/sports/basketball_nba/odds", {"regions": "us", "key": "nope"}, 401, "INVALID_KEY"),
        ("/v4/sports/basketball_nba/odds", {}, 422, "MISSING_REGION"),
        ("/v4/sports/basketball_nba/odds", {"regions": "mars"}, 422, "INVALID_REGION"),
        ("/v4/sports/basketball_nba/odds", {"regions": "us", "markets": "player_points"}, 422,
         "INVALID_MARKET"),
        ("/v4/sports/basketball_nba/odds", {"regions": "us", "oddsFormat": "hk"}, 422,
         "INVALID_ODDS_FORMAT"),
        ("/v4/sports/basketball_nba/odds", {"regions": "us", "dateFormat": "rfc"}, 422,
         "INVALID_DATE_FORMAT"),
        ("/v4/sports/basketball_nba/odds", {"regions": "us", "commenceTimeTo": "tomorrow"}, 422,
         "INVALID_COMMENCE_TIME_TO"),
        ("/v4/sports/curling_world/odds", {"regions": "us"}, 404, "UNKNOWN_SPORT"),
        ("/v4/sports/curling_world/events", {}, 404, "UNKNOWN_SPORT"),
    ],
)  # fmt: skip
async def test_errors(
    odds: Odds, path: str, params: dict[str, Any], status: int, code: str
) -> None:
    query = dict(params)
    key = query.pop("key", KEY)
    got, headers, body = await odds.get(path, key=key, **query)
    assert (got, body["error_code"]) == (status, code)
    assert set(body) == {"message", "error_code", "details_url"}
    anchor = code.lower().replace("_", "-")
    assert body["details_url"] == (
        f"https://the-odds-api.com/liveapi/guides/v4/api-error-codes.html#{anchor}"
    )
    assert headers["x-requests-last"] == "0"
    assert headers["x-requests-used"] == "0"
    if code == "MISSING_REGION":
        assert body["message"] == "Missing regions or bookmakers key"


async def test_more_than_30_requests_in_a_second_get_429(odds: Odds) -> None:
    odds.ticker.step = 0.0  # every request lands in the same instant
    for _ in range(30):
        assert (await odds.get("/v4/sports"))[0] == 200
    status, headers, body = await odds.get("/v4/sports")
    assert (status, body["error_code"]) == (429, "EXCEEDED_FREQ_LIMIT")
    assert "x-requests-remaining" in headers
    odds.ticker.t += 1.0  # a second later the window is clear
    assert (await odds.get("/v4/sports"))[0] == 200


async def test_an_outage_answers_503_without_charging_and_recovers(odds: Odds) -> None:
    odds.faults.set(odds_outage=True)
    for path, params in (
        ("/v4/sports/basketball_nba/odds", {"regions": "us"}),
        ("/v4/sports", {}),
    ):
        status, _, body = await odds.get(path, **params)
        assert (status, body["error_code"]) == (503, "SERVICE_UNAVAILABLE")
        assert set(body) == {"message", "error_code", "details_url"}
    assert odds.faults.counts["odds_outage"] == 2
    assert odds.server.quota.used == 0
    odds.faults.set(odds_outage=False)
    status, headers, _ = await odds.get("/v4/sports/basketball_nba/odds", regions="us")
    assert (status, headers["x-requests-last"]) == (200, "1")


async def test_the_key_never_reaches_logs_or_bodies(
    odds: Odds, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies = [
        await odds.get("/v4/sports/basketball_nba/odds", regions="us"),
        await odds.get("/v4/sports/basketball_nba/odds", regions="us", markets=KEY),
        await odds.get("/v4/sports/basketball_nba/odds", key=KEY + "x", regions="us"),
        await odds.get(f"/v4/sports/{KEY}/odds", regions="us"),
    ]
    assert [b[0] for b in bodies] == [200, 422, 401, 404]
    for _, headers, body in bodies:
        assert KEY not in json.dumps(body)
        assert KEY not in json.dumps(headers)
    assert "apiKey=***" in caplog.text  # the access log ran, redacted
    assert KEY not in caplog.text


async def test_the_server_binds_loopback_only(odds: Odds) -> None:
    for host in ("0.0.0.0", "localhost", "192.168.1.10", "::"):
        with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
            await start_odds_server(odds.feed, api_key=KEY, host=host)
    assert odds.server.url == f"http://127.0.0.1:{odds.server.port}"
