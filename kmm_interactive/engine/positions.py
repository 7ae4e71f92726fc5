"""The periodic reconciliation of the engine's own account of its positions (the
:class:`~kmm_interactive.ledger.PositionBook`, kept from fills) with the exchange, and the
count of mismatches that halts a game.

**Reconciliation** (:func:`reconcile`) reads the exchange's positions and then our fills
since a time, applies the fills not yet seen, and adopts the exchange's position where ours
differs, reporting each difference. A ticker is skipped while it is busy (one of our fills,
or the exchange's last position update, within ``quiet_for`` seconds), because REST lags the
matching engine, and once settled in the book (the engine settles a market when its result
is determined; the exchange keeps showing the position until it pays out). Both reads happen
before anything changes: a ``KalshiError`` or ``PayloadError`` propagates and leaves the book
as it was. How an adopted position is priced is documented on
:meth:`~kmm_interactive.ledger.PositionBook.adopt`.

Only the REST reads of :func:`reconcile` do I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from kmm_interactive.domain import ZERO, Fill
from kmm_interactive.kalshi.rest import KalshiRest
from kmm_interactive.ledger import PositionBook

# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Mismatch:
    ticker: str
    ours: Decimal
    exchange: Decimal


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconciliation did: fills applied from REST, positions adopted, differences
    seen once and left for a second look, how many tickers were compared and which were
    skipped as too recently traded."""

    at: datetime
    backfilled: tuple[Fill, ...]
    mismatches: tuple[Mismatch, ...]
    checked: int
    skipped_recent: tuple[str, ...]
    suspected: tuple[Mismatch, ...] = ()


# --------------------------------------------------------------------------- reconciliation


async def reconcile(
    book: PositionBook,
    rest: KalshiRest,
    tickers: Collection[str],
    *,
    since: datetime | None,
    now: datetime,
    quiet_for: float = 2.0,
    suspects: dict[str, Decimal] | None = None,
) -> ReconcileReport:
    """Backfill the fills since ``since`` that the book has not seen, then adopt the
    exchange's position for each of ``tickers`` that is not busy and differs from ours.

    ``suspects`` (kept by the caller between calls) makes adoption wait for a second look:
    a difference is adopted only when the previous reconciliation saw the same exchange
    position too. Without it, a position that already counts a fill the fills listing (and
    the WS) have not delivered yet would be adopted, and that fill then counted twice when
    it arrives. A first sighting is reported in ``suspected``."""
    wanted = frozenset(tickers)
    # Positions before fills: a fill that lands between the two reads then shows among the
    # fills (recent, so its ticker is skipped) rather than only in the positions.
    positions = await rest.positions()
    fills = await rest.fills(min_ts=since)
    missed = sorted((f for f in fills if f.ticker in wanted), key=lambda f: (f.ts, f.fill_id))
    backfilled = tuple(f for f in missed if book.apply_fill(f))
    theirs = {m.ticker: m for m in positions.markets if m.ticker in wanted}
    quiet = timedelta(seconds=quiet_for)
    mismatches: list[Mismatch] = []
    suspected: list[Mismatch] = []
    skipped: list[str] = []
    for ticker in sorted(wanted):
        if book.is_settled(ticker):
            continue  # closed here at its result; the exchange shows it until it pays out
        ours = book.holding(ticker)
        reported = theirs.get(ticker)
        touched = (ours.last_fill, reported.last_updated if reported else None)
        if any(t is not None and now - t < quiet for t in touched):
            skipped.append(ticker)
            continue
        exchange = reported.position if reported else ZERO
        if exchange == ours.position:
            if suspects is not None:
                suspects.pop(ticker, None)
            continue
        if suspects is not None and suspects.get(ticker) != exchange:
            suspects[ticker] = exchange
            suspected.append(Mismatch(ticker, ours.position, exchange))
            continue
        if suspects is not None:
            del suspects[ticker]
        cost = reported.exposure if reported and reported.exposure > 0 else None
        book.adopt(ticker, exchange, reason="reconciliation", exchange_cost=cost)
        mismatches.append(Mismatch(ticker, ours.position, exchange))
    return ReconcileReport(
        at=now,
        backfilled=backfilled,
        mismatches=tuple(mismatches),
        checked=len(wanted) - len(skipped),
        skipped_recent=tuple(skipped),
        suspected=tuple(suspected),
    )


class MismatchCounter:
    """Counts reconciliation mismatches per game: repeated mismatches halt the game."""

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"mismatch limit {limit} must be >= 1 and window {window} > 0")
        self.limit = limit
        self.window = timedelta(seconds=window)
        self._seen: dict[str, deque[datetime]] = {}

    def note(self, game: str, at: datetime) -> bool:
        """Record a mismatch of ``game``; True when ``limit`` of them fall within the window."""
        times = self._seen.setdefault(game, deque())
        times.append(at)
        while at - times[0] > self.window:
            times.popleft()
        return len(times) >= self.limit
