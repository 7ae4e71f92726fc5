"""The lab's bookkeeping for the optional layers of :mod:`kmm_interactive.strategy.layers`.

The layers are pure functions of a few statistics; this module keeps those statistics for
one game as the run goes and asks the layers for each side's widen ticks:

* **fill rate**: per side, the fills taken and the seconds quoted in a tumbling window of
  ``WINDOW`` seconds, with the distance from theo it last rested at; the layer's offset is
  carried from one window to the next.
* **imbalance**: the others' contracts within ``NEAR`` ticks of their best on each side.
* **toxicity**: each fill's markout ``MARKOUT_AFTER`` seconds later against the others'
  mid, in cents, the last ``ToxicityConfig.window`` of them.

Only what a live bot could see is used (the book and our fills, never the lab's truth).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from kmm_interactive.domain import GameSide, Leg, Side
from kmm_interactive.strategy import layers

WINDOW: Final = 600.0
NEAR: Final = 5
MARKOUT_AFTER: Final = 60.0
FILL_RATE: Final = layers.FillRateConfig()
IMBALANCE: Final = layers.ImbalanceConfig()
TOXICITY: Final = layers.ToxicityConfig()


@dataclass
class _SideWindow:
    fills: int = 0
    seconds: float = 0.0
    distance: float | None = None


@dataclass
class LayerBook:
    """One inventory's layer statistics (see the module doc): a two-team game has one, a
    three-way game one per market, so that no two markets share a side's figures."""

    window_start: float = 0.0
    windows: dict[GameSide, _SideWindow] = field(default_factory=dict)
    fill_rate: dict[GameSide, int] = field(default_factory=dict)
    markouts: deque[float] = field(default_factory=lambda: deque(maxlen=TOXICITY.window))
    last_seen: float | None = None

    def rested(self, side: GameSide, seconds: float, distance: float) -> None:
        w = self.windows.setdefault(side, _SideWindow())
        w.seconds += seconds
        w.distance = distance

    def filled(self, side: GameSide) -> None:
        self.windows.setdefault(side, _SideWindow()).fills += 1

    def marked(self, markout_cents: float) -> None:
        self.markouts.append(markout_cents)

    def roll(self, t: float, intensity: Mapping[GameSide, tuple[float, float]]) -> None:
        """Close the window when it is due: the fill-rate offsets move one step."""
        if t - self.window_start < WINDOW:
            return
        done = {
            side: layers.FillWindow(
                w.fills, w.seconds, *intensity[side], max(-100.0, min(100.0, w.distance))
            )
            for side, w in self.windows.items()
            if w.distance is not None and side in intensity
        }
        self.fill_rate = layers.fill_rate_ticks(done, FILL_RATE, self.fill_rate)
        self.windows.clear()
        self.window_start = t


def distance_cents(side: Side, price: Decimal, theo: float, fee: Decimal) -> float:
    """How far a quote rests from theo in cents, as the quote table measures it: net of the
    maker ``fee`` per contract (p − b − fee for a bid, a − fee − p for an ask)."""
    gap = (theo - float(price)) if side is Side.BID else (float(price) - theo)
    return round(100.0 * (gap - float(fee)), 6)


def near_depth(
    sizes: Mapping[int, int], best: int | None, bid: bool, own: tuple[int, int] | None
) -> Decimal:
    """The others' contracts within ``NEAR`` ticks of their best; ``own`` is our order there
    as (tick, centi-contracts), left out when it is in that range."""
    if best is None:
        return Decimal(0)
    lo, hi = (best - NEAR, best) if bid else (best, best + NEAR)
    total = sum(size for tick, size in sizes.items() if lo <= tick <= hi)
    if own is not None and lo <= own[0] <= hi:
        total -= own[1]
    return Decimal(max(total, 0)) / 100


def widen(
    book: LayerBook,
    on: frozenset[str],
    depths: Mapping[Leg, layers.BookDepth],
    sides: tuple[GameSide, ...],
) -> dict[GameSide, int]:
    """The layers named in ``on`` (their ``Layer`` values), combined per side."""
    parts: list[Mapping[GameSide, int]] = []
    if "adaptive_spread" in on:
        parts.append({s: v for s, v in book.fill_rate.items() if s in sides})
    if "imbalance" in on:
        parts.append(layers.imbalance_ticks(depths, IMBALANCE))
    if "toxicity" in on and book.markouts:
        parts.append(layers.toxicity_ticks(list(book.markouts), TOXICITY, sides))
    if not parts:
        return {}
    out = layers.combine(*parts)
    return {s: v for s, v in out.items() if s in sides}
