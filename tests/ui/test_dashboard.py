"""The dashboard without a browser: widgets set as the frontend would, answers checked on the
session and on the embedded exchange itself."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import numpy as np
from uikit import demo_session, exchange_quotes, params_in_force

from kmm_interactive.session import Session
from kmm_interactive.ui.dashboard import Dashboard


def _board(s: Session) -> Dashboard:
    s.dashboard()
    return s._dashboards[-1]


def _exchange_quotes(s: Session, game: str) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    return exchange_quotes(s, game)


async def _select_last_game(s: Session, board: Dashboard) -> str:
    """The game that starts last (it trades through the test), selected and drawn."""
    game = s.games()["game"].iloc[-1]
    await s.until(lambda: bool(board.game_select.options), timeout=10)
    board.game_select.value = game
    await s.until(lambda: board.params.game == game, timeout=10)
    await s.until(lambda: len(_exchange_quotes(s, game)) >= 2, timeout=30)
    return game


async def test_a_slider_release_changes_the_params_and_the_quote_at_the_exchange():
    async with demo_session() as s:
        board = _board(s)
        game = await _select_last_game(s, board)
        assert s.engine is not None
        # Size is the exact check at the exchange; gamma moves the prices.
        board.params.size.value = 3
        board.params.gamma.value = 0.8
        await s.until(lambda: s.param_view(game).gamma == 0.8, timeout=5)
        assert s.param_view(game).quote_size == 3
        await s.until(
            lambda: {size for _, size in _exchange_quotes(s, game).values()} == {Decimal(3)},
            timeout=30,
        )
        assert "gamma 0.02 → 0.8" in board.message.value


async def test_a_refused_slider_says_why_and_goes_back():
    async with demo_session() as s:
        board = _board(s)
        game = await _select_last_game(s, board)
        size = s.param_view(game).quote_size
        before = s.param_view(game)
        params = params_in_force(s, game)
        board.params.cap.value = size - 1  # below the quote size: refused
        await s.until(lambda: "set_params refused" in board.message.value, timeout=5)
        assert "quote_size" in board.message.value
        await s.until(lambda: board.params.cap.value == before.cap, timeout=5)
        assert params_in_force(s, game) == params


async def test_a_k_change_for_one_market_leaves_the_other():
    async with demo_session() as s:
        board = _board(s)
        game = await _select_last_game(s, board)
        markets = [m for m in board.params.market.options if m != "every market"]
        board.params.market.value = markets[1]
        board.params.k.value = 1.5
        view_k = lambda: s.param_view(game).k  # noqa: E731
        await s.until(lambda: view_k()[markets[1]] == 1.5, timeout=5)
        assert view_k()[markets[0]] == s.config.sports["nba"].prior_k or view_k()[markets[0]] != 1.5
        assert "estimated" in board.params.estimates.value


async def test_the_override_panel_moves_the_theo_and_the_quotes():
    async with demo_session() as s:
        board = _board(s)
        game = await _select_last_game(s, board)
        await s.until(lambda: "feed theo A" in board.override.feed.value, timeout=10)
        feed = s.games().set_index("game").loc[game, "feed theo A"]
        before = _exchange_quotes(s, game)
        # Out of range: a message, and nothing changes.
        board.override.prob.value = 1.4
        board.override.reason.value = "fat finger"
        board.override.apply.click()
        await s.until(lambda: "strictly between 0 and 1" in board.message.value, timeout=5)
        assert s.games().set_index("game").loc[game, "theo source"] != "override"
        board.override.prob.value = round(min(0.95, feed + 0.2), 3)
        board.override.reason.value = ""
        board.override.apply.click()
        await s.until(lambda: "give a reason" in board.message.value, timeout=5)
        board.override.reason.value = "starter ruled out"
        board.override.apply.click()
        await s.until(
            lambda: s.games().set_index("game").loc[game, "theo source"] == "override", timeout=5
        )
        await s.until(lambda: _exchange_quotes(s, game) != before, timeout=30)
        await s.until(lambda: "override until" in board.override.feed.value, timeout=5)
        board.override.clear.click()
        await s.until(lambda: "back to the feed" in board.message.value, timeout=5)


async def test_the_kill_button_asks_then_leaves_nothing_resting_and_rearm_resumes():
    async with demo_session() as s:
        board = _board(s)
        await _select_last_game(s, board)
        assert s.embedded is not None
        board.kill.kill.click()
        await s.until(lambda: board.kill.confirm_box.layout.display == "flex", timeout=5)
        assert s.status().state == "ACTIVE"  # nothing happens before the confirmation
        board.kill.confirm.click()
        await s.until(lambda: "resting left" in board.kill.result.value, timeout=60)
        assert "0 resting left (verified)" in board.kill.result.value
        assert exchange_quotes(s) == {}
        assert s.status().state == "HALTED"
        await s.until(lambda: "HALTED" in board.status.value, timeout=5)
        board.kill.rearm.click()
        await s.until(lambda: "rearmed" in board.message.value, timeout=5)
        await s.until(lambda: len(exchange_quotes(s)) > 0, timeout=30)


async def test_widget_events_from_another_thread_are_handed_to_the_loop():
    async with demo_session() as s:
        board = _board(s)
        game = await _select_last_game(s, board)
        seen: list[str] = []

        def frontend() -> None:  # what an ipykernel 7.0-7.3 subshell thread does
            board.params.gamma.value = 0.3
            seen.append(threading.current_thread().name)

        thread = threading.Thread(target=frontend, name="subshell-test")
        thread.start()
        thread.join()
        await s.until(lambda: s.param_view(game).gamma == 0.3, timeout=5)
        assert seen == ["subshell-test"]


async def test_the_render_task_is_throttled_and_sends_numpy_arrays():
    async with demo_session() as s:
        board = _board(s)
        await _select_last_game(s, board)
        frames = board.frames
        await asyncio.sleep(3.0)
        assert board.frames - frames <= 3.0 * board.hz + 2
        assert board.frames > frames
        assert isinstance(board.pnl_fig.data[2].y, np.ndarray)
        assert isinstance(board.inventory_fig.data[0].y, np.ndarray)
        assert len(board.game_fig.data[0].x) > 0
    assert "stopped" in board.status.value


async def test_reopening_the_dashboard_keeps_one_render_task():
    async with demo_session() as s:
        for _ in range(3):
            s.dashboard()
        await asyncio.sleep(0.3)
        renders = [t for t in asyncio.all_tasks() if t.get_name() == "kmm-dashboard"]
        assert len(renders) == 1
    s.dashboard()  # a stopped session: one last frame, no task
    await asyncio.sleep(0.1)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "kmm-dashboard"]
    assert "stopped" in s._dashboards[-1].status.value
