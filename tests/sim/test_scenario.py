"""Scenarios: tickers as Kalshi prints them, compression, the truth path, determinism."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from kmm_interactive.config import DEFAULT_SPORTS
from kmm_interactive.sim.scenario import MIXES, build_scenario

NOW = datetime(2026, 11, 21, 17, 0, tzinfo=UTC).timestamp()  # noon in New York


def test_tickers_follow_kalshis_pattern() -> None:
    scn = build_scenario("default", seed=7, now=NOW)
    for g in scn.games:
        series = g.sport.series
        assert series in DEFAULT_SPORTS[g.sport.key].series
        time_part = r"\d{4}" if g.sport.time_in_ticker else ""
        assert re.fullmatch(
            rf"{series}-26NOV21{time_part}{g.away.code}{g.home.code}", g.event_ticker
        )
        codes = [o.ticker.rsplit("-", 1)[1] for o in g.outcomes]
        assert codes == [g.away.code, g.home.code] + (["TIE"] if g.sport.draw else [])
        assert g.sport.odds_sport == DEFAULT_SPORTS[g.sport.key].odds_sport
    assert any(g.sport.draw and len(g.outcomes) == 3 for g in scn.games)


def test_compression_brings_the_day_closer_and_scales_the_flow() -> None:
    slow = build_scenario("default", seed=7, now=NOW, speed=1)
    fast = build_scenario("default", seed=7, now=NOW, speed=60)
    assert [g.event_ticker.split("-")[0] for g in slow.games] == [
        g.event_ticker.split("-")[0] for g in fast.games
    ]
    for a, b in zip(slow.games, fast.games, strict=True):
        assert b.start - NOW == pytest.approx((a.start - NOW) / 60)
        assert b.end - b.start == pytest.approx((a.end - a.start) / 60)
        assert b.A == pytest.approx(a.A * 60)
        assert a.k == b.k
    assert fast.games[0].start - NOW == pytest.approx(1200 / 60)  # a start comes soon


def test_truth_paths_are_probabilities_that_end_in_the_drawn_result() -> None:
    scn = build_scenario("day", seed=11, now=NOW, speed=30)
    assert len(scn.games) == sum(MIXES["day"].values())
    for g in scn.games:
        for probs in g.path.probs:
            assert sum(probs) == pytest.approx(1.0)
            assert all(0.0 <= p <= 1.0 for p in probs)
        final = g.path.at(g.end)
        assert final[g.result_index] == 1.0
        assert g.truth(g.outcomes[0].ticker, NOW) == g.path.probs[0][0]
    for jump in scn.news:
        g = scn.game(jump.event_ticker)
        assert NOW < jump.time < g.start
        assert g.path.at(jump.time) == jump.after
        assert jump.before != jump.after


def test_same_seed_same_scenario_other_seed_other() -> None:
    a = build_scenario("default", seed=3, now=NOW, speed=30)
    assert a == build_scenario("default", seed=3, now=NOW, speed=30)
    assert a != build_scenario("default", seed=4, now=NOW, speed=30)


def test_many_games_get_distinct_tickers() -> None:
    scn = build_scenario("default", seed=1, now=NOW, speed=30, n_games=200)
    tickers = [o.ticker for g in scn.games for o in g.outcomes]
    assert len(scn.games) == 200
    assert len(set(tickers)) == len(tickers)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "mars"}, "scenario 'mars' is unknown"),
        ({"speed": 0}, "speed = 0"),
        ({"speed": float("nan")}, "speed = nan"),
        ({"n_games": 0}, "n_games = 0"),
        ({"first_start": 10, "last_start": 5}, "first_start"),
    ],
)
def test_bad_arguments_say_what_is_allowed(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        build_scenario(now=NOW, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("moment", ["pre_game", "half_time"])
def test_the_truth_is_calibrated_a_team_at_60_percent_wins_60_percent(moment: str) -> None:
    scn = build_scenario("small", seed=5, now=NOW, speed=1, n_games=4000)
    bins: dict[int, list[tuple[float, bool]]] = {}
    for g in scn.games:
        t = g.start - 1 if moment == "pre_game" else (g.start + g.end) / 2
        for o in g.outcomes:
            p = g.path.at(t)[o.index]
            bins.setdefault(min(int(p * 5), 4), []).append((p, o.index == g.result_index))
    for b, rows in sorted(bins.items()):
        n = len(rows)
        mean_p = sum(p for p, _ in rows) / n
        won = sum(w for _, w in rows) / n
        se = max((mean_p * (1 - mean_p) / n) ** 0.5, 1e-3)
        assert abs(won - mean_p) < 4 * se, f"bin {b}: priced {mean_p:.3f}, won {won:.3f}, n={n}"
    draws = [g for g in scn.games if g.sport.draw]
    priced = sum(g.path.at(g.start - 1)[2] for g in draws) / len(draws)
    drawn = sum(g.result_index == 2 for g in draws) / len(draws)
    assert 0.2 < priced < 0.3
    assert abs(drawn - priced) < 0.04
