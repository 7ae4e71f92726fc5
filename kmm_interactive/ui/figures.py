"""The dashboard's live Plotly FigureWidgets: inventory per game against its cap, PnL over
time, and the selected game's theo, quotes and best competitor over time.

Each ``update_*`` takes plain data and changes one figure inside one ``batch_update`` (one
comm message), always with numpy arrays (binary buffers; lists cost about 15× more), and
returns at once when the data equal what was drawn last (the frontend has no backpressure,
so every message sent is a frame drawn).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from kmm_interactive.engine.history import Series
from kmm_interactive.engine.views import GameView

_LAYOUT: dict[str, Any] = {
    "height": 260,
    "width": 520,
    "margin": {"l": 50, "r": 10, "t": 50, "b": 30},
    # Above the plot, right-aligned: below it, the slanted game names would run into it.
    "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
    "template": "plotly_white",
}


_CAP_MARK: dict[str, Any] = {"symbol": "line-ew-open", "size": 18, "color": "#cf222e"}


def inventory_figure() -> go.FigureWidget:
    fig = go.FigureWidget(layout={**_LAYOUT, "title": {"text": "inventory q against cap"}})
    fig.add_bar(name="q", x=[], y=[])
    fig.add_scatter(name="+cap", x=[], y=[], mode="markers", marker=_CAP_MARK)
    fig.add_scatter(name="−cap", x=[], y=[], mode="markers", marker=_CAP_MARK, showlegend=False)
    return fig


def pnl_figure() -> go.FigureWidget:
    fig = go.FigureWidget(
        layout={**_LAYOUT, "title": {"text": "PnL ($)"}, "xaxis": {"title": {"text": "seconds"}}}
    )
    for name in ("realized", "mark-to-market", "total"):
        fig.add_scatter(name=name, x=[], y=[], mode="lines")
    return fig


def game_figure() -> go.FigureWidget:
    fig = go.FigureWidget(
        layout={
            **_LAYOUT,
            "title": {"text": "selected game"},
            "width": 900,
            "yaxis": {"title": {"text": "team A YES ($)"}},
        }
    )
    styles = [
        ("theo", {"color": "#0969da", "width": 2}),
        ("our bid", {"color": "#1a7f37"}),
        ("our ask", {"color": "#cf222e"}),
        ("best other bid", {"color": "#1a7f37", "dash": "dot"}),
        ("best other ask", {"color": "#cf222e", "dash": "dot"}),
    ]
    for name, line in styles:
        fig.add_scatter(name=name, x=[], y=[], mode="lines", line=line, line_shape="hv")
    return fig


class Drawn:
    """What a figure shows now, to skip updates that change nothing."""

    def __init__(self) -> None:
        self.key: object = None

    def same(self, key: object) -> bool:
        if key == self.key:
            return True
        self.key = key
        return False


def update_inventory(fig: go.FigureWidget, drawn: Drawn, views: Sequence[GameView]) -> bool:
    labels = [f"{v.teams[0][:10]}@{v.teams[1][:10]}" for v in views]
    q = np.array([float(v.q) for v in views], dtype=np.float64)
    cap = np.array([float(v.cap) for v in views], dtype=np.float64)
    if drawn.same((tuple(labels), q.tobytes(), cap.tobytes())):
        return False
    x = np.array(labels, dtype=object)
    with fig.batch_update():
        fig.data[0].x, fig.data[0].y = x, q
        fig.data[0].marker.color = np.where(np.abs(q) >= cap, "#cf222e", "#0969da")
        fig.data[1].x, fig.data[1].y = x, cap
        fig.data[2].x, fig.data[2].y = x, -cap
    return True


def update_pnl(fig: go.FigureWidget, drawn: Drawn, series: Series) -> bool:
    if drawn.same((len(series.t), series.t[-1] if len(series.t) else None)):
        return False
    with fig.batch_update():
        for trace, field in zip(fig.data, ("realized", "unrealized", "total"), strict=True):
            trace.x, trace.y = series.t, series.values[field]
    return True


def update_game(fig: go.FigureWidget, drawn: Drawn, title: str, series: Series) -> bool:
    if drawn.same((title, len(series.t), series.t[-1] if len(series.t) else None)):
        return False
    fields = ("theo", "bid", "ask", "best_bid", "best_ask")
    with fig.batch_update():
        fig.layout.title.text = title
        for trace, field in zip(fig.data, fields, strict=True):
            trace.x, trace.y = series.t, series.values[field]
    return True
