"""The Session: life cycle in the running loop, surfaced failures, validated controls, tables."""

from __future__ import annotations

import asyncio

import pytest
from uikit import SETTINGS_CONFIG, demo_session, params_in_force

from kmm_interactive.config import ConfigError
from kmm_interactive.engine.runtime import Connection
from kmm_interactive.kalshi.auth import Signer
from kmm_interactive.session import Phase, Session, SessionError


def test_start_needs_a_running_loop():
    s = Session.demo(seed=1, games=2, config=SETTINGS_CONFIG)
    with pytest.raises(SessionError, match="running event loop"):
        s.start()
    assert s.phase == Phase.NEW


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"speed": 0}, "speed = 0: must be a number from 1 to 1000"),
        ({"games": 0}, "games = 0: must be an int from 1 to 500"),
        ({"sports": ["curling"]}, "sport 'curling' has no profile"),
    ],
)
def test_demo_refuses_bad_arguments(options, message):
    with pytest.raises(ValueError, match=message):
        Session.demo(**options)


async def test_life_cycle_tables_and_stop():
    async with demo_session() as s:
        task = s.start()
        assert s.start() is task  # idempotent: re-running the cell adds nothing
        assert s.phase == Phase.RUNNING
        games = s.games()
        assert {"game", "theo A", "feed theo A", "q", "cap", "state"} <= set(games.columns)
        assert len(games) == 3
        await s.until(lambda: s.status().resting > 0, timeout=30)
        quotes = s.quotes()
        assert {"side", "want", "size", "best other", "reason"} <= set(quotes.columns)
        assert set(quotes["side"]) >= {"bid A", "ask A", "bid B", "ask B"}
        assert "ACTIVE" in s._repr_html_()
        assert list(s.pnl()["game"])[-1] == "TOTAL"
        assert s.halts().empty
        assert not s.journal("start").empty
        report = await s.stop()
        assert report is not None
        assert report.ok
        assert report.resting_left == 0
        assert s.phase == Phase.STOPPED
        # The tables stay readable; the controls say why they cannot act.
        assert list(s.pnl()["game"])[-1] == "TOTAL"
        s.fills()
        with pytest.raises(SessionError, match="stopped"):
            s.set_params(games["game"][0], gamma=0.1)
        with pytest.raises(SessionError, match="a session runs once"):
            s.start()
        assert await s.stop() is report  # idempotent


async def test_starting_a_session_stops_the_one_before():
    async with demo_session(seed=3) as first:
        await first.until(lambda: first.status().resting > 0, timeout=30)
        world = first.embedded
        assert world is not None
        async with demo_session(seed=4) as second:
            await first.until(lambda: first.phase == Phase.STOPPED, timeout=30)
            assert second.phase == Phase.RUNNING
            assert first._stop_report is not None
            assert first._stop_report.ok


async def test_a_failed_start_is_surfaced_and_raised_by_the_next_call(tmp_path):
    from kmm_interactive.sim.auth import write_demo_key

    key = write_demo_key(tmp_path, "11111111-2222-4333-8444-555555555555")
    signer = Signer.from_pem_file(key.key_id, str(key.private_key_path))
    dead = Connection("embedded", "http://127.0.0.1:9/trade-api/v2", "ws://127.0.0.1:9/ws", signer)
    s = Session(SETTINGS_CONFIG, dead, watchdog=False)
    s.start()
    with pytest.raises(SessionError, match="the session failed"):
        await s.ready(timeout=30)
    assert s.phase == Phase.FAILED
    status = s.status()
    assert status.error
    assert "failed" in s.status().line()
    assert "session error" in s._repr_html_()
    with pytest.raises(SessionError, match="the session failed"):
        s.set_params("X", gamma=0.1)
    with pytest.raises(SessionError, match="nothing to kill: the session is failed"):
        await s.kill()
    assert not s.journal("start").empty  # what was recorded stays readable
    s.fills()
    await s.stop()
    assert s.phase == Phase.FAILED


async def test_an_engine_task_failure_is_raised_once_then_cleared_by_rearm():
    async with demo_session() as s:
        await s.until(lambda: s.status().resting > 0, timeout=30)
        assert s.engine is not None
        s.engine._fail("task pricing", RuntimeError("boom"))
        game = s.games()["game"][0]
        with pytest.raises(SessionError, match=r"task pricing failed .*boom.*rearm"):
            s.set_params(game, gamma=0.03)
        s.set_params(game, gamma=0.03)  # said once; the halt stays until rearm
        assert s.status().state == "HALTED"
        assert s.status().failures == ("task pricing: RuntimeError: boom",)
        await s.until(lambda: s.status().resting == 0, timeout=30)
        cleared = s.rearm()
        assert "engine error" in {r.reason.value for r in cleared}
        assert s.status().failures == ()
        await s.until(lambda: s.status().resting > 0, timeout=30)


async def test_bad_arguments_are_refused_whole():
    async with demo_session() as s:
        game = s.games()["game"][0]
        before = s.param_view(game)
        params = params_in_force(s, game)
        with pytest.raises(ConfigError, match="gamma"):
            s.set_params(game, gamma=2.0)
        with pytest.raises(ConfigError, match="quote_size"):
            s.set_params(game, gamma=0.3, size=10_000)  # size above the cap: γ stays too
        with pytest.raises(ConfigError, match=r"is not a parameter.*gamma, k, A, size, cap, sigma"):
            s.set_params(game, theta=1.0)
        with pytest.raises(ConfigError, match="is not a number"):
            s.set_params(game, k=True)
        with pytest.raises(ConfigError, match="not finite"):
            s.set_params(game, k=float("nan"))
        with pytest.raises(ConfigError, match="whole number"):
            s.set_params(game, cap=10.5)
        with pytest.raises(KeyError, match="neither a game nor a market"):
            s.set_params("KXNOPE-1", gamma=0.1)
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            s.override_theo(game, 1.5, reason="fat finger")
        with pytest.raises(ValueError, match="ttl"):
            s.override_theo(game, 0.5, ttl="forever", reason="bad ttl")
        with pytest.raises(ValueError, match="reason"):
            s.override_theo(game, 0.5, reason=" ")
        assert params_in_force(s, game) == params
        assert s.games().set_index("game").loc[game, "theo source"] != "override"
        changed = s.set_params(game, gamma=0.05, size=5)
        assert changed["gamma"] == (before.gamma, 0.05)
        assert changed["quote_size"] == (before.quote_size, 5)


async def test_submit_runs_controls_on_the_loop_from_another_thread():
    async with demo_session() as s:
        game = s.games()["game"][0]
        future = await asyncio.to_thread(s.submit, "set_params", game, gamma=0.07)
        assert (await asyncio.wrap_future(future))["gamma"][1] == 0.07
        bad = await asyncio.to_thread(s.submit, "set_params", game, gamma=7.0)
        with pytest.raises(ConfigError):
            await asyncio.wrap_future(bad)
        with pytest.raises(ValueError, match="unknown command 'stop'"):
            s.submit("stop")


async def test_a_failing_history_sample_is_shown_and_trading_goes_on(monkeypatch):
    async with demo_session() as s:
        await s.until(lambda: s.status().resting > 0, timeout=30)
        real = s.history.record

        def broken(*_: object) -> None:
            raise RuntimeError("plot data")

        monkeypatch.setattr(s.history, "record", broken)
        await s.until(lambda: "history sampler" in " ".join(s.status().failures), timeout=5)
        assert s.status().state == "ACTIVE"
        assert s.phase == Phase.RUNNING
        monkeypatch.setattr(s.history, "record", real)
        await s.until(lambda: s.status().failures == (), timeout=5)
