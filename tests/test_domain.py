from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmm_interactive.domain import (
    Fill,
    Game,
    GameSide,
    InvalidTransition,
    Leg,
    Market,
    OffGridError,
    Order,
    OrderState,
    PriceBand,
    PriceGrid,
    Side,
    format_count,
    format_dollars,
    game_inventory,
    no_price,
    parse_count,
    parse_dollars,
)

TAPERED = [
    {"start": "0.0000", "end": "0.1000", "step": "0.0010"},
    {"start": "0.1000", "end": "0.9000", "step": "0.0100"},
    {"start": "0.9000", "end": "1.0000", "step": "0.0010"},
]


# ------------------------------------------------------------------ fixed point


def test_parse_dollars_is_exact_and_refuses_floats():
    assert parse_dollars("0.5600") == Decimal("0.56")
    assert parse_dollars(" 0.123456 ") == Decimal("0.123456")
    assert parse_dollars(1) == Decimal(1)
    with pytest.raises(TypeError, match="not float"):
        parse_dollars(0.56)
    with pytest.raises(TypeError):
        parse_dollars(True)
    with pytest.raises(ValueError, match="more than 6 decimals"):
        parse_dollars("0.1234567")
    for text in ("abc", "NaN", "Infinity", "1e5", "1_0", "١", "0x10"):
        with pytest.raises(ValueError, match="not a plain decimal number"):
            parse_dollars(text)
    with pytest.raises(ValueError, match="finite"):
        parse_dollars(Decimal("NaN"))
    # Hostile magnitudes are refused before any arithmetic could take minutes.
    for huge in (10**30, Decimal("1e999999"), "9" * 40):
        with pytest.raises(ValueError, match=r"too large|plain decimal"):
            parse_count(huge)


def test_parse_count_two_decimals_and_sign():
    assert parse_count("10.00") == Decimal(10)
    assert parse_count("-54.00", signed=True) == Decimal(-54)
    with pytest.raises(ValueError, match="negative"):
        parse_count("-1")
    with pytest.raises(ValueError, match="more than 2 decimals"):
        parse_count("1.005")


def test_wire_formats():
    assert format_dollars(Decimal("0.56")) == "0.5600"
    assert format_dollars(Decimal("0.00015")) == "0.00015"
    assert format_count(Decimal(10)) == "10.00"
    with pytest.raises(ValueError, match="more than 2 decimals"):
        format_count(Decimal("0.001"))


# ------------------------------------------------------------------ price grid


def test_linear_cent_grid():
    grid = PriceGrid.from_price_ranges([{"start": "0.0000", "end": "1.0000", "step": "0.0100"}])
    assert grid == PriceGrid.linear_cent()
    assert len(grid) == 99
    assert grid.price(0) == Decimal("0.01")
    assert grid.price(98) == Decimal("0.99")
    assert grid.tick("0.5600") == 55
    assert grid.wire(55) == "0.5600"


def test_tapered_grid_ticks_follow_the_bands():
    grid = PriceGrid.from_price_ranges(TAPERED)
    assert len(grid) == 99 + 80 + 100  # 0.001…0.099, 0.10…0.89, 0.900…0.999
    # One tick above 0.099 is 0.10; one tick above 0.10 is 0.11 (not 0.101).
    assert grid.price(grid.tick("0.099") + 1) == Decimal("0.1")
    assert grid.price(grid.tick("0.10") + 1) == Decimal("0.11")
    assert grid.price(grid.tick("0.90") + 1) == Decimal("0.901")
    with pytest.raises(OffGridError, match=r"0\.105 is not on this market's grid"):
        grid.tick("0.105")


@given(st.sampled_from([TAPERED, [{"start": "0", "end": "1", "step": "0.005"}]]), st.data())
def test_dollars_ticks_round_trip(ranges, data):
    grid = PriceGrid.from_price_ranges(ranges)
    tick = data.draw(st.integers(0, len(grid) - 1))
    assert grid.tick(grid.wire(tick)) == tick
    assert grid.tick(grid.price(tick)) == tick


def test_prices_outside_zero_one_are_refused():
    grid = PriceGrid.linear_cent()
    for bad in ("0", "1", "1.01", "-0.5"):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            grid.tick(bad)
    with pytest.raises(IndexError):
        grid.price(99)


def test_snapping_rounds_bids_down_and_asks_up():
    grid = PriceGrid.from_price_ranges(TAPERED)
    with pytest.raises(TypeError, match="not float"):
        grid.tick_at_or_below(0.55)
    with pytest.raises(TypeError, match="not float"):
        PriceBand(0.0, 1.0, 0.01)
    assert grid.price(grid.tick_at_or_below(Decimal("0.1055"))) == Decimal("0.10")
    assert grid.price(grid.tick_at_or_above(Decimal("0.1055"))) == Decimal("0.11")
    assert grid.tick_at_or_below(Decimal("0.0005")) is None
    assert grid.tick_at_or_above(Decimal("0.9995")) is None


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ([], "empty"),
        ([{"start": "0", "end": "1"}], "need keys start, end and step"),
        ([{"start": "0", "end": "1", "step": "0"}], r"step = 0: must be > 0"),
        ([{"start": "0.5", "end": "0.4", "step": "0.01"}], "start < end"),
        ([{"start": "0", "end": "1", "step": "0.03"}], "does not divide"),
        (
            [
                {"start": "0", "end": "0.6", "step": "0.01"},
                {"start": "0.5", "end": "1", "step": "0.01"},
            ],
            "must not overlap",
        ),
        ([{"start": "0", "end": "1", "step": 0.01}], "not float"),
    ],
)
def test_bad_price_ranges_say_what_is_wrong(ranges, message):
    with pytest.raises((ValueError, TypeError), match=message):
        PriceGrid.from_price_ranges(ranges)


# ------------------------------------------------------------------ sides and games


def test_no_is_the_other_side_of_the_yes_book():
    assert no_price(Decimal("0.30")) == Decimal("0.70")
    assert Side.BID.opposite is Side.ASK
    assert Side.ASK.sign == -1


def test_four_sides_move_the_game_inventory():
    raising = {s for s in GameSide if s.q_sign > 0}
    assert raising == {GameSide.BID_A, GameSide.ASK_B}
    assert {s for s in GameSide if s.q_sign < 0} == {GameSide.ASK_A, GameSide.BID_B}
    assert GameSide.of(Leg.B, Side.ASK) is GameSide.ASK_B
    assert str(GameSide.ASK_B) == "ask B"


def _market(ticker, team, event="KXNBAGAME-26NOV21BOSLAL"):
    return Market(ticker=ticker, event_ticker=event, team=team, grid=PriceGrid.linear_cent())


def test_game_model_and_inventory():
    start = datetime(2026, 11, 22, 0, 30, tzinfo=UTC)
    game = Game(
        event_ticker="KXNBAGAME-26NOV21BOSLAL",
        sport="nba",
        start_time=start,
        market_a=_market("KXNBAGAME-26NOV21BOSLAL-BOS", "Boston"),
        market_b=_market("KXNBAGAME-26NOV21BOSLAL-LAL", "Los Angeles L"),
    )
    assert game.teams == ("Boston", "Los Angeles L")
    assert game.leg_of("KXNBAGAME-26NOV21BOSLAL-LAL") is Leg.B
    assert game.seconds_to_start(start - timedelta(minutes=5)) == 300
    # YES A and NO B are the same exposure: long 10 A and short 5 B is q = 15.
    assert game_inventory(Decimal(10), Decimal(-5)) == Decimal(15)
    with pytest.raises(KeyError):
        game.leg_of("OTHER")
    with pytest.raises(ValueError, match="timezone-aware"):
        Game("E", "nba", datetime(2026, 1, 1), _market("A", "a", "E"), _market("B", "b", "E"))
    with pytest.raises(ValueError, match="belongs to"):
        Game("E", "nba", start, _market("A", "a", "E"), _market("B", "b", "OTHER"))


# ------------------------------------------------------------------ fills and orders


def test_fill_moves_position_and_cash():
    fill = Fill(
        "f1",
        "o1",
        "T",
        Side.ASK,
        Decimal("0.60"),
        Decimal(10),
        Decimal("0.02"),
        is_taker=False,
        ts=datetime.now(UTC),
    )
    assert fill.position_delta == Decimal(-10)
    assert fill.cash_delta == Decimal("5.98")
    with pytest.raises(FrozenInstanceError):
        fill.count = Decimal(1)  # type: ignore[misc]
    with pytest.raises(ValueError, match="positive"):
        Fill("f", "o", "T", Side.BID, Decimal("0.5"), Decimal(0), Decimal(0), False, fill.ts)


def test_order_state_machine():
    order = Order("c1", "T", Side.BID, Decimal("0.45"), Decimal(10))
    assert order.state is OrderState.PENDING_NEW
    assert order.is_live
    resting = order.transition(OrderState.RESTING, order_id="x1")
    partly = resting.transition(OrderState.RESTING, filled=Decimal(4))
    assert partly.remaining == Decimal(6)
    assert partly.order_id == "x1"
    unknown = partly.transition(OrderState.PENDING_CANCEL).transition(OrderState.UNKNOWN)
    done = unknown.transition(OrderState.DONE)
    assert not done.is_live
    with pytest.raises(InvalidTransition, match="done → resting"):
        done.transition(OrderState.RESTING)
    with pytest.raises(InvalidTransition, match="pending_new → pending_amend"):
        order.transition(OrderState.PENDING_AMEND)
    with pytest.raises(ValueError, match="filled"):
        resting.transition(OrderState.RESTING, filled=Decimal(11))
    # A kill switch may cancel an order whose create is still in flight.
    assert order.transition(OrderState.PENDING_CANCEL).state is OrderState.PENDING_CANCEL


def test_a_fill_may_carry_a_fee_rounding_refund_but_not_a_dollar_a_contract():
    def fill(fee: str) -> Fill:
        return Fill(
            "f", "o", "T", Side.BID, Decimal("0.55"), Decimal(2), Decimal(fee),
            is_taker=False, ts=datetime.now(UTC),
        )  # fmt: skip

    assert fill("-0.0089").cash_delta == Decimal("-1.10") + Decimal("0.0089")
    with pytest.raises(ValueError, match="refund of \\$1 a contract"):
        fill("-2.00")


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"price": 0.55}, TypeError, "price must be a string, int or Decimal, not float"),
        ({"count": 10.0}, TypeError, "count must be a string, int or Decimal, not float"),
        ({"price": Decimal("0.5512345")}, ValueError, "more than 6 decimals"),
        ({"count": Decimal("1.005")}, ValueError, "more than 2 decimals"),
        ({"price": Decimal("1.2")}, ValueError, "strictly between 0 and 1"),
    ],
)
def test_orders_and_fills_refuse_inexact_money(fields, error, message):
    order = {
        "client_order_id": "c",
        "ticker": "T",
        "side": Side.BID,
        "price": Decimal("0.55"),
        "count": Decimal(10),
    } | fields
    with pytest.raises(error, match=message):
        Order(**order)
    fill = {
        "fill_id": "f",
        "order_id": "o",
        "ticker": "T",
        "side": Side.BID,
        "price": Decimal("0.55"),
        "count": Decimal(10),
        "fee": Decimal(0),
        "is_taker": False,
        "ts": datetime.now(UTC),
    } | fields
    with pytest.raises(error, match=message):
        Fill(**fill)
    assert Order("c", "T", Side.BID, "0.55", 10).price == Decimal("0.55")  # strings and ints parse
