"""What ``decide`` is given besides the game's state, built from the configuration: the
game's inventories (:func:`inventories`, and which way a fill moves one:
:func:`fill_direction`), the risk and quoting parameters (:func:`quote_params`) and the
quoting problem whose solution is the quote table (:func:`quote_problem`).

A game's parameters are its sport profile with the trader's changes (a changed profile is
passed in); the rest comes from the ``risk``, ``quoting`` and ``theo`` sections. Pure: the
live engine and the virtual-clock lab both build decide's inputs here.
"""

from __future__ import annotations

from collections.abc import Mapping

from kmm_interactive.config import Config, QuotingConfig, SportProfile
from kmm_interactive.domain import Game, GameSide, Market, Side
from kmm_interactive.pricing.intensity import IntensityPrior
from kmm_interactive.pricing.quote_table import BookInputs, QuoteProblem
from kmm_interactive.strategy.quoter import QuoteParams


def inventories(game: Game) -> tuple[tuple[Market, ...], ...]:
    """The game's inventories: a two-team game is one over its two books (team A first); a
    three-way game is three single-book inventories (a documented limitation, DESIGN §1)."""
    if game.tie is None:
        return ((game.market_a, game.market_b),)
    return tuple((m,) for m in game.markets)


def fill_direction(game: Game, ticker: str, side: Side) -> int:
    """+1 if a fill on ``side`` of ``ticker`` raises its inventory, −1 if it lowers it (a
    three-way game's inventories are its markets' own positions)."""
    if game.tie is not None:
        return side.sign
    return GameSide.of(game.leg_of(ticker), side).q_sign


def quote_params(config: Config, profile: SportProfile) -> QuoteParams:
    """The parameters ``decide`` applies after the quote table, for a game quoted with
    ``profile``."""
    return QuoteParams(
        cap=profile.cap,
        quote_size=profile.quote_size,
        min_edge=profile.min_edge,
        liquidity_factor=profile.liquidity_factor,
        over_exposed=config.risk.over_exposed,
        min_rest=config.quoting.min_rest,
        back_off_hold=config.quoting.back_off_hold,
        start_buffer=config.risk.start_buffer,
        theo_max_age=config.theo.max_age,
    )


def quote_problem(
    markets: tuple[Market, ...],
    p: float | None,
    intensity: Mapping[str, IntensityPrior],
    profile: SportProfile,
    quoting: QuotingConfig,
) -> QuoteProblem | None:
    """The quoting problem of one inventory: ``markets`` is (team A, team B) of a two-team
    game, or a single market; ``p`` the theo of the first (team B's book is quoted at
    1 − p); ``intensity`` the fill intensity per market ticker. None without a theo strictly
    between 0 and 1. Raises ``ValueError`` for other than one or two markets, ``KeyError``
    for a market without an intensity."""
    if len(markets) not in (1, 2):
        raise ValueError(f"an inventory is one market or two, got {len(markets)}")
    if p is None or not 0.0 < p < 1.0:
        return None

    def book(market: Market, theo: float) -> BookInputs:
        prior = intensity[market.ticker]
        return BookInputs(market.grid, theo, prior.A, prior.k, market.fees)

    return QuoteProblem(
        book_a=book(markets[0], p),
        book_b=book(markets[1], 1.0 - p) if len(markets) == 2 else None,
        gamma=profile.gamma,
        q_max=profile.cap,
        sigma=profile.sigma,
        horizon=quoting.horizon,
        n_tau=quoting.tau_points,
    )
