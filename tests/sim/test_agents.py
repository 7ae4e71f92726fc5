"""The simulated market's agents: retail flow calibrated to λ(δ) = A·e^(−kδ), determinism,
competitors with ceilings, stale liquidity, informed takers after news, and the lifecycle."""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pytest

from kmm_interactive.domain import PriceGrid
from kmm_interactive.sim.agents import (
    INFORMED_USER,
    STALE_USER,
    AgentConfig,
    CompetitorMM,
    Simulation,
    _tick_at_or_above,
    _tick_at_or_below,
    mm_user,
    taker_rate,
)
from kmm_interactive.sim.clock import VirtualClock
from kmm_interactive.sim.exchange import (
    CC,
    BookSide,
    Exchange,
    ExchangeEvent,
    FillEvent,
    FillRecord,
    OrderEvent,
)
from kmm_interactive.sim.scenario import (
    TAPERED_DECI_CENT,
    GameSpec,
    NewsJump,
    Scenario,
    TruthPath,
    build_scenario,
)

T0 = 1_750_000_000.0
BIG = Decimal(10) ** 9
QUIET = AgentConfig(stale_liquidity=False, market_makers=0, informed=False)
#: Exactly two firms on every game, both of the "hold" style and never stepping away.
TWO_HOLDERS = AgentConfig(
    market_makers=2, market_maker_count=(2, 2), mm_back_off=0.0, mm_stay=math.inf
)
#: The same two firms and nothing else.
QUIET_TWO = dataclasses.replace(TWO_HOLDERS, stale_liquidity=False, informed=False, retail=False)


def flat_scenario(
    probs: Sequence[tuple[float, ...]],
    *,
    A: float = 5.0,
    k: float = 0.5,
    jump: tuple[float, tuple[float, ...]] | None = None,
) -> Scenario:
    """NBA games whose truth is constant (or steps once, at ``jump``) and that start far away."""
    base = build_scenario("nba", seed=11, now=T0, n_games=len(probs))
    games, news = [], []
    for game, p in zip(base.games, probs, strict=True):
        times, path = [T0], [p]
        if jump is not None:
            at, after = jump
            times.append(at)
            path.append(after)
            news.append(NewsJump(game.event_ticker, at, p, after))
        games.append(
            dataclasses.replace(
                game,
                A=A,
                k=k,
                path=TruthPath(tuple(times), tuple(path)),
                start=T0 + 1e6,
                end=T0 + 2e6,
                settle=T0 + 2e6 + 300,
            )
        )
    return Scenario(base.name, base.seed, 1.0, T0, tuple(games), tuple(news))


def world(scn: Scenario) -> tuple[VirtualClock, Exchange]:
    clock = VirtualClock(T0)
    return clock, Exchange.from_scenario(scn, clock)


def rest(ex: Exchange, user: str, ticker: str, side: str, price: str, count: int) -> str:
    order = ex.create_order(
        user,
        ticker=ticker,
        side=side,
        price=price,
        count=str(count),
        time_in_force="good_till_canceled",
        self_trade_prevention_type="maker",
    )
    assert order.live
    return order.order_id


def maker_fills(ex: Exchange, user: str) -> list[FillRecord]:
    fills: list[FillRecord] = []

    def listen(event: ExchangeEvent) -> None:
        if isinstance(event, FillEvent) and event.fill.user_id == user:
            fills.append(event.fill)

    ex.listeners.append(listen)
    return fills


# --------------------------------------------------------------------------- the flow model


def test_config_is_validated_with_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"yes_bias = 1\.5"):
        AgentConfig(yes_bias=1.5)
    with pytest.raises(ValueError, match=r"taker_size = \(5, 2\)"):
        AgentConfig(taker_size=(5, 2))
    with pytest.raises(ValueError, match="mm_open"):
        AgentConfig(mm_edge=5.0, mm_open=3.0)
    with pytest.raises(ValueError, match="market_makers"):
        AgentConfig(market_makers=-1)
    with pytest.raises(ValueError, match="mm_refresh"):
        AgentConfig(mm_refresh=0.0)
    with pytest.raises(ValueError, match=r"market_maker_count = \(1, 4\)"):
        AgentConfig(market_makers=3, market_maker_count=(1, 4))
    with pytest.raises(ValueError, match="market_maker_count"):
        AgentConfig(market_maker_count=(2, 1))
    with pytest.raises(ValueError, match="mm_back_off"):
        AgentConfig(mm_back_off=1.5)
    with pytest.raises(ValueError, match="mm_stay"):
        AgentConfig(mm_stay=0.0)
    with pytest.raises(ValueError, match="mm_away"):
        AgentConfig(mm_away=-1.0)
    assert AgentConfig(mm_stay=math.inf).mm_stay == math.inf  # firms that never step away
    assert AgentConfig(market_makers=3).firms_per_game == (0, 3)
    assert AgentConfig(market_makers=3, market_maker_count=(2, 2)).firms_per_game == (2, 2)


def test_taker_rate_is_A_exp_minus_k_delta_times_the_biases() -> None:
    scn = flat_scenario([(0.4, 0.6)], A=2.0, k=0.5)
    game = scn.games[0]
    away, home = game.outcomes
    cfg = AgentConfig(yes_bias=0.15, favourite_bias=0.3)
    # A YES buyer on the 40¢ underdog: (1 + 0.15)·(1 + 0.3·(0.4 − 0.5)).
    buy = 2.0 * 1.15 * 0.97
    assert taker_rate(game, away.ticker, "ask", 2.0, T0, cfg) == pytest.approx(buy * math.exp(-1))
    # A YES seller on the 60¢ favourite: (1 − 0.15)·(1 − 0.3·(0.6 − 0.5)).
    sell = 2.0 * 0.85 * 0.97
    assert taker_rate(game, home.ticker, "bid", 0.0, T0, cfg) == pytest.approx(sell)
    # Better than the truth: every arrival on that side reaches it.
    assert taker_rate(game, away.ticker, "ask", -3.0, T0, cfg) == pytest.approx(buy)
    assert (
        taker_rate(game, away.ticker, "ask", 0.0, T0, dataclasses.replace(cfg, retail=False)) == 0
    )
    with pytest.raises(ValueError, match="book_side"):
        taker_rate(game, away.ticker, "yes", 0.0, T0, cfg)  # type: ignore[arg-type]


DELTAS = (0, 1, 2, 4)
CALIBRATION_SECONDS = 1000.0


def test_retail_fill_rates_match_the_model_on_both_sides() -> None:
    """A resting quote δ¢ from the truth is lifted at A·e^(−kδ)·bias: count the fills."""
    k = 0.5
    scn = flat_scenario([(0.40, 0.60)] * len(DELTAS), A=5.0, k=k)
    _, ex = world(scn)
    ex.open_account("mm", BIG)
    fills = maker_fills(ex, "mm")
    sim = Simulation(scn, ex, QUIET, seed=5)
    quotes: list[tuple[str, BookSide, str, int, GameSpec]] = []  # ticker, side, price, δ, game
    for game, delta in zip(scn.games, DELTAS, strict=True):
        away, home = game.outcomes
        ask = f"{0.40 + delta / 100:.2f}"  # on the 40¢ market: YES buyers, the underdog
        bid = f"{0.60 - delta / 100:.2f}"  # on the 60¢ market: YES sellers, the favourite
        rest(ex, "mm", away.ticker, "ask", ask, 10**6)
        rest(ex, "mm", home.ticker, "bid", bid, 10**6)
        quotes += [(away.ticker, "ask", ask, delta, game), (home.ticker, "bid", bid, delta, game)]
    sim.run_until(T0 + CALIBRATION_SECONDS)

    observed = Counter((f.ticker, f.book_side) for f in fills)
    assert all(not f.is_taker for f in fills)
    by_side: dict[str, list[tuple[int, int]]] = {"ask": [], "bid": []}
    for ticker, side, price, delta, game in quotes:
        p = game.truth(ticker, T0)
        exact_delta = 100 * (float(price) - p) if side == "ask" else 100 * (p - float(price))
        assert exact_delta == pytest.approx(delta, abs=1e-9)
        rate = taker_rate(game, ticker, side, exact_delta, T0, QUIET)
        expected = rate * CALIBRATION_SECONDS
        n = observed[(ticker, side)]
        assert abs(n - expected) < 4 * math.sqrt(expected), (side, delta, n, expected)
        by_side[side].append((delta, n))
    for book_side, points in by_side.items():
        deltas = np.array([d for d, _ in points], dtype=float)
        counts = np.array([n for _, n in points], dtype=float)
        slope = np.polyfit(deltas, np.log(counts), 1)[0]
        assert -slope == pytest.approx(k, rel=0.2), (book_side, -slope)
    # The YES bias shows: buyers at the underdog's ask outpace sellers at the favourite's bid
    # by (1.15 · 0.97) / (0.85 · 0.97).
    ratio = observed[(quotes[0][0], "ask")] / observed[(quotes[1][0], "bid")]
    assert ratio == pytest.approx(1.15 / 0.85, rel=0.1)
    # A counts orders, not contracts: each hit brings 1–10 contracts, 5.5 on average.
    low, high = QUIET.taker_size
    assert all(low * CC <= f.count <= high * CC for f in fills)
    per_hit = sum(f.count for f in fills) / CC / len(fills)
    assert per_hit == pytest.approx((low + high) / 2, rel=0.05)


@pytest.mark.parametrize(
    "grid",
    [PriceGrid.linear_cent(), PriceGrid.from_price_ranges(
        [{"start": a, "end": b, "step": c} for a, b, c in TAPERED_DECI_CENT]
    )],
    ids=["cent", "tapered"],
)  # fmt: skip
def test_one_snapping_rule_agrees_with_the_grid_and_forgives_float_rounding(
    grid: PriceGrid,
) -> None:
    rng = random.Random(1)
    for _ in range(2000):  # off-grid prices: the same ticks as PriceGrid's exact rule
        exact = Decimal(f"{rng.uniform(0.0, 1.0):.6f}")  # six decimals, as the wire allows
        price = float(exact)
        assert _tick_at_or_below(grid, price) == grid.tick_at_or_below(exact)
        assert _tick_at_or_above(grid, price) == grid.tick_at_or_above(exact)
    for tick, level in enumerate(grid.levels):  # on the grid: that very tick
        assert _tick_at_or_below(grid, float(level)) == tick
        assert _tick_at_or_above(grid, float(level)) == tick
    # A float sum that means a level lands on it, whichever way it rounds: 0.1 + 0.2 is
    # 0.30000000000000004 and 0.57 − 0.03 is 0.5399999999999999.
    assert grid.prices_float[_tick_at_or_above(grid, 0.1 + 0.2) or 0] == 0.3
    assert grid.prices_float[_tick_at_or_below(grid, 0.57 - 0.03) or 0] == 0.54


# --------------------------------------------------------------------------- determinism


def compact(event: ExchangeEvent) -> object:
    if isinstance(event, OrderEvent):  # the order object mutates later: freeze it now
        o = event.order
        return ("order", o.user_id, o.order_id, o.ticker, o.status, o.tick, o.remaining, event.ts)
    return repr(event)


def event_stream(seed: int, step: float | None = None) -> list[object]:
    scn = build_scenario("small", seed=4, now=T0, speed=10.0)
    clock, ex = world(scn)
    events: list[object] = []
    ex.listeners.append(lambda e: events.append(compact(e)))
    sim = Simulation(scn, ex, seed=seed)
    end = T0 + 1800.0
    if step is None:
        sim.run_until(end)
    else:
        while clock.now() < end:
            sim.run_until(min(clock.now() + step, end))
    return events


def test_same_seed_same_events_and_another_seed_differs() -> None:
    first = event_stream(1)
    assert len(first) > 1000
    kinds = Counter(e[0] if isinstance(e, tuple) else str(e).split("(")[0] for e in first)
    assert {"FillEvent", "TradeEvent", "LifecycleEvent", "order"} <= set(kinds)
    assert event_stream(1, step=7.3) == first  # how the run is stepped does not matter
    assert event_stream(2) != first


# --------------------------------------------------------------------------- competitors


def by_ceiling(sim: Simulation, event_ticker: str, ticker: str) -> list[CompetitorMM]:
    return sorted(sim.competitors(event_ticker), key=lambda mm: mm.ceiling(ticker) or 0)


def test_competitors_outbid_to_their_ceilings_and_walk_back_down() -> None:
    cfg = dataclasses.replace(QUIET_TWO, mm_edge=3.0, mm_open=8.0)
    scn = flat_scenario([(0.5, 0.5)])
    _, ex = world(scn)
    ex.open_account("me", BIG)
    sim = Simulation(scn, ex, cfg, seed=3)
    ticker = scn.games[0].outcomes[0].ticker
    book = ex.markets[ticker].book
    sim.run_until(T0 + 30)
    lo, hi = by_ceiling(sim, scn.games[0].event_ticker, ticker)
    assert (lo.style, hi.style) == ("hold", "hold")
    c_lo, c_hi = lo.ceiling(ticker), hi.ceiling(ticker)
    assert c_lo is not None
    assert c_hi is not None
    assert c_lo < c_hi, "this seed should give the two firms different ceilings"

    def bids() -> tuple[int | None, int | None]:
        a, b = lo.order(ticker, "bid"), hi.order(ticker, "bid")
        return (a.tick if a else None, b.tick if b else None)

    # They climbed from their opening levels, one tick at a time, until the lower ceiling
    # stopped one firm; the other sits one tick above it and no higher.
    assert bids() == (c_lo, c_lo + 1)
    assert book.best("bid") == c_lo + 1 <= c_hi
    # Asks mirror it around the floors.
    floors = sorted(f for f in (lo.floor(ticker), hi.floor(ticker)) if f is not None)
    asks = sorted(o.tick for o in (lo.order(ticker, "ask"), hi.order(ticker, "ask")) if o)
    assert len(floors) == len(asks) == 2
    low_floor, high_floor = floors
    assert asks == ([low_floor] * 2 if low_floor == high_floor else [high_floor - 1, high_floor])

    # Someone bids above both ceilings: each firm goes to its own ceiling, never past it.
    mine = rest(ex, "me", ticker, "bid", ex.markets[ticker].grid.wire(c_hi + 1), 5)
    sim.run_until(T0 + 40)
    assert bids() == (c_lo, c_hi)
    assert book.best("bid") == c_hi + 1
    # It leaves: the top firm walks back down to one tick above the other.
    ex.cancel_order("me", mine)
    sim.run_until(T0 + 50)
    assert bids() == (c_lo, c_lo + 1)
    # A competitor leaves: the survivor walks down to its opening level.
    lo.withdraw()
    sim.run_until(T0 + 60)
    assert bids() == (None, hi.opening(ticker, "bid"))
    assert hi.opening(ticker, "bid") < c_hi  # type: ignore[operator]
    assert not sim.errors


@pytest.mark.parametrize("style", ["hold", "back_off"])
def test_outbid_beyond_its_ceiling_a_firm_holds_or_backs_off_by_style(style: str) -> None:
    back_off = 1.0 if style == "back_off" else 0.0
    cfg = dataclasses.replace(
        QUIET, retail=False, market_makers=1, market_maker_count=(1, 1), mm_back_off=back_off,
        mm_stay=math.inf, mm_edge=3.0, mm_open=8.0,
    )  # fmt: skip
    scn = flat_scenario([(0.5, 0.5)])
    _, ex = world(scn)
    ex.open_account("me", BIG)
    sim = Simulation(scn, ex, cfg, seed=3)
    ticker = scn.games[0].outcomes[0].ticker
    grid = ex.markets[ticker].grid
    sim.run_until(T0 + 10)
    (mm,) = sim.competitors(scn.games[0].event_ticker)
    assert mm.style == style
    ceiling, floor = mm.ceiling(ticker), mm.floor(ticker)
    open_bid, open_ask = mm.opening(ticker, "bid"), mm.opening(ticker, "ask")
    assert ceiling is not None
    assert floor is not None
    assert open_bid is not None
    assert open_ask is not None

    def quotes() -> tuple[int | None, int | None]:
        bid, ask = mm.order(ticker, "bid"), mm.order(ticker, "ask")
        return (bid.tick if bid else None, ask.tick if ask else None)

    assert quotes() == (open_bid, open_ask)  # alone: a monopsony's wide opening quotes
    rest(ex, "me", ticker, "bid", grid.wire(ceiling - 2), 5)  # inside its limits: outbid me
    rest(ex, "me", ticker, "ask", grid.wire(floor + 2), 5)
    sim.run_until(T0 + 20)
    assert quotes() == (ceiling - 1, floor + 1)
    over_bid = rest(ex, "me", ticker, "bid", grid.wire(ceiling + 1), 5)  # beyond its limits
    over_ask = rest(ex, "me", ticker, "ask", grid.wire(floor - 1), 5)
    sim.run_until(T0 + 30)
    assert quotes() == ((ceiling, floor) if style == "hold" else (open_bid, open_ask))
    ex.cancel_order("me", over_bid)  # the better quotes leave: it comes back above mine
    ex.cancel_order("me", over_ask)
    sim.run_until(T0 + 40)
    assert quotes() == (ceiling - 1, floor + 1)
    assert not sim.errors


def test_firms_step_away_and_come_back_and_the_other_walks_down_meanwhile() -> None:
    cfg = dataclasses.replace(
        QUIET, retail=False, market_makers=2, market_maker_count=(2, 2), mm_back_off=0.0,
        mm_stay=120.0, mm_away=60.0, mm_edge=3.0, mm_open=8.0,
    )  # fmt: skip
    scn = flat_scenario([(0.5, 0.5)])
    _, ex = world(scn)
    sim = Simulation(scn, ex, cfg, seed=3)
    event, ticker = scn.games[0].event_ticker, scn.games[0].outcomes[0].ticker
    sim.run_until(T0 + 30)
    lo, hi = by_ceiling(sim, event, ticker)
    c_lo, c_hi = lo.ceiling(ticker), hi.ceiling(ticker)
    assert c_lo is not None
    assert c_hi is not None
    assert c_lo < c_hi
    # (lo present, hi present, lo's bid, hi's bid), once a second for 40 scenario minutes.
    samples = []
    for second in range(31, 2400):
        sim.run_until(T0 + second)
        bids = [mm.order(ticker, "bid") for mm in (lo, hi)]
        for mm in (lo, hi):
            if not mm.present:  # away: nothing of it rests
                assert not list(ex.live_orders(mm.user_id))
        samples.append((lo.present, hi.present, *(b.tick if b else None for b in bids)))
    for mm in (lo, hi):  # each left several times and came back each time
        assert mm.departures >= 3
        assert mm.entries >= mm.departures
    contested = (True, True, c_lo, c_lo + 1)
    alone = (False, True, None, hi.opening(ticker, "bid"))
    # The top firm sits one tick above the other's ceiling; when the other leaves it walks
    # down to its own opening level within a few requotes, and climbs again on its return.
    walks_down = [
        i for i in range(len(samples) - 5)
        if samples[i] == contested and alone in samples[i + 1 : i + 5]
    ]  # fmt: skip
    climbs = [
        i for i in range(len(samples) - 40)
        if samples[i] == alone and contested in samples[i + 1 : i + 40]
    ]  # fmt: skip
    assert walks_down
    assert climbs
    assert not sim.errors


def test_the_default_market_mixes_monopsonies_contests_styles_and_comings_and_goings() -> None:
    scn = build_scenario("default", seed=4, now=T0, speed=60.0, n_games=40)
    _, ex = world(scn)
    sim = Simulation(scn, ex, seed=2)
    assert AgentConfig().firms_per_game == (0, AgentConfig().market_makers)
    counts = Counter(len(sim.competitors(g.event_ticker)) for g in scn.games)
    assert set(counts) == set(range(AgentConfig().market_makers + 1))  # 0 (monopsony) … all
    assert set(sim.styles.values()) == {"hold", "back_off"}
    for mm in sim.market_makers:
        assert mm.style == sim.styles[mm.firm]
    # The draw is the seed's, not the run's: the same seed picks the same firms.
    again = Simulation(scn, Exchange.from_scenario(scn, VirtualClock(T0)), seed=2)
    assert [(m.event_ticker, m.firm) for m in again.market_makers] == [
        (m.event_ticker, m.firm) for m in sim.market_makers
    ]

    first = min(g.start for g in scn.games)
    sim.run_until(first - 0.5)
    # A monopsony's books hold only the stale deep orders: nothing near the money.
    monopsonies = [g for g in scn.games if not sim.competitors(g.event_ticker)]
    firm_orders = [o for f in sim.styles for o in ex.live_orders(mm_user(f))]
    for game in monopsonies:
        for outcome in game.outcomes:
            assert not [o for o in firm_orders if o.ticker == outcome.ticker]
            book = ex.markets[outcome.ticker].book
            grid = ex.markets[outcome.ticker].grid
            bid, ask = book.best("bid"), book.best("ask")
            assert bid is None or grid.price(bid) <= Decimal("0.05")
            assert ask is None or grid.price(ask) >= Decimal("0.94")
    # Before the first game starts, competitors have left and come back.
    assert sum(mm.departures for mm in sim.market_makers) >= 3
    assert any(mm.departures and mm.entries > 1 for mm in sim.market_makers)


def test_competitors_pull_their_quotes_at_game_start() -> None:
    scn = build_scenario("small", seed=4, now=T0, speed=30.0)
    _, ex = world(scn)
    sim = Simulation(scn, ex, TWO_HOLDERS, seed=1)
    game = scn.games[0]
    tickers = {o.ticker for o in game.outcomes}

    def quoting() -> list[int]:
        return [
            mm.firm
            for mm in sim.competitors(game.event_ticker)
            if any(o.ticker in tickers for o in ex.live_orders(mm.user_id))
        ]

    sim.run_until(game.start - 0.01)
    assert quoting() == [1, 2]
    sim.run_until(game.start)
    assert quoting() == []
    assert not any(mm.active for mm in sim.competitors(game.event_ticker))


# --------------------------------------------------------------------------- stale and informed


def test_stale_deep_liquidity_sits_far_from_the_money_and_never_moves() -> None:
    scn = build_scenario("default", seed=4, now=T0, speed=1.0)
    _, ex = world(scn)
    sim = Simulation(scn, ex, seed=2)
    sim.run_until(T0 + 0.001)
    stale = list(ex.live_orders(STALE_USER))
    asks = [o for o in stale if o.book_side == "ask"]
    bids = [o for o in stale if o.book_side == "bid"]
    assert len(asks) >= 3
    assert len(bids) >= 3
    assert all(Decimal("0.94") <= o.price <= Decimal("0.97") for o in asks)
    assert all(Decimal("0.02") <= o.price <= Decimal("0.05") for o in bids)
    low, high = sim.config.stale_size
    assert all(low * CC <= o.remaining <= high * CC for o in stale)
    for o in stale:
        game, _ = scn.market(o.ticker)
        assert abs(float(o.price) - game.truth(o.ticker, T0)) >= 0.15
    before = {o.order_id: (o.tick, o.remaining) for o in stale}
    sim.run_until(T0 + 600)
    after = {o.order_id: (o.tick, o.remaining) for o in ex.live_orders(STALE_USER)}
    assert after == before  # nobody reaches that far, and nobody moves them


def test_informed_takers_pick_off_quotes_left_at_the_pre_news_price() -> None:
    news_at = T0 + 100
    scn = flat_scenario([(0.5, 0.5)], jump=(news_at, (0.4, 0.6)))
    cfg = dataclasses.replace(QUIET, retail=False, informed=True)
    _, ex = world(scn)
    ex.open_account("me", BIG)
    fills = maker_fills(ex, "me")
    sim = Simulation(scn, ex, cfg, seed=9)
    away, home = scn.games[0].outcomes
    stale_bid = rest(ex, "me", away.ticker, "bid", "0.50", 200)  # truth falls to 40¢
    stale_ask = rest(ex, "me", home.ticker, "ask", "0.50", 200)  # truth rises to 60¢
    rest(ex, "me", away.ticker, "bid", "0.38", 200)  # priced past the new truth: left alone
    rest(ex, "me", home.ticker, "ask", "0.62", 200)
    sim.run_until(news_at - 0.001)
    assert not fills
    sim.run_until(news_at + cfg.informed_window)
    hit = {f.order_id for f in fills}
    assert hit == {stale_bid, stale_ask}
    assert min(f.ts for f in fills) - news_at < cfg.informed_window / cfg.informed_sweeps
    assert sum(f.count for f in fills) == 400 * CC  # swept clean, in sizes retail never sends
    assert ex.position(INFORMED_USER, home.ticker).position > 0


def test_informed_takers_adversely_select_slow_competitors() -> None:
    news_at = T0 + 100
    scn = flat_scenario([(0.5, 0.5)], jump=(news_at, (0.3, 0.7)))
    cfg = dataclasses.replace(QUIET_TWO, informed=True)
    _, ex = world(scn)
    sim = Simulation(scn, ex, cfg, seed=9)
    home = scn.games[0].outcomes[1]
    sim.run_until(news_at + cfg.informed_window)
    # The competitors' views refresh every 300 scenario seconds: their asks on the team that
    # just became a 70% favourite were still near 50¢, and the informed bought them.
    assert ex.position(INFORMED_USER, home.ticker).position > 0
    firms = sim.competitors(scn.games[0].event_ticker)
    assert len(firms) == 2
    sold = sum(-ex.position(mm.user_id, home.ticker).position for mm in firms)
    assert sold > 0


# --------------------------------------------------------------------------- lifecycle


def test_markets_are_determined_at_the_end_and_settled_with_payouts() -> None:
    scn = build_scenario("small", seed=4, now=T0, speed=1000.0)
    _, ex = world(scn)
    ex.open_account("a", BIG)
    ex.open_account("b", BIG)
    sim = Simulation(scn, ex, seed=1)
    for game in scn.games:
        for o in game.outcomes:  # b buys 10 YES of every outcome from a
            rest(ex, "a", o.ticker, "ask", "0.50", 10)
            taken = ex.create_order(
                "b", ticker=o.ticker, side="bid", price="0.50", count="10",
                time_in_force="immediate_or_cancel", self_trade_prevention_type="taker_at_cross",
            )  # fmt: skip
            assert taken.filled == 10 * CC
    checkpoints = sorted(
        [(g.end, "end", g) for g in scn.games] + [(g.settle, "settle", g) for g in scn.games],
        key=lambda c: c[0],
    )
    for at, what, game in checkpoints:
        markets = [ex.markets[o.ticker] for o in game.outcomes]
        sim.run_until(at - 1e-6)
        assert {m.status for m in markets} == ({"active"} if what == "end" else {"determined"})
        balances = ex.balance("a"), ex.balance("b")
        sim.run_until(at)
        if what == "end":
            assert [m.status for m in markets] == ["determined"] * len(markets)
            assert [m.result == "yes" for m in markets] == [
                o.index == game.result_index for o in game.outcomes
            ]
            assert ex.balance("b") == balances[1]  # nothing is paid before settlement
        else:
            assert [m.status for m in markets] == ["finalized"] * len(markets)
            # $1 per winning contract: b's 10 YES on the winner, a's 10 NO on each loser.
            assert ex.balance("b") - balances[1] == 10
            assert ex.balance("a") - balances[0] == 10 * (len(markets) - 1)
            for o in game.outcomes:
                assert ex.position("b", o.ticker).position == 0
    for firm in sim.styles:
        assert not any(ex.live_orders(mm_user(firm)))


class StepClock:
    """A clock the simulation cannot move, standing in for the wall clock."""

    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


def test_on_a_clock_it_does_not_own_actions_run_late_at_their_scheduled_times() -> None:
    scn = build_scenario("small", seed=4, now=T0, speed=10.0)
    clock = StepClock(T0)
    ex = Exchange.from_scenario(scn, clock)
    sim = Simulation(scn, ex, TWO_HOLDERS, seed=1)
    assert sim.next_time() == T0  # the stale orders go in first
    clock.t = T0 + 5
    ran = sim.advance_to(clock.now())
    assert ran > 10
    assert clock.now() == T0 + 5  # the simulation never moves a clock it does not own
    nxt = sim.next_time()
    assert nxt is not None
    assert nxt > T0 + 5
    assert any(ex.live_orders(mm_user(1)))
