"""The dashboard's controls: the selected game's parameters, the theo override and the kill
switch.

Every callback only checks what the widget holds and hands a command to the session's loop
(``Session.submit``); the answer comes back as a message. Callbacks may run on another
thread than the session's (ipykernel 7.0–7.3 runs widget events on a subshell), so none of
them touches the engine, and none changes a widget itself: the render task, the commands'
answers and ``post`` (the kill switch's confirmation row) do, on the session's loop.

Bad input (a probability outside (0, 1), an empty reason, a refused parameter) is answered
with a message in red and changes nothing; a slider that was refused goes back to the value
in force at the next sync.
"""

from __future__ import annotations

import concurrent.futures
import html
import math
from collections.abc import Callable
from typing import Any, Protocol

import ipywidgets as widgets

from kmm_interactive.engine.views import GameView, ParamView
from kmm_interactive.pricing.quote_table import MAX_K, MAX_Q

ALL_MARKETS = "every market"


class Commands(Protocol):
    def submit(self, command: str, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]: ...


Say = Callable[[str, bool], None]
#: Runs a widget change on the session's loop (from whatever thread calls it).
Post = Callable[[Callable[[], None]], None]


def _run(
    commands: Commands,
    say: Say,
    done: Callable[[Any], str],
    command: str,
    *args: Any,
    **kwargs: Any,
) -> concurrent.futures.Future[Any] | None:
    """Submit ``command``; say ``done(result)`` or the error when it has run. Returns the
    future (None if it could not even be submitted)."""
    try:
        future = commands.submit(command, *args, **kwargs)
    except Exception as exc:  # not started, stopped: said, not raised into the frontend
        say(f"{command}: {exc}", False)
        return None

    def finished(f: concurrent.futures.Future[Any]) -> None:
        error = f.exception()
        if error is not None:
            say(f"{command} refused: {error}", False)
        else:
            say(done(f.result()), True)

    future.add_done_callback(finished)
    return future


def _estimate_text(view: ParamView, market: str | None) -> str:
    tickers = list(view.estimates) if market is None else [market]
    parts = []
    for t in tickers:
        e = view.estimates[t]
        suffix = t.rsplit("-", 1)[-1]
        if e.confidence > 0:
            parts.append(
                f"{suffix}: A≈{e.A:.3g}/s k≈{e.k:.3g}/¢ "
                f"({e.source}, {e.observations} fills, conf {e.confidence:.0%})"
            )
        else:
            parts.append(f"{suffix}: no fit yet ({html.escape(e.reason)})")
    return "<span style='font-size:11px;color:#57606a'>estimated: " + "; ".join(parts) + "</span>"


class ParamsPanel:
    """γ (log slider), k, A, size, cap and σ of the selected game; apply on release."""

    def __init__(self, commands: Commands, say: Say) -> None:
        self._commands, self._say = commands, say
        self._syncing = False
        self.game: str | None = None
        slider = {
            "continuous_update": False,
            "style": {"description_width": "60px"},
            "layout": widgets.Layout(width="360px"),
        }
        self.gamma = widgets.FloatLogSlider(
            value=0.02,
            base=10,
            min=-4,
            max=0,
            step=0.05,
            description="γ",
            readout_format=".3g",
            **slider,
        )
        self.k = widgets.FloatSlider(
            value=0.5,
            min=0.02,
            max=MAX_K,
            step=0.02,
            description="k /¢",
            readout_format=".2f",
            **slider,
        )
        self.A = widgets.FloatLogSlider(
            value=0.05,
            base=10,
            min=-3,
            max=2,
            step=0.05,
            description="A /s",
            readout_format=".3g",
            **slider,
        )
        self.size = widgets.IntSlider(value=25, min=1, max=500, description="size", **slider)
        self.cap = widgets.IntSlider(value=100, min=1, max=MAX_Q, description="cap", **slider)
        self.sigma = widgets.FloatLogSlider(
            value=5e-5,
            base=10,
            min=-7,
            max=-2,
            step=0.1,
            description="σ",
            readout_format=".2g",
            **slider,
        )
        self.market = widgets.Dropdown(
            options=[ALL_MARKETS],
            value=ALL_MARKETS,
            description="A, k of",
            layout=widgets.Layout(width="360px"),
        )
        self.estimates = widgets.HTML()
        self.prior = widgets.HTML()
        for name, widget in self._sliders().items():
            widget.observe(lambda change, n=name: self._changed(n, change), names="value")
        self.market.observe(lambda _: self._view_changed(), names="value")
        self._view: ParamView | None = None
        self.widget = widgets.VBox(
            [
                widgets.HTML("<b>parameters</b> (applied on release)"),
                self.gamma,
                self.sigma,
                self.cap,
                self.size,
                self.market,
                self.k,
                self.A,
                self.estimates,
            ]
        )

    def _sliders(self) -> dict[str, widgets.ValueWidget]:
        return {
            "gamma": self.gamma,
            "k": self.k,
            "A": self.A,
            "size": self.size,
            "cap": self.cap,
            "sigma": self.sigma,
        }

    def _changed(self, name: str, change: dict[str, Any]) -> None:
        if self._syncing or self.game is None:
            return
        value = change["new"]
        target = self.game
        if name in ("A", "k") and self.market.value != ALL_MARKETS:
            target = self.market.value
        future = _run(
            self._commands,
            self._say,
            lambda changed: _applied(target, changed),
            "set_params",
            target,
            **{name: value},
        )
        # Refused: the next sync puts the slider back to the value in force.
        if future is None:
            self._view = None
        else:
            future.add_done_callback(self._resync_if_refused)

    def _resync_if_refused(self, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._view = None

    def _view_changed(self) -> None:
        if not self._syncing:  # the trader chose another market: the next frame shows it
            self._view = None

    def sync(self, view: ParamView) -> None:
        """Show ``view`` (the loop's thread): values in force, and the estimates."""
        if view == self._view:
            return
        self._syncing = True
        try:
            if self.game != view.event_ticker:
                self.game = view.event_ticker
                self.market.options = [ALL_MARKETS, *view.A]
                self.market.value = ALL_MARKETS
            market = None if self.market.value == ALL_MARKETS else str(self.market.value)
            first = market or next(iter(view.A))
            with self.gamma.hold_sync(), self.k.hold_sync(), self.A.hold_sync():
                self.gamma.value = view.gamma
                self.sigma.value = max(view.sigma, 10.0**self.sigma.min)
                self.cap.value = view.cap
                self.size.max = view.cap
                self.size.value = view.quote_size
                self.k.value = view.k[first]
                self.A.value = view.A[first]
            self.estimates.value = _estimate_text(view, market)
            self._view = view
        finally:
            self._syncing = False


def _applied(target: str, changed: dict[str, tuple[Any, Any]]) -> str:
    if not changed:
        return f"{target}: nothing changed"
    parts = ", ".join(f"{k} {_fmt(a)} → {_fmt(b)}" for k, (a, b) in changed.items())
    return f"{target}: {parts}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class OverridePanel:
    """A manual theo for the selected game: team A's probability, how long, why."""

    def __init__(self, commands: Commands, say: Say) -> None:
        self._commands, self._say = commands, say
        self.game: str | None = None
        self.prob = widgets.FloatText(
            value=0.5,
            description="P(team A)",
            style={"description_width": "80px"},
            layout=widgets.Layout(width="200px"),
        )
        self.ttl = widgets.Text(
            value="30m",
            description="for",
            style={"description_width": "30px"},
            layout=widgets.Layout(width="130px"),
        )
        self.reason = widgets.Text(
            value="",
            placeholder="why (journaled)",
            description="reason",
            style={"description_width": "50px"},
            layout=widgets.Layout(width="300px"),
        )
        self.apply = widgets.Button(description="Apply override", button_style="warning")
        self.clear = widgets.Button(description="Clear override")
        self.feed = widgets.HTML()
        self.apply.on_click(lambda _: self._apply())
        self.clear.on_click(lambda _: self._clear())
        self.widget = widgets.VBox(
            [
                widgets.HTML("<b>theo override</b>"),
                self.feed,
                widgets.HBox([self.prob, self.ttl]),
                self.reason,
                widgets.HBox([self.apply, self.clear]),
            ]
        )

    def _apply(self) -> None:
        game, prob, reason = self.game, self.prob.value, self.reason.value.strip()
        if game is None:
            self._say("select a game first", False)
            return
        if not (isinstance(prob, float | int) and math.isfinite(prob) and 0.0 < prob < 1.0):
            self._say(
                f"override refused: P(team A) = {prob} must lie strictly between 0 and 1", False
            )
            return
        if not reason:
            self._say("override refused: give a reason (it is journaled)", False)
            return
        _run(
            self._commands,
            self._say,
            lambda o: f"{game}: theo overridden to {prob:.3f} until {o.expires_at:%H:%M:%S}Z",
            "override_theo",
            game,
            float(prob),
            ttl=self.ttl.value.strip(),
            reason=reason,
        )

    def _clear(self) -> None:
        game = self.game
        if game is None:
            self._say("select a game first", False)
            return
        _run(
            self._commands,
            self._say,
            lambda was: f"{game}: back to the feed" if was else f"{game}: no override in force",
            "clear_override",
            game,
        )

    def sync(self, view: GameView) -> None:
        """Show the feed's theo beside the one in force (the loop's thread)."""
        self.game = view.event_ticker
        feed = "none" if view.feed_theo_a is None else f"{view.feed_theo_a:.3f}"
        now = "none" if view.theo_a is None else f"{view.theo_a:.3f}"
        text = f"{html.escape(view.title)}: feed theo A <b>{feed}</b>, in force <b>{now}</b>"
        if view.override_until is not None:
            text += f' <b style="color:#8250df">override until {view.override_until:%H:%M:%S}Z</b>'
        if self.feed.value != text:
            self.feed.value = text


class KillPanel:
    """The red kill switch (asks to confirm, shows the verified result) and rearm."""

    def __init__(self, commands: Commands, say: Say, post: Post) -> None:
        self._commands, self._say, self._post = commands, say, post
        self.kill = widgets.Button(
            description="KILL SWITCH",
            button_style="danger",
            icon="stop",
            layout=widgets.Layout(width="160px", height="40px"),
        )
        self.confirm = widgets.Button(description="Confirm kill", button_style="danger")
        self.cancel = widgets.Button(description="Cancel")
        self.rearm = widgets.Button(description="Rearm", button_style="success")
        self.result = widgets.HTML()
        self.confirm_box = widgets.HBox(
            [widgets.HTML("cancel every order and halt?"), self.confirm, self.cancel],
            layout=widgets.Layout(display="none"),
        )
        self.kill.on_click(lambda _: self._ask())
        self.cancel.on_click(lambda _: self._hide())
        self.confirm.on_click(lambda _: self._confirmed())
        self.rearm.on_click(lambda _: self._rearm())
        self.widget = widgets.VBox(
            [widgets.HBox([self.kill, self.rearm]), self.confirm_box, self.result]
        )

    def _show_confirm(self, shown: bool) -> None:
        self.confirm_box.layout.display = "flex" if shown else "none"

    def _ask(self) -> None:
        self._post(lambda: self._show_confirm(True))

    def _hide(self) -> None:
        self._post(lambda: self._show_confirm(False))

    def _confirmed(self) -> None:
        def killing() -> None:
            self._show_confirm(False)
            self.result.value = "<b style='color:#cf222e'>killing: cancelling and verifying…</b>"

        self._post(killing)

        def done(report: Any) -> str:
            self.result.value = (
                f"<b style='color:#cf222e' class='kmm-kill-result'>HALTED: "
                f"{report.verdict} in {report.seconds:.1f} s</b>"
            )
            return f"kill switch: {report.verdict}"

        _run(self._commands, self._say, done, "kill")

    def _rearm(self) -> None:
        def done(cleared: Any) -> str:
            self.result.value = ""
            names = ", ".join(sorted({r.reason.value for r in cleared})) or "nothing latched"
            return f"rearmed: cleared {names}"

        _run(self._commands, self._say, done, "rearm")
