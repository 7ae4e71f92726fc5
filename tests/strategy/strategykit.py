"""One game, its markets and the quoting parameters the strategy tests share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from kmm_interactive.domain import FeeType, Game, Market, PriceGrid, SeriesFees
from kmm_interactive.strategy.quoter import BookView, QuoteParams

D = Decimal
NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
CENT = PriceGrid.linear_cent()
MAKER = SeriesFees(FeeType.QUADRATIC_WITH_MAKER_FEES)
EVENT = "KXNBAGAME-26DEC04BOSLAL"
A = Market(f"{EVENT}-BOS", EVENT, "Boston", CENT, MAKER)
B = Market(f"{EVENT}-LAL", EVENT, "Los Angeles L", CENT, MAKER)
GAME = Game(EVENT, "nba", NOW + timedelta(hours=2), A, B)
PARAMS = QuoteParams(
    cap=100,
    quote_size=25,
    min_edge=D("0.01"),
    liquidity_factor=10.0,
    over_exposed=0.5,
    min_rest=2.0,
    back_off_hold=30.0,
    start_buffer=300.0,
    theo_max_age=2700.0,
)
DEEP = BookView(depth=D(10_000))  # enough depth that the liquidity cap does not bind
