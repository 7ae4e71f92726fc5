"""The artifact guard: nothing a test run leaves behind may hold the demo key material it made.

A pytest plugin, loaded by tests/conftest.py; any other run loads it with ``-p artifact_guard``
and tests/ on the path (``PYTHONPATH=tests``, as ``make notebooks`` does). When pytest is
configured it

* names an archive directory under pytest's basetemp in ``KMM_DEMO_KEY_ARCHIVE``. Every process
  of the run inherits it (pytest itself, ``kmm run`` / ``kmm sim`` subprocesses, notebook
  kernels), and ``kmm_interactive.sim.auth.archive_demo_secret`` copies each demo secret made
  there: the demo key's PEM and id (``write_demo_key``) and the embedded odds feed's API key.
  A run inside a guarded run (a subprocess) keeps its parent's archive, so the parent knows
  the secrets made there too;
* points ``TMPDIR`` (and :mod:`tempfile`) at ``<basetemp>/tmp``, so that the temporary files
  of every process of the run (the demo exchange's key directory among them) are in the
  tree it scans.

While the tests run it looks through each test's captured output (stdout, stderr, log) and,
under nbval, each notebook cell's outputs. At the end it looks through every regular file
under basetemp, and every file under the rootdir created or changed during the run (but in
.git, .venv, __pycache__ and node_modules, and Python sources, which other people may edit
meanwhile); an SQLite database is read row by row as well as byte by byte (a long value may
be split across its pages). Any hit makes the session fail, naming the file (or test) and
which secret matched, never the secret itself (at most its first four characters).

What legitimately holds a key: the PEM files ``write_demo_key`` wrote for the exchange's
client (their paths are in the archive), and connection-details JSON files (what ``kmm sim
--json`` prints, which tests write to hand an exchange to a ``kmm run`` subprocess): there,
and only in their ``key_id`` and ``odds_api_key`` fields, the key id and the odds key are
the handoff itself. Anything else in such a file is searched.

What counts as a hit: a 32-character piece (at every 16 characters) of any line of the PEM
body, in the traditional and in the PKCS#8 encoding; the key id (with or without dashes);
the odds API key; each also URL-encoded and with JSON's escaped slash, in UTF-8 or UTF-16.
The search is token by token (runs of base64, hex and URL characters), so it takes one pass
over each file whatever the number of secrets. Not looked into: compressed files.

Failure semantics: a file that cannot be read is listed as unreadable in the summary but
does not fail the session; an archive record that cannot be parsed does fail it (a secret
the guard does not know could leak unnoticed).
"""

from __future__ import annotations

import json
import mmap
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization

from kmm_interactive.sim.auth import ARCHIVE_ENV

#: Runs of the characters a secret is written with: base64 (PEM), hex and dashes (ids,
#: keys), "%" (URL-encoded) and "\" (JSON's escaped slash and newline).
_TOKEN: Final = re.compile(rb"[A-Za-z0-9+/=_%\\-]{12,}")
_TOKEN16: Final = re.compile(rb"(?:[A-Za-z0-9+/=_%\\-]\x00){12,}")  # the same in UTF-16LE
_IN_TOKEN: Final = re.compile(rb"[A-Za-z0-9+/=_%\\-]+")
ANCHOR: Final = 12  # shorter secrets are not searched for (too short to tell from noise)
WINDOW: Final = 32  # the piece of a PEM line searched for ...
STRIDE: Final = 16  # ... at every this many characters: any 47 characters of a line hit
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
CONNECTION_FIELDS: Final = frozenset({"rest_url", "ws_url", "key_id", "private_key_path"})
CONNECTION_OPTIONAL: Final = frozenset({"odds_url", "odds_api_key"})
HANDOFF_FIELDS: Final = ("key_id", "odds_api_key")
PRUNED_DIRS: Final = frozenset({".git", ".venv", "__pycache__", "node_modules"})
SOURCE_SUFFIXES: Final = frozenset({".py", ".pyc"})


# --------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class Secret:
    """One form of one secret: ``label`` says which (and never holds it), ``text`` is it."""

    label: str
    text: bytes


def _hint(value: str) -> str:
    return f"'{value[:4]}…'"


def _forms(text: str) -> set[bytes]:
    """The secret as written, URL-encoded, and with JSON's optional escaped slash."""
    return {form.encode() for form in (text, quote(text, safe=""), text.replace("/", "\\/"))}


def _pem_lines(pem: str) -> list[str]:
    return [
        line.strip() for line in pem.splitlines() if line.strip() and not line.startswith("-----")
    ]


def demo_key_secrets(record: Mapping[str, Any]) -> list[Secret]:
    """What of a ``write_demo_key`` record is searched for (see the module doc)."""
    key_id, pem = str(record["key_id"]), str(record["pem"])
    name = f"demo key {_hint(key_id)}"
    found = [Secret(f"key id of {name}", form) for form in _forms(key_id)]
    if "-" in key_id:
        found.append(Secret(f"key id of {name}", key_id.replace("-", "").encode()))
    encodings = {"PEM": pem}
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    encodings["PKCS#8 PEM"] = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    for encoding, text in encodings.items():
        for i, line in enumerate(_pem_lines(text)):
            for start in range(0, max(len(line) - WINDOW, 0) + 1, STRIDE):
                piece = line[start : start + WINDOW]
                label = f"private key line {i} ({encoding}) of {name}"
                found += [Secret(label, form) for form in _forms(piece)]
    return found


def odds_key_secrets(record: Mapping[str, Any]) -> list[Secret]:
    key = str(record["api_key"])
    return [Secret(f"odds API key {_hint(key)}", form) for form in _forms(key)]


class SecretSet:
    """Secrets to look for, found in one pass over the data (see the module doc)."""

    def __init__(self, secrets: Iterable[Secret] = ()) -> None:
        self._anchors: dict[bytes, list[Secret]] = {}
        self._odd: list[Secret] = []  # with characters outside a token: searched plainly
        self.labels: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, secret: Secret) -> None:
        if len(secret.text) < ANCHOR:
            return
        self.labels.add(secret.label)
        if _IN_TOKEN.fullmatch(secret.text):
            self._anchors.setdefault(secret.text[:ANCHOR], []).append(secret)
        else:
            self._odd.append(secret)

    def find(self, data: bytes | mmap.mmap) -> set[str]:
        """The labels of the secrets ``data`` holds."""
        if not self.labels:
            return set()
        tokens = set(_TOKEN.findall(data))
        tokens.update(raw[::2] for raw in _TOKEN16.findall(data))
        found: set[str] = set()
        for token in tokens:
            found |= self._in_token(token)
        for secret in self._odd:
            if data.find(secret.text) != -1:
                found.add(secret.label)
        return found

    def _in_token(self, token: bytes) -> set[str]:
        found: set[str] = set()
        anchors = self._anchors
        for i in range(len(token) - ANCHOR + 1):
            candidates = anchors.get(token[i : i + ANCHOR])
            if candidates:
                found.update(s.label for s in candidates if token.startswith(s.text, i))
        return found


@dataclass
class Archive:
    """The secrets a run made, read from its archive directory as they appear."""

    directory: Path
    secrets: SecretSet = field(default_factory=SecretSet)
    #: The PEM files the demo exchange wrote for its client (real paths): allowed to hold it.
    allowed: set[str] = field(default_factory=set)
    keys: int = 0
    odds_keys: int = 0
    _read: set[str] = field(default_factory=set)

    def refresh(self) -> None:
        """Read the records written since the last call (``ValueError`` on a bad one)."""
        try:
            names = sorted(n for n in os.listdir(self.directory) if n.endswith(".json"))
        except FileNotFoundError:
            return
        for name in names:
            if name in self._read:
                continue
            try:
                record = json.loads((self.directory / name).read_text(encoding="utf-8"))
                if record["kind"] == "demo-key":
                    found = demo_key_secrets(record)
                    self.allowed.add(os.path.realpath(record["private_key_path"]))
                    self.keys += 1
                elif record["kind"] == "odds-api-key":
                    found = odds_key_secrets(record)
                    self.odds_keys += 1
                else:
                    raise ValueError(f"unknown kind {record['kind']!r}")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"artifact guard: archive record {name} cannot be read ({type(exc).__name__})"
                ) from None
            for secret in found:
                self.secrets.add(secret)
            self._read.add(name)


# --------------------------------------------------------------------------- files


def _connection_details(data: bytes) -> dict[str, Any] | None:
    """The JSON object, if ``data`` is connection details (see the module doc)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    keys = set(value)
    if CONNECTION_FIELDS <= keys <= CONNECTION_FIELDS | CONNECTION_OPTIONAL:
        return value
    return None


def _sqlite_values(path: Path) -> bytes:
    """Every text and blob value of every table (and the schema), one per line."""
    parts: list[bytes] = []
    last: sqlite3.Error | None = None
    for options in ("mode=ro", "immutable=1"):
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?{options}", uri=True)
        except sqlite3.Error as exc:
            last = exc
            continue
        try:
            schema = db.execute("SELECT name, sql FROM sqlite_master").fetchall()
            for name, sql in schema:
                parts += [str(name).encode(), str(sql or "").encode()]
            tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for (table,) in tables.fetchall():
                quoted = '"' + str(table).replace('"', '""') + '"'
                for row in db.execute(f"SELECT * FROM {quoted}"):
                    for value in row:
                        if isinstance(value, str):
                            parts.append(value.encode("utf-8", "replace"))
                        elif isinstance(value, bytes):
                            parts.append(value)
            return b"\n".join(parts)
        except sqlite3.Error as exc:
            last, parts = exc, []
        finally:
            db.close()
    raise OSError(f"not readable as SQLite ({type(last).__name__})")


def scan_bytes(data: bytes | mmap.mmap, secrets: SecretSet) -> set[str]:
    """The secrets in one file's content (connection details and SQLite handled as above)."""
    head = bytes(data[: len(SQLITE_MAGIC)])
    if len(data) <= 65_536 and head[:1] == b"{":
        details = _connection_details(bytes(data))
        if details is not None:
            rest = {k: v for k, v in details.items() if k not in HANDOFF_FIELDS}
            return secrets.find(json.dumps(rest).encode())
    return secrets.find(data)


def scan_file(path: Path, secrets: SecretSet) -> set[str]:
    """The labels of the secrets the file holds (``OSError`` if it cannot be read)."""
    with path.open("rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return set()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            found = scan_bytes(data, secrets)
            is_sqlite = data[: len(SQLITE_MAGIC)] == SQLITE_MAGIC
    if is_sqlite:
        found |= secrets.find(_sqlite_values(path))
    return found


def iter_files(
    root: Path,
    *,
    skip: Collection[str] = (),
    pruned: Collection[str] = (),
    suffixes: Collection[str] = (),
    since: float | None = None,
) -> Iterator[Path]:
    """Regular files under ``root`` (symlinks not followed): not under a real path in
    ``skip``, nor in a directory named in ``pruned``, nor ending in ``suffixes``, and (with
    ``since``) created or changed since then."""
    skipped = {os.path.realpath(p) for p in skip}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d
            for d in dirnames
            if d not in pruned and os.path.realpath(os.path.join(dirpath, d)) not in skipped
        ]
        for name in filenames:
            path = Path(dirpath, name)
            if path.suffix in suffixes or os.path.realpath(path) in skipped:
                continue
            try:
                st = path.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if since is not None and max(st.st_mtime, st.st_ctime) < since:
                continue
            yield path


@dataclass
class Report:
    """What a scan found: secret labels per place, and the files it could not read."""

    found: dict[str, set[str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    files: int = 0
    outputs: int = 0

    def note(self, where: str, labels: set[str]) -> None:
        if labels:
            self.found.setdefault(where, set()).update(labels)

    def lines(self, limit: int = 8) -> list[str]:
        out = []
        for where in sorted(self.found):
            labels = sorted(self.found[where])
            more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
            out.append(f"{where}: {'; '.join(labels[:limit])}{more}")
        return out


def scan_files(
    paths: Iterable[Path], secrets: SecretSet, allowed: Collection[str], report: Report
) -> None:
    """Scan each file but the ``allowed`` ones (real paths) into ``report``."""
    for path in paths:
        if os.path.realpath(path) in allowed:
            continue
        report.files += 1
        try:
            report.note(str(path), scan_file(path, secrets))
        except (OSError, ValueError) as exc:
            report.unreadable.append(f"{path} ({type(exc).__name__})")


# --------------------------------------------------------------------------- the plugin


def _basetemp(config: pytest.Config) -> Path:
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        return Path(factory.getbasetemp())
    return Path(tempfile.mkdtemp(prefix="kmm-artifact-guard-"))  # pragma: no cover


class ArtifactGuard:
    """The plugin's state for one session (see the module doc)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.time() - 1.0  # file times may be a little behind the clock
        self.basetemp = _basetemp(config)
        self._saved = {name: os.environ.get(name) for name in (ARCHIVE_ENV, "TMPDIR")}
        self._saved_tempdir = tempfile.tempdir
        inherited = os.environ.get(ARCHIVE_ENV, "").strip()
        self.owns_archive = not inherited
        directory = Path(inherited) if inherited else self.basetemp / "demo-key-archive"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.archive = Archive(directory)
        self.tmp = self.basetemp / "tmp"
        self.tmp.mkdir(mode=0o700, exist_ok=True)
        os.environ[ARCHIVE_ENV] = str(directory)
        os.environ["TMPDIR"] = str(self.tmp)
        tempfile.tempdir = str(self.tmp)
        self.report = Report()
        self.left: list[str] = []

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        tempfile.tempdir = self._saved_tempdir
        if self.owns_archive:  # copies of throwaway keys: gone with the run
            shutil.rmtree(self.archive.directory, ignore_errors=True)

    # ------------------------------------------------------------------ during the run

    def _outputs(self, where: str, text: str) -> None:
        self.archive.refresh()
        self.report.outputs += 1
        self.report.note(where, self.archive.secrets.find(text.encode("utf-8", "replace")))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        outputs = getattr(item, "test_outputs", None)
        if call.when == "call" and outputs and type(item).__module__.startswith("nbval"):
            self._outputs(f"outputs of {item.nodeid}", json.dumps(outputs, default=str))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for title, content in report.sections:
            if content:
                self._outputs(f"{title.lower()} of {report.nodeid}", content)

    # ------------------------------------------------------------------ at the end

    @pytest.hookimpl(tryfirst=True)  # before pytest may remove basetemp
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.archive.refresh()
        secrets, allowed = self.archive.secrets, self.archive.allowed
        skip = [str(self.archive.directory)]
        scan_files(iter_files(self.basetemp, skip=skip), secrets, allowed, self.report)
        root = Path(self.config.rootpath)
        changed = iter_files(
            root,
            skip=[*skip, str(self.basetemp)],
            pruned=PRUNED_DIRS,
            suffixes=SOURCE_SUFFIXES,
            since=self.started,
        )
        scan_files(changed, secrets, allowed, self.report)
        self.left = sorted(p for p in allowed if "kmm-demo-key-" in p and os.path.exists(p))
        if self.report.found and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr, archive, report = terminalreporter, self.archive, self.report
        scanned = (
            f"{report.files} files and {report.outputs} captured outputs against "
            f"{archive.keys} demo keys and {archive.odds_keys} odds keys"
        )
        if report.found:
            tr.write_sep("=", "artifact guard: demo key material found", red=True, bold=True)
            for line in report.lines():
                tr.write_line(f"  {line}", red=True)
            tr.write_line(f"({scanned}; see tests/artifact_guard.py)")
        else:
            tr.write_line(f"artifact guard: clean ({scanned})")
        for path in report.unreadable[:10]:
            tr.write_line(f"artifact guard: could not read {path}", yellow=True)
        if self.left:
            tr.write_line(
                f"artifact guard: {len(self.left)} demo key file(s) left on disk by an exchange "
                f"that did not stop (first: {self.left[0]})",
                yellow=True,
            )

    def pytest_unconfigure(self) -> None:
        self.restore()


@pytest.hookimpl(trylast=True)  # after pytest's tmpdir plugin made its factory
def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.has_plugin("kmm-artifact-guard"):
        return
    config.pluginmanager.register(ArtifactGuard(config), "kmm-artifact-guard")
