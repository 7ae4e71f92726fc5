"""Matching Kalshi games to Odds API events: names, start times, order, draws, and the
report of what did not match and why."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from kmm_interactive.odds.client import OddsEvent, parse_board
from kmm_interactive.odds.matching import (
    KalshiGame,
    MatchParams,
    Reason,
    match_games,
    normalise_name,
    team_score,
    ticker_start,
)
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.exchange import Exchange
from kmm_interactive.sim.odds_server import OddsFeed
from kmm_interactive.sim.scenario import build_scenario
from kmm_interactive.sim.wire import market_json

START = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)  # 19:30 Eastern (EDT) on 26MAR31


def event(
    away: str,
    home: str,
    start: datetime = START,
    sport: str = "basketball_nba",
    event_id: str | None = None,
) -> OddsEvent:
    return OddsEvent(event_id or f"{away}@{home}@{start:%H%M}", sport, start, home, away)


def game(
    away: tuple[str, str],
    home: tuple[str, str],
    *,
    series: str = "KXNBAGAME",
    date: str = "26MAR31",
    start: datetime | None = START,
    tie: bool = False,
) -> KalshiGame:
    ticker = f"{series}-{date}{away[0]}{home[0]}"
    markets = [(f"{ticker}-{away[0]}", away[1]), (f"{ticker}-{home[0]}", home[1])]
    if tie:
        markets.append((f"{ticker}-TIE", "Tie"))
    return KalshiGame(ticker, series, start, tuple(markets))


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("kalshi", "odds", "sport"),
    [
        ("LA Lakers", "Los Angeles Lakers", ""),
        ("Los Angeles L", "Los Angeles Lakers", ""),
        ("Los Angeles C", "LA Clippers", ""),
        ("New York", "New York Knicks", ""),
        ("NY Rangers", "New York Rangers", ""),
        ("Man City", "Manchester City", "soccer_epl"),
        ("Man Utd", "Manchester United", "soccer_epl"),
        ("Man United", "Manchester United", "soccer_epl"),
        ("Spurs", "Tottenham Hotspur", "soccer_epl"),
        ("Tottenham", "Tottenham Hotspur", "soccer_epl"),
        ("Wolves", "Wolverhampton Wanderers", "soccer_epl"),
        ("Nott'm Forest", "Nottingham Forest", "soccer_epl"),
        ("Brighton & Hove Albion", "Brighton and Hove Albion", "soccer_epl"),
        ("Brighton", "Brighton and Hove Albion", "soccer_epl"),
        ("AFC Bournemouth", "Bournemouth", "soccer_epl"),
        ("Inter", "Inter Milan", "soccer_italy_serie_a"),
        ("Internazionale", "Inter Milan", "soccer_italy_serie_a"),
        ("Bayern München", "Bayern Munich", "soccer_germany_bundesliga"),
        ("Atlético Madrid", "Atletico Madrid", "soccer_spain_la_liga"),
        ("St. John's", "St Johns Red Storm", "basketball_ncaab"),
        ("Ohio St.", "Ohio State Buckeyes", "basketball_ncaab"),
        ("Texas A&M", "Texas A&M Aggies", "basketball_ncaab"),
        ("UConn", "UConn Huskies", "basketball_ncaab"),
        ("Connecticut", "UConn Huskies", "basketball_ncaab"),
        ("St. Louis", "St Louis Blues", "icehockey_nhl"),
        ("Montreal", "Montréal Canadiens", "icehockey_nhl"),
        ("The Citadel", "Citadel Bulldogs", "basketball_ncaab"),
    ],
)
def test_name_variants_match(kalshi: str, odds: str, sport: str) -> None:
    assert team_score(kalshi, odds, sport) >= MatchParams().min_score


@pytest.mark.parametrize(
    ("kalshi", "odds", "sport"),
    [
        ("Los Angeles C", "Los Angeles Lakers", ""),  # same city, the other team
        ("Los Angeles L", "LA Clippers", ""),
        ("New York R", "New York Islanders", ""),
        ("Kansas", "Kansas State Wildcats", ""),  # another school
        ("Texas", "Texas A&M Aggies", ""),
        ("Texas", "Texas Tech Red Raiders", ""),
        ("Michigan", "Central Michigan Chippewas", ""),
        ("Miami", "Miami (OH) RedHawks", ""),
        ("Kansas St.", "Kansas Jayhawks", ""),
        ("Spurs", "Tottenham Hotspur", "basketball_nba"),  # the alias is soccer's only
        ("Man City", "Manchester United", "soccer_epl"),
        ("Sheffield", "Sheffield Wednesday", "soccer_efl_champ"),
    ],
)
def test_near_miss_names_do_not_match(kalshi: str, odds: str, sport: str) -> None:
    assert team_score(kalshi, odds, sport) < MatchParams().min_score


def test_exact_beats_partial_and_normalisation_is_symmetric() -> None:
    assert team_score("Boston Celtics", "Boston Celtics") == 1.0
    assert team_score("Boston", "Boston Celtics") < 1.0
    assert normalise_name("Brighton & Hove Albion") == normalise_name("Brighton and Hove Albion")
    # A club word is dropped in front only: "Los Angeles FC" is not "Los Angeles" (Galaxy).
    assert normalise_name("FC Barcelona") == normalise_name("Barcelona")
    assert normalise_name("Los Angeles FC") == ("los", "angeles", "fc")
    assert team_score("Brighton & Hove Albion FC", "Brighton and Hove Albion") >= 0.9
    assert team_score("Los Angeles FC", "LA Galaxy", "soccer_usa_mls") == 0.0
    assert normalise_name("St. Mary's") == ("saint", "marys")
    assert normalise_name("Michigan St.") == ("michigan", "state")


# --------------------------------------------------------------------------- tickers


def test_ticker_date_codes_are_eastern() -> None:
    assert ticker_start("KXNBAGAME-26MAR31NYKHOU") == (datetime(2026, 3, 31, 4, tzinfo=UTC), False)
    assert ticker_start("KXMLBGAME-26APR291840COLCIN") == (
        datetime(2026, 4, 29, 22, 40, tzinfo=UTC),
        True,
    )
    # Winter: EST is UTC−5.
    assert ticker_start("KXEPLGAME-26JAN101500ARSCHE") == (
        datetime(2026, 1, 10, 20, 0, tzinfo=UTC),
        True,
    )
    assert ticker_start("KXNBAGAME") is None
    assert ticker_start("KXNBAGAME-26FOO31NYKHOU") is None
    assert ticker_start("KXNBAGAME-26FEB30NYKHOU") is None


# --------------------------------------------------------------------------- games


def test_match_gives_team_a_as_away_whatever_the_order_of_the_markets() -> None:
    events = [event("New York Knicks", "Houston Rockets")]
    straight = game(("NYK", "New York"), ("HOU", "Houston"))
    # The markets listed the other way round, as a REST page may return them.
    swapped = dataclasses.replace(straight, markets=straight.markets[::-1])
    for g in (straight, swapped):
        report = match_games([g], events)
        assert not report.unmatched
        (m,) = report.matches
        assert (m.team_a, m.team_b) == (
            "KXNBAGAME-26MAR31NYKHOU-NYK",
            "KXNBAGAME-26MAR31NYKHOU-HOU",
        )
        assert m.outcome_names == ("New York Knicks", "Houston Rockets")
        assert dict(m.outcomes) == {
            "KXNBAGAME-26MAR31NYKHOU-NYK": "New York Knicks",
            "KXNBAGAME-26MAR31NYKHOU-HOU": "Houston Rockets",
        }
        assert m.tie is None
        assert m.start_source == "occurrence"


def test_home_and_away_listed_the_other_way_round_on_kalshi_still_match() -> None:
    # Kalshi's ticker says NYK at HOU, the book says HOU at NYK: the names decide.
    report = match_games(
        [game(("NYK", "New York"), ("HOU", "Houston"))],
        [event("Houston Rockets", "New York Knicks")],
    )
    (m,) = report.matches
    assert m.team_a == "KXNBAGAME-26MAR31NYKHOU-HOU"
    assert m.outcome_names == ("Houston Rockets", "New York Knicks")


def test_same_city_teams_are_told_apart_by_kalshis_truncated_names() -> None:
    lakers = game(("LAL", "Los Angeles L"), ("BOS", "Boston"))
    clippers = game(("LAC", "Los Angeles C"), ("BOS", "Boston"), date="26APR01")
    clippers = dataclasses.replace(clippers, start_time=START + timedelta(days=1))
    events = [
        event("Los Angeles Lakers", "Boston Celtics"),
        event("LA Clippers", "Boston Celtics", START + timedelta(days=1)),
    ]
    report = match_games([lakers, clippers], events)
    assert not report.unmatched
    assert {m.game.event_ticker: m.event.away_team for m in report.matches} == {
        lakers.event_ticker: "Los Angeles Lakers",
        clippers.event_ticker: "LA Clippers",
    }


def test_soccer_tie_market_maps_to_the_draw() -> None:
    g = game(("MCI", "Man City"), ("MUN", "Man United"), series="KXEPLGAME", tie=True)
    report = match_games([g], [event("Manchester City", "Manchester United", sport="soccer_epl")])
    (m,) = report.matches
    assert m.tie == g.event_ticker + "-TIE"
    assert m.tickers == (g.event_ticker + "-MCI", g.event_ticker + "-MUN", g.event_ticker + "-TIE")
    assert m.outcome_names == ("Manchester City", "Manchester United", "Draw")
    assert report.by_ticker()[g.event_ticker + "-TIE"] is m


@pytest.mark.parametrize(
    ("offset", "start_known", "matched"),
    [
        (timedelta(minutes=0), True, True),
        (timedelta(minutes=45), True, True),
        (timedelta(minutes=-59), True, True),
        (timedelta(hours=2), True, False),
        (timedelta(days=1), True, False),
        # Only the date (26MAR31, Eastern) known: any time that day, ±3 h.
        (timedelta(hours=4), False, True),  # 03:30Z = 23:30 EDT on the 31st
        (timedelta(hours=-19), False, True),  # 04:30Z on the 31st = 00:30 EDT on the 31st
        # The day opens at Eastern midnight: 21:30 EDT on the 30th is the day before's game
        # (a back-to-back), however close.
        (timedelta(hours=-22), False, False),
        (timedelta(hours=-27), False, False),
        (timedelta(days=1), False, False),  # right teams, a day off
    ],
)
def test_start_time_tolerance(offset: timedelta, start_known: bool, matched: bool) -> None:
    g = game(("NYK", "New York"), ("HOU", "Houston"), start=START if start_known else None)
    report = match_games([g], [event("New York Knicks", "Houston Rockets", START + offset)])
    assert bool(report.matches) is matched
    if not matched:
        (u,) = report.unmatched
        assert u.reason is Reason.NO_EVENT_IN_WINDOW
        assert "no basketball_nba event starts between" in u.detail


def test_ticker_time_is_used_when_there_is_no_occurrence() -> None:
    g = KalshiGame(
        "KXMLBGAME-26MAR311930NYYBOS",
        "KXMLBGAME",
        None,
        (
            ("KXMLBGAME-26MAR311930NYYBOS-NYY", "New York Y"),
            ("KXMLBGAME-26MAR311930NYYBOS-BOS", "Boston"),
        ),
    )
    first = event("New York Yankees", "Boston Red Sox", START, "baseball_mlb", "game1")
    second = event("New York Yankees", "Boston Red Sox", START + timedelta(hours=4), "baseball_mlb")
    report = match_games([g], [first, second])
    (m,) = report.matches
    assert m.event.id == "game1"
    assert m.start_source == "ticker time"


def test_a_doubleheader_known_only_by_date_is_ambiguous() -> None:
    g = game(("NYY", "New York Y"), ("BOS", "Boston"), series="KXMLBGAME", start=None)
    events = [
        event("New York Yankees", "Boston Red Sox", START - timedelta(hours=5), "baseball_mlb"),
        event("New York Yankees", "Boston Red Sox", START, "baseball_mlb"),
    ]
    report = match_games([g], events)
    assert not report.matches
    (u,) = report.unmatched
    assert u.reason is Reason.AMBIGUOUS
    assert len(u.candidates) == 2
    assert "2 events fit" in u.detail


def test_a_known_start_decides_between_rematches_only_when_one_is_close() -> None:
    g = game(("NYK", "New York"), ("HOU", "Houston"))
    near = event("New York Knicks", "Houston Rockets", START + timedelta(minutes=5))
    other = event("Houston Rockets", "New York Knicks", START + timedelta(minutes=50))
    (m,) = match_games([g], [near, other]).matches
    assert m.event is near
    # Both close: the ticker's order of the teams (away first) settles it when only one
    # event lists them that way round...
    swapped = event("Houston Rockets", "New York Knicks", START - timedelta(minutes=10))
    (m,) = match_games([g], [near, swapped]).matches
    assert m.event is near
    assert not m.venue_swapped
    # ...and when both do, nothing is guessed.
    twin = event("New York Knicks", "Houston Rockets", START - timedelta(minutes=10), event_id="x")
    (u,) = match_games([g], [near, twin]).unmatched
    assert u.reason is Reason.AMBIGUOUS


def test_two_kalshi_games_claiming_one_event_are_both_reported() -> None:
    g1 = game(("NYK", "New York"), ("HOU", "Houston"))
    g2 = dataclasses.replace(
        g1,
        event_ticker=g1.event_ticker + "G2",
        markets=tuple((t.replace("HOU-", "HOUG2-"), n) for t, n in g1.markets),
    )
    report = match_games([g1, g2], [event("New York Knicks", "Houston Rockets")])
    assert not report.matches
    assert [u.reason for u in report.unmatched] == [Reason.AMBIGUOUS, Reason.AMBIGUOUS]
    assert "also the best fit of" in report.unmatched[0].detail


def test_unmatched_report_says_why() -> None:
    games = [
        game(("VIT", "Vitality"), ("NAVI", "Natus Vincere"), series="KXCS2GAME"),
        game(("AAA", "Foo"), ("BBB", "Bar"), series="KXCHESSGAME"),
        game(("NYK", "New York"), ("HOU", "Houston")),
        game(("DAL", "Dallas"), ("PHX", "Phoenix")),
        KalshiGame("KXNBAGAME-26MAR31DALPHX", "KXNBAGAME", START, (("X-DAL", "Dallas"),)),
    ]
    events = [event("Denver Nuggets", "Phoenix Suns")]  # Phoenix plays someone else
    report = match_games(games, events)
    reasons = {u.game.series_ticker + ":" + u.game.markets[0][1]: u for u in report.unmatched}
    assert reasons["KXCS2GAME:Vitality"].reason is Reason.SPORT_NOT_MAPPED
    assert "no odds_sport" in reasons["KXCS2GAME:Vitality"].detail
    assert reasons["KXCHESSGAME:Foo"].reason is Reason.SPORT_NOT_MAPPED
    assert "in no sport profile" in reasons["KXCHESSGAME:Foo"].detail
    assert reasons["KXNBAGAME:New York"].reason is Reason.NAMES_NOT_RECOGNISED
    assert reasons["KXNBAGAME:Dallas"].reason is Reason.BAD_GAME
    assert len(report.unmatched) == 5
    assert "Denver Nuggets at Phoenix Suns" in reasons["KXNBAGAME:New York"].detail
    assert report.summary().startswith("0 matched, 5 not matched")


def test_only_events_of_the_series_sport_are_candidates() -> None:
    g = game(("BOS", "Boston"), ("NYK", "New York"))  # NBA
    report = match_games([g], [event("Boston Bruins", "New York Rangers", sport="icehockey_nhl")])
    assert report.unmatched[0].reason is Reason.NO_EVENT_IN_WINDOW


# --------------------------------------------------------------------------- the simulator


NOW = 1_700_000_000.0


@pytest.mark.parametrize("seed", [1, 7, 11])
def test_every_game_of_the_default_scenario_matches(seed: int) -> None:
    """End to end on the simulator's wire names: Kalshi REST market JSON on one side, the
    embedded Odds API's /odds JSON on the other."""
    scenario = build_scenario("default", seed=seed, now=NOW)
    clock = VirtualClock(NOW + 60)
    exchange = Exchange.from_scenario(scenario, clock)
    feed = OddsFeed(scenario, clock, seed=1)
    games = [
        KalshiGame.from_markets([market_json(exchange.markets[t]) for t in e.markets])
        for e in exchange.events.values()
    ]
    events: list[OddsEvent] = []
    for sport in {g.sport.odds_sport for g in scenario.games if g.sport.odds_sport}:
        board = parse_board(feed.odds(sport, bookmakers="pinnacle"), sport, datetime.now(UTC))
        events += board.events
    report = match_games(games, events)
    assert report.unmatched == (), report.summary()
    assert len(report.matches) == len(scenario.games)
    for m in report.matches:
        truth = scenario.game(m.game.event_ticker)
        assert m.event.id == truth.odds_event_id
        assert m.tickers == tuple(o.ticker for o in truth.outcomes)  # away, home[, tie]
        assert m.outcome_names == tuple(o.odds_name for o in truth.outcomes)
