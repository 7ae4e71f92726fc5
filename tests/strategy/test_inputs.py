"""Decide's inputs built from the configuration: the parameters and the quoting problem, as
the engine's game runtime uses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kmm_interactive.config import (
    Config,
    QuotingConfig,
    RiskConfig,
    Seconds,
    SportProfile,
    TheoConfig,
)
from kmm_interactive.domain import FeeType, Game, Market, PriceGrid, SeriesFees
from kmm_interactive.engine.game import GameRuntime
from kmm_interactive.pricing.intensity import IntensityPrior
from kmm_interactive.pricing.quote_table import BookInputs, QuoteProblem
from kmm_interactive.strategy.inputs import quote_params, quote_problem
from kmm_interactive.strategy.quoter import QuoteParams

NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
CENT = PriceGrid.linear_cent()
MAKER = SeriesFees(FeeType.QUADRATIC_WITH_MAKER_FEES)
EVENT = "KXNBAGAME-26DEC04BOSLAL"
A = Market(f"{EVENT}-BOS", EVENT, "Boston", CENT, MAKER)
B = Market(f"{EVENT}-LAL", EVENT, "Los Angeles L", CENT, MAKER)
PROFILE = SportProfile(
    gamma=0.03, cap=60, liquidity_factor=2.0, min_edge=Decimal("0.02"), sigma=5e-5, quote_size=10
)
CONFIG = Config(
    risk=RiskConfig(over_exposed=0.4, start_buffer=Seconds(120.0)),
    quoting=QuotingConfig(
        min_rest=Seconds(3.0), back_off_hold=Seconds(20.0), horizon=Seconds(7200.0), tau_points=32
    ),
    theo=TheoConfig(max_age=Seconds(3600.0)),
)
INTENSITY = {A.ticker: IntensityPrior(0.04, 0.6), B.ticker: IntensityPrior(0.02, 0.3)}


def test_quote_params_take_the_profile_and_the_config() -> None:
    assert quote_params(CONFIG, PROFILE) == QuoteParams(
        cap=60,
        quote_size=10,
        min_edge=Decimal("0.02"),
        liquidity_factor=2.0,
        over_exposed=0.4,
        min_rest=3.0,
        back_off_hold=20.0,
        start_buffer=120.0,
        theo_max_age=3600.0,
    )


def test_a_two_team_problem_quotes_book_b_at_one_minus_p() -> None:
    problem = quote_problem((A, B), 0.6, INTENSITY, PROFILE, CONFIG.quoting)
    assert problem == QuoteProblem(
        book_a=BookInputs(CENT, 0.6, 0.04, 0.6, MAKER),
        book_b=BookInputs(CENT, 1.0 - 0.6, 0.02, 0.3, MAKER),
        gamma=0.03,
        q_max=60,
        sigma=5e-5,
        horizon=7200.0,
        n_tau=32,
    )


def test_a_single_market_problem_and_no_problem_without_a_usable_theo() -> None:
    single = quote_problem((B,), 0.3, INTENSITY, PROFILE, CONFIG.quoting)
    assert single is not None
    assert single.book_a == BookInputs(CENT, 0.3, 0.02, 0.3, MAKER)
    assert single.book_b is None
    for p in (None, 0.0, 1.0, -0.1, float("nan")):
        assert quote_problem((A, B), p, INTENSITY, PROFILE, CONFIG.quoting) is None
    with pytest.raises(ValueError, match="one market or two"):
        quote_problem((A, B, A), 0.5, INTENSITY, PROFILE, CONFIG.quoting)


def test_the_game_runtime_builds_the_same_inputs() -> None:
    game = Game(EVENT, "nba", NOW + timedelta(hours=2), A, B)
    g = GameRuntime(game, "nba", PROFILE, CONFIG)
    g.set_params(A.ticker, A=0.04, k=0.6)
    g.set_params(B.ticker, A=0.02, k=0.3)
    assert g.quote_params() == quote_params(CONFIG, PROFILE)
    assert g.problem(0) is None  # no theo yet
    g.set_theo({A.ticker: 0.6, B.ticker: 0.4}, NOW)
    assert g.problem(0) == quote_problem((A, B), 0.6, INTENSITY, PROFILE, CONFIG.quoting)
