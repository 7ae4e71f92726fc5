"""A process pool for the lab that works from notebooks and from scripts without a main guard.

``concurrent.futures.ProcessPoolExecutor`` either forks (unsafe in a kernel, which runs
threads) or spawns, and a spawned child re-runs the caller's main script, which a script
without ``if __name__ == "__main__":`` does not survive. Here each worker is
``python -m kmm_interactive.sim.lab_pool``, fed length-prefixed pickles of
``(function, args)`` on its stdin and answering ``(ok, result or exception)`` on its stdout,
as the engine's table solver does. The functions must be importable by name (module-level),
as for any process pool.

Failure semantics: an exception raised by the function is raised by the future's
``result()``; a job that cannot be pickled fails with :class:`WorkerError` and the worker
goes on; a worker that dies, or answers something that does not load, fails its job with
:class:`WorkerError` and is replaced for the next one; ``shutdown()`` ends every worker.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import IO, Any, Final, ParamSpec, TypeVar

_LENGTH: Final = struct.Struct("!Q")
_P = ParamSpec("_P")
_T = TypeVar("_T")


_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class WorkerError(RuntimeError):
    """A worker process died or answered something unreadable."""


def _dumps(payload: object) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _send(sink: IO[bytes], payload: object) -> None:
    sink.write(_dumps(payload))
    sink.flush()


def _receive(source: IO[bytes]) -> Any:
    header = source.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError("the other side closed the pipe")
    return pickle.loads(source.read(_LENGTH.unpack(header)[0]))


class SubprocessExecutor(Executor):
    """``workers`` worker processes; jobs go to whichever is free, in submission order."""

    def __init__(self, workers: int) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers = {workers!r}: must be a whole number >= 1")
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        #: The live worker processes, killed by :meth:`terminate` and when the pool is
        #: collected without being shut down (an executor made outside ``with``).
        self._workers: set[subprocess.Popen[bytes]] = set()
        weakref.finalize(self, _kill_all, self._workers)
        self._threads = [
            threading.Thread(target=self._serve, name=f"lab-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        if self._closed:
            raise RuntimeError("cannot submit to a pool that was shut down")
        if kwargs:
            raise TypeError("the lab's pool passes positional arguments only")
        future: Future[_T] = Future()
        self._jobs.put((future, fn, tuple(args)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking jobs; the queued ones still run unless ``cancel_futures``."""
        self._closed = True
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].cancel()
        for _ in self._threads:
            self._jobs.put(None)
        if wait:
            for t in self._threads:
                t.join()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Leaving a ``with`` block on an exception (Ctrl-C in a cell) does not wait for the
        queued jobs: they are cancelled and the workers killed."""
        if exc_type is None:
            self.shutdown(wait=True)
            return
        self.shutdown(wait=False, cancel_futures=True)
        self.terminate()

    def terminate(self) -> None:
        """Kill every worker process now; the jobs they were running fail."""
        _kill_all(self._workers)

    def _serve(self) -> None:
        worker: subprocess.Popen[bytes] | None = None
        try:
            while (job := self._jobs.get()) is not None:
                future, fn, args = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    job_bytes = _dumps((fn, args))
                except Exception as exc:  # a local function, a lock among the arguments
                    future.set_exception(WorkerError(f"the job could not be sent: {exc!r}"))
                    continue
                try:
                    if worker is None or worker.poll() is not None:
                        self._workers.discard(worker)
                        worker = _start()
                        self._workers.add(worker)
                    assert worker.stdin is not None
                    assert worker.stdout is not None
                    worker.stdin.write(job_bytes)
                    worker.stdin.flush()
                    ok, value = _receive(worker.stdout)
                except Exception as exc:  # a dead worker, or an answer that does not load
                    _stop(worker)
                    self._workers.discard(worker)
                    worker = None
                    future.set_exception(WorkerError(f"a lab worker process failed: {exc!r}"))
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        finally:
            _stop(worker)
            if worker is not None:
                self._workers.discard(worker)


def _start() -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # One BLAS thread per worker: the workers are the parallelism.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.Popen(
        [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )


def _kill_all(workers: set[subprocess.Popen[bytes]]) -> None:
    for worker in list(workers):
        with contextlib.suppress(OSError):
            worker.kill()


def _stop(worker: subprocess.Popen[bytes] | None) -> None:
    if worker is None:
        return
    with contextlib.suppress(OSError):
        if worker.stdin is not None:
            worker.stdin.close()
    try:
        worker.wait(timeout=5)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _serve_jobs(source: IO[bytes], sink: IO[bytes]) -> None:
    """The worker: run each (function, args) until the pool closes the pipe."""
    while True:
        try:
            fn, args = _receive(source)
        except EOFError:
            return
        try:
            answer: tuple[bool, object] = (True, fn(*args))
        except Exception as exc:
            answer = (False, exc)
        try:
            _send(sink, answer)
        except (pickle.PickleError, TypeError, AttributeError) as exc:
            _send(sink, (False, WorkerError(f"the result could not be sent back: {exc}")))


if __name__ == "__main__":
    # The answers own the real stdout; anything the jobs print goes to stderr instead.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve_jobs(sys.stdin.buffer, answers)
