"""The optional layers: fill-rate-adaptive spread, book imbalance, flow toxicity, and how
their ticks combine into ``UnitState.widen`` and reach ``decide``."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmm_interactive.domain import FeeType, Game, GameSide, Leg, Market, PriceGrid, SeriesFees
from kmm_interactive.pricing.quote_table import BookInputs, QuoteModel, QuoteProblem, QuoteTable
from kmm_interactive.strategy.layers import (
    BookDepth,
    FillRateConfig,
    FillWindow,
    ImbalanceConfig,
    ToxicityConfig,
    combine,
    fill_rate_step,
    fill_rate_ticks,
    imbalance_ticks,
    toxicity_ticks,
)
from kmm_interactive.strategy.quoter import BookView, GameState, QuoteParams, UnitState, decide

D = Decimal
BID_A, ASK_A, BID_B, ASK_B = GameSide.BID_A, GameSide.ASK_A, GameSide.BID_B, GameSide.ASK_B
CONFIG = FillRateConfig()  # slow ≤ 0.5× (300 s, 3 expected), fast ≥ 2× (3 fills), ±2


def window(fills: int, seconds: float, distance: float = 2.0) -> FillWindow:
    """A = 0.05/s, k = 0.5/¢: at 2¢ the model expects 0.05·e^(−1) ≈ 0.0184 fills a second,
    about 11 over 600 s."""
    return FillWindow(fills=fills, quoted_seconds=seconds, A=0.05, k=0.5, distance=distance)


# --------------------------------------------------------------------------- fill rate


def test_the_expected_rate_is_the_tables_intensity() -> None:
    w = window(0, 600.0)
    assert w.expected_rate == pytest.approx(0.05 * math.exp(-1.0))
    assert w.expected_fills == pytest.approx(600 * 0.05 * math.exp(-1.0))
    assert window(0, 1.0, distance=-3.0).expected_rate == pytest.approx(0.05 * math.exp(1.5))


def test_too_few_fills_after_enough_quoting_tightens_one_tick() -> None:
    assert fill_rate_step(window(0, 600.0), CONFIG) == -1
    assert fill_rate_step(window(5, 600.0), CONFIG) == -1  # 5 ≤ 0.5 × 11.0
    assert fill_rate_ticks({BID_A: window(2, 600.0)}, CONFIG) == {BID_A: -1}


def test_not_enough_quoting_time_to_judge_a_slow_side() -> None:
    assert fill_rate_step(window(0, 299.0), CONFIG) == 0
    assert fill_rate_step(window(0, 300.0), CONFIG) == -1
    # The model expecting almost nothing (a quote far out): no fills is no evidence.
    assert fill_rate_step(window(0, 3600.0, distance=100.0), FillRateConfig(slow_ratio=0)) == 0
    assert window(0, 3600.0, distance=8.5).expected_fills < 3.0  # ≈ 2.56
    assert fill_rate_step(window(0, 3600.0, distance=8.5), CONFIG) == 0
    assert fill_rate_step(window(0, 3600.0, distance=8.0), CONFIG) == -1  # ≈ 3.30


def test_fills_much_faster_than_expected_widen_one_tick() -> None:
    assert fill_rate_step(window(30, 600.0), CONFIG) == 1  # 30 ≥ 2 × 11.0
    assert fill_rate_step(window(22, 600.0), CONFIG) == 0  # 22 < 22.07: just not fast
    # Fast but too few fills to mean anything, then enough.
    assert fill_rate_step(window(2, 10.0), CONFIG) == 0
    assert fill_rate_step(window(3, 10.0), CONFIG) == 1


def test_a_rate_near_the_models_is_neutral() -> None:
    assert fill_rate_step(window(11, 600.0), CONFIG) == 0
    assert fill_rate_step(window(6, 600.0), CONFIG) == 0  # 6 > 0.5 × 11.0
    assert fill_rate_ticks({ASK_B: window(11, 600.0)}, CONFIG, {ASK_B: 1}) == {ASK_B: 1}


def test_the_offset_steps_once_per_call_and_stays_within_max_ticks() -> None:
    slow = {BID_A: window(0, 600.0)}
    offset: dict[GameSide, int] = {}
    path = []
    for _ in range(4):
        offset = fill_rate_ticks(slow, CONFIG, offset)
        path.append(offset[BID_A])
    assert path == [-1, -2, -2, -2]
    fast = {BID_A: window(40, 600.0)}
    path = []
    for _ in range(5):
        offset = fill_rate_ticks(fast, CONFIG, offset)
        path.append(offset[BID_A])
    assert path == [-1, 0, 1, 2, 2]
    # A side without a window keeps its offset, clamped into the bounds.
    assert fill_rate_ticks({}, CONFIG, {ASK_A: 5, BID_B: -1}) == {ASK_A: 2, BID_B: -1}
    with pytest.raises(ValueError, match=r"current\[bid A\] = 0.5: .* whole ticks"):
        fill_rate_ticks({}, CONFIG, {BID_A: 0.5})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("slow_ratio", 1.0, "FillRateConfig.slow_ratio = 1.0: must be in [0, 1)"),
        ("slow_ratio", -0.1, "FillRateConfig.slow_ratio = -0.1: must be in [0, 1)"),
        ("fast_ratio", 1.0, "FillRateConfig.fast_ratio = 1.0: must be a finite number > 1"),
        ("fast_ratio", math.inf, "FillRateConfig.fast_ratio = inf: must be a finite number > 1"),
        ("min_quoted_seconds", 0.0, "FillRateConfig.min_quoted_seconds = 0.0: must be > 0"),
        ("min_expected_fills", 0.0, "FillRateConfig.min_expected_fills = 0.0: must be a finite"),
        ("min_fills", 0, "FillRateConfig.min_fills = 0: must be an integer >= 1"),
        ("max_ticks", 0, "FillRateConfig.max_ticks = 0: must be an integer >= 1"),
        ("max_ticks", True, "FillRateConfig.max_ticks = True: must be an integer >= 1"),
    ],
)
def test_a_bad_fill_rate_config_names_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        FillRateConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("fills", -1, "FillWindow.fills = -1: must be an integer >= 0"),
        ("quoted_seconds", math.nan, "FillWindow.quoted_seconds = nan: must be a finite"),
        ("A", 0.0, "FillWindow.A = 0.0: fills per second at theo must be a finite number > 0"),
        ("k", -1.0, "FillWindow.k = -1.0: decay per cent must be a finite number > 0"),
        ("distance", 101.0, "FillWindow.distance = 101.0: cents from theo must be in"),
    ],
)
def test_a_bad_fill_window_names_the_field(field: str, value: Any, message: str) -> None:
    good: dict[str, Any] = {"fills": 0, "quoted_seconds": 1.0, "A": 1.0, "k": 1.0, "distance": 0}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        FillWindow(**{**good, field: value})


# --------------------------------------------------------------------------- imbalance


def test_heavy_bids_raise_both_quotes_of_that_book() -> None:
    config = ImbalanceConfig()  # |imbalance| > 0.6, at least 10 contracts
    ticks = imbalance_ticks({Leg.A: BookDepth(D(90), D(10))}, config)  # imbalance 0.8
    assert ticks == {BID_A: -1, ASK_A: 1}  # bid tighter, ask wider: both a tick up


def test_heavy_asks_lower_both_quotes_of_that_book_only() -> None:
    depths = {Leg.A: BookDepth(D(50), D(50)), Leg.B: BookDepth(D(5), D(95))}
    assert imbalance_ticks(depths, ImbalanceConfig()) == {BID_B: 1, ASK_B: -1}
    assert imbalance_ticks(depths, ImbalanceConfig(ticks=2)) == {BID_B: 2, ASK_B: -2}


def test_a_balanced_thin_or_empty_book_is_neutral() -> None:
    config = ImbalanceConfig()
    assert imbalance_ticks({Leg.A: BookDepth(D(70), D(30))}, config) == {}  # 0.4
    assert imbalance_ticks({Leg.A: BookDepth(D(80), D(20))}, config) == {}  # exactly 0.6
    assert imbalance_ticks({Leg.A: BookDepth(D(81), D(19))}, config) == {BID_A: -1, ASK_A: 1}
    assert imbalance_ticks({Leg.A: BookDepth(D(9), D(0))}, config) == {}  # below min_depth
    assert imbalance_ticks({Leg.A: BookDepth(D(0), D(0))}, config) == {}
    assert BookDepth(D(0), D(0)).imbalance is None
    assert BookDepth(D(3), D(1)).imbalance == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("threshold", 0.0, "ImbalanceConfig.threshold = 0.0: must be in (0, 1)"),
        ("threshold", 1.0, "ImbalanceConfig.threshold = 1.0: must be in (0, 1)"),
        ("min_depth", D(-1), "ImbalanceConfig.min_depth = Decimal('-1'): must be a finite"),
        ("min_depth", 10, "ImbalanceConfig.min_depth = 10: must be a finite Decimal >= 0"),
        ("ticks", 0, "ImbalanceConfig.ticks = 0: must be an integer >= 1"),
    ],
)
def test_a_bad_imbalance_config_names_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        ImbalanceConfig(**{field: value})
    with pytest.raises(ValueError, match=r"^BookDepth.ask = Decimal\('-1'\): must be"):
        BookDepth(D(1), D(-1))


# --------------------------------------------------------------------------- toxicity


def test_adverse_markouts_widen_every_side_one_tick_per_threshold() -> None:
    config = ToxicityConfig()  # last 10 fills, at least 5, 1¢ per tick, at most 2
    assert toxicity_ticks([-1.5] * 6, config) == dict.fromkeys(GameSide, 1)
    assert toxicity_ticks([-2.5] * 10, config) == dict.fromkeys(GameSide, 2)
    assert toxicity_ticks([-40.0] * 10, config) == dict.fromkeys(GameSide, 2)  # bounded
    single = toxicity_ticks([-3.0] * 5, ToxicityConfig(max_ticks=5), (BID_A, ASK_A))
    assert single == {BID_A: 3, ASK_A: 3}


def test_benign_thin_or_old_markouts_are_neutral() -> None:
    config = ToxicityConfig()
    assert toxicity_ticks([-1.0] * 10, config) == {}  # exactly −threshold: not worse
    assert toxicity_ticks([2.0, -4.0] * 5, config) == {}  # mean −1
    assert toxicity_ticks([0.5] * 10, config) == {}  # in our favour
    assert toxicity_ticks([-5.0] * 4, config) == {}  # fewer than min_fills
    assert toxicity_ticks([-9.0] * 10 + [0.0] * 10, config) == {}  # the bad ones aged out
    assert toxicity_ticks([0.0] * 10 + [-9.0] * 5, config) == dict.fromkeys(GameSide, 2)
    with pytest.raises(ValueError, match=r"^markouts\[-1\] = nan: must be finite"):
        toxicity_ticks([-1.0, math.nan], config)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("window", 0, "ToxicityConfig.window = 0: must be an integer >= 1"),
        ("min_fills", 11, "ToxicityConfig.min_fills = 11: must be an integer in 1 … window (10)"),
        ("min_fills", 0, "ToxicityConfig.min_fills = 0: must be an integer in 1 … window (10)"),
        ("threshold", 0.0, "ToxicityConfig.threshold = 0.0: cents must be a finite number > 0"),
        ("max_ticks", 0, "ToxicityConfig.max_ticks = 0: must be an integer >= 1"),
    ],
)
def test_a_bad_toxicity_config_names_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ToxicityConfig(**{field: value})


# --------------------------------------------------------------------------- combining


def test_combine_adds_per_side_and_clamps() -> None:
    fills = {BID_A: -1, ASK_A: 1}
    book = {BID_A: -1, ASK_A: 1, BID_B: 1}
    toxic = dict.fromkeys(GameSide, 2)
    assert combine(fills, book, toxic) == {ASK_A: 3, BID_B: 3, ASK_B: 2}  # BID_A nets to 0
    assert combine(fills, book, toxic, limit=2) == {ASK_A: 2, BID_B: 2, ASK_B: 2}
    assert combine({BID_A: -7}, limit=3) == {BID_A: -3}
    assert combine(toxic, limit=0) == {}
    assert combine() == {}
    with pytest.raises(ValueError, match=r"^limit = -1: must be an integer >= 0$"):
        combine(fills, limit=-1)
    with pytest.raises(ValueError, match=r"^adjustments\[1\]\[ask A\] = 1.0: must be whole"):
        combine(fills, {ASK_A: 1.0})  # type: ignore[dict-item]


@given(
    st.lists(
        st.dictionaries(st.sampled_from(list(GameSide)), st.integers(-10, 10), max_size=4),
        max_size=5,
    ),
    st.integers(0, 6),
)
def test_combine_never_exceeds_its_limit(
    adjustments: list[dict[GameSide, int]], limit: int
) -> None:
    out = combine(*adjustments, limit=limit)
    assert all(0 < abs(t) <= limit for t in out.values())
    for side, ticks in out.items():
        raw = sum(a.get(side, 0) for a in adjustments)
        assert ticks == max(-limit, min(limit, raw))


def test_layers_reach_decide_through_the_widen_hook() -> None:
    now = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
    cent, maker = PriceGrid.linear_cent(), SeriesFees(FeeType.QUADRATIC_WITH_MAKER_FEES)
    event = "KXNBAGAME-26DEC04BOSLAL"
    a = Market(f"{event}-BOS", event, "Boston", cent, maker)
    b = Market(f"{event}-LAL", event, "Los Angeles L", cent, maker)
    game = Game(event, "nba", now + timedelta(hours=2), a, b)
    problem = QuoteProblem(
        book_a=BookInputs(cent, 0.48, 0.05, 0.5, maker),
        book_b=BookInputs(cent, 0.52, 0.05, 0.5, maker),
        gamma=0.02,
        q_max=10,
    )
    row = [cent.tick(D(p)) for p in ("0.42", "0.54", "0.46", "0.58")]
    table = QuoteTable(
        problem,
        QuoteModel.HJB,
        np.array([0.0, 1e9]),
        np.tile(np.array(row, dtype=np.int32), (2, 21, 1)),
    )
    params = QuoteParams(100, 25, D("0.01"), 10.0, 0.5, 2.0, 30.0, 300.0, 2700.0)
    widen = combine(
        fill_rate_ticks({BID_A: window(0, 600.0)}, CONFIG),  # bid A slow: −1
        imbalance_ticks({Leg.B: BookDepth(D(95), D(5))}, ImbalanceConfig()),  # B bids heavy
        toxicity_ticks([0.0] * 10, ToxicityConfig()),  # benign
    )
    assert widen == {BID_A: -1, BID_B: -1, ASK_B: 1}
    deep = BookView(depth=D(10_000))
    unit = UnitState((a, b), (deep, deep), table, widen=widen)
    quotes = decide(GameState(game, (unit,), now), params, now).quotes
    got = {s: str(quotes[(a if s.leg is Leg.A else b).ticker, s.side].price) for s in GameSide}
    assert got == {BID_A: "0.43", ASK_A: "0.54", BID_B: "0.47", ASK_B: "0.59"}
