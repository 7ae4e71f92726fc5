"""Margin removal: turn one bookmaker's decimal odds into fair probabilities.

Notation: odds ``o_i``, implied ``π_i = 1/o_i``, booksum ``B = Σ π_i`` (B − 1 is the margin).

==============  ===================================================================
multiplicative  ``p_i = π_i / B``
additive        ``p_i = π_i − (B − 1)/n`` (fails on long shots when the margin is large)
power           ``p_i = π_i^κ`` with κ solving ``Σ π_i^κ = 1``
shin            Shin's insider model; ``z`` solves ``Σ p_i(z) = 1`` (equals additive for n = 2)
odds_ratio      ``p_i = π_i / (c + π_i − c π_i)`` with c solving ``Σ p_i = 1`` (Cheung 2015)
==============  ===================================================================

Only 2- and 3-outcome markets (moneylines, and soccer's home/away/draw) are accepted.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from typing import Final


class DevigMethod(enum.StrEnum):
    MULTIPLICATIVE = "multiplicative"
    ADDITIVE = "additive"
    POWER = "power"
    SHIN = "shin"
    ODDS_RATIO = "odds_ratio"


def parse_method(method: str) -> DevigMethod:
    try:
        return DevigMethod(method)
    except ValueError:
        allowed = ", ".join(m.value for m in DevigMethod)
        raise ValueError(f"devig method {method!r} is unknown (allowed: {allowed})") from None


#: Booksums outside this range are not a bookmaker's prices (a typo, a suspended market).
PLAUSIBLE_BOOKSUM: Final = (0.9, 1.3)


def implied_probabilities(decimal_odds: Sequence[float]) -> tuple[float, ...]:
    """``1/o`` for each outcome, after checking the odds are usable."""
    if len(decimal_odds) not in (2, 3):
        raise ValueError(f"devig takes 2 or 3 outcomes, got {len(decimal_odds)}")
    for i, odds in enumerate(decimal_odds):
        if isinstance(odds, bool) or not isinstance(odds, int | float):
            raise ValueError(f"odds[{i}] = {odds!r} is not a number")
        if not math.isfinite(odds) or odds <= 1.0:
            raise ValueError(f"odds[{i}] = {odds!r}: decimal odds must be finite and > 1")
    implied = tuple(1.0 / float(o) for o in decimal_odds)
    booksum = math.fsum(implied)
    lo, hi = PLAUSIBLE_BOOKSUM
    if not lo <= booksum <= hi:
        raise ValueError(
            f"odds {tuple(decimal_odds)} imply a booksum of {booksum:.3f}; "
            f"a real book's lies within {lo} … {hi}"
        )
    return implied


def devig(decimal_odds: Sequence[float], method: str = "multiplicative") -> tuple[float, ...]:
    """Fair probabilities (summing to 1) from one book's decimal odds."""
    chosen = parse_method(method)
    implied = implied_probabilities(decimal_odds)
    booksum = math.fsum(implied)
    if math.isclose(booksum, 1.0, rel_tol=0.0, abs_tol=1e-12):
        return _normalised(implied)
    probs = _METHODS[chosen](implied, booksum)
    if not all(0.0 < p < 1.0 for p in probs):
        raise ValueError(
            f"{chosen.value} devig of odds {tuple(decimal_odds)} gives probabilities "
            f"{probs} outside (0, 1); use shin, power or multiplicative for long shots"
        )
    return _normalised(probs)


def _normalised(probs: Sequence[float]) -> tuple[float, ...]:
    total = math.fsum(probs)
    return tuple(p / total for p in probs)


def _multiplicative(implied: Sequence[float], booksum: float) -> Sequence[float]:
    return [p / booksum for p in implied]


def _additive(implied: Sequence[float], booksum: float) -> Sequence[float]:
    share = (booksum - 1.0) / len(implied)
    return [p - share for p in implied]


def _power(implied: Sequence[float], _booksum: float) -> Sequence[float]:
    # Σ π^κ falls as κ grows; κ > 1 removes a positive margin, κ < 1 a negative one.
    log_kappa = _root(lambda x: math.fsum(p ** math.exp(x) for p in implied) - 1.0, -10.0, 10.0)
    kappa = math.exp(log_kappa)
    return [p**kappa for p in implied]


def _shin_probs(implied: Sequence[float], booksum: float, z: float) -> list[float]:
    return [
        (math.sqrt(z * z + 4.0 * (1.0 - z) * p * p / booksum) - z) / (2.0 * (1.0 - z))
        for p in implied
    ]


def _shin(implied: Sequence[float], booksum: float) -> Sequence[float]:
    # Σ p(z) equals √B at z = 0 and falls as z grows, so the insider share z is positive
    # for a positive margin and negative for a negative one.
    def excess(z: float) -> float:
        return math.fsum(_shin_probs(implied, booksum, z)) - 1.0

    lo, hi = (0.0, 1.0 - 1e-12) if booksum > 1.0 else (-1.0, 0.0)
    while excess(lo) < 0.0:  # widen the bracket to the left for large negative margins
        lo *= 2.0
    z = _root(excess, lo, hi)
    return _shin_probs(implied, booksum, z)


def _odds_ratio(implied: Sequence[float], _booksum: float) -> Sequence[float]:
    def probs(c: float) -> list[float]:
        return [p / (c + p - c * p) for p in implied]

    log_c = _root(lambda x: math.fsum(probs(math.exp(x))) - 1.0, -30.0, 30.0)
    return probs(math.exp(log_c))


def _root(f: Callable[[float], float], lo: float, hi: float) -> float:
    """Bisection for a decreasing ``f`` with ``f(lo) >= 0 >= f(hi)``."""
    f_lo, f_hi = f(lo), f(hi)
    if f_lo < 0.0 or f_hi > 0.0:
        raise ValueError("devig: no solution in range (odds too extreme for this method)")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if f(mid) > 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


_METHODS: dict[DevigMethod, Callable[[Sequence[float], float], Sequence[float]]] = {
    DevigMethod.MULTIPLICATIVE: _multiplicative,
    DevigMethod.ADDITIVE: _additive,
    DevigMethod.POWER: _power,
    DevigMethod.SHIN: _shin,
    DevigMethod.ODDS_RATIO: _odds_ratio,
}
