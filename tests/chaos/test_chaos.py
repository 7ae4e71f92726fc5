"""The chaos run's short form (``make test``; ``make chaos`` runs the full one), and the checks
it is judged by, each shown able to fail."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from chaos import (
    SHORT,
    ChaosPlan,
    ChaosReport,
    Figure,
    GameInfo,
    LiveOrder,
    duplicate_sides,
    exposures,
    first_flat,
    late_orders,
    run_chaos,
)

D = Decimal
GAME = GameInfo("G", ("G-A", "G-B"), start=100.0, cap=10)
SOCCER = GameInfo("S", ("S-A", "S-B", "S-TIE"), start=100.0, cap=10)


def order(oid: str, ticker: str, side: str, remaining: int = 5) -> LiveOrder:
    return LiveOrder(oid, f"kmm-x-{oid}", ticker, side, D(remaining))


async def test_the_short_chaos_run_loses_nothing(tmp_path: Path) -> None:
    report = await run_chaos(SHORT, tmp_path, out=lambda _line: None)
    print(report.table())  # shown by pytest when the test fails
    failed = [f.row() for f in report.figures if not f.ok]
    assert failed == [], "\n" + report.table() + "\n" + "\n".join(report.notes)
    # Every promise the issue names is among the figures.
    names = " | ".join(f.name for f in report.figures)
    promises = ("fills lost", "duplicate orders", "cap breaches", "after their game's start",
                "kill switch", "loop stall", "restart", "stale theo", "quoting again")  # fmt: skip
    for promise in promises:
        assert promise in names


def test_two_orders_on_one_side_are_a_duplicate_and_one_per_side_is_not() -> None:
    quotes = [order("1", "G-A", "bid"), order("2", "G-A", "ask"), order("3", "G-B", "bid")]
    assert duplicate_sides(quotes) == []
    assert duplicate_sides([*quotes, order("4", "G-A", "bid")]) == ["4"]


def test_an_order_resting_at_its_games_start_is_late() -> None:
    starts = {"G-A": 100.0, "G-B": 100.0, "H-A": 200.0}
    quotes = [order("1", "G-A", "bid"), order("2", "H-A", "ask")]
    assert late_orders(quotes, starts, now=99.9) == []
    assert late_orders(quotes, starts, now=100.0) == ["1"]


def test_exposure_counts_both_books_of_a_game_and_the_worst_direction() -> None:
    # Long team A's YES and short team B's YES are the same way: q = 4 − (−3) = 7.
    positions = {"G-A": D(4), "G-B": D(-3)}
    assert exposures(GAME, positions, []) == [(D(7), D(7))]
    # A bid on A and an ask on B add to q; an ask on A and a bid on B take from it.
    quotes = [order("1", "G-A", "bid", 2), order("2", "G-B", "ask", 2), order("3", "G-A", "ask", 9)]
    assert exposures(GAME, positions, quotes) == [(D(7), D(11))]
    assert exposures(GAME, {"G-A": D(-8)}, quotes) == [(D(8), D(17))]
    # A three-way game is three inventories of one market each.
    assert exposures(SOCCER, {"S-TIE": D(-6)}, [order("4", "S-A", "bid", 3)]) == [
        (D(0), D(3)), (D(0), D(0)), (D(6), D(6)),
    ]  # fmt: skip


def test_flat_means_nothing_rested_from_then_on() -> None:
    none: Counter[str] = Counter()
    assert first_flat([(1.0, 3, none), (2.0, 0, none), (3.0, 0, none)]) == 2.0
    assert first_flat([(1.0, 0, none), (2.0, 1, none), (3.0, 0, none)]) == 3.0
    assert first_flat([(1.0, 0, none), (2.0, 1, none)]) is None


def test_a_figure_fails_over_its_limit_and_when_its_fault_never_fired() -> None:
    assert Figure("lost", 0, 0, {"ws_drop": 3}).ok
    assert not Figure("lost", 1, 0, {"ws_drop": 3}).ok
    never = Figure("lost", 0, 0, {"ws_drop": 3, "seq_gap": 0})
    assert not never.ok
    assert never.row()[-1] == "FAULT NEVER FIRED"
    assert not Figure("kill", math.inf, 60, {"kill presses": 1}).ok
    report = ChaosReport(SHORT, [never], {"ws_drop": 3}, 1.0, [])
    assert not report.ok
    assert "FAULT NEVER FIRED" in report.table()
    assert "| lost |" in report.markdown()


async def test_a_chaos_run_starts_on_a_new_journal(tmp_path: Path) -> None:
    (tmp_path / "journal.sqlite").write_bytes(b"")
    plan: ChaosPlan = SHORT
    with pytest.raises(FileExistsError, match="new journal"):
        await run_chaos(plan, tmp_path, out=lambda _line: None)
