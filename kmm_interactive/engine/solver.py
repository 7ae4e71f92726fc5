"""Quote tables solved off the event loop, in a worker process, with a cache.

A table takes tens of milliseconds of numpy work. Solved on the loop it would stall every
game; solved on a thread it still holds the GIL most of the time, and each blocking call of
the loop (a socket read, a journal write) then waits up to the interpreter's switch
interval (5 ms) to get it back — measured in bench/bench_engine.py as journal writes at
4 ms p99. A worker process shares no GIL with the loop.

The worker is ``python -m kmm_interactive.engine.solver``, talking over its stdin and
stdout (length-prefixed pickles between our own two processes). Not ``multiprocessing``:
its ``spawn`` re-runs the caller's main script in the child, which a notebook or a script
without a ``__main__`` guard does not survive, and ``fork`` is unsafe in a process that
runs threads (a kernel does). The worker starts on the first solve (about a second: numpy
and scipy are imported) and solves one problem at a time. Identical problems are answered
from an LRU cache (a recheck that brings back the same theo, a parameter set back), bounded
in bytes: a 100-contract table is about 200 KB, and a day of many games solves thousands.

Failure semantics: :meth:`TableSolver.solve` raises what the solver raised (``SolveError``,
``ValueError``, re-created from the worker's answer); if the worker dies or cannot be
started, the solve raises ``SolveError`` and the next solve starts a new worker. Nothing
here blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import struct
import sys
from collections import OrderedDict
from typing import Any, BinaryIO, Final

from kmm_interactive.pricing.hjb import SolveError, solve_quote_table
from kmm_interactive.pricing.quote_table import QuoteModel, QuoteProblem, QuoteTable

log = logging.getLogger(__name__)

#: The most bytes of tables the cache keeps (the least recently used go first).
CACHE_BYTES: Final = 32 * 2**20
_LENGTH: Final = struct.Struct("!Q")
#: The exceptions a solve may raise, by name, re-raised as themselves in the engine.
_ERRORS: Final[dict[str, type[Exception]]] = {"SolveError": SolveError, "ValueError": ValueError}


class TableSolver:
    """Solves :class:`QuoteProblem`\\ s in a worker process; one per engine."""

    def __init__(self, cache_bytes: int = CACHE_BYTES) -> None:
        self._worker: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._cache: OrderedDict[tuple[QuoteProblem, QuoteModel], QuoteTable] = OrderedDict()
        self._cache_limit = cache_bytes
        self.cache_bytes = 0
        self.solved = 0
        self.cached = 0

    async def solve(self, problem: QuoteProblem, model: QuoteModel) -> QuoteTable:
        key = (problem, model)
        table = self._cache.get(key)
        if table is not None:
            self._cache.move_to_end(key)
            self.cached += 1
            return table
        async with self._lock:
            table = await self._ask(problem, model)
        self.solved += 1
        self._keep(key, table)
        return table

    def _keep(self, key: tuple[QuoteProblem, QuoteModel], table: QuoteTable) -> None:
        replaced = self._cache.pop(key, None)  # solved twice at once
        if replaced is not None:
            self.cache_bytes -= _nbytes(replaced)
        self._cache[key] = table
        self.cache_bytes += _nbytes(table)
        while self.cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self.cache_bytes -= _nbytes(old)

    async def _ask(self, problem: QuoteProblem, model: QuoteModel) -> QuoteTable:
        try:
            worker = await self._start()
            assert worker.stdin is not None
            assert worker.stdout is not None
            payload = pickle.dumps((problem, model), protocol=pickle.HIGHEST_PROTOCOL)
            worker.stdin.write(_LENGTH.pack(len(payload)) + payload)
            await worker.stdin.drain()
            size = _LENGTH.unpack(await worker.stdout.readexactly(_LENGTH.size))[0]
            ok, result = pickle.loads(await worker.stdout.readexactly(size))
        except (OSError, EOFError, asyncio.IncompleteReadError, pickle.PickleError) as exc:
            log.error("the quote-table worker failed (%s); a new one starts next time", exc)
            await self.close()
            raise SolveError(f"the solver's worker process failed: {exc}") from None
        if ok:
            table: QuoteTable = result
            return table
        kind, message = result
        raise _ERRORS.get(kind, SolveError)(message)

    async def _start(self) -> asyncio.subprocess.Process:
        if self._worker is None or self._worker.returncode is not None:
            self._worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", __name__,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
        return self._worker

    async def close(self) -> None:
        """Stop the worker (idempotent); a later solve starts a new one."""
        worker, self._worker = self._worker, None
        if worker is None or worker.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            worker.kill()
        await worker.wait()


def _nbytes(table: QuoteTable) -> int:
    return table.ticks.nbytes + table.tau.nbytes


def _serve(source: BinaryIO, sink: BinaryIO) -> None:
    """The worker: read (problem, model), answer (True, table) or (False, (kind, message)),
    until the engine closes the pipe."""
    while header := source.read(_LENGTH.size):
        problem, model = pickle.loads(source.read(_LENGTH.unpack(header)[0]))
        answer: tuple[bool, Any]
        try:
            answer = (True, solve_quote_table(problem, model))
        except (SolveError, ValueError) as exc:
            answer = (False, (type(exc).__name__, str(exc)))
        payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        sink.write(_LENGTH.pack(len(payload)) + payload)
        sink.flush()


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)
