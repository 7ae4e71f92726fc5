"""``Session.dashboard()``: one ipywidgets layout, redrawn by one render task.

Layout: the status bar; the games table; for the selected game its parameters (γ, σ, cap,
size, and A and k per market with the fitted values beside them), the theo override and the
kill switch; then three live figures (inventory against cap, PnL over time, the selected
game's theo, quotes and best competitor over time) and a message line.

The render task runs on the session's loop at ``refresh.render_hz`` (at most 4 Hz): it reads
the session's views, and for each part whose content changed (and only then) sends one
update (``hold_sync`` for widgets, ``batch_update`` for figures). Callbacks never draw: they
submit commands (controls.py). When the session stops, the task draws a last time and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import ipywidgets as widgets

from kmm_interactive.ui.controls import KillPanel, OverridePanel, ParamsPanel
from kmm_interactive.ui.figures import (
    Drawn,
    game_figure,
    inventory_figure,
    pnl_figure,
    update_game,
    update_inventory,
    update_pnl,
)
from kmm_interactive.ui.table import games_table_html

if TYPE_CHECKING:
    from kmm_interactive.session import Session

log = logging.getLogger(__name__)

MAX_RENDER_HZ: Final = 4.0
#: Messages kept on the message line (newest first).
MESSAGES: Final = 5


class Dashboard:
    """The widgets and the render task (see the module doc)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.hz = min(float(session.config.refresh.render_hz), MAX_RENDER_HZ)
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.game_select = widgets.Dropdown(
            description="game", options=[], layout=widgets.Layout(width="520px")
        )
        self.message = widgets.HTML()
        self._messages: deque[str] = deque(maxlen=MESSAGES)
        self.params = ParamsPanel(session, self.say)
        self.override = OverridePanel(session, self.say)
        self.kill = KillPanel(session, self.say, self.post)
        self.inventory_fig = inventory_figure()
        self.pnl_fig = pnl_figure()
        self.game_fig = game_figure()
        self._drawn = {name: Drawn() for name in ("inventory", "pnl", "game")}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.frames = 0  # renders that sent something
        self.render_seconds = 0.0  # time spent rendering, for bench_ui
        self.game_select.observe(lambda _: self._request_render(), names="value")
        self._wake = asyncio.Event()
        self.widget = widgets.VBox(
            [
                self.status,
                self.table,
                self.game_select,
                widgets.HBox(
                    [
                        self.params.widget,
                        widgets.VBox(
                            [self.override.widget, widgets.HTML("<hr>"), self.kill.widget]
                        ),
                    ]
                ),
                widgets.Box(
                    [self.inventory_fig, self.pnl_fig],
                    layout=widgets.Layout(flex_flow="row wrap", width="100%"),
                ),
                self.game_fig,
                self.message,
            ]
        )

    # ------------------------------------------------------------------ messages

    def post(self, change: Callable[[], None]) -> None:
        """Run ``change`` (a widget update) on the session's loop, from any thread."""
        loop = self.session.loop
        if loop is None or loop.is_closed():
            change()
        else:
            loop.call_soon_threadsafe(change)

    def say(self, text: str, ok: bool) -> None:
        """Show a message (from any thread: it is drawn on the session's loop)."""
        colour = "#1a7f37" if ok else "#cf222e"
        stamp = time.strftime("%H:%M:%S")
        line = f'<span style="color:{colour}">{stamp} {html.escape(text)}</span>'

        def show() -> None:
            self._messages.appendleft(line)
            self.message.value = "<br>".join(self._messages)

        self.post(show)

    # ------------------------------------------------------------------ the render task

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._render_loop(), name="kmm-dashboard"
            )

    def close(self) -> None:
        """Stop redrawing after one last frame (the session stopped)."""
        self._closed = True
        with contextlib.suppress(Exception):
            self.render()
        if self._task is not None:
            self._task.cancel()

    def _request_render(self) -> None:
        self.post(self._wake.set)

    async def _render_loop(self) -> None:
        period = 1.0 / self.hz
        while not self._closed:
            started = time.perf_counter()
            try:
                self.render()
            except Exception as exc:  # a drawing bug must not take the session down
                log.exception("dashboard render failed")
                self.say(f"dashboard render failed: {type(exc).__name__}: {exc}", False)
            self.render_seconds += time.perf_counter() - started
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), period)
            await asyncio.sleep(0)  # a burst of wakes still draws at most every period

    def render(self) -> bool:
        """Draw what changed since the last frame; True if anything was sent."""
        s = self.session
        sent = False
        status = s._repr_html_()
        if status != self.status.value:
            self.status.value = status
            sent = True
        views = s.game_views()
        options = [(f"{v.title} ({v.event_ticker})", v.event_ticker) for v in views]
        if [o[1] for o in options] != [o[1] for o in self.game_select.options]:
            with self.game_select.hold_sync():
                current = self.game_select.value
                self.game_select.options = options
                ids = [o[1] for o in options]
                self.game_select.value = current if current in ids else (ids[0] if ids else None)
        selected = self.game_select.value
        table = games_table_html(views, selected)
        if table != self.table.value:
            self.table.value = table
            sent = True
        sent |= update_inventory(self.inventory_fig, self._drawn["inventory"], views)
        sent |= update_pnl(self.pnl_fig, self._drawn["pnl"], s.history.pnl())
        view = next((v for v in views if v.event_ticker == selected), None)
        if view is not None and s.engine is not None:
            self.params.sync(s.param_view(view.event_ticker))
            self.override.sync(view)
            sent |= update_game(
                self.game_fig, self._drawn["game"], view.title, s.history.game(view.event_ticker)
            )
        if sent:
            self.frames += 1
        return sent
