"""Risk rules: edge and break-even limits (the seed's example), caps, and headroom."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmm_interactive.domain import FeeType, GameSide, PriceGrid, SeriesFees, Side
from kmm_interactive.pricing.fees import expected_fee
from kmm_interactive.strategy import risk

D = Decimal
CENT = PriceGrid.linear_cent()
TAPERED = PriceGrid.from_price_ranges(
    [
        {"start": "0", "end": "0.1", "step": "0.001"},
        {"start": "0.1", "end": "0.9", "step": "0.01"},
        {"start": "0.9", "end": "1", "step": "0.001"},
    ]
)
MAKER = SeriesFees(FeeType.QUADRATIC_WITH_MAKER_FEES)
TAKER_ONLY = SeriesFees(FeeType.QUADRATIC)


def test_the_seeds_break_even_example() -> None:
    # Long team A at 45¢ (plus the maker fee it paid); B's theo is 52¢.
    cost = D("0.45") + expected_fee(D("0.45"), maker=True, fees=MAKER)
    ceiling = risk.break_even_ceiling(Side.BID, cost, CENT, MAKER)
    assert ceiling is not None
    assert CENT.price(ceiling) == D("0.54")  # "we will still bid it up to about 54¢"
    # 54¢ locks a profit after the fee; 55¢ would lose money on the pair.
    assert D(1) - cost - D("0.54") - expected_fee(D("0.54"), maker=True, fees=MAKER) >= 0
    assert D(1) - cost - D("0.55") - expected_fee(D("0.55"), maker=True, fees=MAKER) < 0
    # Without the exposure the edge limit keeps the bid at theo minus the edge and the fee.
    normal = risk.edge_limit(Side.BID, D("0.52"), D("0.01"), CENT, MAKER)
    assert normal is not None
    assert CENT.price(normal) == D("0.50")
    # Selling the held A claim instead: down to the cost plus the fee, 46¢.
    floor = risk.break_even_ceiling(Side.ASK, cost, CENT, MAKER)
    assert floor is not None
    assert CENT.price(floor) == D("0.46")


def test_limits_are_net_of_the_fee_only_where_one_is_charged() -> None:
    bid = risk.edge_limit(Side.BID, D("0.50"), D("0"), CENT, TAKER_ONLY)
    assert bid is not None
    assert CENT.price(bid) == D("0.50")  # no maker fee: theo itself is break-even
    bid = risk.edge_limit(Side.BID, D("0.50"), D("0"), CENT, MAKER)
    assert bid is not None
    assert CENT.price(bid) == D("0.49")
    ask = risk.edge_limit(Side.ASK, D("0.50"), D("0.02"), CENT, MAKER)
    assert ask is not None
    assert CENT.price(ask) == D("0.53")  # 0.52 keeps 0.5156 < 0.52 after the fee
    assert risk.edge_limit(Side.BID, D("0.005"), D("0.01"), CENT, MAKER) is None
    assert risk.edge_limit(Side.ASK, D("0.995"), D("0.01"), CENT, MAKER) is None


@given(
    theo=st.decimals(min_value=D("0.02"), max_value=D("0.98"), places=4),
    edge=st.decimals(min_value=D("0"), max_value=D("0.05"), places=3),
    grid=st.sampled_from([CENT, TAPERED]),
)
def test_edge_limits_are_the_most_aggressive_price_that_keeps_the_edge(
    theo: Decimal, edge: Decimal, grid: PriceGrid
) -> None:
    for side in Side:
        tick = risk.edge_limit(side, theo, edge, grid, MAKER)
        if tick is None:
            continue
        for t, ok in ((tick, True), (tick + side.sign, False)):
            if not 0 <= t < len(grid):
                continue
            price = grid.price(t)
            fee = expected_fee(price, maker=True, fees=MAKER)
            kept = theo - price - fee if side is Side.BID else price - fee - theo
            assert (kept >= edge) is ok


def test_break_even_refuses_a_cost_that_is_no_cost() -> None:
    with pytest.raises(ValueError, match="claim_cost"):
        risk.break_even_ceiling(Side.BID, D(0), CENT, MAKER)


def test_effective_cap_follows_liquidity_but_never_below_a_quote() -> None:
    assert risk.effective_cap(100, 25, 0.5, D(1000)) == 100
    assert risk.effective_cap(100, 25, 0.5, D(120)) == 60
    assert risk.effective_cap(100, 25, 0.5, D(0)) == 25
    with pytest.raises(ValueError, match="liquidity_factor"):
        risk.effective_cap(100, 25, 0.0, D(10))


def test_sizes_shrink_then_stop_near_the_cap() -> None:
    both = [GameSide.BID_A, GameSide.ASK_B, GameSide.ASK_A, GameSide.BID_B]
    assert risk.allocate_sizes(D(0), 100, 25, both) == dict.fromkeys(both, 25)
    near = risk.allocate_sizes(D(70), 100, 25, both)
    assert near[GameSide.BID_A] + near[GameSide.ASK_B] == 30  # the raising sides share 30
    assert near[GameSide.ASK_A] == near[GameSide.BID_B] == 25
    full = risk.allocate_sizes(D(100), 100, 25, both)
    assert full[GameSide.BID_A] == full[GameSide.ASK_B] == 0
    over = risk.allocate_sizes(D("99.5"), 100, 25, [GameSide.BID_A])
    assert over[GameSide.BID_A] == 0  # half a contract of room is no room for a whole one


@given(
    q=st.decimals(min_value=D(-130), max_value=D(130), places=2),
    cap=st.integers(min_value=1, max_value=120),
    size=st.integers(min_value=1, max_value=60),
    sides=st.sets(st.sampled_from(list(GameSide))),
)
def test_simultaneous_fills_can_never_pass_the_cap(
    q: Decimal, cap: int, size: int, sides: set[GameSide]
) -> None:
    sizes = risk.allocate_sizes(q, cap, size, sides)
    assert set(sizes) == sides
    up = sum(n for s, n in sizes.items() if s.q_sign > 0)
    down = sum(n for s, n in sizes.items() if s.q_sign < 0)
    assert all(0 <= n <= size for n in sizes.values())
    assert up == 0 or q + up <= cap
    assert down == 0 or q - down >= -cap
    # Nothing is left unused that one side could still take.
    room_up = int(max(D(cap) - q, D(0)) // 1)
    raising = [s for s in sides if s.q_sign > 0]
    assert up == min(room_up, size * len(raising)) or not raising


def test_reducing_sides() -> None:
    assert risk.reduces(GameSide.ASK_A, D(5))
    assert risk.reduces(GameSide.BID_B, D(5))
    assert not risk.reduces(GameSide.BID_A, D(5))
    assert risk.reduces(GameSide.ASK_B, D(-1))
    assert not any(risk.reduces(s, D(0)) for s in GameSide)
    assert risk.over_exposed(D(50), 100, 0.5)
    assert not risk.over_exposed(D("49.99"), 100, 0.5)
