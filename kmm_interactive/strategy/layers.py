"""Optional quoting layers (the second seed's ideas), as tick adjustments for the widen hook.

Each layer is a pure function of what the caller observed, with its own frozen, validated
config, and returns ``{side: ticks}`` for :attr:`UnitState.widen
<kmm_interactive.strategy.quoter.UnitState.widen>`: positive moves that side's model quote
away from theo (wider), negative toward it (tighter). A layer acts only when the caller
calls it and passes its result on (the default ``widen`` is empty), so the lab can turn
each one on alone and measure it. Because ``decide`` applies the widen to the model tick
*before* the edge limit and competition, no layer can take a side through its edge.

* **Fill-rate-adaptive spread** (:func:`fill_rate_ticks`): the quote table assumes fills
  arrive at ``A·e^(−kδ)``. When a side has rested long enough and filled far less often
  than that, the book has less flow (or more competition) than the table thinks: tighten a
  tick (only after quoting long enough for the model to have expected a few fills: none
  where it expected almost none is no evidence). When fills come much faster than
  expected, they are likely informed: widen a tick. The result steps the layer's previous
  offset by at most one tick per call, within ``±max_ticks``, so it adapts gradually and
  cannot run away.
* **Order-book imbalance** (:func:`imbalance_ticks`): when the others' bids near the top
  far outweigh their asks, buyers are pressing and the price is more likely to tick up:
  raise both quotes a tick (bid tighter, ask wider), and the mirror for heavy asks. Per
  book; a thin book says nothing.
* **Flow toxicity** (:func:`toxicity_ticks`): markouts measure how the price moved after
  our fills (in our favour positive, against us negative). While the last fills lose on
  average more than a threshold, the flow is adversely selecting us: widen every side, one
  tick per threshold of loss, up to ``max_ticks``.

:func:`combine` adds layers per side and clamps the total. Online re-estimation of A and k
is not here: the lab and the engine refit them with pricing/intensity.py and re-solve the
table. Pure: no I/O, no clock reads; bad arguments raise ``ValueError`` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from kmm_interactive.domain import ZERO, GameSide, Leg, Side

#: The largest exponent fed to ``exp`` for an expected rate (quotes far through theo would
#: overflow a float; the rate is astronomically high there anyway).
_MAX_EXPONENT = 700.0


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _clamp(value: int, bound: int) -> int:
    return max(-bound, min(bound, value))


# --------------------------------------------------------------------------- fill rate


@dataclass(frozen=True)
class FillRateConfig:
    """When the fill-rate layer tightens or widens a side.

    Ratios compare the observed rate (fills / seconds quoted) with the expected one.
    """

    #: Tighten when observed ≤ slow_ratio × expected (a fill rate well below the model's).
    slow_ratio: float = 0.5
    #: Widen when observed ≥ fast_ratio × expected (fills much faster than the model's).
    fast_ratio: float = 2.0
    #: Seconds a side must have rested in the window before a lack of fills means anything.
    min_quoted_seconds: float = 300.0
    #: Fills the model must have expected over that time before a lack of them means
    #: anything: no fills where the model expected 0.01 is what the model said, not a sign
    #: that the quote is too far out.
    min_expected_fills: float = 3.0
    #: Fills a side must have taken before a fast rate means anything (one lucky fill is not
    #: a pattern).
    min_fills: int = 3
    #: The layer's offset stays within ±max_ticks.
    max_ticks: int = 2

    def __post_init__(self) -> None:
        _check(
            math.isfinite(self.slow_ratio) and 0.0 <= self.slow_ratio < 1.0,
            f"FillRateConfig.slow_ratio = {self.slow_ratio}: must be in [0, 1)",
        )
        _check(
            math.isfinite(self.fast_ratio) and self.fast_ratio > 1.0,
            f"FillRateConfig.fast_ratio = {self.fast_ratio}: must be a finite number > 1",
        )
        _check(
            math.isfinite(self.min_quoted_seconds) and self.min_quoted_seconds > 0.0,
            f"FillRateConfig.min_quoted_seconds = {self.min_quoted_seconds}: must be > 0",
        )
        _check(
            math.isfinite(self.min_expected_fills) and self.min_expected_fills > 0.0,
            f"FillRateConfig.min_expected_fills = {self.min_expected_fills}: must be a finite "
            "number > 0",
        )
        _check(
            _is_int(self.min_fills) and self.min_fills >= 1,
            f"FillRateConfig.min_fills = {self.min_fills!r}: must be an integer >= 1",
        )
        _check(
            _is_int(self.max_ticks) and self.max_ticks >= 1,
            f"FillRateConfig.max_ticks = {self.max_ticks!r}: must be an integer >= 1",
        )


@dataclass(frozen=True)
class FillWindow:
    """One side over a recent window: what it took, how long it rested, and the model's
    fill intensity at the distance it rested.

    ``A`` (fills per second at zero distance) and ``k`` (per cent) are the table's for the
    side's book; ``distance`` is the quote's distance from theo in cents as the table
    measures it (p − b − fee for a bid, a − fee − p for an ask; negative through theo).
    """

    fills: int
    quoted_seconds: float
    A: float
    k: float
    distance: float

    def __post_init__(self) -> None:
        _check(
            _is_int(self.fills) and self.fills >= 0,
            f"FillWindow.fills = {self.fills!r}: must be an integer >= 0",
        )
        _check(
            math.isfinite(self.quoted_seconds) and self.quoted_seconds >= 0.0,
            f"FillWindow.quoted_seconds = {self.quoted_seconds}: must be a finite number >= 0",
        )
        _check(
            math.isfinite(self.A) and self.A > 0.0,
            f"FillWindow.A = {self.A}: fills per second at theo must be a finite number > 0",
        )
        _check(
            math.isfinite(self.k) and self.k > 0.0,
            f"FillWindow.k = {self.k}: decay per cent must be a finite number > 0",
        )
        _check(
            math.isfinite(self.distance) and -100.0 <= self.distance <= 100.0,
            f"FillWindow.distance = {self.distance}: cents from theo must be in [-100, 100]",
        )

    @property
    def expected_rate(self) -> float:
        """The model's fills per second at this distance, A·e^(−kδ)."""
        return self.A * math.exp(min(-self.k * self.distance, _MAX_EXPONENT))

    @property
    def expected_fills(self) -> float:
        """Fills the model expects over the time quoted."""
        return self.expected_rate * self.quoted_seconds


def fill_rate_step(window: FillWindow, config: FillRateConfig) -> int:
    """−1 (tighten), +1 (widen) or 0 for one side's window (see the module doc).

    Slow needs at least ``min_quoted_seconds`` of quoting over which the model expected at
    least ``min_expected_fills``; fast needs at least ``min_fills`` fills. The two cannot
    both hold (slow_ratio < 1 < fast_ratio, and a slow side expected fills)."""
    expected = window.expected_fills
    if window.fills >= config.min_fills and window.fills >= config.fast_ratio * expected:
        return +1
    if (
        window.quoted_seconds >= config.min_quoted_seconds
        and expected >= config.min_expected_fills
        and window.fills <= config.slow_ratio * expected
    ):
        return -1
    return 0


def fill_rate_ticks(
    windows: Mapping[GameSide, FillWindow],
    config: FillRateConfig,
    current: Mapping[GameSide, int] | None = None,
) -> dict[GameSide, int]:
    """The fill-rate layer's new offset per side: ``current`` (its previous result, which
    the caller keeps; 0 for a side not in it) moved by :func:`fill_rate_step`, within
    ``±max_ticks``. A side with no window keeps its offset (no news is not evidence).

    ``windows`` should describe the quotes as they rested with the current offset applied,
    so the expectation follows each step and the offset settles where the observed rate is
    within [slow_ratio, fast_ratio] × the model's."""
    previous = dict(current or {})
    for side, ticks in previous.items():
        _check(
            _is_int(ticks),
            f"current[{side}] = {ticks!r}: the layer's previous offset must be whole ticks",
        )
    out = {side: _clamp(ticks, config.max_ticks) for side, ticks in previous.items()}
    for side, window in windows.items():
        step = fill_rate_step(window, config)
        out[side] = _clamp(out.get(side, 0) + step, config.max_ticks)
    return out


# --------------------------------------------------------------------------- book imbalance


@dataclass(frozen=True)
class ImbalanceConfig:
    """When the book-imbalance layer shades a book's quotes."""

    #: Shade when |bid − ask| / (bid + ask) of the others' depth exceeds this.
    threshold: float = 0.6
    #: Below this many contracts on both sides together the book is too thin to read.
    min_depth: Decimal = Decimal(10)
    #: How far both quotes move toward the pressure.
    ticks: int = 1

    def __post_init__(self) -> None:
        _check(
            math.isfinite(self.threshold) and 0.0 < self.threshold < 1.0,
            f"ImbalanceConfig.threshold = {self.threshold}: must be in (0, 1)",
        )
        _check(
            isinstance(self.min_depth, Decimal)
            and self.min_depth.is_finite()
            and self.min_depth >= 0,
            f"ImbalanceConfig.min_depth = {self.min_depth!r}: must be a finite Decimal >= 0",
        )
        _check(
            _is_int(self.ticks) and self.ticks >= 1,
            f"ImbalanceConfig.ticks = {self.ticks!r}: must be an integer >= 1",
        )


@dataclass(frozen=True)
class BookDepth:
    """The others' contracts near the top of one book (our own excluded), summed over the
    same few ticks from the best on each side; ``ask`` is YES asks (NO bids)."""

    bid: Decimal
    ask: Decimal

    def __post_init__(self) -> None:
        for name in ("bid", "ask"):
            value = getattr(self, name)
            _check(
                isinstance(value, Decimal) and value.is_finite() and value >= 0,
                f"BookDepth.{name} = {value!r}: must be a finite Decimal >= 0",
            )

    @property
    def imbalance(self) -> float | None:
        """(bid − ask) / (bid + ask) in [−1, 1]; None for an empty book."""
        total = self.bid + self.ask
        return None if total == ZERO else float((self.bid - self.ask) / total)


def imbalance_ticks(
    depths: Mapping[Leg, BookDepth], config: ImbalanceConfig
) -> dict[GameSide, int]:
    """Per book: bids heavy beyond the threshold → bid −ticks (tighter), ask +ticks (wider),
    both quotes a step up; asks heavy → the mirror; otherwise nothing. A book thinner than
    ``min_depth`` is left alone. Each book is read on its own (A's book moves A's quotes)."""
    out: dict[GameSide, int] = {}
    for leg, depth in depths.items():
        imbalance = depth.imbalance
        if imbalance is None or depth.bid + depth.ask < config.min_depth:
            continue
        if abs(imbalance) <= config.threshold:
            continue
        up = 1 if imbalance > 0 else -1  # the direction the pressure pushes the price
        for side in (Side.BID, Side.ASK):
            # Moving a bid up is tightening it (−), moving an ask up is widening it (+).
            out[GameSide.of(leg, side)] = -side.sign * up * config.ticks
    return out


# --------------------------------------------------------------------------- flow toxicity


@dataclass(frozen=True)
class ToxicityConfig:
    """When the flow-toxicity layer widens, from our fills' markouts."""

    #: The average is over the last ``window`` fills.
    window: int = 10
    #: Fewer fills than this: not enough to judge, no widening.
    min_fills: int = 5
    #: Cents of average adverse markout per tick of widening (and the trigger: widen only
    #: when the average is worse than −threshold).
    threshold: float = 1.0
    #: The most this layer widens.
    max_ticks: int = 2

    def __post_init__(self) -> None:
        _check(
            _is_int(self.window) and self.window >= 1,
            f"ToxicityConfig.window = {self.window!r}: must be an integer >= 1",
        )
        _check(
            _is_int(self.min_fills) and 1 <= self.min_fills <= self.window,
            f"ToxicityConfig.min_fills = {self.min_fills!r}: must be an integer in "
            f"1 … window ({self.window})",
        )
        _check(
            math.isfinite(self.threshold) and self.threshold > 0.0,
            f"ToxicityConfig.threshold = {self.threshold}: cents must be a finite number > 0",
        )
        _check(
            _is_int(self.max_ticks) and self.max_ticks >= 1,
            f"ToxicityConfig.max_ticks = {self.max_ticks!r}: must be an integer >= 1",
        )


def toxicity_ticks(
    markouts: Sequence[float],
    config: ToxicityConfig,
    sides: Iterable[GameSide] = tuple(GameSide),
) -> dict[GameSide, int]:
    """Widen every one of ``sides`` while our recent fills are adversely selected.

    ``markouts`` are our fills' markouts in cents, oldest first: the price move some
    seconds after each fill, positive in our favour. With at least ``min_fills`` of them,
    when the mean of the last ``window`` is below −threshold, every side widens by
    ⌊−mean / threshold⌋ ticks (at least 1), at most ``max_ticks``; otherwise nothing."""
    recent = [float(m) for m in markouts[-config.window :]]
    for i, value in enumerate(recent):
        _check(math.isfinite(value), f"markouts[{i - len(recent)}] = {value}: must be finite")
    if len(recent) < config.min_fills:
        return {}
    mean = math.fsum(recent) / len(recent)
    if mean >= -config.threshold:
        return {}
    ticks = min(config.max_ticks, max(1, math.floor(-mean / config.threshold)))
    return dict.fromkeys(sides, ticks)


# --------------------------------------------------------------------------- combining


def combine(*adjustments: Mapping[GameSide, int], limit: int = 3) -> dict[GameSide, int]:
    """The layers' adjustments added per side and clamped to ``±limit`` ticks (sides that
    net to zero are left out): the value for ``UnitState.widen``. The clamp keeps layers
    that agree from stacking into a quote far from the model's."""
    _check(_is_int(limit) and limit >= 0, f"limit = {limit!r}: must be an integer >= 0")
    total: dict[GameSide, int] = {}
    for i, adjustment in enumerate(adjustments):
        for side, ticks in adjustment.items():
            _check(_is_int(ticks), f"adjustments[{i}][{side}] = {ticks!r}: must be whole ticks")
            total[side] = total.get(side, 0) + ticks
    return {side: _clamp(t, limit) for side, t in total.items() if _clamp(t, limit) != 0}
