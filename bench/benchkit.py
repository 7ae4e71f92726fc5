"""What every ``bench/bench_*.py`` script shares: reporting a goal, and the machine it ran on.

A script judges each of its goals itself and reports it with :func:`goal`::

    goal("HJB solve, Q=200", hjb_ms, "ms", target="<= 20 ms", passed=hjb_ms <= 20,
         reference=eig_ms, reference_name="glft eig")

which prints one line, and, when the environment variable ``KMM_BENCH_RESULTS`` names a
file (``bench/run.py`` sets it), appends the goal to it as one JSON line: ``script``,
``name``, ``measured``, ``unit``, ``target``, ``passed``, ``reference``, ``reference_name``
and ``ratio`` (``measured / reference``, or null without a reference). The reference is
something measured in the same run, in the same unit, so that the ratio does not depend on
how fast the machine is.

Runs that are not part of ``make bench`` (``make chaos``, ``make soak``) keep their figures
in a section of their own at the end of ``bench/RESULTS.md`` (:func:`record_section`), which
``bench/run.py`` carries over when it rewrites the file.

Scripts run as ``python bench/x.py``, so ``import benchkit`` finds this file.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

#: The environment variable naming the JSON-lines file that :func:`goal` appends to.
RESULTS_ENV = "KMM_BENCH_RESULTS"
RESULTS_MD = Path(__file__).resolve().with_name("RESULTS.md")
_SECTION = re.compile(r"<!-- section: ([a-z-]+) -->\n.*?<!-- /section: \1 -->\n", re.DOTALL)


def fmt(value: float | None) -> str:
    """A number as a table shows it: three or four significant figures, thousands grouped."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.1f}"
    if size >= 1 or size == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_ratio(ratio: float | None) -> str:
    """A ratio as a table shows it: ``1.29x``, ``0.40x``, ``0.0031x``; ``—`` without one."""
    if ratio is None:
        return "—"
    if not math.isfinite(ratio) or abs(ratio) >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2f}x" if abs(ratio) >= 0.01 else f"{ratio:.2g}x"


def ratio_of(measured: float, reference: float | None) -> float | None:
    """``measured / reference``, or None without a (non-zero) reference."""
    if reference is None or reference == 0:
        return None
    return measured / reference


def goal(
    name: str,
    measured: float,
    unit: str,
    *,
    target: str,
    passed: bool,
    reference: float | None = None,
    reference_name: str | None = None,
    script: str | None = None,
) -> None:
    """Report one goal: print it, and append it to ``$KMM_BENCH_RESULTS`` when that is set.

    ``target`` is the goal as text (``"<= 20 ms"``, ``"<= 3x glft eig"``); ``passed`` is the
    script's own verdict. ``reference`` (in ``unit``, measured in the same run) and its
    ``reference_name`` give the ratio. ``script`` defaults to the running script's name.
    """
    measured = float(measured)
    reference = None if reference is None else float(reference)
    ratio = ratio_of(measured, reference)
    script = script or Path(sys.argv[0]).stem
    line = f"goal {name}: {fmt(measured)} {unit}"
    if reference is not None:
        against = f"{reference_name or 'reference'} {fmt(reference)} {unit}"
        line += f" ({fmt_ratio(ratio)} {against})" if ratio is not None else f" ({against})"
    print(f"{line}; target {target} -> {'pass' if passed else 'SHORT'}", flush=True)
    path = os.environ.get(RESULTS_ENV)
    if path:
        record: dict[str, Any] = {
            "script": script,
            "name": name,
            "measured": measured,
            "unit": unit,
            "target": target,
            "passed": bool(passed),
            "reference": reference,
            "reference_name": reference_name,
            "ratio": ratio,
        }
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def note(title: str, markdown: str, *, script: str | None = None) -> None:
    """Evidence beside the goals (a table of per-strategy figures, an explanation): printed,
    and kept under the goals table in ``bench/RESULTS.md`` by ``bench/run.py``."""
    script = script or Path(sys.argv[0]).stem
    print(f"\n{title}\n{markdown}\n", flush=True)
    path = os.environ.get(RESULTS_ENV)
    if path:
        record = {"script": script, "note": title, "markdown": markdown}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what :mod:`platform` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for row in f:
                key, _, value = row.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other work on a shared machine skews timings)."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "unknown"


def machine() -> dict[str, str]:
    """Facts about the machine and the run: CPU, cores, Python, platform, date (UTC), load."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    cores = os.cpu_count() or 0
    return {
        "cpu": cpu_model(),
        "cores": str(cores) if usable in (0, cores) else f"{usable} of {cores} usable",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": load_average(),
    }


def sections(text: str) -> dict[str, str]:
    """The recorded sections of a RESULTS.md text (name → the section, markers included)."""
    return {m.group(1): m.group(0) for m in _SECTION.finditer(text)}


def record_section(name: str, title: str, markdown: str, path: Path = RESULTS_MD) -> None:
    """Write section ``name`` of RESULTS.md (replacing the one there), with the machine and
    the date; the rest of the file is left as it was."""
    if not re.fullmatch(r"[a-z-]+", name):
        raise ValueError(f"section name {name!r}: lowercase letters and '-' only")
    facts = machine()
    body = (
        f"<!-- section: {name} -->\n## {title}\n\n"
        f"- Date: {facts['date']}\n- Machine: {facts['cpu']}, {facts['cores']} cores; "
        f"{facts['platform']}\n- Python: {facts['python']}\n\n{markdown.strip()}\n"
        f"<!-- /section: {name} -->\n"
    )
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    old = sections(text).get(name)
    text = text.replace(old, body) if old is not None else text.rstrip("\n") + "\n\n" + body
    path.write_text(text, encoding="utf-8")


def start_exchange(
    *, seed: int, speed: float, games: int, tier: str = "prime"
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The embedded exchange in a ``kmm sim`` process of its own (so this process's time and
    memory are the engine's alone); returns the process and its connection details."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmm_interactive", "sim", "--json", "--seed", str(seed),
         "--speed", f"{speed:g}", "--games", str(games), "--tier", tier],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the embedded exchange did not start")
    details: dict[str, str] = json.loads(line)
    return proc, details
