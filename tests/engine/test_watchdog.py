"""The loop-stall watchdog against an exchange on its own thread, while the test's loop is
blocked by ``time.sleep`` (a blocking notebook cell); and that thread harness itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kmm_interactive.domain import Side
from kmm_interactive.engine.guard import UNKNOWN, LoopWatchdog, StallReport
from kmm_interactive.kalshi.auth import Signer
from kmm_interactive.kalshi.rest import CreateStatus, KalshiRest, OrderRequest
from kmm_interactive.sim.agents import AgentConfig
from kmm_interactive.sim.embedded import DEMO_USER
from kmm_interactive.sim.threaded import ThreadedEmbedded

D = Decimal
NO_AGENTS = AgentConfig(retail=False, stale_liquidity=False, market_makers=0)
WATCHDOG_THREAD = "kmm-loop-watchdog"


@pytest.fixture(scope="module")
def world() -> Iterator[ThreadedEmbedded]:
    """One exchange for the module; speed 1 keeps the first game 20 minutes away."""
    with ThreadedEmbedded(seed=11, n_games=2, speed=1.0, agents=NO_AGENTS) as sim:
        yield sim


@pytest.fixture(scope="module")
def info(world: ThreadedEmbedded) -> dict[str, str]:
    return world.start()


@pytest.fixture(scope="module")
def signer(info: dict[str, str]) -> Signer:
    return Signer.from_pem_file(info["key_id"], info["private_key_path"])


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    yield
    assert [t.name for t in threading.enumerate() if t.name == WATCHDOG_THREAD] == []


def live(world: ThreadedEmbedded) -> list[str]:
    return world.call(lambda sim: [o.order_id for o in sim.exchange.live_orders(DEMO_USER)])


def tickers(world: ThreadedEmbedded) -> list[str]:
    return world.call(lambda sim: [o.ticker for g in sim.scenario.games for o in g.outcomes])


async def place(info: dict[str, str], signer: Signer, markets: list[str]) -> set[str]:
    """One bid at 5¢ on each market (nothing trades here: the agents are off)."""
    async with KalshiRest(info["rest_url"], signer) as client:
        results = await client.batch_create(
            [OrderRequest(t, Side.BID, D("0.05"), D(1)) for t in markets]
        )
    assert [r.status for r in results] == [CreateStatus.CREATED] * len(markets)
    return {r.order_id for r in results if r.order_id is not None}


async def cancel_all(info: dict[str, str], signer: Signer) -> None:
    async with KalshiRest(info["rest_url"], signer) as client:
        await client.cancel_all()


@contextlib.asynccontextmanager
async def watching(watchdog: LoopWatchdog, resting: list[int]) -> AsyncIterator[LoopWatchdog]:
    """The watchdog's thread and the loop's heartbeat (reporting ``resting[0]``), for the
    block; then both stop, and the exchange is emptied for the next test."""
    watchdog.start()
    heartbeat = asyncio.create_task(watchdog.run_heartbeat(lambda: resting[0]))
    try:
        await asyncio.sleep(0.3)  # a few beats arm the watchdog
        yield watchdog
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        watchdog.stop()


def check_stall(report: StallReport | None, began: float, limit: float) -> StallReport:
    """The report of a stall that began at ``began`` (epoch seconds)."""
    assert report is not None
    # The last beat came at most one heartbeat (0.1 s) before the stall; the watchdog
    # polls every 0.1 s.
    assert limit - 0.15 <= report.detected_at.timestamp() - began <= limit + 1.0
    assert limit < report.stalled_for <= limit + 0.8
    return report


async def test_a_blocking_cell_is_caught_and_every_order_cancelled(
    world: ThreadedEmbedded, info: dict[str, str], signer: Signer
) -> None:
    ids = await place(info, signer, tickers(world))
    watchdog = LoopWatchdog(info["rest_url"], signer)  # the default limit: 5 s
    async with watching(watchdog, [len(ids)]):
        began = time.time()
        time.sleep(10)  # the blocking cell: the loop, its heartbeat and its cancels freeze
        report = watchdog.take_trip()
        again = watchdog.take_trip()
    report = check_stall(report, began, 5.0)
    assert report.cancelled_ok, report.detail
    assert (report.resting_before, report.resting_left) == (4, 0)
    assert report.seconds < 4.0
    assert again is None
    assert live(world) == []
    cancels = world.call(
        lambda sim: {
            o.order_id: (o.status, o.updated)
            for o in sim.exchange.account(DEMO_USER).orders.values()
            if o.order_id in ids
        }
    )
    assert {status for status, _ in cancels.values()} == {"canceled"}
    # Cancelled by the watchdog as the limit ran out, long before the loop woke up.
    assert all(5.0 - 0.15 <= at - began <= 5.0 + 1.2 for _, at in cancels.values())


async def test_a_stall_shorter_than_the_limit_is_let_be_and_each_long_one_trips_once(
    world: ThreadedEmbedded, info: dict[str, str], signer: Signer
) -> None:
    markets = tickers(world)
    resting = [len(await place(info, signer, markets[:2]))]
    watchdog = LoopWatchdog(info["rest_url"], signer, limit=1.0)
    try:
        async with watching(watchdog, resting):
            time.sleep(0.6)
            await asyncio.sleep(0.3)
            short = watchdog.take_trip()
            still = len(live(world))

            began = time.time()
            time.sleep(2.2)  # long enough for a second trip if the first did not latch
            first = watchdog.take_trip()

            resting[0] = len(await place(info, signer, markets[2:3]))
            await asyncio.sleep(0.3)  # beats re-arm the watchdog
            began_again = time.time()
            time.sleep(1.6)
            second = watchdog.take_trip()
    finally:
        await cancel_all(info, signer)
    assert short is None
    assert still == 2
    assert check_stall(first, began, 1.0).resting_before == 2
    assert check_stall(second, began_again, 1.0).resting_before == 1
    assert first is not None
    assert first.cancelled_ok
    assert second is not None
    assert second.cancelled_ok


async def test_no_trip_and_one_look_while_nothing_rests(
    world: ThreadedEmbedded, info: dict[str, str], signer: Signer
) -> None:
    requests = world.call(lambda sim: sim.server.stats.requests)
    watchdog = LoopWatchdog(info["rest_url"], signer, limit=0.5)
    async with watching(watchdog, [0]):
        time.sleep(1.2)
        trip = watchdog.take_trip()
    assert trip is None
    # One listing (the last beat can be behind the book), no cancel.
    assert world.call(lambda sim: sim.server.stats.requests) == requests + 1


async def test_orders_sent_after_the_last_beat_are_still_cancelled(
    world: ThreadedEmbedded, info: dict[str, str], signer: Signer
) -> None:
    # The heartbeat still says nothing rests (it is one beat behind the orders just sent).
    ids = await place(info, signer, tickers(world))
    watchdog = LoopWatchdog(info["rest_url"], signer, limit=1.0)
    async with watching(watchdog, [0]):
        began = time.time()
        time.sleep(2.5)
        report = watchdog.take_trip()
    report = check_stall(report, began, 1.0)
    assert report.cancelled_ok, report.detail
    assert (report.resting_before, report.resting_left) == (len(ids), 0)
    assert live(world) == []


async def test_a_stall_just_over_the_limit_is_known_before_the_cancels_are_verified(
    world: ThreadedEmbedded, info: dict[str, str], signer: Signer
) -> None:
    # Verification takes several seconds (many clean checks); the loop wakes long before:
    # it must learn of the stall at once, to halt before quoting into the cancels.
    ids = await place(info, signer, tickers(world))
    watchdog = LoopWatchdog(info["rest_url"], signer, limit=1.0, clean_checks=12)
    async with watching(watchdog, [len(ids)]):
        time.sleep(1.6)
        detected = watchdog.take_detection()
        assert detected is not None
        assert 1.0 < detected < 1.6
        assert watchdog.take_trip() is None  # still verifying
        assert watchdog.take_detection() is None  # said once
        deadline = time.monotonic() + 10
        report = None
        while report is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            report = watchdog.take_trip()
    assert report is not None
    assert report.cancelled_ok
    assert live(world) == []


async def test_a_watchdog_that_cannot_cancel_says_so_and_keeps_watching(
    world: ThreadedEmbedded,
    info: dict[str, str],
    signer: Signer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key the exchange does not accept: every call is refused (401)."""
    ids = await place(info, signer, tickers(world)[:1])
    stranger = Signer(
        info["key_id"], rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    watchdog = LoopWatchdog(info["rest_url"], stranger, limit=0.5, verify_timeout=0.6)
    caplog.set_level(logging.WARNING, logger="kmm_interactive.engine.guard")
    try:
        async with watching(watchdog, [1]):
            time.sleep(1.5)
            report = watchdog.take_trip()
            alive = watchdog.running
        still_live = live(world)
    finally:
        await cancel_all(info, signer)
    assert report is not None
    assert not report.cancelled_ok
    assert (report.resting_before, report.resting_left) == (1, UNKNOWN)
    assert "the resting orders could not be listed" in report.detail
    assert alive
    assert ids - set(still_live) == set()  # the watchdog could not touch them
    assert live(world) == []  # the test's own cleanup could
    refusals = [r.getMessage() for r in caplog.records if "HTTP 401" in r.getMessage()]
    assert refusals
    # No signing header, and no signature (344 base64 characters for a 2048-bit key).
    assert "KALSHI-ACCESS" not in caplog.text.upper()
    assert re.search(r"[A-Za-z0-9+/]{64,}", caplog.text) is None


def test_start_and_stop_are_idempotent_and_stop_joins_the_thread(
    info: dict[str, str], signer: Signer
) -> None:
    watchdog = LoopWatchdog(info["rest_url"], signer)
    watchdog.stop()  # never started: nothing to do
    for _ in range(2):
        watchdog.start()
        watchdog.start()
        assert [t.name for t in threading.enumerate()].count(WATCHDOG_THREAD) == 1
        began = time.monotonic()
        watchdog.stop()
        assert time.monotonic() - began < 2.0  # one poll, or building its client
        assert not watchdog.running
        watchdog.stop()
    assert "PRIVATE" not in repr(watchdog)


def test_bad_watchdog_arguments_are_refused(info: dict[str, str], signer: Signer) -> None:
    with pytest.raises(ValueError, match="limit = 0 must be positive"):
        LoopWatchdog(info["rest_url"], signer, limit=0)
    with pytest.raises(ValueError, match="ending in /trade-api/v2"):
        LoopWatchdog("http://127.0.0.1:1/elsewhere", signer)
    watchdog = LoopWatchdog(info["rest_url"], signer)
    with pytest.raises(ValueError, match="must not be negative"):
        watchdog.beat(-1)


# --------------------------------------------------------------------------- ThreadedEmbedded


def test_the_exchange_is_reached_on_its_own_thread(world: ThreadedEmbedded) -> None:
    assert world.call(lambda _: threading.current_thread().name) == "kmm-embedded-exchange"

    def fail(_: object) -> None:
        raise LookupError("from the exchange thread")

    with pytest.raises(LookupError, match="from the exchange thread"):
        world.call(fail)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scenario": "nope"}, ValueError, "scenario 'nope' is unknown"),
        ({"colour": "red"}, TypeError, "unexpected keyword argument 'colour'"),
    ],
)
def test_an_error_while_starting_reaches_the_caller(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    before = world_threads()
    sim = ThreadedEmbedded(**kwargs)
    with pytest.raises(error, match=message):
        sim.start()
    assert world_threads() == before
    with pytest.raises(RuntimeError, match="has stopped; create a new one"):
        sim.start()


def world_threads() -> int:
    return [t.name for t in threading.enumerate()].count("kmm-embedded-exchange")


def test_stop_deletes_the_key_and_is_idempotent() -> None:
    sim = ThreadedEmbedded(seed=2, n_games=1, speed=1.0, agents=NO_AGENTS)
    before = world_threads()
    key = Path(sim.start()["private_key_path"])
    assert key.exists()
    assert world_threads() == before + 1
    sim.stop()
    sim.stop()
    assert not key.exists()
    assert world_threads() == before
    with pytest.raises(RuntimeError, match="not running"):
        sim.call(lambda s: s.closed)
