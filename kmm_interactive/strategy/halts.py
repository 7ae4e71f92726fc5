"""Named halt reasons and the trading state they imply: the one place where both are defined.

A game trades in one of three states (NautilusTrader's vocabulary):

* ``ACTIVE``: every side may quote;
* ``REDUCING``: only sides whose fills shrink |q| may quote;
* ``HALTED``: nothing quotes, and every resting order of the game is cancelled.

The state is never a boolean someone forgot to clear: it is derived from the set of reasons
in force, for the game and for the whole session, and the most severe reason wins. A reason
goes away only when what caused it does (a fresh book, a new theo) or, for the latched ones,
when the trader says so (:attr:`HaltReason.latched`: a manual kill, a loop stall, a loss
limit, repeated reconciliation mismatches, a tripped order group, a failed engine task;
``rearm()`` clears them).
``GAME_STARTED`` never goes away: a game is not quoted again once it starts.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class TradingState(enum.IntEnum):
    """Ordered by severity, so that ``max`` of several states is the one that applies."""

    ACTIVE = 0
    REDUCING = 1
    HALTED = 2

    def __str__(self) -> str:
        return self.name


class HaltReason(enum.StrEnum):
    """Why a game (or the whole session) does not quote normally.

    Each value is a short label; :attr:`description` says what it means and :attr:`state`
    which trading state it forces.
    """

    MANUAL_KILL = "manual kill"
    MANUAL_PAUSE = "manual pause"
    PNL_LIMIT = "pnl limit"
    STALE_BOOK = "stale book"
    STALE_THEO = "stale theo"
    NO_START_TIME = "no start time"
    WS_DOWN = "ws down"
    REST_ERROR_RATE = "rest error rate"
    RECONCILIATION_MISMATCH = "reconciliation mismatch"
    LOOP_STALL = "loop stall"
    GAME_STARTED = "game started"
    ORDER_GROUP_TRIGGERED = "order group triggered"
    MODEL_ERROR = "model error"
    EXCHANGE_PAUSED = "exchange paused"
    ENGINE_ERROR = "engine error"
    #: An odds recheck is in flight after a skew or a burst of fills (adverse selection):
    #: only the sides that reduce exposure quote until it returns.
    ODDS_RECHECK = "odds recheck"

    @property
    def state(self) -> TradingState:
        return TradingState.REDUCING if self is HaltReason.ODDS_RECHECK else TradingState.HALTED

    @property
    def latched(self) -> bool:
        """Cleared only by an explicit ``rearm()`` (or, for a pause, ``resume()``)."""
        return self in _LATCHED

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_LATCHED = frozenset(
    {
        HaltReason.MANUAL_KILL,
        HaltReason.MANUAL_PAUSE,
        HaltReason.PNL_LIMIT,
        HaltReason.LOOP_STALL,
        HaltReason.RECONCILIATION_MISMATCH,
        HaltReason.ORDER_GROUP_TRIGGERED,
        HaltReason.GAME_STARTED,
        HaltReason.ENGINE_ERROR,
    }
)

_DESCRIPTIONS = {
    HaltReason.MANUAL_KILL: "the kill switch was pressed; rearm() to trade again",
    HaltReason.MANUAL_PAUSE: "paused by the trader; resume() to trade again",
    HaltReason.PNL_LIMIT: "the loss limit was reached; rearm() to trade again",
    HaltReason.STALE_BOOK: "the order book is out of date (missed updates or no snapshot)",
    HaltReason.STALE_THEO: "the theo is missing or older than theo.max_age",
    HaltReason.NO_START_TIME: "the game's start time is not known, so it cannot be stopped",
    HaltReason.WS_DOWN: "the WebSocket connection is down",
    HaltReason.REST_ERROR_RATE: "too many REST calls are failing",
    HaltReason.RECONCILIATION_MISMATCH: "positions disagreed with the exchange repeatedly",
    HaltReason.LOOP_STALL: "the event loop stalled; the watchdog cancelled every order",
    HaltReason.GAME_STARTED: "the game is about to start (or has): never quoted again",
    HaltReason.ORDER_GROUP_TRIGGERED: "the exchange's order-group limit cancelled the orders",
    HaltReason.MODEL_ERROR: "the quote table could not be solved for these parameters",
    HaltReason.EXCHANGE_PAUSED: "the exchange or the market is not trading",
    HaltReason.ENGINE_ERROR: "an engine task failed (see the status); rearm() after a look",
    HaltReason.ODDS_RECHECK: "odds are being rechecked; only exposure-reducing sides quote",
}


def trading_state(reasons: Iterable[HaltReason]) -> TradingState:
    """The state the reasons in force imply: the most severe one (ACTIVE when none)."""
    return max((r.state for r in reasons), default=TradingState.ACTIVE)


def describe(reasons: Iterable[HaltReason]) -> str:
    """The reasons as one short line for a status bar ("stale theo, ws down")."""
    return ", ".join(sorted(r.value for r in reasons))
