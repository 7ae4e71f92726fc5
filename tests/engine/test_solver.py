"""The quote-table solver's worker process and its cache: identical problems are answered
from the cache, which is bounded in bytes; a dead worker is a SolveError, then replaced."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from kmm_interactive.domain import PriceGrid
from kmm_interactive.engine.solver import TableSolver
from kmm_interactive.pricing.fees import FeeType, SeriesFees
from kmm_interactive.pricing.hjb import SolveError
from kmm_interactive.pricing.quote_table import BookInputs, QuoteModel, QuoteProblem

CENT = PriceGrid.linear_cent()
FEES = SeriesFees(FeeType.QUADRATIC_WITH_MAKER_FEES)


def problem(theo: float, q_max: int = 10) -> QuoteProblem:
    return QuoteProblem(
        book_a=BookInputs(CENT, theo, 0.05, 0.5, FEES),
        book_b=BookInputs(CENT, 1.0 - theo, 0.05, 0.5, FEES),
        gamma=0.02,
        q_max=q_max,
    )


@pytest.fixture
async def solver() -> AsyncIterator[TableSolver]:
    s = TableSolver()
    try:
        yield s
    finally:
        await s.close()


async def test_an_identical_problem_is_answered_from_the_cache(solver: TableSolver) -> None:
    first = await solver.solve(problem(0.40), QuoteModel.HJB)
    again = await solver.solve(problem(0.40), QuoteModel.HJB)
    assert again is first
    assert (solver.solved, solver.cached) == (1, 1)
    other = await solver.solve(problem(0.41), QuoteModel.HJB)
    assert other.problem.book_a.theo == 0.41
    assert solver.solved == 2


async def test_the_cache_keeps_at_most_its_bytes_dropping_the_least_recently_used() -> None:
    probe = TableSolver()
    try:
        one = await probe.solve(problem(0.30), QuoteModel.HJB)
    finally:
        await probe.close()
    size = one.ticks.nbytes + one.tau.nbytes
    solver = TableSolver(cache_bytes=2 * size)  # room for two tables
    try:
        for theo in (0.30, 0.31, 0.30, 0.32):  # 0.30 used again: 0.31 is the oldest
            await solver.solve(problem(theo), QuoteModel.HJB)
        assert solver.cache_bytes == 2 * size
        await solver.solve(problem(0.30), QuoteModel.HJB)
        await solver.solve(problem(0.31), QuoteModel.HJB)
        assert (solver.solved, solver.cached) == (4, 2)  # 0.30 from the cache, 0.31 again
        assert solver.cache_bytes <= 2 * size
    finally:
        await solver.close()


async def test_a_worker_that_dies_is_a_solve_error_then_replaced(solver: TableSolver) -> None:
    await solver.solve(problem(0.40), QuoteModel.HJB)
    worker = solver._worker
    assert worker is not None
    worker.kill()  # between solves: the next solve starts a new one
    await worker.wait()
    assert (await solver.solve(problem(0.41), QuoteModel.HJB)).problem.book_a.theo == 0.41
    # Mid-solve: a worker that reads the request and exits without an answer.
    await solver.close()
    solver._worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdin.buffer.read(1)",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    with pytest.raises(SolveError, match="worker process failed"):
        await solver.solve(problem(0.45), QuoteModel.HJB)
    assert (await solver.solve(problem(0.45), QuoteModel.HJB)).problem.book_a.theo == 0.45


async def test_the_solvers_own_refusal_comes_back_as_itself(solver: TableSolver) -> None:
    book = BookInputs(grid=CENT, theo=0.5, A=0.05, k=5.0)
    heavy = QuoteProblem(book_a=book, gamma=2.0, q_max=100, sigma=3e-3)
    with pytest.raises(ValueError, match=r"series terms .* use the HJB model"):
        await solver.solve(heavy, QuoteModel.GLFT)
    assert solver.cache_bytes == 0
