"""The live engine against the embedded exchange over real HTTP and WebSockets, time
compressed 30×: quoting all sides, fills, positions equal to the exchange's, bid wars that
end, the stop at each game's start, the per-event odds recheck after news, the kill switch
with lying cancels, and the loop-stall watchdog."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from enginekit import (
    engine_config,
    order_updates,
    positions,
    quoted_sides,
    resting,
    trading,
    until,
)

from kmm_interactive.config import ConfigError
from kmm_interactive.engine import runtime
from kmm_interactive.engine.journal import Journal, JournalError
from kmm_interactive.engine.runtime import JOURNAL_FAILURE, Engine
from kmm_interactive.engine.views import GameView, game_view
from kmm_interactive.kalshi.errors import RateLimited
from kmm_interactive.kalshi.ws import BOOK, SequenceGap, SubscriptionLost
from kmm_interactive.launch import EmbeddedExchange
from kmm_interactive.strategy.halts import HaltReason, TradingState


def two_sided_games(engine: Engine) -> list[str]:
    """Games priced well inside (0.15, 0.85): every side of them has a price worth quoting."""
    out = []
    for event, g in engine.games.items():
        p = g.probs.get(g.game.market_a.ticker) if g.probs else None
        if p is not None and 0.15 < p < 0.85 and g.game.tie is None:
            out.append(event)
    return out


def reprice_gaps(engine: Engine) -> list[float]:
    """Seconds between one change of a resting order's price and the next, over every order.

    Counted when the exchange confirmed the new price (the moment the engine's min-rest
    clock starts); an amend of the size alone is not a reprice."""
    history = engine.journal.order_events_frame()
    rested = history[history["state"] == "resting"]
    gaps: list[float] = []
    for _, rows in rested.groupby("client_order_id"):
        changes = rows[rows["price"] != rows["price"].shift()]  # the first is the create
        times = [t.timestamp() for t in changes["ts"]]
        gaps += [b - a for a, b in itertools.pairwise(times)]
    return gaps


def all_four_quoted(engine: Engine, sides: set[tuple[str, str]], event: str) -> bool:
    g = engine.games[event]
    return all((m.ticker, s) in sides for m in g.game.markets for s in ("bid", "ask"))


async def test_the_engine_quotes_fills_reconciles_and_stops_at_each_start(tmp_path: Path) -> None:
    async with trading(tmp_path, seed=5, n_games=4) as (world, engine):
        games = two_sided_games(engine)
        assert games, "the scenario should have two-sided games"
        reasons: Counter[str] = Counter()
        violations: list[str] = []
        first = min(engine.games.values(), key=lambda g: g.game.start_time)
        start = first.game.start_time

        buffer = timedelta(seconds=engine.config.risk.start_buffer)
        # A little slack for the monitor's look (4 Hz) and a cancel's round trip.
        stop_by = start - buffer + timedelta(seconds=1.0)

        async def watch() -> None:
            while True:
                for row in engine.quotes():
                    reasons[row["reason"].split(" ")[0]] += 1
                if datetime.now(UTC) >= stop_by:
                    late = [o for o in resting(world) if o.ticker in first.tickers]
                    violations.extend(f"{o.ticker} {o.side} @ {o.price}" for o in late)
                await asyncio.sleep(0.25)

        watcher = asyncio.create_task(watch())
        try:
            await until(
                lambda: all(all_four_quoted(engine, quoted_sides(world), e) for e in games),
                20,
                "all four sides of every two-sided game resting",
            )
            await until(lambda: engine.status().fills >= 20, 30, "twenty fills")
            wait = (start - datetime.now(UTC)).total_seconds() + 2
            await asyncio.sleep(max(wait, 0))
        finally:
            watcher.cancel()
        # No order of the first game rested past start − buffer; its orders went before.
        assert violations == []
        assert HaltReason.GAME_STARTED in engine.halts.reasons(first.event_ticker)
        # Done quoting, it lets go of its quote tables (most of a game's memory).
        await until(lambda: first.finished, 10, "the first game done")
        assert first.tables == [None] * len(first.units)
        assert first.decision is not None  # what the games table shows stays
        updates = order_updates(world)
        for t in engine.orders.tracked(first.event_ticker):
            raise AssertionError(f"{t.order} still tracked after the start")
        for cid in engine.journal.known_client_order_ids():
            journaled = engine.journal.order_state(cid)
            assert journaled is not None
            if journaled.game == first.event_ticker and journaled.order_id in updates:
                status, updated = updates[journaled.order_id]
                assert status != "resting"
                assert updated <= stop_by.timestamp()
        # Bid wars end: outbids and joins or back-offs happened, and prices did not spin.
        assert reasons["outbid"] > 0
        assert reasons["join"] + reasons["back"] > 0
        # No side's price spins: a resting order is repriced at most once per min rest,
        # except when a limit moves under it (a new theo, a fill): rarely.
        gaps = reprice_gaps(engine)
        assert len(gaps) >= 10
        quick = [g for g in gaps if g < engine.config.quoting.min_rest - 0.05]
        assert len(quick) <= 0.1 * len(gaps), sorted(quick)
        # Positions equal the exchange's at every reconciliation (no mismatch was found)
        # and at the end, once nothing can fill any more.
        assert len(engine.journal.events_frame("mismatch")) == 0
        await engine.stop()
        tickers = [h.ticker for h in engine.positions.holdings()]
        truth = positions(world, tickers)
        assert {t: engine.positions.holding(t).position for t in tickers} == truth
        assert engine.failures == []


async def test_a_news_jump_triggers_the_per_event_pull_and_pauses_the_exposed_side(
    tmp_path: Path,
) -> None:
    # Seed 14: the Boston–LA game's truth jumps from 0.48 to 0.39 about 31 s in; informed
    # takers then hit the stale side. Bursts are switched off here so that the skew they
    # cause is what asks for the recheck; the odds pull is given 0.3 s, as over a network.
    config = engine_config(theo={"recheck_fills": 1000})
    async with trading(tmp_path, seed=14, n_games=4, config=config) as (world, engine):
        news = world.call(lambda sim: [(j.event_ticker, j.time) for j in sim.scenario.news])
        event, jump = min(news, key=lambda n: n[1])
        assert event in engine.games
        assert engine.odds is not None
        real = engine.odds.event_odds

        async def slow_event_odds(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0.3)
            return await real(*args, **kwargs)

        engine.odds.event_odds = slow_event_odds  # type: ignore[method-assign]
        await asyncio.sleep(max(jump - time.time(), 0) + 12)
        jumped = datetime.fromtimestamp(jump, UTC)
        rechecks = engine.journal.events_frame("recheck", game=event, since=jumped)
        asked = [r["data"] for r in rechecks["data"] if r["data"]["state"] == "requested"]
        assert asked, "no recheck after the news"
        assert asked[0]["why"].startswith("|q|")
        done = [r["data"] for r in rechecks["data"] if r["data"]["state"] == "done"]
        assert done
        halts = engine.journal.events_frame("halt", game=event, since=jumped)
        assert "odds recheck" in {d["reason"] for d in halts["data"]}
        states = engine.journal.events_frame("state", game=event, since=jumped)
        assert "REDUCING" in {d["state"] for d in states["data"]}
        theos = engine.journal.events_frame("theo", game=event, since=jumped)
        assert any(d["data"].get("source") == "recheck" for d in theos["data"])


async def test_the_kill_switch_leaves_nothing_resting_despite_lying_cancels(
    tmp_path: Path,
) -> None:
    async with trading(tmp_path, seed=5, n_games=3) as (world, engine):
        await until(lambda: len(resting(world)) >= 8, 20, "quotes resting")
        world.call(lambda sim: sim.faults.set(lying_cancel=1.0, cancel_not_applied=3))
        started = time.monotonic()
        report = await engine.kill()
        assert report.ok, report
        assert report.resting_left == 0
        assert time.monotonic() - started < 60
        assert resting(world) == []
        assert world.call(lambda sim: sim.faults.counts["cancel_not_applied"]) == 3
        # Latched: nothing is quoted again until rearmed.
        await asyncio.sleep(2.0)
        assert resting(world) == []
        assert engine.status().state is TradingState.HALTED
        engine.rearm()
        world.call(lambda sim: sim.faults.clear())
        await until(lambda: len(resting(world)) >= 4, 10, "quoting again after rearm()")


async def test_a_stalled_loop_is_caught_by_the_watchdog(tmp_path: Path) -> None:
    async with trading(tmp_path, seed=5, n_games=3) as (world, engine):
        await until(lambda: len(resting(world)) >= 8, 20, "quotes resting")
        before = {o.order_id for o in resting(world)}
        stalled_at = time.time()
        time.sleep(10)  # a blocking notebook cell: the loop, and the engine, freeze
        # The exchange (on its own thread) already has nothing of ours resting.
        assert resting(world) == []
        updates = order_updates(world)
        limit = engine.config.risk.loop_stall_after
        cancelled = [updates[o][1] for o in before]
        assert max(cancelled) - stalled_at <= limit + 1.5
        await until(
            lambda: HaltReason.LOOP_STALL in engine.halts.reasons(None), 2, "LOOP_STALL latched"
        )
        assert engine.status().state is TradingState.HALTED
        await asyncio.sleep(1.0)
        assert resting(world) == []  # and nothing is quoted again on its own
        stall = engine.journal.events_frame("stall")
        assert len(stall) == 1
        assert stall["data"].iloc[0]["cancelled_ok"] is True


async def test_the_traders_controls_take_effect_and_bad_input_changes_nothing(
    tmp_path: Path,
) -> None:
    async with trading(tmp_path, seed=5, n_games=3) as (world, engine):
        event = two_sided_games(engine)[0]
        g = engine.games[event]
        a = g.game.market_a.ticker
        await until(lambda: all_four_quoted(engine, quoted_sides(world), event), 20, "quoted")
        # γ: validated by the sport profile's rules; a new table is solved off the loop.
        with pytest.raises(ConfigError, match="gamma"):
            engine.set_params(event, gamma=-1.0)
        with pytest.raises(ConfigError, match="is not a parameter"):
            engine.set_params(event, gamma=0.3, colour="red")
        assert g.profile.gamma == engine.config.sports[g.sport].gamma  # nothing half-applied
        assert engine.set_params(event, gamma=0.3) == {
            "gamma": (engine.config.sports[g.sport].gamma, 0.3)
        }
        engine.set_params(a, k=1.5)
        await until(
            lambda: (
                (t := g.tables[0]) is not None
                and t.problem.gamma == 0.3
                and t.problem.book_a.k == 1.5
            ),
            10,
            "the new quote table in force",
        )
        # A theo override moves the quotes at once (breaking news), and expires.
        before = {(o.ticker, o.side): o.price for o in resting(world)}
        assert g.probs is not None
        low = round(max(g.probs[a] - 0.15, 0.05), 2)
        engine.override_theo(a, low, ttl="5m", reason="starter ruled out")
        await until(
            lambda: any(
                o.ticker == a and o.side == "bid" and o.price < before[(a, "bid")]
                for o in resting(world)
            ),
            10,
            "the bid on A moved down after the override",
        )
        assert engine.theo.theo(event) is not None
        assert engine.clear_override(a)
        # Pause: the game's orders go; resume: they come back.
        engine.pause(event)
        await until(
            lambda: not any(o.ticker in g.tickers for o in resting(world)), 10, "paused game pulled"
        )
        engine.resume(event)
        await until(lambda: all_four_quoted(engine, quoted_sides(world), event), 10, "resumed")
        kinds = set(engine.journal.events_frame()["kind"])
        assert {"params", "override", "override_cleared", "halt", "halt_cleared"} <= kinds


async def test_a_journal_that_refuses_writes_halts_and_cancels_everything(
    tmp_path: Path,
) -> None:
    async with trading(tmp_path, seed=5, n_games=3) as (world, engine):
        await until(lambda: len(resting(world)) >= 8, 20, "quotes resting")
        # SQLite itself refuses every write from now on, as on a full disk.
        engine.journal._connection().execute("PRAGMA query_only = ON")
        # The first refused write halts and starts the kill switch at once, before any other
        # task runs (the halt's own record is refused too, and must not stop it).
        with pytest.raises(JournalError, match="nothing written"):
            engine.journal.record("note", why="a test write")
        assert HaltReason.ENGINE_ERROR in engine.halts.reasons(None)
        assert engine._killing is not None
        await until(lambda: resting(world) == [], 30, "everything cancelled")
        assert HaltReason.ENGINE_ERROR in engine.halts.reasons(None)
        assert engine.status().state is TradingState.HALTED
        # Said once, first; the game tasks whose writes it refused fail after it.
        failed = [what for what, _ in engine.failures]
        assert failed[0] == JOURNAL_FAILURE
        assert failed.count(JOURNAL_FAILURE) == 1
        await until(lambda: engine.last_kill is not None, 30, "the kill switch verified")
        assert engine.last_kill is not None
        assert engine.last_kill.ok
        await asyncio.sleep(1.5)
        assert resting(world) == []  # and nothing is quoted again


async def test_a_gap_on_a_channel_without_snapshots_is_read_back_by_rest(tmp_path: Path) -> None:
    # Fills, order updates and settlements lost in a gap (or a reconnect) cannot come back
    # over the WebSocket: settlements, fills, positions and orders are read by REST at once.
    config = engine_config(refresh={"positions": "600s"})  # no periodic pass meanwhile
    async with trading(tmp_path, seed=5, n_games=3, config=config) as (world, engine):
        await until(lambda: len(resting(world)) >= 4, 20, "quotes resting")
        asked: list[object] = []
        real = engine.rest.settlements

        async def settlements(**kwargs: Any) -> Any:
            asked.append(kwargs)
            return await real(**kwargs)

        engine.rest.settlements = settlements  # type: ignore[method-assign]
        engine._on_ws(SequenceGap(BOOK, 1, 10, 12, ()))  # a book heals by its own snapshot
        await asyncio.sleep(1.0)
        assert asked == []
        engine._on_ws(SequenceGap("fill", 2, 10, 12, ()))
        await until(lambda: len(asked) == 1, 10, "settlements, then the rest, read by REST")
        await asyncio.sleep(1.0)
        # Asked again while a pass runs: another pass follows (the running one may have read
        # before what was lost).
        engine._on_ws(SubscriptionLost("market_lifecycle_v2", 3, 10, "lost"))
        engine._on_ws(SequenceGap("user_orders", 4, 10, 12, ()))
        await until(lambda: len(asked) == 3, 10, "read again, twice")
        await asyncio.sleep(1.0)
        assert len(asked) == 3


async def test_refusals_at_start_up_delay_the_engine_within_its_patience(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = EmbeddedExchange(seed=5, speed=30.0, n_games=2)
    connection = world.start()
    try:
        # Every REST call refused for 2 s, from before the engine's first one.
        world.call(lambda sim: sim.faults.set(burst_429=2.0))
        engine = Engine(engine_config(), connection, journal=Journal(tmp_path / "a.sqlite"))
        began = time.monotonic()
        try:
            await engine.start()
            assert time.monotonic() - began >= 1.5  # it waited the burst out
            await until(lambda: len(resting(world)) > 0, 30, "quotes once the burst is over")
        finally:
            await engine.stop()
        assert world.call(lambda sim: sim.faults.counts["burst_429"]) > 0
        # Refused for longer than it will wait: start() fails with the refusal itself.
        monkeypatch.setattr(runtime, "STARTUP_PATIENCE", 1.0)
        world.call(lambda sim: sim.faults.set(burst_429=60.0))
        engine = Engine(engine_config(), connection, journal=Journal(tmp_path / "b.sqlite"))
        began = time.monotonic()
        with pytest.raises(RateLimited):
            await engine.start()
        assert time.monotonic() - began < 10
    finally:
        world.stop()


async def test_too_many_failing_calls_halt_everything_until_they_stop(tmp_path: Path) -> None:
    config = engine_config(risk={"rest_error_window": "6s"})
    async with trading(tmp_path, seed=5, n_games=3, config=config) as (world, engine):
        await until(lambda: len(resting(world)) >= 4, 20, "quotes resting")
        world.call(lambda sim: sim.faults.set(rest_5xx=1.0))
        await until(
            lambda: HaltReason.REST_ERROR_RATE in engine.halts.reasons(None), 20, "the halt"
        )
        assert engine.status().state is TradingState.HALTED
        world.call(lambda sim: sim.faults.clear())
        await until(lambda: resting(world) == [], 20, "everything cancelled once calls work")
        await until(
            lambda: HaltReason.REST_ERROR_RATE not in engine.halts.reasons(None), 20, "healed"
        )
        await until(lambda: len(resting(world)) >= 4, 20, "quoting again")
        assert engine.failures == []


async def test_the_games_view_shows_the_decisions_halts_a_stale_theo_among_them(
    tmp_path: Path,
) -> None:
    # A stale theo follows from the clock: the decision halts on it, the halt book never
    # holds it; the trader's table must show it all the same.
    async with trading(tmp_path, seed=5, n_games=2) as (world, engine):
        await until(lambda: len(resting(world)) >= 2, 20, "quotes resting")
        g = next(iter(engine.games.values()))
        assert g.theo_as_of is not None
        fresh = g.theo_as_of
        g.theo_as_of = fresh - timedelta(hours=1)  # as if the odds feed had been down since

        def view() -> GameView:
            return game_view(engine, g, engine.clock())

        await until(lambda: "stale theo" in view().halts, 10, "shown stale")
        assert HaltReason.STALE_THEO not in engine.halts.reasons(g.event_ticker)
        assert view().state == str(TradingState.HALTED)
        g.theo_as_of = engine.clock()
        await until(lambda: view().halts == (), 10, "fresh again, shown so")
