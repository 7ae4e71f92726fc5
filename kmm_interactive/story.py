"""The quickstart's story in a terminal (``kmm demo``, ``make demo-headless``).

The same steps as ``notebooks/01_quickstart.ipynb``, on a timetable over ``seconds``: start
a demo session, watch it quote, move γ and k on the game that starts last, override its
theo on "breaking news", press the kill switch and verify, rearm, report the first game's
start (its orders gone), stop, and print the summary. A status line every few seconds.

Exit status: 0 when every step did what it should (the kill verified with nothing resting,
no task failed, the stop verified); 1 otherwise, with the step that failed named.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pandas as pd

from kmm_interactive.session import Session


@dataclass
class _Story:
    session: Session
    out: Callable[[str], None]
    failures: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.out(f"[{time.strftime('%H:%M:%S')}] {text}")

    def wanted(self, game: str) -> tuple[object, ...]:
        q = self.session.quotes()
        return tuple(q[q["game"] == game]["want"]) if not q.empty else ()

    async def moved(self, game: str, before: tuple[object, ...], what: str) -> None:
        try:
            await self.session.until(lambda: self.wanted(game) != before, timeout=20)
            self.say(f"{what}: quotes {_prices(before)} -> {_prices(self.wanted(game))}")
        except TimeoutError:
            self.failures.append(f"{what}: the quotes did not move within 20 s")
            self.say(f"{what}: the quotes did not move within 20 s")

    async def params(self, game: str) -> None:
        before = self.wanted(game)
        changed = self.session.set_params(game, gamma=0.5, k=2.0)
        self.say(f"set_params({game}, gamma=0.5, k=2.0): {changed}")
        await self.moved(game, before, "gamma and k")

    async def override(self, game: str) -> None:
        row = self.session.games().set_index("game").loc[game]
        feed = row["feed theo A"]
        if feed is None or pd.isna(feed):
            self.say(f"{game} has no feed theo: no override")
            return
        news = round(min(0.95, float(feed) + 0.15), 3)
        before = self.wanted(game)
        self.session.override_theo(game, news, ttl="10m", reason="breaking news (demo)")
        self.say(f"override_theo({game}): feed {float(feed):.3f} -> {news:.3f}")
        await self.moved(game, before, "theo override")
        self.session.clear_override(game)

    async def kill(self) -> None:
        report = await self.session.kill()
        self.say(f"KILL SWITCH: {report.verdict} in {report.seconds:.1f} s")
        if not (report.ok and report.resting_left == 0):
            self.failures.append(f"kill switch: {report.detail}")
        cleared = self.session.rearm()
        self.say(f"rearmed: cleared {', '.join(sorted({r.reason.value for r in cleared}))}")


def _prices(quotes: tuple[object, ...]) -> str:
    return "[" + " ".join("–" if q is None else f"{q}" for q in quotes) + "]"


async def run_story(
    seconds: float = 60.0,
    *,
    seed: int = 7,
    speed: float = 30.0,
    status_every: float = 5.0,
    out: Callable[[str], None] = print,
) -> int:
    """Run the story (see the module doc); returns the exit status."""
    if not seconds >= 20:
        raise ValueError(f"seconds = {seconds}: the story needs at least 20 s")
    s = Session.demo(seed=seed, speed=speed)
    story = _Story(s, out)
    started = time.monotonic()
    s.start()
    try:
        await s.ready()
        games = s.games()
        story.say(f"trading {len(games)} games on the embedded exchange, {speed:g}x time")
        last, first = games["game"].iloc[-1], games["game"].iloc[0]
        steps: list[tuple[float, Callable[[], Awaitable[None]]]] = [
            (0.25, lambda: story.params(last)),
            (0.45, lambda: story.override(last)),
            (0.65, story.kill),
        ]
        next_status = 0.0
        first_seen = False
        while (elapsed := time.monotonic() - started) < seconds:
            if steps and elapsed >= steps[0][0] * seconds:
                await steps.pop(0)[1]()
            if elapsed >= next_status:
                story.say(s.status().line())
                next_status += status_every
            if not first_seen and first in set(s.games()["game"]):
                row = s.games().set_index("game").loc[first]
                if "game started" in row["halts"] and row["resting"] == 0:
                    first_seen = True
                    story.say(f"{first} started: stopped quoting, nothing rests")
            await asyncio.sleep(0.5)
        if not first_seen:
            story.say(f"{first} had not started within {seconds:g} s")
    finally:
        report = await s.stop()
    story.say(
        "stopped: "
        + ("nothing to cancel" if report is None else f"{report.resting_left} left resting")
    )
    status = s.status()
    if status.error:
        story.failures.append(status.error)
    story.failures.extend(f"task failed: {f}" for f in status.failures)
    if report is not None and not report.ok:
        story.failures.append(f"stop: {report.detail}")
    with pd.option_context("display.width", 120):
        out(s.pnl().to_string(index=False))
    out(f"fills {status.fills}; total PnL {status.pnl.total:+.2f}")
    for failure in story.failures:
        out(f"FAILED: {failure}")
    return 1 if story.failures else 0
