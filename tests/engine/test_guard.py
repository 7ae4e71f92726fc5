"""The halt book's rules, and the kill switch against the embedded exchange and its faults."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from kalshikit import EPL, NBA, Venue

from kmm_interactive.domain import Side
from kmm_interactive.engine.guard import UNKNOWN, HaltBook, HaltRecord, kill_switch
from kmm_interactive.kalshi.rest import CreateStatus, KalshiRest, OrderRequest, Retry
from kmm_interactive.strategy.halts import HaltReason, TradingState

R = HaltReason
D = Decimal
FAST = Retry(attempts=10, base_delay=0.002, max_delay=0.02)
T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


class Clock:
    """A clock that moves a minute each time it is read."""

    def __init__(self) -> None:
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return T0 + timedelta(minutes=self.reads - 1)


def book() -> tuple[HaltBook, list[tuple[HaltReason, str | None, bool]]]:
    changes: list[tuple[HaltReason, str | None, bool]] = []

    def record(rec: HaltRecord, in_force: bool) -> None:
        changes.append((rec.reason, rec.game, in_force))

    return HaltBook(clock=Clock(), on_change=record), changes


# --------------------------------------------------------------------------- HaltBook


def test_a_game_sees_its_own_reasons_and_the_global_ones() -> None:
    halts, _ = book()
    halts.set(R.WS_DOWN)
    halts.set(R.STALE_THEO, "G1")
    halts.set(R.ODDS_RECHECK, "G2")
    assert halts.reasons("G1") == {R.WS_DOWN, R.STALE_THEO}
    assert halts.reasons("G2") == {R.WS_DOWN, R.ODDS_RECHECK}
    assert halts.reasons("G3") == {R.WS_DOWN}
    assert halts.reasons(None) == {R.WS_DOWN}
    assert [(r.reason, r.game) for r in halts.records("G1")] == [
        (R.WS_DOWN, None),
        (R.STALE_THEO, "G1"),
    ]
    assert [(r.reason, r.game) for r in halts.records(None)] == [(R.WS_DOWN, None)]
    assert len(halts.records()) == 3


def test_the_most_severe_reason_sets_the_state() -> None:
    halts, _ = book()
    assert halts.state("G1") is TradingState.ACTIVE
    halts.set(R.ODDS_RECHECK, "G1")
    assert halts.state("G1") is TradingState.REDUCING
    assert halts.state("G2") is TradingState.ACTIVE
    halts.set(R.STALE_BOOK)
    assert halts.state("G1") is TradingState.HALTED
    assert halts.state("G2") is TradingState.HALTED
    assert halts.clear(R.STALE_BOOK) is True
    assert halts.state("G1") is TradingState.REDUCING
    assert halts.clear(R.ODDS_RECHECK, "G1") is True
    assert halts.state("G1") is TradingState.ACTIVE


def test_setting_twice_keeps_the_first_record_and_reports_one_change() -> None:
    halts, changes = book()
    assert halts.set(R.STALE_BOOK, "G1", "seq gap") is True
    assert halts.set(R.STALE_BOOK, "G1", "again") is False
    assert halts.set(R.STALE_BOOK, "G2") is True  # another game is another record
    first = halts.records("G1")[0]
    assert (first.since, first.detail) == (T0, "seq gap")
    assert halts.clear(R.STALE_BOOK, "G1") is True
    assert halts.clear(R.STALE_BOOK, "G1") is False
    assert changes == [
        (R.STALE_BOOK, "G1", True),
        (R.STALE_BOOK, "G2", True),
        (R.STALE_BOOK, "G1", False),
    ]


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        (R.MANUAL_KILL, "use rearm"),
        (R.LOOP_STALL, "use rearm"),
        (R.PNL_LIMIT, "use rearm"),
        (R.MANUAL_PAUSE, "use resume"),
        (R.GAME_STARTED, "never cleared"),
    ],
)
def test_a_latched_reason_cannot_be_cleared(reason: HaltReason, advice: str) -> None:
    halts, changes = book()
    halts.set(reason, "G1")
    with pytest.raises(ValueError, match=advice):
        halts.clear(reason, "G1")
    assert halts.reasons("G1") == {reason}
    assert changes == [(reason, "G1", True)]


def test_rearm_lifts_the_latches_but_not_a_start_or_a_pause() -> None:
    halts, changes = book()
    halts.set(R.MANUAL_KILL)
    halts.set(R.LOOP_STALL)
    halts.set(R.PNL_LIMIT, "G1")
    halts.set(R.GAME_STARTED, "G2")
    halts.set(R.STALE_THEO, "G1")
    assert halts.pause("G3", "news pending") is True
    changes.clear()
    lifted = halts.rearm()
    assert [(r.reason, r.game) for r in lifted] == [
        (R.MANUAL_KILL, None),
        (R.LOOP_STALL, None),
        (R.PNL_LIMIT, "G1"),
    ]
    assert changes == [(r.reason, r.game, False) for r in lifted]
    assert halts.reasons("G1") == {R.STALE_THEO}  # heals on its own, not by rearm
    assert halts.reasons("G2") == {R.GAME_STARTED}
    assert halts.reasons("G3") == {R.MANUAL_PAUSE}
    assert halts.rearm() == []


def test_pause_and_resume_are_per_game_and_idempotent() -> None:
    halts, changes = book()
    assert halts.pause("G1") is True
    assert halts.pause("G1") is False
    assert halts.state("G1") is TradingState.HALTED
    assert halts.state("G2") is TradingState.ACTIVE
    assert halts.resume("G1") is True
    assert halts.resume("G1") is False
    assert halts.state("G1") is TradingState.ACTIVE
    assert changes == [(R.MANUAL_PAUSE, "G1", True), (R.MANUAL_PAUSE, "G1", False)]


def test_bad_input_is_refused_clearly() -> None:
    halts, changes = book()
    with pytest.raises(ValueError, match="non-empty event ticker"):
        halts.set(R.STALE_BOOK, " ")
    with pytest.raises(TypeError, match="must be a HaltReason"):
        halts.set("stale book", "G1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="event ticker"):
        halts.pause(None)  # type: ignore[arg-type]
    assert halts.records() == []
    assert changes == []


# --------------------------------------------------------------------------- kill switch


def twelve_orders() -> list[OrderRequest]:
    """Bids low and asks high on two markets (NBA and EPL): none of them can cross."""
    return [
        OrderRequest(ticker, side, D(price), D(2))
        for ticker in (NBA, EPL)
        for side, price in [(Side.BID, p) for p in ("0.10", "0.15", "0.20")]
        + [(Side.ASK, p) for p in ("0.80", "0.85", "0.90")]
    ]


async def place(client: KalshiRest) -> list[tuple[str, str | None]]:
    results = await client.batch_create(twelve_orders())
    assert [r.status for r in results] == [CreateStatus.CREATED] * 12
    return [(r.order_id, r.request.ticker) for r in results if r.order_id is not None]


def resting(venue: Venue) -> int:
    return len(list(venue.exchange.live_orders("alice")))


class NoCancelAll(httpx.AsyncBaseTransport):
    """Answers cancel-all with 404, as an exchange without the endpoint would (it is recent);
    everything else goes to the venue. Then only per-order cancels can work."""

    def __init__(self) -> None:
        self.real = httpx.AsyncHTTPTransport()
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE" and request.url.path.endswith("/portfolio/events/orders"):
            self.refused += 1
            body = {"error": {"code": "not_found", "message": "no such route", "details": ""}}
            return httpx.Response(404, json=body)
        return await self.real.handle_async_request(request)

    async def aclose(self) -> None:
        await self.real.aclose()


async def test_lying_and_unapplied_cancels_do_not_fool_the_kill_switch(venue: Venue) -> None:
    async with KalshiRest(venue.rest_url, venue.alice, retry=FAST) as client:
        known = await place(client)
        venue.faults.set(lying_cancel=1.0, cancel_not_applied=5)
        report = await kill_switch(client, known, interval=0.05)
    assert venue.faults.counts["cancel_not_applied"] == 5
    assert venue.faults.counts["lying_cancel"] == 12
    assert report.ok, report.detail
    assert (report.resting_left, report.checks, report.cancel_rounds, report.errors) == (0, 3, 1, 0)
    assert report.seconds < 5
    assert resting(venue) == 0
    assert report.detail == "no resting orders on 3 consecutive checks (1 cancel rounds, 0 errors)"


async def test_what_the_cancels_missed_is_found_by_listing_and_cancelled_again(
    venue: Venue,
) -> None:
    transport = NoCancelAll()
    async with KalshiRest(venue.rest_url, venue.alice, retry=FAST, transport=transport) as client:
        known = await place(client)
        venue.faults.set(lying_cancel=1.0, cancel_not_applied=5)
        report = await kill_switch(client, known, interval=0.05)
    assert report.ok, report.detail
    # Round 1 took 7 off; the listing showed the 5 unapplied, and round 2 took them.
    assert (report.resting_left, report.checks, report.cancel_rounds) == (0, 4, 2)
    assert report.errors == transport.refused == 2  # the refused cancel-alls
    assert resting(venue) == 0


async def test_orders_nobody_knew_of_are_found_by_listing(venue: Venue) -> None:
    transport = NoCancelAll()
    async with KalshiRest(venue.rest_url, venue.alice, retry=FAST, transport=transport) as client:
        await place(client)
        report = await kill_switch(client, [], interval=0.05)
    assert report.ok, report.detail
    assert (report.resting_left, report.checks, report.cancel_rounds) == (0, 4, 2)
    assert resting(venue) == 0


async def test_rest_errors_are_counted_and_do_not_stop_the_kill_switch(venue: Venue) -> None:
    async with KalshiRest(venue.rest_url, venue.alice, retry=FAST) as placing:
        known = await place(placing)
    venue.faults.set(rest_5xx=0.3)
    async with KalshiRest(venue.rest_url, venue.alice, retry=Retry(attempts=1)) as client:
        report = await kill_switch(client, known, interval=0.05)
    assert venue.faults.counts["rest_5xx"] > 0
    assert report.errors > 0  # no retries inside the client: each 503 reached the switch
    assert report.ok, report.detail
    assert report.resting_left == 0
    assert resting(venue) == 0


async def test_orders_that_will_not_cancel_are_reported_with_their_count(venue: Venue) -> None:
    transport = NoCancelAll()
    async with KalshiRest(venue.rest_url, venue.alice, retry=FAST, transport=transport) as client:
        known = await place(client)
        venue.faults.set(cancel_not_applied=1000)
        report = await kill_switch(client, known, timeout=1.0, interval=0.05)
    assert not report.ok
    assert report.resting_left == 12
    assert resting(venue) == 12
    assert 1.0 <= report.seconds < 2.0
    assert report.cancel_rounds >= 2
    assert report.checks in (report.cancel_rounds - 1, report.cancel_rounds)
    assert report.detail.startswith("12 orders still resting at the last check, after 1 s (")


async def test_a_kill_switch_that_cannot_list_says_the_count_is_unknown(venue: Venue) -> None:
    venue.faults.set(rest_5xx=1.0)
    async with KalshiRest(venue.rest_url, venue.alice, retry=Retry(attempts=1)) as client:
        report = await kill_switch(client, [], timeout=0.5, interval=0.05)
    assert not report.ok
    assert (report.resting_left, report.checks) == (UNKNOWN, 0)
    assert report.errors == venue.faults.counts["rest_5xx"] > 0
    assert report.detail.startswith("the resting orders could not be listed within 0.5 s")


async def test_cancelling_the_kill_switch_stops_it(venue: Venue) -> None:
    transport = NoCancelAll()
    async with KalshiRest(venue.rest_url, venue.alice, retry=FAST, transport=transport) as client:
        await place(client)
        venue.faults.set(cancel_not_applied=1000)
        task = asyncio.create_task(kill_switch(client, [], interval=0.05))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_bad_arguments_are_refused_before_anything_is_sent(venue: Venue) -> None:
    async with KalshiRest(venue.rest_url, venue.alice) as client:
        with pytest.raises(ValueError, match="timeout = 0 must be positive"):
            await kill_switch(client, [], timeout=0)
        with pytest.raises(ValueError, match="clean_checks = 0 must be positive"):
            await kill_switch(client, [], clean_checks=0)
    assert venue.server.stats.requests == 0
