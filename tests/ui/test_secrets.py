"""No output a trader sees or keeps carries a key: not the reprs, the logs, the dashboard, the
journal, error messages, nor a notebook's outputs."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from uikit import SETTINGS_CONFIG, demo_session

from kmm_interactive.session import Session

ROOT = Path(__file__).resolve().parents[2]


def _secrets(info: dict[str, str]) -> dict[str, str]:
    """The demo key's material: the PEM body's lines, the full key id, the odds key."""
    pem = Path(info["private_key_path"]).read_text()
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    found = {f"private key line {i}": line for i, line in enumerate(lines)}
    found["key id"] = info["key_id"]
    found["odds api key"] = info["odds_api_key"]
    return found


def _assert_clean(text: str, secrets: dict[str, str], where: str) -> None:
    for name, secret in secrets.items():
        assert secret not in text, f"{name} appears in {where}"


async def test_reprs_logs_tables_dashboard_errors_and_journal_carry_no_key(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    journal = tmp_path / "journal.sqlite"
    async with demo_session(journal=journal) as s:
        assert s.embedded is not None
        secrets = _secrets(s.embedded.info)
        assert s.engine is not None
        s.dashboard()
        board = s._dashboards[-1]
        await s.until(lambda: s.status().fills > 0, timeout=30)
        game = s.games()["game"][0]
        s.override_theo(game, 0.6, ttl="1m", reason="test")
        errors = []
        for bad in (
            lambda: s.set_params(game, gamma=9.0),
            lambda: s.override_theo(game, 2.0, reason="x"),
            lambda: s.set_params("NOPE", k=1.0),
        ):
            with pytest.raises((ValueError, KeyError)) as caught:
                bad()
            errors.append(f"{caught.value!s} {caught.value!r}")
        board.render()
        texts = {
            "reprs": " ".join(
                repr(x)
                for x in (
                    s,
                    s.engine,
                    s.engine.connection,
                    s.engine.rest,
                    s.engine.ws,
                    s.engine.journal,
                    s.embedded,
                    s.status(),
                )
            ),
            "status html": s._repr_html_(),
            "tables": " ".join(
                f.to_string()
                for f in (s.games(), s.quotes(), s.positions(), s.fills(), s.pnl(), s.halts())
            )
            + s.journal(limit=None).to_string(),
            "dashboard": " ".join(
                w.value for w in (board.status, board.table, board.message, board.override.feed)
            ),
            "errors": " ".join(errors),
        }
        report = await s.kill()
        texts["kill report"] = repr(report)
    texts["logs"] = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
    )
    texts["journal file"] = journal.read_bytes().decode("utf-8", "replace")
    for where, text in texts.items():
        _assert_clean(text, secrets, where)
    assert len(caplog.records) > 0


def test_notebook_outputs_carry_no_key(tmp_path):
    """03_live_kalshi.ipynb run without Kalshi keys (the embedded exchange), every output
    searched for the demo key, which a probe cell hands to the test."""
    nb = nbformat.read(ROOT / "notebooks" / "03_live_kalshi.ipynb", as_version=4)
    leak = tmp_path / "secrets.json"
    start = next(i for i, c in enumerate(nb.cells) if c.source.startswith("s.start()"))
    probe = nbformat.v4.new_code_cell(
        "import json as _json\n"
        "_info = s.embedded.info\n"
        f"_json.dump({{'info': _info, 'pem': open(_info['private_key_path']).read()}}, "
        f"open({str(leak)!r}, 'w'))"
    )
    nb.cells.insert(start + 1, probe)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KALSHI_API_KEY_ID", "KALSHI_PRIVATE_KEY_PATH", "ODDS_API_KEY")
    }
    work = tmp_path / "notebooks"
    work.mkdir()
    (tmp_path / "kmm.toml").write_text((ROOT / "kmm.toml").read_text())
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
        store_widget_state=False,
    )
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    saved = json.loads(leak.read_text())
    leak.unlink()  # the probe's copy of the key: the artifact guard would (rightly) flag it
    lines = [ln for ln in saved["pem"].splitlines() if ln and not ln.startswith("-----")]
    secrets = {f"private key line {i}": line for i, line in enumerate(lines)}
    secrets["key id"] = saved["info"]["key_id"]
    secrets["odds api key"] = saved["info"]["odds_api_key"]
    nb.cells.remove(probe)
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "embedded exchange instead" in outputs
    _assert_clean(outputs, secrets, "the notebook's outputs")


def test_a_live_session_names_the_variables_and_needs_prod_confirmed(monkeypatch):
    monkeypatch.delenv("KALSHI_API_KEY_ID", raising=False)
    monkeypatch.delenv("KALSHI_PRIVATE_KEY_PATH", raising=False)
    with pytest.raises(Exception, match="KALSHI_API_KEY_ID"):
        Session.live(SETTINGS_CONFIG, env="demo")
    with pytest.raises(ValueError, match="confirm"):
        Session.live(SETTINGS_CONFIG, env="prod")
