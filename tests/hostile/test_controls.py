"""Hostile input to the trader's controls of a running session, and what must survive it.

tests/ui/test_session.py::test_bad_arguments_are_refused_whole and the dashboard tests try a
few bad values each. Here one demo session takes a few hundred, generated per control
(every parameter × values of every wrong kind, every argument of ``override_theo``, targets
that are not games, the dashboard's text boxes), and afterwards:

* every call was refused with the documented exception, whose message names what was wrong;
* nothing changed: every game's parameters as before, no override in force, no ``params``
  or ``override`` record in the journal;
* the session still trades: running, no engine failure, orders resting at the exchange;
* the one valid change made at the end is applied and journaled exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from uikit import demo_session, exchange_quotes, params_in_force

from kmm_interactive.config import ConfigError
from kmm_interactive.session import COMMANDS, PARAM_NAMES, Phase, Session
from kmm_interactive.ui.dashboard import Dashboard

NOT_NUMBERS: list[Any] = [
    None, "0.1", "", True, False, [], {}, [0.1], object(), complex(1, 1),
    math.nan, math.inf, -math.inf, Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"),
]  # fmt: skip
OUT_OF_RANGE: list[Any] = [0, -1, -1e-9, 1e308, 10**30, 10**400, -(10**400)]
NOT_TARGETS: list[Any] = ["", " ", "KXNOPE-26DEC01AAABBB", None, 5, 1.5, [], ("a",), {}]
BAD_PROBS: list[Any] = [0, 1, 0.0, 1.0, 1.5, -0.1, 10**400, *NOT_NUMBERS]
BAD_TTLS: list[Any] = [0, -5, "0s", "-5m", "abc", "25h", "1h1h", 86_401, 10**400, math.nan,
                       math.inf, None, True, [], ""]  # fmt: skip
BAD_REASONS: list[Any] = ["", "   ", None, 5, [], ["why"]]
#: What a refused control may raise (each documented by the control).
REFUSALS = (ConfigError, ValueError, KeyError, TypeError)


def refusals(s: Session, games: list[str]) -> Iterator[tuple[str, str, Callable[[], Any]]]:
    """(what, what its refusal must mention, call) for every hostile call."""
    game, market = games[0], s.param_view(games[0]).A
    ticker = next(iter(market))
    for name in PARAM_NAMES:
        for value in (*NOT_NUMBERS, *OUT_OF_RANGE):
            if name == "sigma" and type(value) is int and value == 0:
                continue  # no volatility is a legal σ
            for target in (game, ticker):
                yield (f"set_params({target}, {name}={value!r:.30})", name,
                       lambda t=target, n=name, v=value: s.set_params(t, **{n: v}))  # fmt: skip
    for name in ("size", "cap"):
        yield f"{name}=2.5", name, lambda n=name: s.set_params(game, **{n: 2.5})
    yield "no parameter", "gamma", lambda: s.set_params(game)
    yield "unknown parameter", "theta", lambda: s.set_params(game, theta=0.1)
    yield "γ and a bad size together", "size", lambda: s.set_params(game, gamma=0.05, size=-3)
    for t in NOT_TARGETS:
        yield f"set_params({t!r})", "game", lambda t=t: s.set_params(t, gamma=0.05)
        yield f"override_theo({t!r})", "game", lambda t=t: s.override_theo(t, 0.5, reason="x")
        yield f"clear_override({t!r})", "game", lambda t=t: s.clear_override(t)
        yield f"pause({t!r})", "game", lambda t=t: s.pause(t)
        yield f"resume({t!r})", "game", lambda t=t: s.resume(t)
    for prob in BAD_PROBS:
        yield (f"prob {prob!r:.30}", "probability",
               lambda p=prob: s.override_theo(game, p, reason="news"))  # fmt: skip
    for ttl in BAD_TTLS:
        yield (f"ttl {ttl!r:.30}", "ttl",
               lambda t=ttl: s.override_theo(game, 0.5, ttl=t, reason="news"))  # fmt: skip
    for reason in BAD_REASONS:
        yield f"reason {reason!r}", "reason", lambda r=reason: s.override_theo(game, 0.5, reason=r)
    for command in ("stop", "start", "__class__", "", "set_params "):
        assert command not in COMMANDS
        yield f"submit({command!r})", "unknown command", lambda c=command: s.submit(c, game)


def _journal_rows(s: Session, kind: str) -> int:
    return len(s.journal(kind))


async def test_hundreds_of_hostile_calls_are_refused_and_the_session_trades_on() -> None:
    async with demo_session() as s:
        await s.until(lambda: s.status().resting > 0, timeout=30)
        games = list(s.games()["game"])
        before = {g: params_in_force(s, g) for g in games}
        calls = list(refusals(s, games))
        assert len(calls) > 300
        unexpected: list[str] = []
        for what, must_say, call in calls:
            try:
                call()
            except REFUSALS as exc:
                message = str(exc)
                if must_say not in message or len(message) > 2000:
                    unexpected.append(f"{what}: {message[:100]!r} does not say {must_say!r}")
            except Exception as exc:  # the point: nothing else may escape
                unexpected.append(f"{what}: {type(exc).__name__}: {exc}")
            else:
                unexpected.append(f"{what}: accepted")
        assert unexpected == [], "\n".join(unexpected[:40])

        # Nothing changed, nothing was journaled as changed, and the session trades on.
        assert {g: params_in_force(s, g) for g in games} == before
        assert set(s.games()["theo source"]) <= {"consensus", "anchor", "feed", "recheck"}
        assert _journal_rows(s, "params") == 0
        assert _journal_rows(s, "override") == 0
        assert s.phase is Phase.RUNNING
        assert s.engine is not None
        assert s.engine.failures == []
        await s.until(lambda: len(exchange_quotes(s)) > 0, timeout=30)

        # A valid change still works, and is journaled once.
        changed = s.set_params(games[0], gamma=0.05)
        assert changed["gamma"][1] == 0.05
        assert _journal_rows(s, "params") == 1


async def test_the_dashboards_boxes_refuse_bad_text_and_keep_the_session() -> None:
    async with demo_session() as s:
        s.dashboard()
        board: Dashboard = s._dashboards[-1]
        await s.until(lambda: board.override.game is not None, timeout=15)
        game = board.override.game
        for prob, ttl, reason, said in [
            (math.nan, "30m", "news", "strictly between 0 and 1"),
            (math.inf, "30m", "news", "strictly between 0 and 1"),
            (0.6, "30m", "   ", "give a reason"),
            (0.6, "forever", "news", "ttl"),
            (0.6, "-5m", "news", "ttl"),
            (0.6, "99999h", "news", "ttl"),
        ]:
            board.message.value = ""
            board.override.prob.value = prob
            board.override.ttl.value = ttl
            board.override.reason.value = reason
            board.override.apply.click()
            await s.until(lambda: board.message.value != "", timeout=5)
            assert said in board.message.value, (ttl, board.message.value)
        assert s.games().set_index("game").loc[game, "theo source"] != "override"
        assert _journal_rows(s, "override") == 0
        assert s.engine is not None
        assert s.engine.failures == []


@pytest.mark.parametrize("value", [10**400, Decimal("sNaN"), Decimal("1e999999")])
def test_numbers_python_cannot_make_a_float_of_are_refused_as_numbers(value: Any) -> None:
    """The check behind every parameter, on its own: a ConfigError, not an OverflowError."""
    from kmm_interactive.session import _number

    with pytest.raises(ConfigError, match="gamma"):
        _number("gamma", value)
