"""Run every ``bench/bench_*.py`` and print one table of their goals (``make bench``).

Each script runs in its own subprocess, one at a time in name order (so that they do not
compete for the cores), with ``KMM_BENCH_RESULTS`` naming a file that its
``benchkit.goal(...)`` calls append to. Their own printouts pass through as they run. Then
one table: script, goal, measured value, the reference measured in the same run, the ratio
``measured / reference``, the target and pass / SHORT. A script that crashes, reports
nothing or exits non-zero with every goal met is an ``error`` row.

A full run writes the table to ``bench/RESULTS.md``, with the machine, the date and the
command; ``--only NAME`` (a substring of the script's name; repeatable) runs a subset and
leaves RESULTS.md alone. None of the scripts has a faster mode, so there is no ``--quick``.

Exit status 1 if any goal is short or any script errored.
Run: ``make bench`` (or ``.venv/bin/python bench/run.py [--only engine]``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import benchkit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS_MD = BENCH / "RESULTS.md"
#: A script still running after this long is stopped and reported as an error.
TIMEOUT_S = 1800.0
COLUMNS = ("script", "goal", "measured", "reference", "ratio", "target", "result")


@dataclass(frozen=True)
class Row:
    """One line of the table: a goal a script reported, or a script that failed."""

    script: str
    goal: str
    measured: str = ""
    reference: str = ""
    ratio: str = ""
    target: str = ""
    result: str = "error"

    def cells(self) -> tuple[str, ...]:
        return (
            self.script,
            self.goal,
            self.measured,
            self.reference,
            self.ratio,
            self.target,
            self.result,
        )


@dataclass(frozen=True)
class Outcome:
    """What one script did: its rows, its exit status and how long it took."""

    script: str
    rows: list[Row]
    returncode: int | None
    seconds: float
    notes: list[tuple[str, str]] = field(default_factory=list)


def goal_row(script: str, record: dict[str, object]) -> Row:
    """A row from one JSON line that ``benchkit.goal`` wrote."""
    unit = str(record["unit"])
    measured = record["measured"]
    reference = record.get("reference")
    ratio = record.get("ratio")
    assert isinstance(measured, int | float)
    ref_text = ""
    if isinstance(reference, int | float):
        name = record.get("reference_name") or "reference"
        ref_text = f"{name}: {benchkit.fmt(reference)} {unit}"
    return Row(
        script=script,
        goal=str(record["name"]),
        measured=f"{benchkit.fmt(measured)} {unit}",
        reference=ref_text,
        ratio=benchkit.fmt_ratio(ratio) if isinstance(ratio, int | float) else "",
        target=str(record["target"]),
        result="pass" if record["passed"] is True else "SHORT",
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the script and whatever it started (it runs in its own process group)."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def copy_stderr(proc: subprocess.Popen[bytes], last: deque[str]) -> None:
    """Pass the script's stderr through as it comes, keeping its last line (a crash's cause)."""
    assert proc.stderr is not None
    for raw in proc.stderr:
        sys.stderr.buffer.write(raw)
        sys.stderr.buffer.flush()
        if text := raw.decode(errors="replace").strip():
            last.append(text[:200])


def run_script(path: Path, timeout: float) -> Outcome:
    """Run one bench script with ``KMM_BENCH_RESULTS`` set; read back the goals it reported."""
    script = path.stem
    print(f"\n== bench/{path.name}", flush=True)
    fd, results = tempfile.mkstemp(prefix=f"{script}-", suffix=".jsonl")
    os.close(fd)
    env = {**os.environ, benchkit.RESULTS_ENV: results, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    returncode: int | None = None
    try:
        proc = subprocess.Popen(
            [sys.executable, str(path)],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        last_error: deque[str] = deque(maxlen=1)
        tee = threading.Thread(target=copy_stderr, args=(proc, last_error), daemon=True)
        tee.start()
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(proc)
        except BaseException:  # Ctrl-C: the script is in its own session, so end it here
            stop(proc)
            raise
        seconds = time.perf_counter() - started
        tee.join(5.0)
        rows: list[Row] = []
        notes: list[tuple[str, str]] = []
        with open(results, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    record = json.loads(line)
                    if "note" in record:
                        notes.append((str(record["note"]), str(record["markdown"])))
                        continue
                    rows.append(goal_row(script, record))
                except (ValueError, KeyError, AssertionError) as e:
                    rows.append(Row(script, f"line {n} of its results is unreadable: {e!r}"))
    finally:
        os.unlink(results)
    print(f"== bench/{path.name}: {seconds:.0f} s, exit status {returncode}", flush=True)
    if returncode is None:
        rows.append(Row(script, f"stopped after {timeout:.0f} s without finishing"))
    elif returncode != 0 and not any(r.result == "SHORT" for r in rows):
        what = "crashed" if last_error else "exited"
        what += f" (exit status {returncode})" if returncode > 0 else f" (signal {-returncode})"
        what += " after reporting its goals" if rows else ", reporting no goal"
        rows.append(Row(script, what + (f": {last_error[0]}" if last_error else "")))
    elif not rows:
        rows.append(Row(script, "reported no goal"))
    return Outcome(script, rows, returncode, seconds, notes)


def text_table(rows: list[Row]) -> str:
    """The table for the terminal: columns padded to their widest cell."""
    lines = [COLUMNS, *(r.cells() for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(rows: list[Row]) -> str:
    """The same table in Markdown."""

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") or " " for c in cells) + " |"

    aligns = ("---", "---", "---:", "---", "---:", "---", "---")
    return "\n".join([line(COLUMNS), line(aligns), *(line(r.cells()) for r in rows)])


def summary(rows: list[Row]) -> str:
    counts = {k: sum(r.result == k for r in rows) for k in ("pass", "SHORT", "error")}
    return f"{counts['pass']} pass, {counts['SHORT']} short, {counts['error']} error"


def write_markdown(
    rows: list[Row],
    outcomes: list[Outcome],
    facts: dict[str, str],
    command: str,
    wall: float,
    load_after: str,
) -> None:
    took = ", ".join(f"{o.script} {o.seconds:.0f} s" for o in outcomes)
    text = f"""# Benchmark results

The latest full `make bench`, written by `bench/run.py` (do not edit by hand). Each ratio is
the measured value over a reference measured in the same run on the same machine, so it
travels between machines better than the absolute figures do.

- Date: {facts["date"]}
- Machine: {facts["cpu"]}, {facts["cores"]} cores; {facts["platform"]}
- Python: {facts["python"]}
- Command: `{command}`
- Wall time: {wall:.0f} s ({took})
- Load average (1 / 5 / 15 min): {facts["load"]} before, {load_after} after
- Verdict: {summary(rows)}

{markdown_table(rows)}
"""
    for o in outcomes:
        for title, markdown in o.notes:
            text += f"\n## {o.script}: {title}\n\n{markdown.strip()}\n"
    # The sections of runs that make bench does not make (make chaos, make soak) stay.
    old = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else ""
    for section in benchkit.sections(old).values():
        text += "\n" + section
    RESULTS_MD.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only the scripts whose name contains NAME (repeatable); RESULTS.md is kept",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT_S,
        help=f"seconds a script may take before it is stopped (default {TIMEOUT_S:.0f})",
    )
    args = parser.parse_args(argv)
    scripts = sorted(BENCH.glob("bench_*.py"))
    if args.only:
        scripts = [p for p in scripts if any(name in p.name for name in args.only)]
        if not scripts:
            parser.error(f"no bench/bench_*.py matches {' or '.join(args.only)}")
    facts = benchkit.machine()
    python = os.path.relpath(sys.executable, ROOT)
    command = shlex.join([python, "bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    started = time.perf_counter()
    outcomes = [run_script(path, args.timeout) for path in scripts]
    wall = time.perf_counter() - started
    load_after = benchkit.load_average()
    rows = [row for o in outcomes for row in o.rows]
    print(f"\n{facts['cpu']}, {facts['cores']} cores, {facts['python']}, {facts['date']}")
    print(f"load average (1 / 5 / 15 min): {facts['load']} before, {load_after} after")
    print(f"ratio = measured / reference, both measured in the same run; {wall:.0f} s in all\n")
    print(text_table(rows))
    print(f"\n{summary(rows)}")
    if args.only:
        print(f"(a subset: {RESULTS_MD.relative_to(ROOT)} left as it was)")
    else:
        write_markdown(rows, outcomes, facts, command, wall, load_after)
        print(f"written to {RESULTS_MD.relative_to(ROOT)}")
    return 0 if all(r.result == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
