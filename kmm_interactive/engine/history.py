"""Bounded time series of what the trader watches: the session's PnL, and per game the theo,
our quotes and the best competitor, sampled a few times a second by the session.

Floats on purpose: these feed plots only (the ledger stays in ``Decimal``). A missing value
(no quote, no competitor) is NaN, which Plotly draws as a gap. Each series keeps at most
``maxlen`` samples and is decimated to at most ``points`` for drawing, so a long session
costs the browser the same as a short one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from kmm_interactive.domain import Side
from kmm_interactive.engine.views import GameView
from kmm_interactive.ledger import PnL

#: Fields of one game's sample, in order.
GAME_FIELDS = ("theo", "bid", "ask", "best_bid", "best_ask")
PNL_FIELDS = ("realized", "unrealized", "total")


def _num(value: Decimal | float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Series:
    """Sample times (seconds since the session started) and one array per field."""

    t: NDArray[np.float64]
    values: dict[str, NDArray[np.float64]]


def decimate(count: int, points: int) -> slice:
    """Every n-th sample, so that at most ``points`` remain, always keeping the newest."""
    if count <= points:
        return slice(None)
    step = math.ceil(count / points)
    return slice((count - 1) % step, None, step)


class _Rows:
    def __init__(self, fields: Sequence[str], maxlen: int) -> None:
        self.fields = tuple(fields)
        self.t: deque[float] = deque(maxlen=maxlen)
        self.rows: deque[tuple[float, ...]] = deque(maxlen=maxlen)

    def add(self, t: float, row: tuple[float, ...]) -> None:
        self.t.append(t)
        self.rows.append(row)

    def series(self, points: int) -> Series:
        cut = decimate(len(self.t), points)
        t = np.fromiter(self.t, dtype=np.float64, count=len(self.t))[cut]
        if self.rows:
            table = np.asarray(self.rows, dtype=np.float64)[cut]
        else:
            table = np.empty((0, len(self.fields)))
        return Series(t, {f: table[:, i] for i, f in enumerate(self.fields)})


class History:
    """The session's sampled history (see the module doc)."""

    def __init__(self, maxlen: int = 7200) -> None:
        if maxlen < 2:
            raise ValueError(f"maxlen = {maxlen}: keep at least 2 samples")
        self.maxlen = maxlen
        self._pnl = _Rows(PNL_FIELDS, maxlen)
        self._games: dict[str, _Rows] = {}

    def record(self, t: float, pnl: PnL, games: Iterable[GameView]) -> None:
        """One sample at ``t`` seconds into the session."""
        self._pnl.add(t, (float(pnl.realized), float(pnl.unrealized), float(pnl.total)))
        for view in games:
            rows = self._games.get(view.event_ticker)
            if rows is None:
                rows = self._games[view.event_ticker] = _Rows(GAME_FIELDS, self.maxlen)
            rows.add(t, _game_row(view))

    def pnl(self, points: int = 600) -> Series:
        return self._pnl.series(points)

    def game(self, event_ticker: str, points: int = 600) -> Series:
        rows = self._games.get(event_ticker)
        return (rows or _Rows(GAME_FIELDS, 2)).series(points)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the games not in ``keep`` (settled and gone)."""
        wanted = set(keep)
        for event in [e for e in self._games if e not in wanted]:
            del self._games[event]


def _game_row(view: GameView) -> tuple[float, ...]:
    """Team A's YES book: theo, our bid and ask there, and the others' best."""
    team_a = view.tickers[0]
    bid = ask = best_bid = best_ask = None
    for s in view.sides:
        if s.ticker != team_a:
            continue
        if s.side is Side.BID:
            bid, best_bid = s.resting, s.competitor
        else:
            ask, best_ask = s.resting, s.competitor
    return (
        _num(view.theo_a),
        _num(bid),
        _num(ask),
        _num(best_bid),
        _num(best_ask),
    )
