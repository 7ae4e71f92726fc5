"""The quote table: the HJB solver's checks from DESIGN.md §2, and the other models."""

from decimal import Decimal
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm_interactive.domain import FeeType, GameSide, PriceGrid, SeriesFees
from kmm_interactive.pricing import hjb
from kmm_interactive.pricing.hjb import solve_quote_table
from kmm_interactive.pricing.quote_table import NO_QUOTE, BookInputs, QuoteProblem, QuoteTable

CENT = PriceGrid.linear_cent()
FINE = PriceGrid.uniform("0.001")


@cache
def table(
    *,
    grid=CENT,
    theo=0.5,
    gamma=0.02,
    sigma=0.0,
    q_max=30,
    fee=FeeType.QUADRATIC,
    A=0.05,
    k=0.5,
    game=False,
    model="hjb",
    horizon=6 * 3600.0,
) -> QuoteTable:
    def book(p):
        return BookInputs(grid=grid, theo=p, A=A, k=k, fees=SeriesFees(fee))

    problem = QuoteProblem(
        book_a=book(theo),
        book_b=book(1 - theo) if game else None,
        gamma=gamma,
        q_max=q_max,
        sigma=sigma,
        horizon=horizon,
    )
    return solve_quote_table(problem, model)


def mid_skew(t: QuoteTable, q: int, tau: float) -> float:
    """How far the mid moves (in ticks) holding q instead of nothing."""
    now, flat = t.quote(q, tau), t.quote(0, tau)
    return (now.bid + now.ask) / 2 - (flat.bid + flat.ask) / 2


# ---------------------------------------------------------------- (a) GLFT limit


@pytest.mark.parametrize(
    "params",
    [
        {"theo": 0.55, "gamma": 0.02, "q_max": 25},
        {"theo": 0.3, "gamma": 0.05, "sigma": 2e-4, "A": 0.1, "k": 0.3, "q_max": 20},
        {"theo": 0.62, "gamma": 0.03, "q_max": 20, "game": True},
    ],
    ids=["single", "sigma", "game"],
)
def test_a_without_fees_on_a_fine_grid_hjb_matches_glft_within_a_tick(params):
    hjb = table(grid=FINE, **params).ticks
    glft = table(grid=FINE, model="glft", **params).ticks
    both = (hjb != NO_QUOTE) & (glft != NO_QUOTE)
    assert both.mean() > 0.9
    assert np.abs(hjb - glft)[both].max() <= 1
    # Skew is really exercised: quotes at the cap differ from those at zero by many ticks.
    assert np.abs(hjb[0, 1, 0] - hjb[0, params["q_max"], 0]) > 50


# ---------------------------------------------------------------- (b) γ → 0


def test_b_as_gamma_vanishes_the_distance_tends_to_one_over_k():
    t = table(grid=FINE, gamma=1e-5, q_max=10, k=0.5)  # 1/k = 2 cents
    for tau in (0.0, 60.0, 3600.0, t.tau[-1]):
        quotes = t.quote(0, tau)
        bid, ask = t.price(GameSide.BID_A, quotes.bid), t.price(GameSide.ASK_A, quotes.ask)
        assert abs(Decimal("0.5") - bid - Decimal("0.02")) <= Decimal("0.001")
        assert abs(ask - Decimal("0.5") - Decimal("0.02")) <= Decimal("0.001")


# ---------------------------------------------------------------- (c) symmetry


@pytest.mark.parametrize("fee", [FeeType.QUADRATIC, FeeType.QUADRATIC_WITH_MAKER_FEES])
@pytest.mark.parametrize("game", [False, True])
def test_c_at_one_half_quotes_mirror_in_q(fee, game):
    t = table(theo=0.5, sigma=1e-4, fee=fee, game=game)
    top = len(CENT) - 1
    bid, ask = t.ticks[:, :, 0], t.ticks[:, :, 1]
    mirrored_ask = np.where(ask[:, ::-1] == NO_QUOTE, NO_QUOTE, top - ask[:, ::-1])
    np.testing.assert_array_equal(bid, mirrored_ask)


# ---------------------------------------------------------------- (d) monotone in q


@pytest.mark.parametrize("game", [False, True])
def test_d_bid_and_ask_fall_as_q_rises(game):
    t = table(theo=0.6, sigma=1e-4, fee=FeeType.QUADRATIC_WITH_MAKER_FEES, game=game)
    for i, side in enumerate(t.sides):
        ticks = t.ticks[:, :, i].astype(float)
        ticks[ticks == NO_QUOTE] = np.nan
        steps = np.diff(ticks, axis=1)
        steps = steps[~np.isnan(steps)]
        # Team A's quotes fall as we get longer A; team B's rise (long A is short B).
        assert (steps <= 0).all() if side.leg.value == "a" else (steps >= 0).all()
    assert mid_skew(t, 20, 60.0) < 0


# ---------------------------------------------------------------- (e) the cap


@pytest.mark.parametrize("game", [False, True])
def test_e_no_side_grows_exposure_past_the_cap(game):
    t = table(game=game)
    at_cap, at_floor = t.quote(t.q_max, 100.0), t.quote(-t.q_max, 100.0)
    for side in t.sides:
        assert (at_cap[side] is None) == (side.q_sign > 0)
        assert (at_floor[side] is None) == (side.q_sign < 0)
    assert t.quote(t.q_max + 7, 100.0) == at_cap  # beyond the cap: only reducing sides


# ---------------------------------------------------------------- (f) fees


def test_f_a_maker_fee_widens_quotes_by_about_the_fee():
    free = table(grid=FINE, gamma=0.005)
    paid = table(grid=FINE, gamma=0.005, fee=FeeType.QUADRATIC_WITH_MAKER_FEES)
    fee_ticks = 0.0175 * 0.48 * 0.52 / 0.001  # 4.4 ticks near the quotes
    for tau in (0.0, 600.0, free.tau[-1]):
        a, b = free.quote(0, tau), paid.quote(0, tau)
        assert abs((a.bid - b.bid) - fee_ticks) <= 1
        assert abs((b.ask - a.ask) - fee_ticks) <= 1


# ---------------------------------------------------------------- (g) skew


def test_g_larger_sigma_or_gamma_widens_the_skew():
    taus = (60.0, 600.0, 3600.0, 21600.0)
    by_sigma = [
        [abs(mid_skew(table(grid=FINE, sigma=s), 15, tau)) for tau in taus]
        for s in (0.0, 1e-3, 2e-3)
    ]
    by_gamma = [
        [abs(mid_skew(table(grid=FINE, gamma=g), 15, tau)) for tau in taus]
        for g in (0.01, 0.02, 0.05)
    ]
    for rows in (by_sigma, by_gamma):
        low, mid, high = (np.array(r) for r in rows)
        assert (low <= mid).all()
        assert (mid <= high).all()
        assert (low < high).any()


# ---------------------------------------------------------------- robustness

TAPERED = PriceGrid.from_price_ranges(
    [
        {"start": "0", "end": "0.1", "step": "0.001"},
        {"start": "0.1", "end": "0.9", "step": "0.01"},
        {"start": "0.9", "end": "1", "step": "0.001"},
    ]
)


def test_refining_the_tau_grid_changes_no_quote_by_more_than_a_tick():
    # A stiff game: heavy inventories unwind through theo at thousands of fills per second
    # in the model. A solver that is only stable, not accurate, moves by dozens of ticks.
    def solve(n_tau):
        a = BookInputs(grid=TAPERED, theo=0.904, A=0.15, k=0.99)
        b = BookInputs(grid=TAPERED, theo=0.096, A=0.2, k=1.1)
        problem = QuoteProblem(
            book_a=a, book_b=b, gamma=0.275, q_max=38, sigma=1.3e-3, horizon=20_000.0, n_tau=n_tau
        )
        return solve_quote_table(problem).ticks

    coarse, fine = solve(24), solve(90)  # every 4th point of the fine τ grid is a coarse one
    fine = fine[[0, *range(1, 90, 4)]]
    np.testing.assert_array_equal(coarse == NO_QUOTE, fine == NO_QUOTE)
    assert np.abs(coarse - fine).max() <= 1


@settings(max_examples=25)
@given(
    grid=st.sampled_from([CENT, TAPERED]),
    theo=st.floats(0.02, 0.98),
    gamma=st.floats(0.001, 1.0),
    sigma=st.sampled_from([0.0, 1e-4, 1e-3]),
    k=st.floats(0.05, 3.0),
    A=st.floats(0.001, 5.0),
    game=st.booleans(),
    maker_fees=st.booleans(),
)
def test_quotes_are_monotone_in_q_whatever_the_parameters(
    grid, theo, gamma, sigma, k, A, game, maker_fees
):
    fees = SeriesFees(FeeType.QUADRATIC_WITH_MAKER_FEES if maker_fees else FeeType.QUADRATIC)
    a = BookInputs(grid=grid, theo=theo, A=A, k=k, fees=fees)
    b = BookInputs(grid=grid, theo=1 - theo, A=A, k=k, fees=fees) if game else None
    t = solve_quote_table(
        QuoteProblem(
            book_a=a, book_b=b, gamma=gamma, q_max=25, sigma=sigma, horizon=7200.0, n_tau=24
        )
    )
    for i, side in enumerate(t.sides):
        ticks = t.ticks[:, :, i].astype(float)
        ticks[ticks == NO_QUOTE] = np.nan
        steps = np.diff(ticks, axis=1)
        steps = steps[~np.isnan(steps)]
        assert (steps <= 0).all() if side.leg.value == "a" else (steps >= 0).all(), str(side)
    # Rows are smoothed to be monotone; an accurate solve needs less than a price level of it.
    assert t.diagnostics["dent_levels"] < 1.0


# ---------------------------------------------------------------- two books, one inventory


def test_a_game_quotes_both_books_on_one_inventory():
    t = table(theo=0.6, game=True)
    top = len(CENT) - 1
    bid_a, ask_b = t.ticks[:, :, 0], t.ticks[:, :, 3]
    quoted = (bid_a != NO_QUOTE) & (ask_b != NO_QUOTE)
    # Bid A at b and ask B at 1 − b are the same trade; with equal flow they price alike.
    np.testing.assert_array_equal(ask_b[quoted], top - bid_a[quoted])
    # Twice the flow to unwind through: the skew is never larger than with one book.
    single = table(theo=0.6)
    for tau in (60.0, 600.0):
        assert abs(mid_skew(t, 15, tau)) <= abs(mid_skew(single, 15, tau))


# ---------------------------------------------------------------- the table


def test_lookup_rules():
    t = table()
    # Fractional inventories (fractional fills) read the row one contract further out.
    assert t.quote(Decimal("2.5"), 600.0) == t.quote(3, 600.0)
    assert t.quote(Decimal("-0.01"), 600.0) == t.quote(-1, 600.0)
    with pytest.raises(TypeError, match="int or Decimal"):
        t.quote(2.5, 600.0)
    assert t.quote(np.int64(3), 600.0) == t.quote(3, 600.0)
    with pytest.raises(ValueError, match="not a finite number"):
        t.quote(Decimal("NaN"), 600.0)
    assert t.quote(0, -1.0) == t.quote(0, float("nan")) == type(t.quote(0, 0))()
    i = 40
    between = (t.tau[i] + t.tau[i + 1]) / 2
    assert t.quote(3, between) == t.quote(3, t.tau[i])  # the grid row at or below τ
    assert t.quote(3, 1e9) == t.quote(3, t.tau[-1])
    frame = t.frame(600.0)
    assert list(frame.columns) == ["bid A", "ask A"]
    assert len(frame) == 2 * t.q_max + 1
    quotes = t.quote(0, 600.0)
    assert frame.loc[0, "bid A"] == float(t.price(GameSide.BID_A, quotes.bid))
    assert t.price(GameSide.BID_A, None) is None
    with pytest.raises(ValueError, match="read-only"):
        t.ticks[0, 0, 0] = 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gamma": 0.0}, "gamma = 0.0"),
        ({"q_max": 0}, "q_max = 0"),
        ({"sigma": -1.0}, "sigma = -1.0"),
        ({"horizon": 10.0}, "at least 60 seconds"),
        ({"n_tau": 2}, "n_tau = 2"),
        ({"q_target": 99}, "q_target = 99"),
    ],
)
def test_bad_problems(change, message):
    book = BookInputs(grid=CENT, theo=0.5, A=0.05, k=0.5)
    with pytest.raises(ValueError, match=message):
        QuoteProblem(**({"book_a": book, "gamma": 0.02, "q_max": 10} | change))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"theo": 1.0}, "strictly between 0 and 1"),
        ({"A": 0.0}, "A = 0.0"),
        ({"k": 9.0}, r"k = 9.0: decay per cent of distance must be in \(0, 5.0\]"),
        ({"fees": SeriesFees(FeeType.FLAT)}, "'flat' is not supported"),
    ],
)
def test_bad_books(change, message):
    with pytest.raises(ValueError, match=message):
        BookInputs(**({"grid": CENT, "theo": 0.5, "A": 0.05, "k": 0.5} | change))


@pytest.mark.parametrize(
    ("grid", "theo", "A", "k", "gamma", "q_max"),
    [
        (CENT, 0.5, 1000.0, 5.0, 0.02, 10),  # rates deep through theo would be ~1e200
        (CENT, 0.3, 0.05, 0.5, 10.0, 5),  # the largest γ allowed
        (TAPERED, 0.001, 5.0, 5.0, 1.0, 10),  # theo at the grid's edge
        (PriceGrid.uniform("0.5"), 0.4, 0.05, 0.5, 0.02, 5),  # a grid with one price
    ],
)
def test_extreme_legal_inputs_solve_cleanly(grid, theo, A, k, gamma, q_max):
    book = BookInputs(grid=grid, theo=theo, A=A, k=k)
    t = solve_quote_table(QuoteProblem(book_a=book, gamma=gamma, q_max=q_max, horizon=3600.0))
    assert ((t.ticks >= 0) & (t.ticks < len(grid)) | (t.ticks == NO_QUOTE)).all()
    assert t.diagnostics["solves"] > 0


def test_a_solve_that_needs_too_much_work_says_so(monkeypatch):
    monkeypatch.setattr(hjb, "MAX_WORK", 10_000)
    with pytest.raises(hjb.SolveError, match=r"needs more than .* linear solves"):
        table.__wrapped__(theo=0.31, q_max=60)
    with pytest.raises(ValueError, match=r"tolerance = 0: must be in \(0, 1\]"):
        hjb.solve_hjb(table(q_max=5).problem, tolerance=0)


def test_bounds_on_gamma_and_the_cap():
    book = BookInputs(grid=CENT, theo=0.5, A=0.05, k=0.5)
    with pytest.raises(ValueError, match=r"gamma = 20.0: .* must be in \(0, 10.0\]"):
        QuoteProblem(book_a=book, gamma=20.0, q_max=5)
    with pytest.raises(ValueError, match="q_max = 2001: must be an integer in 1 … 2000"):
        QuoteProblem(book_a=book, gamma=0.02, q_max=2001)


def test_the_two_books_of_a_game_must_agree_on_theo():
    a = BookInputs(grid=CENT, theo=0.6, A=0.05, k=0.5)
    b = BookInputs(grid=CENT, theo=0.45, A=0.05, k=0.5)
    with pytest.raises(ValueError, match=r"must sum to 1 \(override both books together\)"):
        QuoteProblem(book_a=a, book_b=b, gamma=0.02, q_max=5)


def test_glft_refuses_work_that_would_stall_a_notebook():
    book = BookInputs(grid=CENT, theo=0.5, A=0.05, k=5.0)
    with pytest.raises(ValueError, match=r"series terms .* use the HJB model"):
        solve_quote_table(QuoteProblem(book_a=book, gamma=2.0, q_max=100, sigma=3e-3), "glft")


def test_unknown_model_and_glft_needs_one_k():
    with pytest.raises(ValueError, match="quote model 'magic' is unknown"):
        table(model="magic")
    a = BookInputs(grid=CENT, theo=0.5, A=0.05, k=0.5)
    b = BookInputs(grid=CENT, theo=0.5, A=0.05, k=0.8)
    with pytest.raises(ValueError, match="needs one k"):
        solve_quote_table(QuoteProblem(book_a=a, book_b=b, gamma=0.02, q_max=5), "glft")
    assert solve_quote_table(QuoteProblem(book_a=a, book_b=b, gamma=0.02, q_max=5)).ticks.size


# ---------------------------------------------------------------- the closed forms


def test_avellaneda_stoikov_skews_only_with_sigma_and_caps_the_variance():
    flat = table(model="avellaneda_stoikov")
    assert mid_skew(flat, 20, 3600.0) == 0  # σ = 0: no inventory term at all
    t = table(model="avellaneda_stoikov", sigma=1e-2, gamma=0.05)
    assert mid_skew(t, 20, 600.0) < 0
    assert t.quote(20, 600.0) != t.quote(20, 1200.0)  # the variance grows with τ …
    # … until σ²τ reaches p(1 − p) = 0.25 at τ = 2500 s; then the quotes stop changing.
    assert t.quote(20, 3600.0) == t.quote(20, 21600.0)


def test_linear_skew_is_a_straight_reservation_shift():
    t = table(model="linear_skew", theo=0.5, gamma=0.02)  # θ = γ·p(1 − p) = 0.005 $/contract
    for q in (-10, 0, 10):
        quotes = t.quote(q, 600.0)
        expected_bid = 0.5 - 0.005 * q - 0.02
        assert float(t.price(GameSide.BID_A, quotes.bid)) == pytest.approx(expected_bid, abs=0.006)
