"""The Odds API client: exact shapes against httpx.MockTransport, then the embedded Odds
API over loopback (reference/apis.md PART 2)."""

from __future__ import annotations

import json
import logging
import math
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from kmm_interactive.config import OddsConfig
from kmm_interactive.odds.client import (
    OddsApiError,
    OddsClient,
    OddsPayloadError,
    OddsRefusedError,
    OddsTransportError,
    TooManyBookmakersError,
    parse_board,
    parse_event,
)
from kmm_interactive.pricing.consensus import consensus
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.faults import Faults
from kmm_interactive.sim.odds_server import OddsFeed, OddsServer, start_odds_server
from kmm_interactive.sim.scenario import Scenario, build_scenario

KEY = "odds-SECRET-key-5f1e0c9b7a"
T0 = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
BOOKS = ("pinnacle", "draftkings", "fanduel")


def h2h(key: str, prices: dict[str, Any], updated: str = "2026-11-21T21:59:10Z") -> dict[str, Any]:
    return {
        "key": key,
        "title": key.title(),
        "last_update": updated,
        "markets": [
            {
                "key": "h2h",
                "last_update": updated,
                "outcomes": [{"name": n, "price": p} for n, p in prices.items()],
            }
        ],
    }


def nba_event(*books: dict[str, Any], event_id: str = "e1") -> dict[str, Any]:
    return {
        "id": event_id,
        "sport_key": "basketball_nba",
        "sport_title": "NBA",
        "commence_time": "2026-11-22T03:30:00Z",
        "home_team": "Los Angeles Lakers",
        "away_team": "Boston Celtics",
        "bookmakers": list(books),
    }


NBA_BOARD = [
    nba_event(
        h2h("pinnacle", {"Los Angeles Lakers": 2.40, "Boston Celtics": 1.625}),
        h2h("draftkings", {"Boston Celtics": 1.61, "Los Angeles Lakers": 2.38}),
    )
]
EPL_BOARD = [
    {
        "id": "s1",
        "sport_key": "soccer_epl",
        "commence_time": "2026-11-22T15:00:00Z",
        "home_team": "Arsenal",
        "away_team": "Chelsea",
        "bookmakers": [
            h2h("pinnacle", {"Arsenal": 1.95, "Chelsea": 3.9, "Draw": 3.6}),
            h2h("betfair_ex_eu", {"Arsenal": 1.97, "Chelsea": 4.0, "Draw": 3.7})
            | {
                "markets": [
                    {
                        "key": "h2h",
                        "outcomes": [
                            {"name": "Arsenal", "price": 1.97},
                            {"name": "Chelsea", "price": 4.0},
                            {"name": "Draw", "price": 3.7},
                        ],
                    },
                    {"key": "h2h_lay", "outcomes": [{"name": "Arsenal", "price": 2.0}]},
                ]
            },
        ],
    }
]


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Recorder:
    """A MockTransport handler answering from a queue of responses, recording requests."""

    answers: list[httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]]
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def ok(body: Any, remaining: int = 480, used: int = 20, last: int = 1) -> httpx.Response:
    headers = {
        "x-requests-remaining": str(remaining),
        "x-requests-used": str(used),
        "x-requests-last": str(last),
    }
    return httpx.Response(200, json=body, headers=headers)


def failure(status: int, code: str, message: str = "refused") -> httpx.Response:
    body = {"message": message, "error_code": code, "details_url": f"https://docs#{code}"}
    return httpx.Response(status, json=body, headers={"x-requests-remaining": "0"})


def client_for(recorder: Recorder, clock: FakeClock | None = None, **options: Any) -> OddsClient:
    return OddsClient(
        "https://api.the-odds-api.com",
        KEY,
        bookmakers=BOOKS,
        transport=httpx.MockTransport(recorder),
        sleep=recorder.sleep,
        clock=clock or FakeClock(),
        **options,
    )


# --------------------------------------------------------------------------- requests


async def test_odds_request_has_the_documented_parameters() -> None:
    rec = Recorder([ok(NBA_BOARD)])
    async with client_for(rec) as client:
        board = await client.odds(
            "basketball_nba",
            event_ids=["e1", "e2"],
            commence_from=datetime(2026, 11, 21, 17, 0, tzinfo=UTC),
            commence_to=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
        )
    (request,) = rec.requests
    assert request.url.path == "/v4/sports/basketball_nba/odds"
    assert dict(request.url.params) == {
        "apiKey": KEY,
        "bookmakers": "pinnacle,draftkings,fanduel",
        "markets": "h2h",
        "oddsFormat": "decimal",
        "dateFormat": "iso",
        "eventIds": "e1,e2",
        "commenceTimeFrom": "2026-11-21T17:00:00Z",
        "commenceTimeTo": "2026-11-22T12:00:00Z",
    }
    assert board.sport == "basketball_nba"
    assert board.fetched_at == T0


async def test_regions_instead_of_bookmakers_and_bad_selections() -> None:
    rec = Recorder([ok([])])
    async with client_for(rec) as client:
        await client.odds("basketball_nba", regions=["us", "eu"])
        assert rec.requests[0].url.params["regions"] == "us,eu"
        assert "bookmakers" not in rec.requests[0].url.params
        with pytest.raises(ValueError, match="not both"):
            await client.odds("basketball_nba", regions=["us"], bookmakers=["pinnacle"])
        with pytest.raises(ValueError, match="not an Odds API sport key"):
            await client.odds("basketball_nba/../x")
    async with OddsClient("https://x.test", KEY, transport=httpx.MockTransport(rec)) as bare:
        with pytest.raises(ValueError, match="no bookmakers and no regions"):
            await bare.odds("basketball_nba")


async def test_more_than_ten_bookmakers_are_refused_unless_the_cost_is_accepted() -> None:
    rec = Recorder([ok([])])
    eleven = [f"book{i}" for i in range(11)]
    async with client_for(rec) as client:
        with pytest.raises(TooManyBookmakersError, match="11 bookmakers cost 2 regions"):
            await client.odds("basketball_nba", bookmakers=eleven)
        assert rec.requests == []
        await client.odds("basketball_nba", bookmakers=eleven, accept_cost=True)
        await client.odds("basketball_nba", bookmakers=eleven[:10])
    assert len(rec.requests) == 2


async def test_sports_events_and_event_odds() -> None:
    sports = [
        {
            "key": "basketball_nba",
            "group": "Basketball",
            "title": "NBA",
            "description": "US Basketball",
            "active": True,
            "has_outrights": False,
        }
    ]
    events = [{k: v for k, v in NBA_BOARD[0].items() if k != "bookmakers"}]
    one = nba_event(h2h("pinnacle", {"Los Angeles Lakers": 2.4, "Boston Celtics": 1.6}))
    del one["bookmakers"][0]["last_update"]  # the per-event endpoint: market level only
    rec = Recorder([ok(sports, last=0), ok(events, last=0), ok(one)])
    async with client_for(rec) as client:
        (nba,) = await client.sports(all_sports=True)
        listed = await client.events("basketball_nba")
        single = await client.event_odds("basketball_nba", "e1")
    assert (nba.key, nba.active) == ("basketball_nba", True)
    assert rec.requests[0].url.params["all"] == "true"
    assert rec.requests[1].url.path == "/v4/sports/basketball_nba/events"
    assert listed.events[0].bookmakers == ()
    assert rec.requests[2].url.path == "/v4/sports/basketball_nba/events/e1/odds"
    assert single.bookmaker("pinnacle") is not None


# --------------------------------------------------------------------------- parsing


def test_two_way_board_parses_into_books_in_the_callers_order() -> None:
    board = parse_board(NBA_BOARD, "basketball_nba", T0)
    (event,) = board.events
    assert event.commence_time == datetime(2026, 11, 22, 3, 30, tzinfo=UTC)
    assert (event.away_team, event.home_team) == ("Boston Celtics", "Los Angeles Lakers")
    books = event.book_odds(("Boston Celtics", "Los Angeles Lakers"))
    assert [(b.bookmaker, b.odds) for b in books] == [
        ("pinnacle", (1.625, 2.40)),
        ("draftkings", (1.61, 2.38)),
    ]
    assert books[0].last_update == datetime(2026, 11, 21, 21, 59, 10, tzinfo=UTC)
    flipped = event.book_odds(("Los Angeles Lakers", "Boston Celtics"))
    assert flipped[0].odds == (2.40, 1.625)
    assert board.problems == ()


def test_three_way_board_with_draw_and_exchange_lay_market() -> None:
    (event,) = parse_board(EPL_BOARD, "soccer_epl", T0).events
    books = event.book_odds(("Chelsea", "Arsenal", "Draw"))
    assert [b.odds for b in books] == [(3.9, 1.95, 3.6), (4.0, 1.97, 3.7)]
    # The exchange's h2h line has no last_update of its own: the bookmaker's is used.
    assert books[1].last_update == datetime(2026, 11, 21, 21, 59, 10, tzinfo=UTC)
    # A two-way request on a three-way board finds no book: devigging two of three
    # outcomes would be wrong.
    assert event.book_odds(("Chelsea", "Arsenal")) == []
    result = consensus(books, T0)
    assert result.ok
    assert result.probabilities is not None
    assert math.isclose(sum(result.probabilities), 1.0)


def test_a_book_lacking_an_outcome_is_left_out() -> None:
    data = nba_event(
        h2h("pinnacle", {"Los Angeles Lakers": 2.40, "Boston Celtics": 1.625}),
        h2h("fanduel", {"Los Angeles Lakers": 2.36, "Draw": 15.0, "Boston Celtics": 1.62}),
    )
    event = parse_event(data)
    assert [b.bookmaker for b in event.book_odds(("Boston Celtics", "Los Angeles Lakers"))] == [
        "pinnacle"
    ]
    with pytest.raises(ValueError, match="distinct"):
        event.book_odds(("Boston Celtics", "Boston Celtics"))


@pytest.mark.parametrize(
    ("price", "problem"),
    [
        (1.0, "not decimal odds above 1.0"),
        (0.5, "not decimal odds above 1.0"),
        (-110, "not decimal odds above 1.0"),
        (float("inf"), "not decimal odds above 1.0"),
        (float("nan"), "not decimal odds above 1.0"),
        ("1.91", "is not a number"),
        (True, "is not a number"),
        (None, "is not a number"),
    ],
)
def test_a_bad_price_skips_that_book_and_names_it(price: Any, problem: str) -> None:
    bad = h2h("fanduel", {"Los Angeles Lakers": price, "Boston Celtics": 1.62})
    # Through the JSON text, as the wire carries it (Python's json reads NaN and Infinity).
    data = json.loads(json.dumps(nba_event(NBA_BOARD[0]["bookmakers"][0], bad)))
    board = parse_board([data], "basketball_nba", T0)
    (event,) = board.events
    assert [b.key for b in event.bookmakers] == ["pinnacle"]
    assert board.skipped_bookmakers == 1
    (error,) = board.problems
    assert (error.event_id, error.bookmaker, error.field) == (
        "e1",
        "fanduel",
        "h2h.outcomes[0].price",
    )
    assert problem in str(error)
    assert str(error).startswith("event e1, bookmaker fanduel, field h2h.outcomes[0].price")


@pytest.mark.parametrize(
    ("mutate", "field_name"),
    [
        (lambda b: b.pop("markets"), "markets"),
        (lambda b: b.update(markets=[{"key": "spreads", "outcomes": []}]), "markets"),
        (lambda b: b["markets"][0].update(outcomes="none"), "h2h.outcomes"),
        (lambda b: b["markets"][0]["outcomes"][0].pop("name"), "h2h.outcomes[0].name"),
        (lambda b: b["markets"][0].update(last_update="yesterday"), "last_update"),
        (lambda b: b["markets"][0].update(last_update="2026-11-21T21:59:10"), "last_update"),
        (lambda b: b["markets"][0]["outcomes"][0].update(name="Boston"), "h2h.outcomes"),
        (lambda b: b["markets"][0]["outcomes"].pop(), "h2h.outcomes"),
    ],
)
def test_malformed_bookmakers_are_skipped_and_counted(
    mutate: Callable[[dict[str, Any]], object], field_name: str
) -> None:
    bad = h2h("betmgm", {"Boston Celtics": 1.6, "Los Angeles Lakers": 2.4})
    mutate(bad)
    board = parse_board([nba_event(NBA_BOARD[0]["bookmakers"][0], bad)], "basketball_nba", T0)
    assert [b.key for b in board.events[0].bookmakers] == ["pinnacle"]
    (error,) = board.problems
    assert error.bookmaker == "betmgm"
    assert error.field == field_name


def test_malformed_events_are_skipped_and_a_non_array_board_fails() -> None:
    no_home = dict(NBA_BOARD[0], id="e2")
    del no_home["home_team"]
    bad_time = dict(NBA_BOARD[0], id="e3", commence_time="soon")
    nhl = dict(NBA_BOARD[0], id="e4", sport_key="icehockey_nhl")
    same_teams = dict(NBA_BOARD[0], id="e5", away_team=NBA_BOARD[0]["home_team"])
    rows = [NBA_BOARD[0], no_home, bad_time, "junk", NBA_BOARD[0], nhl, same_teams]
    board = parse_board(rows, "basketball_nba", T0)
    assert [e.id for e in board.events] == ["e1"]
    assert board.skipped_events == 6
    fields = [(p.event_id, p.field) for p in board.problems]
    assert fields == [
        ("e2", "home_team"),
        ("e3", "commence_time"),
        (None, None),
        ("e1", "id"),
        ("e4", "sport_key"),
        ("e5", "away_team"),
    ]
    # Any sport's events make up the "upcoming" board.
    assert [e.id for e in parse_board([nhl], "upcoming", T0).events] == ["e4"]
    with pytest.raises(OddsPayloadError, match="not a JSON array"):
        parse_board({"message": "?"}, "basketball_nba", T0)
    # A board of junk fails (it must not replace a good board); an empty one is no games.
    with pytest.raises(OddsPayloadError, match="none of the 2 events"):
        parse_board([no_home, "junk"], "basketball_nba", T0)
    assert parse_board([], "basketball_nba", T0).events == ()


# --------------------------------------------------------------------------- quota, errors


async def test_quota_headers_are_kept_after_every_response() -> None:
    clock = FakeClock()
    rec = Recorder([ok(NBA_BOARD, remaining=480, used=20, last=1), failure(422, "INVALID_MARKET")])
    async with client_for(rec, clock) as client:
        assert client.quota is None
        await client.odds("basketball_nba")
        assert client.quota is not None
        assert (client.quota.remaining, client.quota.used, client.quota.last) == (480, 20, 1)
        assert client.quota.seen_at == T0
        clock.now += timedelta(seconds=5)
        with pytest.raises(OddsApiError):
            await client.odds("basketball_nba")
        assert client.quota.remaining == 0
        assert client.quota.used is None
        assert client.quota.seen_at == T0 + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("status", "code", "advice"),
    [
        (401, "MISSING_KEY", "set the environment variable named by odds.api_key_env"),
        (401, "INVALID_KEY", "the API key is not valid"),
        (401, "DEACTIVATED_KEY", "renew the subscription"),
        (401, "OUT_OF_USAGE_CREDITS", "wait for the monthly reset"),
        (422, "MISSING_REGION", "pass bookmakers="),
        (422, "INVALID_MARKET", "featured markets only"),
        (404, "UNKNOWN_SPORT", "OddsClient.sports()"),
        (400, "SOMETHING_NEW", "see https://docs#SOMETHING_NEW"),
    ],
)
async def test_documented_errors_are_explained_and_not_retried(
    status: int, code: str, advice: str
) -> None:
    rec = Recorder([failure(status, code, "what the API said")])
    async with client_for(rec) as client:
        with pytest.raises(OddsApiError) as caught:
            await client.odds("basketball_nba")
    error = caught.value
    assert (error.status, error.error_code, error.message) == (status, code, "what the API said")
    assert advice in str(error)
    assert str(error).startswith(f"The Odds API answered {status} {code}: what the API said")
    assert len(rec.requests) == 1
    assert rec.sleeps == []


async def test_key_errors_pause_every_call_for_the_backoff() -> None:
    clock = FakeClock()
    rec = Recorder([failure(401, "INVALID_KEY"), ok([])])
    async with client_for(rec, clock, auth_backoff=timedelta(minutes=10)) as client:
        with pytest.raises(OddsApiError, match="calls pause for 10 min"):
            await client.odds("basketball_nba")
        assert client.refused_until == T0 + timedelta(minutes=10)
        with pytest.raises(OddsRefusedError, match="paused until") as refused:
            await client.sports()
        assert refused.value.cause.error_code == "INVALID_KEY"
        assert len(rec.requests) == 1  # refused locally, nothing sent
        clock.now += timedelta(minutes=10)
        assert client.refused_until is None
        await client.odds("basketball_nba")
    assert len(rec.requests) == 2


async def test_out_of_credits_pauses_paid_calls_only() -> None:
    rec = Recorder([failure(401, "OUT_OF_USAGE_CREDITS"), ok([])])
    async with client_for(rec) as client:
        with pytest.raises(OddsApiError):
            await client.odds("basketball_nba")
        with pytest.raises(OddsRefusedError):
            await client.odds("basketball_nba")
        with pytest.raises(OddsRefusedError):
            await client.event_odds("basketball_nba", "e1")
        await client.sports()  # free
        await client.events("basketball_nba")  # free
    assert len(rec.requests) == 3


async def test_429_is_retried_after_a_couple_of_seconds_with_jitter() -> None:
    rec = Recorder([failure(429, "EXCEEDED_FREQ_LIMIT"), failure(429, "EXCEEDED_FREQ_LIMIT")])
    rec.answers.append(ok(NBA_BOARD))
    async with client_for(rec) as client:
        board = await client.odds("basketball_nba")
    assert len(board.events) == 1
    assert len(rec.requests) == 3
    assert len(rec.sleeps) == 2
    assert all(2.0 <= s <= 3.0 for s in rec.sleeps)
    assert rec.sleeps[0] != rec.sleeps[1]


async def test_retries_are_bounded() -> None:
    rec = Recorder([failure(429, "EXCEEDED_FREQ_LIMIT")])
    async with client_for(rec, max_retries=2) as client:
        with pytest.raises(OddsApiError, match="EXCEEDED_FREQ_LIMIT"):
            await client.odds("basketball_nba")
    assert len(rec.requests) == 3
    assert len(rec.sleeps) == 2


async def test_5xx_and_timeouts_back_off_exponentially() -> None:
    timeout = httpx.ReadTimeout(f"timed out reading https://x/v4?apiKey={KEY}")
    rec = Recorder([httpx.Response(502, text="Bad Gateway"), timeout, failure(503, "DOWN")])
    rec.answers.append(ok(NBA_BOARD))
    async with client_for(rec, retry_base=1.0) as client:
        await client.odds("basketball_nba")
    assert len(rec.requests) == 4
    assert [0.5 <= s <= 1.5 for s in rec.sleeps[:1]] == [True]
    assert 1.0 <= rec.sleeps[1] <= 3.0
    assert 2.0 <= rec.sleeps[2] <= 6.0


async def test_a_timeout_that_persists_is_a_redacted_transport_error() -> None:
    rec = Recorder([httpx.ConnectTimeout(f"cannot connect to https://x/v4?apiKey={KEY}")])
    async with client_for(rec, max_retries=1) as client:
        with pytest.raises(OddsTransportError) as caught:
            await client.odds("basketball_nba")
    assert KEY not in str(caught.value)
    assert "apiKey=***" in str(caught.value)
    # Nor in a printed traceback: the httpx exception (which holds the URL) is not chained.
    assert KEY not in "".join(traceback.format_exception(caught.value))


async def test_a_body_that_is_not_json_fails_the_pull() -> None:
    rec = Recorder([httpx.Response(200, text="<html>maintenance</html>")])
    async with client_for(rec) as client:
        result = await client.pull("basketball_nba")
    assert isinstance(result.error, OddsPayloadError)
    assert "not JSON" in str(result.error)


# --------------------------------------------------------------------------- pull


async def test_pull_keeps_the_last_good_board_through_an_outage() -> None:
    clock = FakeClock()
    rec = Recorder([ok(NBA_BOARD), httpx.Response(503, text="down")])
    async with client_for(rec, clock, max_retries=1) as client:
        first = await client.pull("basketball_nba")
        assert first.fresh
        assert first.age == timedelta(0)
        assert first.board is not None
        clock.now += timedelta(minutes=30)
        second = await client.pull("basketball_nba")
        assert not second.fresh
        assert isinstance(second.error, OddsApiError)
        assert second.error.status == 503
        assert second.board is first.board
        assert second.age == timedelta(minutes=30)
        assert client.last_good("basketball_nba") is first.board
        never = await client.pull("icehockey_nhl")
        assert never.board is None
        assert never.age is None


# --------------------------------------------------------------------------- the key


async def test_the_key_never_shows_in_logs_reprs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = failure(422, "INVALID_MARKET", f"bad request apiKey={KEY}&markets=x (key {KEY})")
    rec = Recorder([ok(NBA_BOARD), echo, httpx.Response(500, text=f"oops {KEY}")])
    async with client_for(rec, max_retries=0) as client:
        await client.odds("basketball_nba")
        with pytest.raises(OddsApiError) as invalid:
            await client.odds("basketball_nba")
        result = await client.pull("basketball_nba")
        text = repr(client)
    assert "HTTP Request: GET" in caplog.text  # httpx did log the URL …
    assert "apiKey=***" in caplog.text  # … redacted
    assert KEY not in caplog.text
    assert KEY not in text
    assert "***" in text
    assert KEY not in str(invalid.value)
    assert KEY not in str(result.error)
    assert KEY not in repr(result)


def test_from_config_uses_the_configured_books() -> None:
    client = OddsClient.from_config(OddsConfig(), KEY, base_url="http://127.0.0.1:1")
    assert client.bookmakers == OddsConfig().bookmakers
    assert client.base_url == "http://127.0.0.1:1"
    assert KEY not in repr(client)


# --------------------------------------------------------------------------- embedded


NOW = 1_700_000_000.0


@dataclass
class Embedded:
    scenario: Scenario
    clock: VirtualClock
    faults: Faults
    server: OddsServer
    client: OddsClient
    sleeps: list[float]


@pytest.fixture
async def embedded() -> AsyncIterator[Embedded]:
    scenario = build_scenario("default", seed=7, now=NOW)
    clock = VirtualClock(NOW + 60)
    faults = Faults(seed=1)
    server = await start_odds_server(OddsFeed(scenario, clock, seed=1), api_key=KEY, faults=faults)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = OddsClient.from_config(
        OddsConfig(),
        KEY,
        base_url=server.url,
        sleep=sleep,
        clock=lambda: datetime.fromtimestamp(clock.now(), UTC),
    )
    try:
        yield Embedded(scenario, clock, faults, server, client, sleeps)
    finally:
        await client.aclose()
        await server.close()


async def test_embedded_boards_parse_and_price(embedded: Embedded) -> None:
    sports = {s.key for s in await embedded.client.sports()}
    assert sports == {g.sport.odds_sport for g in embedded.scenario.games}
    board = await embedded.client.odds("basketball_nba")
    games = [g for g in embedded.scenario.games if g.sport.odds_sport == "basketball_nba"]
    assert {e.id for e in board.events} == {g.odds_event_id for g in games}
    assert board.problems == ()
    now = datetime.fromtimestamp(embedded.clock.now(), UTC)
    for event in board.events:
        assert event.bookmaker("pinnacle") is not None
        books = event.book_odds((event.away_team, event.home_team))
        assert len(books) >= 2
        assert consensus(books, now).ok
    quota = embedded.client.quota
    assert quota is not None
    assert (quota.used, quota.last) == (1, 1)  # ten books cost one region
    assert quota.remaining == embedded.server.quota.remaining


async def test_embedded_soccer_board_is_three_way(embedded: Embedded) -> None:
    board = await embedded.client.odds("soccer_epl")
    (event,) = board.events
    books = event.book_odds((event.away_team, event.home_team, "Draw"))
    assert books
    assert all(len(b.odds) == 3 for b in books)
    single = await embedded.client.event_odds("soccer_epl", event.id)
    assert single.id == event.id
    assert single.book_odds((event.away_team, event.home_team, "Draw"))


async def test_embedded_outage_keeps_the_last_good_board(embedded: Embedded) -> None:
    good = await embedded.client.pull("basketball_nba")
    assert good.fresh
    embedded.faults.set(odds_outage=True)
    embedded.clock.advance(1800)
    down = await embedded.client.pull("basketball_nba")
    assert isinstance(down.error, OddsApiError)
    assert down.error.status == 503
    assert down.board is good.board
    assert down.age == timedelta(seconds=1800)
    assert len(embedded.sleeps) == embedded.client.max_retries
    assert embedded.faults.counts["odds_outage"] == embedded.client.max_retries + 1
    embedded.faults.set(odds_outage=False)
    back = await embedded.client.pull("basketball_nba")
    assert back.fresh
    assert back.age == timedelta(0)


async def test_embedded_errors(embedded: Embedded) -> None:
    with pytest.raises(OddsApiError) as unknown:
        await embedded.client.odds("curling_world")
    assert unknown.value.error_code == "UNKNOWN_SPORT"
    async with OddsClient(embedded.server.url, "wrong-key", bookmakers=BOOKS) as wrong:
        with pytest.raises(OddsApiError) as invalid:
            await wrong.odds("basketball_nba")
        assert invalid.value.error_code == "INVALID_KEY"
        with pytest.raises(OddsRefusedError):
            await wrong.sports()


async def test_embedded_key_never_logged(
    embedded: Embedded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await embedded.client.odds("basketball_nba")
    embedded.faults.set(odds_outage=True)
    await embedded.client.pull("basketball_nba")
    assert "HTTP Request" in caplog.text
    assert KEY not in caplog.text
