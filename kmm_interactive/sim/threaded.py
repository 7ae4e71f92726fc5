"""The embedded world on a thread of its own, so that the caller's event loop may block.

:func:`~kmm_interactive.sim.embedded.start_embedded` runs inside the caller's loop, so a
blocking call there (``time.sleep`` in a notebook cell) freezes the exchange too. A
:class:`ThreadedEmbedded` runs it on a daemon thread with its own event loop instead: the
exchange keeps serving while the caller's loop is frozen, which is what the loop-stall
watchdog's tests (and a notebook that wants an exchange outside its kernel loop) need.

Failure semantics: an error while starting (a bad argument, a port in use) is raised by
:meth:`ThreadedEmbedded.start` in the caller's thread, as the original exception; a start or
stop that does not finish in time is a ``TimeoutError``. An exception raised by the function
given to :meth:`ThreadedEmbedded.call` is re-raised in the caller's thread. ``stop()``
closes the simulator (which deletes its demo key) and joins the thread; it is idempotent.
Each object runs the world once: start a new one to run it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from kmm_interactive.sim.embedded import EmbeddedSim, start_embedded

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Phase(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class ThreadedEmbedded:
    """``start_embedded(**kwargs)`` served from a daemon thread (see the module docstring)."""

    def __init__(self, **start_embedded_kwargs: Any) -> None:
        self._kwargs = start_embedded_kwargs
        self._phase = _Phase.NEW
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finish: asyncio.Event | None = None
        self._main: asyncio.Task[None] | None = None
        self._sim: EmbeddedSim | None = None
        self._info: dict[str, str] = {}
        self._start_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"ThreadedEmbedded({self._phase.value}, sim={self._sim!r})"

    def __enter__(self) -> ThreadedEmbedded:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> dict[str, str]:
        """Start the world and block until it serves; returns ``sim.connection_info()``.
        Calling it again while running returns the same information."""
        with self._lock:
            if self._phase is _Phase.RUNNING:
                return dict(self._info)
            if self._phase is _Phase.STOPPED:
                raise RuntimeError("this ThreadedEmbedded has stopped; create a new one")
            self._thread = threading.Thread(
                target=self._serve, name="kmm-embedded-exchange", daemon=True
            )
            self._phase = _Phase.RUNNING
            self._thread.start()
        if not self._ready.wait(timeout):
            self.stop(timeout)
            raise TimeoutError(f"the embedded exchange did not start within {timeout:g} s")
        error = self._start_error
        if error is not None or self._sim is None:
            self.stop(timeout)
            if isinstance(error, Exception):
                # The original exception, so that the caller sees its own type and message.
                raise error
            raise RuntimeError("the embedded exchange was stopped before it started serving")
        return dict(self._info)

    def call(self, fn: Callable[[EmbeddedSim], T], timeout: float = 10.0) -> T:
        """``fn(sim)`` run on the simulator's loop thread (where reading or changing the
        exchange's state is safe); returns its result or raises its exception."""
        loop, sim = self._loop, self._sim
        if self._phase is not _Phase.RUNNING or loop is None or sim is None:
            raise RuntimeError("the embedded exchange is not running; call start() first")
        if threading.current_thread() is self._thread:
            raise RuntimeError("call() from the simulator's own thread would wait on itself")

        async def apply() -> T:
            return fn(sim)

        future = asyncio.run_coroutine_threadsafe(apply(), loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.done():  # fn itself raised TimeoutError
                raise
            future.cancel()
            raise TimeoutError(
                f"the embedded exchange did not answer within {timeout:g} s"
            ) from None

    def stop(self, timeout: float = 30.0) -> None:
        """Close the simulator (deleting its key) and join the thread; idempotent."""
        with self._lock:
            thread, self._phase = self._thread, _Phase.STOPPED
            if self._loop is not None and self._finish is not None and self._main is not None:
                # Serving: let it close the simulator. Still starting: abandon the start
                # (start_embedded cleans up after itself when cancelled).
                wake = self._finish.set if self._sim is not None else self._main.cancel
                with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to do
                    self._loop.call_soon_threadsafe(wake)
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"the embedded exchange did not stop within {timeout:g} s")

    # ------------------------------------------------------------------ the thread

    def _stopped(self) -> bool:
        return self._phase is _Phase.STOPPED

    def _serve(self) -> None:
        try:
            with asyncio.Runner() as runner:
                runner.run(self._run())
        except BaseException as exc:
            if self._ready.is_set():  # after a good start: nobody waits for it, so log it
                log.exception("embedded exchange thread failed")
            else:  # start() raises it in the caller's thread
                self._start_error = exc
        finally:
            self._ready.set()

    async def _run(self) -> None:
        with self._lock:
            if self._stopped():  # stop() came before the loop existed
                return
            self._loop = asyncio.get_running_loop()
            self._finish = asyncio.Event()
            self._main = asyncio.current_task()
        sim = await start_embedded(**self._kwargs)
        try:
            with self._lock:
                if self._stopped():  # stop() came while starting
                    return
                self._info = sim.connection_info()
                self._sim = sim
            self._ready.set()
            await self._finish.wait()
        finally:
            await sim.close()
