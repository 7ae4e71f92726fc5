"""``kmm demo`` (``make demo-headless``): the quickstart's story in a terminal."""

from __future__ import annotations

import pytest

from kmm_interactive.cli import main
from kmm_interactive.story import run_story


async def test_the_story_runs_every_step_and_exits_clean():
    lines: list[str] = []
    status = await run_story(20.0, seed=7, out=lines.append)
    text = "\n".join(lines)
    assert status == 0, text
    assert "set_params(" in text
    assert "gamma and k: quotes" in text
    assert "theo override: quotes" in text
    assert "KILL SWITCH: 0 resting left (verified)" in text
    assert "rearmed: cleared manual kill" in text
    assert "stopped: 0 left resting" in text
    assert "TOTAL" in text


def test_the_story_refuses_too_short_a_run(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--seconds", "0"])
    assert "more than zero" in capsys.readouterr().err
    assert main(["demo", "--seconds", "5"]) == 2
    assert "at least 20 s" in capsys.readouterr().err
