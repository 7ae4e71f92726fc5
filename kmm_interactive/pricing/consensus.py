"""The theo of one game from many bookmakers: devig each book, then a Pinnacle-anchored mean.

Rules, in order:

1. A book whose odds cannot be devigged (odds <= 1, an implausible booksum, or an outcome
   count other than the anchor's, or the most common one without an anchor) is dropped.
2. A book whose ``last_update`` is older than ``max_book_age``, or more than a minute ahead
   of our clock, is dropped.
3. The reference is the anchor book (Pinnacle) when it survives 1–2, else the median of
   the remaining books. A book further than ``outlier_tolerance`` from the reference on any
   outcome is dropped (the anchor itself is never an outlier).
4. With the anchor: theo = ``anchor_weight`` × anchor + (1 − ``anchor_weight``) × the mean
   of the other books (the anchor alone if there are none). Without it: the median of the
   others, renormalised.
5. Fewer than ``min_books`` books left means no theo, with the reason.

Outcome order is the caller's: every book's odds list the outcomes in the same order.
Without an anchor, two books can both sit within the tolerance of their median while
being twice that apart; the dispersion in the result shows it.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from kmm_interactive.pricing.devig import devig, parse_method

#: A book's last_update may run this far ahead of our clock before it counts as bad data.
MAX_CLOCK_SKEW: Final = timedelta(seconds=60)


@dataclass(frozen=True)
class BookOdds:
    """One bookmaker's decimal odds for the outcomes of one game, and when it last moved."""

    bookmaker: str
    odds: tuple[float, ...]
    last_update: datetime

    def __post_init__(self) -> None:
        if self.last_update.tzinfo is None:
            raise ValueError(f"{self.bookmaker}: last_update must be timezone-aware")


@dataclass(frozen=True)
class ConsensusParams:
    anchor: str = "pinnacle"
    anchor_weight: float = 0.6
    devig_method: str = "shin"
    max_book_age: timedelta = timedelta(minutes=15)
    outlier_tolerance: float = 0.05
    min_books: int = 2

    def __post_init__(self) -> None:
        parse_method(self.devig_method)
        if not 0.0 <= self.anchor_weight <= 1.0:
            raise ValueError(f"anchor_weight = {self.anchor_weight}: must be within [0, 1]")
        if not 0.0 < self.outlier_tolerance < 1.0:
            raise ValueError(f"outlier_tolerance = {self.outlier_tolerance}: must be in (0, 1)")
        if self.min_books < 1:
            raise ValueError(f"min_books = {self.min_books}: must be >= 1")
        if self.max_book_age <= timedelta(0):
            raise ValueError(f"max_book_age = {self.max_book_age}: must be positive")


@dataclass(frozen=True)
class Consensus:
    """A theo (``probabilities``) or the reason there is none, with what went into it."""

    probabilities: tuple[float, ...] | None
    reason: str | None
    anchored: bool
    books_used: tuple[str, ...]
    dropped: Mapping[str, str] = field(default_factory=dict)
    per_book: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    #: Population stdev of the used books' probability of the first outcome.
    dispersion: float = math.nan
    newest_update: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.probabilities is not None


def consensus(
    books: Sequence[BookOdds], now: datetime, params: ConsensusParams | None = None
) -> Consensus:
    """Combine many books into one theo for a game (see the module doc for the rules)."""
    params = params or ConsensusParams()
    if now.tzinfo is None:
        raise ValueError("consensus: now must be timezone-aware")
    dropped: dict[str, str] = {}
    fair: dict[str, tuple[float, ...]] = {}
    updated: dict[str, datetime] = {}
    n_outcomes = _outcome_count(books, now, params)
    if n_outcomes is None:
        return Consensus(None, "the books disagree on the number of outcomes", False, ())
    for book in books:
        if book.bookmaker in fair or book.bookmaker in dropped:
            dropped[book.bookmaker] = "listed twice"
            fair.pop(book.bookmaker, None)
            continue
        age = now - book.last_update
        if len(book.odds) != n_outcomes:
            dropped[book.bookmaker] = f"{len(book.odds)} outcomes, expected {n_outcomes}"
        elif age > params.max_book_age:
            dropped[book.bookmaker] = f"stale: last update {_minutes(age)} ago"
        elif -age > MAX_CLOCK_SKEW:
            dropped[book.bookmaker] = f"last update {-age.total_seconds():.0f} s in the future"
        else:
            try:
                fair[book.bookmaker] = devig(book.odds, params.devig_method)
                updated[book.bookmaker] = book.last_update
            except ValueError as exc:
                dropped[book.bookmaker] = f"bad odds: {exc}"

    anchor = fair.get(params.anchor)
    others = {name: p for name, p in fair.items() if name != params.anchor}
    reference = anchor if anchor is not None else _median(list(others.values()))
    if reference is not None:
        for name, probs in list(others.items()):
            gap = max(abs(a - b) for a, b in zip(probs, reference, strict=True))
            if gap > params.outlier_tolerance:
                dropped[name] = f"outlier: {gap:.3f} from the {_ref_name(anchor, params)}"
                del others[name]

    used = ([params.anchor] if anchor is not None else []) + sorted(others)
    per_book = {name: fair[name] for name in used}
    newest = max((updated[name] for name in used), default=None)

    def without_theo(reason: str) -> Consensus:
        return Consensus(
            None, reason, anchor is not None, tuple(used), dropped, per_book, newest_update=newest
        )

    if len(used) < params.min_books:
        why = f"{len(used)} usable book(s), need {params.min_books}"
        if dropped:
            why += "; dropped: " + ", ".join(f"{k} ({v})" for k, v in sorted(dropped.items()))
        return without_theo(why)

    rest = _mean(list(others.values()))
    if anchor is None:
        probs = _median(list(others.values())) or ()  # min_books >= 1: others is non-empty
    elif rest is None:
        probs = anchor
    else:
        w = params.anchor_weight
        probs = tuple(w * a + (1.0 - w) * r for a, r in zip(anchor, rest, strict=True))
    total = math.fsum(probs)
    theo = tuple(p / total for p in probs)
    spread = [p[0] for p in per_book.values()]
    dispersion = statistics.pstdev(spread) if len(spread) > 1 else 0.0
    return Consensus(
        theo, None, anchor is not None, tuple(used), dropped, per_book, dispersion, newest
    )


def _outcome_count(books: Sequence[BookOdds], now: datetime, params: ConsensusParams) -> int | None:
    """How many outcomes the game has: the anchor's count when its line is fresh and sound,
    else the count most fresh books give (None on a tie). A book with another count is
    malformed (a 2-way line among 3-way ones)."""
    fresh = [b for b in books if -MAX_CLOCK_SKEW <= now - b.last_update <= params.max_book_age]
    anchors = [b for b in fresh if b.bookmaker == params.anchor]
    if len(anchors) == 1:
        try:
            devig(anchors[0].odds, params.devig_method)
            return len(anchors[0].odds)
        except ValueError:
            pass
    counts = Counter(len(b.odds) for b in fresh).most_common()
    if not counts:
        return 0
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def _mean(rows: Sequence[tuple[float, ...]]) -> tuple[float, ...] | None:
    if not rows:
        return None
    return tuple(math.fsum(col) / len(rows) for col in zip(*rows, strict=True))


def _median(rows: Sequence[tuple[float, ...]]) -> tuple[float, ...] | None:
    if not rows:
        return None
    cols = [statistics.median(col) for col in zip(*rows, strict=True)]
    total = math.fsum(cols)
    return tuple(c / total for c in cols)


def _ref_name(anchor: tuple[float, ...] | None, params: ConsensusParams) -> str:
    return params.anchor if anchor is not None else "median of the books"


def _minutes(age: timedelta) -> str:
    return f"{age.total_seconds() / 60:.0f} min"
