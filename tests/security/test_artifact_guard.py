"""The artifact guard can fail: it finds a planted demo secret in text, JSON, URLs, UTF-16,
SQLite (a value split across pages too) and captured output, and it leaves alone what may
hold a key (the exchange's PEM file, a connection-details file's own fields).

Each test keeps its own archive (``KMM_DEMO_KEY_ARCHIVE`` pointed elsewhere), so the secrets
planted here are unknown to the guard of the session running them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from artifact_guard import Archive, Report, SecretSet, iter_files, scan_file, scan_files

from kmm_interactive.sim.auth import ARCHIVE_ENV, DemoKey, archive_demo_secret, write_demo_key

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Archive:
    directory = tmp_path / "archive"
    monkeypatch.setenv(ARCHIVE_ENV, str(directory))
    return Archive(directory)


@pytest.fixture
def key(tmp_path: Path, archive: Archive) -> DemoKey:
    made = write_demo_key(tmp_path / "kmm-demo-key-x", str(uuid.uuid4()))
    archive_demo_secret("odds-api-key", api_key=ODDS)
    archive.refresh()
    return made


ODDS = "0badc0de" * 4


def body_lines(key: DemoKey) -> list[str]:
    return [ln for ln in key.private_key_path.read_text().splitlines() if "-----" not in ln]


def scan(root: Path, archive: Archive) -> Report:
    report = Report()
    files = iter_files(root, skip=[str(archive.directory)])
    scan_files(files, archive.secrets, archive.allowed, report)
    return report


def kinds(report: Report, path: Path) -> set[str]:
    """The kinds of secret found in ``path``: key id, private key, odds API key."""
    labels = report.found.get(str(path), set())
    names = ("key id", "private key line", "odds API key")
    return {name for name in names for label in labels if label.startswith(name)}


def test_the_archive_holds_what_was_made(key: DemoKey, archive: Archive) -> None:
    assert (archive.keys, archive.odds_keys) == (1, 1)
    assert archive.allowed == {os.path.realpath(key.private_key_path)}
    records = list(archive.directory.iterdir())
    assert all(p.stat().st_mode & 0o077 == 0 for p in records)  # private, like the key
    assert len(records) == 2


def test_unset_it_archives_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    write_demo_key(tmp_path, "k")
    archive_demo_secret("odds-api-key", api_key=ODDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-key.pem"]


def test_planted_secrets_are_found_in_every_form(
    tmp_path: Path, key: DemoKey, archive: Archive
) -> None:
    lines, pem = body_lines(key), key.private_key_path.read_text()
    out = tmp_path / "out"
    out.mkdir()
    plants = {
        "engine.log": f"signed as {key.key_id}\n",
        "dashed.txt": f"id={key.key_id.replace('-', '')}",
        "request.txt": f"GET /v4/sports?regions=eu&apiKey={ODDS}",
        "journal.json": json.dumps({"note": pem}),  # the PEM's newlines escaped
        "quoted.txt": f"key={quote(lines[7], safe='')}",
        "escaped.json": lines[9].replace("/", "\\/"),
        "partial.txt": f"...{lines[4][10:58]}...",  # 48 characters of one line
        "utf16.txt": f"odds key {ODDS}".encode("utf-16-le"),
        "binary.bin": b"\x00\xff" * 100 + key.key_id.encode() + b"\x00" * 50,
    }
    for name, content in plants.items():
        path = out / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    clean = {"clean.txt": f"id {key.key_id[:8]} line {lines[4][:20]} odds {ODDS[:10]}"}
    (out / "clean.txt").write_text(clean["clean.txt"])
    report = scan(out, archive)
    expected = {
        "engine.log": {"key id"},
        "dashed.txt": {"key id"},
        "request.txt": {"odds API key"},
        "journal.json": {"private key line"},
        "quoted.txt": {"private key line"},
        "escaped.json": {"private key line"},
        "partial.txt": {"private key line"},
        "utf16.txt": {"odds API key"},
        "binary.bin": {"key id"},
    }
    assert {Path(p).name: kinds(report, Path(p)) for p in report.found} == expected
    assert report.files == len(plants) + 1
    # The labels say which secret, never what it is.
    text = "\n".join(report.lines(limit=100))
    assert key.key_id not in text
    assert ODDS not in text
    assert not any(line[:16] in text for line in lines)
    assert "private key line 7 (PEM)" in text
    assert "private key line" in str(report.found[str(out / "journal.json")])


def test_a_secret_in_sqlite_is_found_even_when_split_across_pages(
    tmp_path: Path, key: DemoKey, archive: Archive
) -> None:
    pem = key.private_key_path.read_text()
    path = tmp_path / "journal.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA page_size = 512")  # the PEM spills over several pages
        db.execute("CREATE TABLE events (ts REAL, kind TEXT, payload TEXT, raw BLOB)")
        db.execute("INSERT INTO events VALUES (1.0, 'start', 'nothing here', NULL)")
        db.execute("INSERT INTO events VALUES (2.0, 'oops', ?, ?)", (pem, ODDS.encode()))
    db.close()
    pem_labels = {f"private key line {i} (PEM)" for i in range(len(body_lines(key)))}

    def pem_lines(labels: set[str]) -> set[str]:
        return {s.split(" of demo key")[0] for s in labels if s.endswith("…'") and "(PEM)" in s}

    found = scan_file(path, archive.secrets)
    assert pem_lines(found) == pem_labels
    assert any(label.startswith("odds API key") for label in found)
    # A value longer than a page goes on overflow pages, each starting with a pointer: a
    # key id that straddles one is not in the bytes, but it is in the rows.
    cut = 0
    for tail in range(440, 540, 6):  # overflow pages are cut back from the value's end
        path = tmp_path / f"tail{tail}.sqlite"
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA page_size = 512")
            db.execute("CREATE TABLE t (v TEXT)")
            db.execute("INSERT INTO t VALUES (?)", ("x" * 600 + key.key_id + "y" * tail,))
        db.close()
        assert any(s.startswith("key id") for s in scan_file(path, archive.secrets)), tail
        cut += not archive.secrets.find(path.read_bytes())
    assert cut > 0


def test_what_may_hold_a_key_is_left_alone_and_nothing_else(
    tmp_path: Path, key: DemoKey, archive: Archive
) -> None:
    details = {
        "rest_url": "http://127.0.0.1:1/trade-api/v2",
        "ws_url": "ws://127.0.0.1:1/trade-api/ws/v2",
        "odds_url": "http://127.0.0.1:2",
        "odds_api_key": ODDS,
        "key_id": key.key_id,
        "private_key_path": str(key.private_key_path),
    }
    (tmp_path / "exchange.json").write_text(json.dumps(details))
    (tmp_path / "with-pem.json").write_text(
        json.dumps(details | {"rest_url": key.private_key_path.read_text()})
    )
    (tmp_path / "not-details.json").write_text(json.dumps(details | {"note": "x"}))
    (tmp_path / "copy.pem").write_bytes(key.private_key_path.read_bytes())
    report = scan(tmp_path, archive)
    leaking = sorted(Path(p).name for p in report.found)
    assert leaking == ["copy.pem", "not-details.json", "with-pem.json"]
    assert kinds(report, tmp_path / "with-pem.json") == {"private key line"}
    assert kinds(report, tmp_path / "not-details.json") == {"key id", "odds API key"}


def test_a_broken_archive_record_is_an_error(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    directory.mkdir()
    (directory / "demo-key-1.json").write_text('{"kind": "demo-key"}')
    with pytest.raises(ValueError, match=r"archive record demo-key-1\.json cannot be read"):
        Archive(directory).refresh()


def test_iter_files_skips_what_it_is_told_and_follows_no_link(tmp_path: Path) -> None:
    for name in ("a.txt", "b.py", "__pycache__/c.pyc", "skip/d.txt", ".git/e", "f/g.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / "link.txt").symlink_to(tmp_path / "a.txt")
    os.mkfifo(tmp_path / "fifo")
    found = iter_files(
        tmp_path,
        skip=[str(tmp_path / "skip")],
        pruned={".git", "__pycache__"},
        suffixes={".py"},
    )
    assert sorted(p.relative_to(tmp_path).as_posix() for p in found) == ["a.txt", "f/g.txt"]
    assert list(iter_files(tmp_path / "f", since=time.time() + 3600)) == []  # none changed since
    assert len(list(iter_files(tmp_path / "f", since=time.time() - 3600))) == 1


def test_an_empty_secret_set_finds_nothing() -> None:
    assert SecretSet().find(b"anything at all " * 10) == set()


INNER = """
import json
import uuid

from kmm_interactive.sim.auth import write_demo_key


def test_leaks(tmp_path):
    key = write_demo_key(tmp_path / "kmm-demo-key-1", str(uuid.uuid4()))
    (tmp_path / "engine.log").write_text(f"signed with {key.key_id}\\n")
    details = {
        "rest_url": "http://127.0.0.1:1/trade-api/v2", "ws_url": "ws://127.0.0.1:1/x",
        "key_id": key.key_id, "private_key_path": str(key.private_key_path),
    }
    (tmp_path / "exchange.json").write_text(json.dumps(details))
    print(key.private_key_path.read_text().splitlines()[3])


def test_clean(tmp_path):
    key = write_demo_key(tmp_path / "kmm-demo-key-2", str(uuid.uuid4()))
    (tmp_path / "engine.log").write_text(f"signed with {key.key_id[:8]}\\n")
"""


def test_the_plugin_fails_a_session_that_leaks(tmp_path: Path) -> None:
    """A whole pytest run in a subprocess: its tests pass, the guard fails it."""
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "test_inner.py").write_text(textwrap.dedent(INNER))
    (inner / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    env = {k: v for k, v in os.environ.items() if k != ARCHIVE_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    basetemp = tmp_path / "basetemp"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "artifact_guard", "-p", "no:cacheprovider",
         f"--basetemp={basetemp}", "-q", "test_inner.py"],
        cwd=inner, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert "2 passed" in text, text
    assert out.returncode == 1, text
    assert "artifact guard: demo key material found" in text
    found = [line for line in text.splitlines() if line.startswith("  ")]
    assert any("test_leaks0/engine.log: key id of demo key" in line for line in found), text
    assert any(
        "captured stdout call of test_inner.py::test_leaks: private key line 2 (PEM)" in line
        for line in found
    ), text
    assert not any("exchange.json" in line or "demo-key.pem" in line for line in found), text
    assert not any("test_clean" in line for line in found), text
    assert not (basetemp / "demo-key-archive").exists()  # the copies went with the run
