"""The lab's figures: built from real tiny lab runs, they show what the results tables say."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest

from kmm_interactive.sim import lab, lab_plots
from kmm_interactive.sim.lab_results import LabResults

SEEDS = (1, 2, 3)
TINY = lab.LabScenario(
    "t",
    mix="day",
    games=2,
    agents=lab.SCENARIOS["news"].agents,
    news_rate=lab.SCENARIOS["news"].news_rate,
    first_start=600.0,
    last_start=1800.0,
)
GRID = [
    lab.LabConfig(params={"nba": {"gamma": g, "prior_k": k}}, label=f"γ={g} k={k}")
    for g in (0.01, 0.05)
    for k in (0.3, 1.0)
]


@pytest.fixture(scope="module")
def strategies() -> LabResults:
    configs = [lab.LabConfig(strategy=s) for s in (lab.Strategy.HJB, lab.Strategy.TOB)]
    return lab.sweep(configs, SEEDS, TINY, progress=False)


@pytest.fixture(scope="module")
def gamma_k() -> LabResults:
    return lab.sweep(GRID, SEEDS, TINY, progress=False)


@pytest.fixture(scope="module")
def recheck() -> LabResults:
    configs = [
        lab.LabConfig(label="recheck on"),
        lab.LabConfig(odds_recheck=False, label="recheck off"),
    ]
    return lab.sweep(configs, SEEDS, TINY, progress=False)


def _close(got: Any, want: pd.Series) -> None:
    assert list(got) == pytest.approx(list(want))


def _by_name(fig: go.Figure) -> dict[str, Any]:
    traces = {t.name: t for t in fig.data}
    assert len(traces) == len(fig.data), "trace names must be distinct"
    return traces


# --------------------------------------------------------------------------- strategy_comparison


def test_strategy_comparison_shows_the_summary(strategies: LabResults) -> None:
    summary = strategies.summary()
    fig = lab_plots.strategy_comparison(strategies)
    traces = _by_name(fig)
    assert set(traces) == {"t: mean PnL", "t: PnL/σ", "t: worst max|q|/cap"}
    pnl, ratio, q = traces["t: mean PnL"], traces["t: PnL/σ"], traces["t: worst max|q|/cap"]
    for trace in (pnl, ratio, q):
        assert trace.type == "bar"
        assert list(trace.x) == ["hjb", "tob"]
    _close(pnl.y, summary["mean_pnl"])
    _close(pnl.error_y.array, summary["sd_pnl"])
    _close(ratio.y, summary["pnl_over_sd"])
    _close(q.y, summary["worst_q_over_cap"])
    assert all(0 < v <= 1 for v in q.y), "some inventory was held, never past the cap"
    # Three panels stacked, each on its own y axis.
    assert len({t.yaxis for t in fig.data}) == 3
    # The summary table gives the same figure.
    assert lab_plots.strategy_comparison(summary).to_dict() == fig.to_dict()


def test_strategy_comparison_has_a_column_per_scenario() -> None:
    summary = pd.DataFrame(
        {
            "scenario": ["a", "a", "b", "b"],
            "strategy": ["hjb", "tob", "hjb", "tob"],
            "mean_pnl": [1.0, 2.0, 3.0, -1.0],
            "sd_pnl": [0.5, 0.0, float("nan"), 2.0],  # σ = 0 and a single seed
            "worst_q_over_cap": [0.1, 0.2, 0.3, 0.4],
        }
    )
    fig = lab_plots.strategy_comparison(summary)
    traces = _by_name(fig)
    assert len(traces) == 6
    assert traces["b: mean PnL"].xaxis != traces["a: mean PnL"].xaxis
    # PnL/σ is left out where σ is 0 or unknown, never drawn as inf or NaN.
    assert list(traces["a: PnL/σ"].y) == [2.0, None]
    assert list(traces["b: PnL/σ"].y) == [None, -0.5]
    fig.to_json()


def test_a_table_without_the_columns_is_refused(strategies: LabResults) -> None:
    with pytest.raises(ValueError, match="summary"):
        lab_plots.strategy_comparison(strategies.games())
    with pytest.raises(ValueError, match="runs"):
        lab_plots.recheck_effect(strategies.summary())


# --------------------------------------------------------------------------- frontier


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(σ, mean) a is at least as good as b in both and better in one."""
    return a[1] >= b[1] and a[0] <= b[0] and a != b


def test_frontier_labels_every_configuration_and_joins_the_non_dominated(
    gamma_k: LabResults,
) -> None:
    summary = gamma_k.summary()
    fig = lab_plots.frontier(gamma_k)
    traces = _by_name(fig)
    assert set(traces) == {"t: configurations", "t: frontier"}
    points, line = traces["t: configurations"], traces["t: frontier"]
    assert list(points.text) == [c.label for c in GRID]
    _close(points.x, summary["sd_pnl"])
    _close(points.y, summary["mean_pnl"])
    every = list(zip(points.x, points.y, strict=True))
    front = list(zip(line.x, line.y, strict=True))
    assert front, "a frontier has at least one point"
    assert set(front) <= set(every)
    assert list(line.text) == [points.text[every.index(p)] for p in front]
    # Really non-dominated, and complete: every point left off is dominated by one on it.
    for p in front:
        assert not any(_dominates(o, p) for o in every), p
    for p in set(every) - set(front):
        assert any(_dominates(f, p) for f in front), p
    # Joined from low risk to high, each step buying more PnL.
    assert [x for x, _ in front] == sorted(x for x, _ in front)
    assert all(b[1] > a[1] for a, b in itertools.pairwise(front))


def test_frontier_labels_by_mapping_or_function(gamma_k: LabResults) -> None:
    names = [c.label for c in GRID]
    by_map = lab_plots.frontier(gamma_k, label={names[0]: "default"})
    assert list(by_map.data[0].text) == ["default", *names[1:]]
    by_fn = lab_plots.frontier(gamma_k.summary(), label=str.upper)
    assert list(by_fn.data[0].text) == [n.upper() for n in names]


def test_non_dominated_on_known_points() -> None:
    sd = [1.0, 2.0, 2.0, 3.0, 0.5, float("nan"), 4.0]
    mean = [1.0, 3.0, 2.0, 3.0, 0.0, 99.0, 5.0]
    # 2 is beaten by 1 (same σ, more PnL), 3 by 1 (less σ, same PnL); NaN never counts.
    assert lab_plots.non_dominated(sd, mean) == [4, 0, 1, 6]


def test_non_dominated_agrees_with_brute_force() -> None:
    rng = random.Random(5)
    for _ in range(200):
        n = rng.randint(1, 12)
        # Few distinct values, so ties in σ and in mean are common.
        sd = [float(rng.randint(0, 5)) for _ in range(n)]
        mean = [float(rng.randint(-3, 3)) for _ in range(n)]
        pts = list(zip(sd, mean, strict=True))
        want = {i for i, p in enumerate(pts) if not any(_dominates(o, p) for o in pts)}
        got = lab_plots.non_dominated(sd, mean)
        assert set(got) == want
        assert [sd[i] for i in got] == sorted(sd[i] for i in got)


# --------------------------------------------------------------------------- recheck_effect


def test_recheck_effect_compares_on_and_off(recheck: LabResults) -> None:
    runs = recheck.runs()
    assert runs[runs["strategy"] == "recheck off"]["rechecks"].sum() == 0
    assert runs[runs["strategy"] == "recheck on"]["rechecks"].sum() > 0
    fig = lab_plots.recheck_effect(recheck)
    bars = [t for t in fig.data if t.type == "bar"]
    dots = [t for t in fig.data if t.type == "scatter"]
    assert [t.name for t in bars] == ["recheck on", "recheck off"] * 2
    assert [t.name for t in dots] == ["recheck on: runs", "recheck off: runs"] * 2
    assert {t.xaxis for t in bars[:2]} == {"x"}
    assert {t.xaxis for t in bars[2:]} == {"x2"}
    for panel, metric in enumerate(("adverse_loss", "pnl")):
        for k, config in enumerate(("recheck on", "recheck off")):
            rows = runs[runs["strategy"] == config]
            bar, dot = bars[2 * panel + k], dots[2 * panel + k]
            assert list(bar.x) == ["t"]
            assert bar.y[0] == pytest.approx(rows[metric].mean())
            assert bar.error_y.array[0] == pytest.approx(rows[metric].std())
            _close(dot.y, rows[metric])
            assert list(dot.text) == [f"seed {s}" for s in SEEDS]
    assert not math.isclose(bars[2].y[0], bars[3].y[0]), "on and off should differ in PnL"


def test_recheck_effect_needs_both_configurations(strategies: LabResults) -> None:
    with pytest.raises(ValueError, match="recheck on"):
        lab_plots.recheck_effect(strategies)
    fig = lab_plots.recheck_effect(strategies, on="hjb", off="tob")
    assert [t.name for t in fig.data if t.type == "bar"] == ["hjb", "tob"] * 2
