"""Figures of the strategy lab's results (:mod:`~kmm_interactive.sim.lab_results` defines
every metric): static Plotly figures, one call each, for a notebook or a report.

* :func:`strategy_comparison`: per scenario, the mean PnL of each configuration with σ(PnL)
  across seeds as error bars, then PnL/σ(PnL), then the worst max |q| / cap.
* :func:`frontier`: mean PnL against σ(PnL), a labelled point per configuration, with the
  non-dominated configurations (no other has a higher mean PnL for no more σ) joined.
* :func:`recheck_effect`: adverse-selection loss and PnL with the per-event odds recheck on
  and off, the mean ± σ across seeds and every run as a point.

Each takes a :class:`LabResults` or the DataFrame it would use (``summary()`` for the first
two, ``runs()`` for the last). Configurations are named as in the results (``LabConfig.name``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kmm_interactive.sim.lab_results import LabResults

_TEMPLATE = "plotly_white"
_ON, _OFF = "#2ca02c", "#7f7f7f"


def _summary(results: LabResults | pd.DataFrame) -> pd.DataFrame:
    frame = results.summary() if isinstance(results, LabResults) else results
    missing = {"scenario", "strategy", "mean_pnl", "sd_pnl"} - set(frame.columns)
    if missing:
        raise ValueError(f"need LabResults or its summary() table; missing {sorted(missing)}")
    return frame


def _runs(results: LabResults | pd.DataFrame) -> pd.DataFrame:
    frame = results.runs() if isinstance(results, LabResults) else results
    missing = {"scenario", "strategy", "seed", "pnl", "adverse_loss"} - set(frame.columns)
    if missing:
        raise ValueError(f"need LabResults or its runs() table; missing {sorted(missing)}")
    return frame


def _finite(values: Any) -> list[float | None]:
    """Plain floats for Plotly, with NaN and ±inf (σ = 0 or a single seed) left out."""
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def strategy_comparison(results: LabResults | pd.DataFrame) -> go.Figure:
    """Per scenario (a column each): mean PnL per configuration with σ(PnL) error bars, then
    PnL/σ(PnL), then the worst game's max |q| / cap over all seeds."""
    summary = _summary(results)
    scenarios = list(dict.fromkeys(summary["scenario"]))
    fig = make_subplots(
        rows=3,
        cols=len(scenarios),
        shared_xaxes=True,
        column_titles=scenarios,
        row_titles=["mean PnL ± σ ($)", "PnL / σ(PnL)", "worst max|q| / cap"],
        vertical_spacing=0.06,
    )
    for col, scenario in enumerate(scenarios, start=1):
        rows = summary[summary["scenario"] == scenario]
        x = list(rows["strategy"])
        fig.add_bar(
            row=1,
            col=col,
            name=f"{scenario}: mean PnL",
            x=x,
            y=_finite(rows["mean_pnl"]),
            error_y={"type": "data", "array": _finite(rows["sd_pnl"]), "visible": True},
            marker_color="#1f77b4",
            showlegend=False,
        )
        fig.add_bar(
            row=2,
            col=col,
            name=f"{scenario}: PnL/σ",
            x=x,
            y=_finite(rows["mean_pnl"] / rows["sd_pnl"]),
            marker_color="#ff7f0e",
            showlegend=False,
        )
        fig.add_bar(
            row=3,
            col=col,
            name=f"{scenario}: worst max|q|/cap",
            x=x,
            y=_finite(rows["worst_q_over_cap"]),
            marker_color="#9467bd",
            showlegend=False,
        )
    fig.update_layout(
        title="Strategies on the same seeds", template=_TEMPLATE, height=720, bargap=0.35
    )
    return fig


def non_dominated(sd: Sequence[float], mean: Sequence[float]) -> list[int]:
    """The indices of the points no other point dominates (a mean at least as high for a σ
    at most as large, and better in one), in order of σ. Points with a non-finite σ or mean
    are never on the frontier."""
    ok = [i for i in range(len(sd)) if math.isfinite(sd[i]) and math.isfinite(mean[i])]
    front = []
    for i in ok:
        dominated = any(
            mean[j] >= mean[i] and sd[j] <= sd[i] and (mean[j] > mean[i] or sd[j] < sd[i])
            for j in ok
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (sd[i], mean[i]))


def frontier(
    results: LabResults | pd.DataFrame,
    label: Mapping[str, str] | Callable[[str], str] | None = None,
) -> go.Figure:
    """Mean PnL (y) against σ(PnL) across seeds (x), a point per configuration, labelled
    with ``label`` (a mapping or function from the configuration's name; default: the name
    itself, so ``LabConfig(label="γ=0.05 k=0.5")`` shows as such). Per scenario, the
    non-dominated points (:func:`non_dominated`) are joined as the frontier: every other
    configuration has a lower mean PnL for the same risk, or more risk for the same PnL."""
    summary = _summary(results)

    def text(name: str) -> str:
        if label is None:
            return name
        if callable(label):
            return label(name)
        return label.get(name, name)

    fig = go.Figure()
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    for n, scenario in enumerate(dict.fromkeys(summary["scenario"])):
        rows = summary[summary["scenario"] == scenario]
        sd = [float(v) for v in rows["sd_pnl"]]
        mean = [float(v) for v in rows["mean_pnl"]]
        names = [text(s) for s in rows["strategy"]]
        color = colors[n % len(colors)]
        fig.add_scatter(
            name=f"{scenario}: configurations",
            x=_finite(sd),
            y=_finite(mean),
            text=names,
            mode="markers+text",
            textposition="top center",
            marker={"size": 9, "color": color},
            hovertemplate="%{text}<br>σ(PnL) %{x:.2f}<br>mean PnL %{y:.2f}<extra></extra>",
        )
        front = non_dominated(sd, mean)
        fig.add_scatter(
            name=f"{scenario}: frontier",
            x=[sd[i] for i in front],
            y=[mean[i] for i in front],
            text=[names[i] for i in front],
            mode="lines+markers",
            line={"color": color, "dash": "dot"},
            marker={"size": 13, "color": color, "symbol": "circle-open"},
            hoverinfo="skip",
        )
    fig.update_layout(
        title="Mean PnL against its spread across seeds",
        xaxis_title="σ(PnL) across seeds ($)",
        yaxis_title="mean PnL ($)",
        template=_TEMPLATE,
        height=480,
    )
    return fig


def recheck_effect(
    results: LabResults | pd.DataFrame, on: str = "recheck on", off: str = "recheck off"
) -> go.Figure:
    """Adverse-selection loss (left; positive is money lost to fills after news) and PnL
    (right) of the configurations named ``on`` and ``off`` (the same config with
    ``odds_recheck`` True and False), per scenario: bars of the mean with σ across seeds,
    and each run as a point."""
    runs = _runs(results)
    names = set(runs["strategy"])
    for name in (on, off):
        if name not in names:
            raise ValueError(f"no runs of configuration {name!r} (have {sorted(names)})")
    fig = make_subplots(rows=1, cols=2, subplot_titles=["adverse-selection loss ($)", "PnL ($)"])
    colors = {on: _ON, off: _OFF}
    scenarios = list(dict.fromkeys(runs["scenario"]))
    for col, metric in enumerate(("adverse_loss", "pnl"), start=1):
        for config in (on, off):
            rows = runs[runs["strategy"] == config]
            stats = rows.groupby("scenario", sort=False)[metric].agg(["mean", "std"])
            stats = stats.reindex(scenarios)
            fig.add_bar(
                row=1,
                col=col,
                name=config,
                legendgroup=config,
                showlegend=col == 1,
                x=scenarios,
                y=_finite(stats["mean"]),
                error_y={"type": "data", "array": _finite(stats["std"]), "visible": True},
                marker_color=colors[config],
                offsetgroup=config,
            )
            fig.add_scatter(
                row=1,
                col=col,
                name=f"{config}: runs",
                legendgroup=config,
                showlegend=False,
                x=list(rows["scenario"]),
                y=_finite(rows[metric]),
                text=[f"seed {s}" for s in rows["seed"]],
                mode="markers",
                marker={"color": "black", "size": 6},
                offsetgroup=config,
                hovertemplate="%{text}: %{y:.2f}<extra></extra>",
            )
    fig.update_layout(
        title="The per-event odds recheck after news",
        template=_TEMPLATE,
        height=420,
        barmode="group",
        scattermode="group",
    )
    return fig
