"""The quickstart notebook in a real browser: JupyterLab + headless Chromium (Playwright).

A trader's session, end to end: run the notebook up to its last section (the session keeps
running), then use the dashboard the way a trader does (move γ, override a theo, press the
kill switch and confirm it), take a screenshot (artifacts/quickstart_dashboard.png), then run
the rest of the notebook (stop, tables) and check that no cell failed.

The server is an isolated JupyterLab on 127.0.0.1 (its own settings, workspaces, config,
data and runtime dirs, no token, no credentials in its environment) serving a copy of the
notebook in a temporary directory. Every wait is bounded (pytest-timeout is not installed)
and timings are printed (``pytest -s``) so that a failing run can be diagnosed.

Skipped when Debian's Chromium is absent; ``make test`` installs it when run as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "notebooks/01_quickstart.ipynb"
SCREENSHOT = REPO / "artifacts" / "quickstart_dashboard.png"
#: The first cell of the notebook's last section: everything above runs before the UI steps.
STOP_CELL = "stop_report = await s.stop()"
#: Credentials that must never reach the server or its kernels.
SECRETS = ("KALSHI_API_KEY_ID", "KALSHI_PRIVATE_KEY_PATH", "ODDS_API_KEY")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 20.0
NOTEBOOK_OPEN_TIMEOUT = 90.0
RUN_ABOVE_TIMEOUT = 300.0  # the notebook waits for a game to start
RUN_BELOW_TIMEOUT = 120.0
UI_TIMEOUT = 30.0
KILL_TIMEOUT = 60.0

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"{CHROMIUM} is absent (apt-get install chromium; `make test` does it as root)",
)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Clock:
    """Prints each step with the time since the start and the time it took."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()

    def mark(self, what: str) -> None:
        now = time.monotonic()
        print(
            f"[browser +{now - self.start:6.1f} s] {what} ({now - self.last:.1f} s)",
            flush=True,
        )
        self.last = now


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
        except Exception as exc:  # the server is starting, the page is loading...
            last_error, result = exc, None
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})"
            )
        time.sleep(interval)


# ---------------------------------------------------------------------- the server


@dataclass
class Lab:
    url: str
    root: Path
    runtime: Path
    log: Path
    process: subprocess.Popen[bytes]
    console: list[str] = field(default_factory=list)

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_settings(settings: Path) -> None:
    """No news or update pop-ups; every cell rendered (no windowing) so locators see them."""
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for name, content in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


def start_lab(base: Path) -> Lab:
    root = base / "root"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / NOTEBOOK, root / NOTEBOOK)
    shutil.copy(REPO / "kmm.toml", root / "kmm.toml")  # ../kmm.toml from the notebooks dir
    dirs = {name: base / name for name in ("settings", "workspaces", "config", "data", "runtime")}
    for d in dirs.values():
        d.mkdir()
    write_settings(dirs["settings"])
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    venv_bin = Path(sys.executable).parent
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    jupyter = Path(sys.executable).with_name("jupyter")
    log = base / "server.log"
    port = free_port()
    command = [
        str(jupyter),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.allow_root=True",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Lab(f"http://127.0.0.1:{port}", root, dirs["runtime"], log, process)


def wait_ready(lab: Lab) -> None:
    def ready() -> bool:
        if lab.process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {lab.process.returncode}:\n{lab.log_tail()}")
        status = lab.api("GET", "/api/status")
        return isinstance(status, dict) and "started" in status

    wait_for(ready, SERVER_START_TIMEOUT, "the server's /api/status", interval=0.25)


def kernel_pids(runtime: Path) -> list[int]:
    """Processes whose command line names a connection file in this server's runtime dir:
    the kernels this test's server started (they run in their own process groups)."""
    pids = []
    marker = str(runtime).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
    return pids


def stop_lab(lab: Lab) -> None:
    """Shut down sessions and kernels through the API, then the server; bounded in time."""
    with contextlib.suppress(Exception):
        for session in lab.api("GET", "/api/sessions"):
            lab.api("DELETE", f"/api/sessions/{session['id']}")
    with contextlib.suppress(Exception):
        for kernel in lab.api("GET", "/api/kernels"):
            lab.api("DELETE", f"/api/kernels/{kernel['id']}")
    if lab.process.poll() is None:
        lab.process.send_signal(signal.SIGTERM)
        try:
            lab.process.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print("[browser] server ignored SIGTERM; killing it", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(lab.process.pid, signal.SIGKILL)
            lab.process.wait(5)
    for pid in kernel_pids(lab.runtime):  # a kernel that outlived its server
        print(f"[browser] killing leftover kernel process {pid}", flush=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    clock = Clock()
    server = start_lab(tmp_path)
    try:
        wait_ready(server)
        clock.mark(f"server ready at {server.url}")
        yield server
    finally:
        stop_lab(server)
        clock.mark(f"server stopped (exit code {server.process.returncode})")


# ---------------------------------------------------------------------- the notebook

#: The open notebook's cells, from its model: execution count, outputs (errors and stderr
#: with their text) and the kernel's status.
CELLS_JS = """
() => {
  const panel = window.__kmmPanel;
  const cells = panel.content.model.cells;
  const result = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') { result.push(null); continue; }
    const outputs = [];
    for (let j = 0; j < cell.outputs.length; j++) {
      const o = cell.outputs.get(j).toJSON();
      let text = '';
      if (o.output_type === 'error') {
        text = [o.ename + ': ' + o.evalue, ...(o.traceback || [])].join('\\n');
      } else if (o.output_type === 'stream') {
        text = Array.isArray(o.text) ? o.text.join('') : String(o.text);
      } else if (o.data && o.data['text/plain'] !== undefined) {
        const plain = o.data['text/plain'];
        text = Array.isArray(plain) ? plain.join('') : String(plain);
      }
      outputs.push({type: o.output_type, name: o.name || null, text: text.slice(0, 20000)});
    }
    result.push({count: cell.executionCount, outputs});
  }
  return {status: panel.sessionContext.session?.kernel?.status ?? null, cells: result};
}
"""

OPEN_JS = """
(path) => {
  const app = window.jupyterapp;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.sessionContext) {
      window.__kmmPanel = w;
      return w.sessionContext.session?.kernel?.status === 'idle' && w.content.widgets.length > 0;
    }
  }
  return false;
}
"""

#: Select cell ``index`` and start ``command`` without awaiting it (it resolves when the
#: cells have run); its outcome lands in window.__kmmRun.
RUN_JS = """
([command, index]) => {
  const app = window.jupyterapp;
  const panel = window.__kmmPanel;
  app.shell.activateById(panel.id);
  panel.content.activeCellIndex = index;
  window.__kmmRun = null;
  app.commands.execute(command).then(
    (r) => { window.__kmmRun = {ok: true, result: String(r)}; },
    (e) => { window.__kmmRun = {ok: false, error: String(e)}; });
  return panel.content.activeCellIndex;
}
"""


def stop_cell_index(notebook: Path) -> tuple[int, int]:
    """(index of the stop cell, number of cells) from the .ipynb JSON."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and source.lstrip().startswith(STOP_CELL):
            return i, len(cells)
    pytest.fail(f"{NOTEBOOK} has no cell starting with {STOP_CELL!r}")


def failures(state: dict[str, Any], cells: range) -> list[str]:
    """The error outputs (and stderr carrying a traceback) of ``cells``."""
    found = []
    for i in cells:
        cell = state["cells"][i]
        for o in cell["outputs"] if cell else []:
            text = ANSI.sub("", o["text"])
            if o["type"] == "error" or (o["name"] == "stderr" and "Traceback" in text):
                found.append(f"--- cell {i} ({o['type']} {o['name'] or ''}):\n{text}")
    return found


def stderr_of(state: dict[str, Any], cells: range) -> list[str]:
    return [
        f"cell {i}: {ANSI.sub('', o['text']).strip()}"
        for i in cells
        if state["cells"][i]
        for o in state["cells"][i]["outputs"]
        if o["name"] == "stderr"
    ]


def run_cells(page: Any, command: str, index: int, cells: range, timeout: float) -> dict[str, Any]:
    """Run ``command`` with cell ``index`` selected; wait until it is done, the kernel is idle
    and every code cell in ``cells`` has an execution count; fail on any error output."""
    page.evaluate(RUN_JS, [command, index])

    stalled: list[float] = []  # when the command ended with cells left unrun

    def done() -> dict[str, Any] | None:
        state: dict[str, Any] = page.evaluate(CELLS_JS)
        broken = failures(state, cells)
        run = page.evaluate("() => window.__kmmRun")
        if state["status"] == "dead":
            pytest.fail(f"{command}: the kernel died:\n" + "\n".join(broken))
        if broken and state["status"] == "idle":
            pytest.fail(f"{command}: a cell raised:\n" + "\n".join(broken))
        if run is None or state["status"] != "idle":
            return None
        if not run["ok"]:
            pytest.fail(f"{command} failed: {run['error']}")
        unrun = [i for i in cells if state["cells"][i] and not state["cells"][i]["count"]]
        if not unrun:
            return state
        stalled.append(time.monotonic())
        if stalled[-1] - stalled[0] > 5:  # not a reply still on its way
            pytest.fail(
                f"{command} ended ({run['result']}) without running cells {unrun}; stderr:\n"
                + "\n".join(stderr_of(state, cells))
            )
        return None

    state: dict[str, Any] = wait_for(
        done, timeout, f"{command} (cells {cells.start}..{cells.stop - 1})"
    )
    for line in stderr_of(state, cells):
        print(f"[browser] stderr {line[:500]}", flush=True)
    return state


# ---------------------------------------------------------------------- the test


def test_quickstart_dashboard_in_a_browser(lab: Lab) -> None:
    from playwright.sync_api import expect, sync_playwright

    clock = Clock()
    stop, n_cells = stop_cell_index(lab.root / NOTEBOOK)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT * 1000)
            expect.set_options(timeout=UI_TIMEOUT * 1000)
            page.on(
                "console",
                lambda m: (
                    lab.console.append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: lab.console.append(f"pageerror: {e}"))
            clock.mark("browser launched")
            try:
                drive(page, lab, clock, stop, n_cells)
            except BaseException:
                with contextlib.suppress(Exception):
                    SCREENSHOT.parent.mkdir(exist_ok=True)
                    page.screenshot(path=str(SCREENSHOT.with_name("quickstart_failure.png")))
                print("[browser] server log:\n" + lab.log_tail(), flush=True)
                raise
            finally:
                for line in lab.console[-40:]:
                    print(f"[browser] console {line[:500]}", flush=True)
        finally:
            browser.close()
    clock.mark("browser closed")


def drive(page: Any, lab: Lab, clock: Clock, stop: int, n_cells: int) -> None:
    from playwright.sync_api import expect

    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?reset", timeout=NOTEBOOK_OPEN_TIMEOUT * 1000)
    wait_for(
        lambda: page.evaluate(OPEN_JS, NOTEBOOK), NOTEBOOK_OPEN_TIMEOUT, "the notebook's kernel"
    )
    clock.mark("notebook open, kernel idle")

    run_cells(page, "notebook:run-all-above", stop, range(stop), RUN_ABOVE_TIMEOUT)
    clock.mark(f"ran cells 0..{stop - 1} (run-all-above)")

    # The dashboard: the output of the cell that holds the kill switch.
    dash = page.locator(".jp-Cell").filter(has=page.get_by_role("button", name="KILL SWITCH"))
    expect(dash).to_have_count(1)
    dash.scroll_into_view_if_needed()
    status = dash.locator(".kmm-status")
    expect(status).to_be_visible()
    messages = dash.locator(".widget-html-content")

    # Select the game that starts last: it still trades (the notebook's own choice).
    game = dash.locator(".widget-dropdown").filter(
        has=page.locator(".widget-label", has_text=re.compile(r"^game$"))
    )
    select = game.locator("select")
    # ipywidgets shows option labels with non-breaking spaces.
    options = [o.replace("\xa0", " ") for o in select.locator("option").all_inner_texts()]
    assert options, "the game dropdown is empty"
    select.select_option(index=len(options) - 1)
    title = options[-1].rsplit(" (", 1)[0]
    expect(dash.get_by_text(f"{title}: feed theo A")).to_be_visible()
    clock.mark(f"selected {options[-1]!r}")

    # γ: a log slider applied on release; the keyboard moves it one step a press.
    gamma = dash.locator(".widget-slider").filter(
        has=page.locator(".widget-label", has_text=re.compile(r"^γ$"))
    )
    readout = gamma.locator(".widget-readout")
    before = readout.inner_text()
    handle = gamma.locator(".noUi-handle")
    handle.focus()
    for key in ("ArrowRight", "ArrowRight", "PageUp"):
        handle.press(key)
    expect(messages.filter(has_text="gamma")).not_to_have_count(0)
    expect(readout).not_to_have_text(before)
    moved = messages.filter(has_text="gamma").first.inner_text()
    print(f"[browser] γ readout {before} -> {readout.inner_text()}; message: {moved}", flush=True)
    clock.mark("γ slider moved")

    # The theo override: P(team A), a reason, Apply.
    prob = dash.locator(".widget-inline-hbox").filter(
        has=page.locator(".widget-label", has_text=re.compile(r"^P\(team A\)$"))
    )
    prob.locator("input").fill("0.7")
    prob.locator("input").press("Enter")
    reason = dash.locator(".widget-inline-hbox").filter(
        has=page.locator(".widget-label", has_text=re.compile(r"^reason$"))
    )
    reason.locator("input").fill("breaking news")
    reason.locator("input").press("Tab")
    dash.get_by_role("button", name="Apply override").click()
    expect(messages.filter(has_text="theo overridden")).not_to_have_count(0)
    expect(dash.get_by_text("in force 0.700")).to_be_visible()
    clock.mark("theo overridden")

    # The kill switch: press, confirm, and read the verified result.
    confirm = dash.get_by_role("button", name="Confirm kill")
    expect(confirm).to_be_hidden()
    dash.get_by_role("button", name="KILL SWITCH").click()
    expect(confirm).to_be_visible()
    confirm.click()
    verified = dash.get_by_text(re.compile(r"\b0 resting left \(verified\)"))
    expect(verified).to_be_visible(timeout=KILL_TIMEOUT * 1000)
    print(f"[browser] kill result: {verified.inner_text()}", flush=True)
    expect(status).to_contain_text("HALTED")
    expect(status.locator(".kmm-resting")).to_have_text("resting 0")
    clock.mark("kill switch: verified, HALTED, resting 0")

    # The dashboard is taller than the window and the notebook scrolls inside its panel:
    # make the window tall enough to hold all of it, then shoot just the dashboard.
    output = dash.locator(".jp-OutputArea-output").first
    box = output.bounding_box()
    assert box is not None, "the dashboard has no bounding box"
    page.set_viewport_size({"width": 1400, "height": min(int(box["height"]) + 400, 6000)})
    output.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let the figures settle after the resize
    SCREENSHOT.parent.mkdir(exist_ok=True)
    output.screenshot(path=str(SCREENSHOT))
    page.set_viewport_size({"width": 1400, "height": 1000})
    clock.mark(f"screenshot {SCREENSHOT.relative_to(REPO)}")

    state = run_cells(page, "notebook:run-all-below", stop, range(stop, n_cells), RUN_BELOW_TIMEOUT)
    clock.mark(f"ran cells {stop}..{n_cells - 1} (run-all-below)")
    for i in range(stop, n_cells):
        cell = state["cells"][i]
        if cell is not None:
            assert cell["outputs"], f"cell {i} ran but shows no output"
            first = " | ".join(o["text"].strip() for o in cell["outputs"])[:300]
            print(f"[browser] cell {i} [{cell['count']}]: {first}", flush=True)
