"""The strategies side by side in the lab, the optional layers measured, and the lab's speed.

Setup (issue 7):

* **Scenarios**: the standard set (``lab.SCENARIOS``: competition, news jumps, retail bias),
  each cut to ``GAMES`` games starting within ``LAST_START`` so that 20 seeds of five
  strategies fit in a bench run. The agents' parameters come from the scenario and are the
  same for every strategy.
* **Strategies**: ``hjb`` (the product), ``glft``, ``as2008``, ``linear`` (the same
  competition and risk layers over another quote table) and ``tob`` (naive), on the same
  ``SEEDS``; then ``hjb`` with each optional layer alone and all together, on ``LAYER_SEEDS``.
* **Goals**: ``hjb`` beats ``tob``, ``linear`` and ``as2008`` on PnL/σ(PnL) in each scenario
  (the ratio is hjb's over the other's; both measured here), its worst case (q plus every
  resting order of one direction) stays inside the cap, and a 20-game day runs in ≤ 30 s on
  this machine's cores (reference: the same day in one process, measured beside it).

Notes kept in bench/RESULTS.md: the per-strategy table (mean PnL, σ, PnL/σ, worst max|q| and
worst case against the cap, adverse-selection loss, fees, fills, taker share), hjb against
each rival seed by seed (mean difference, standard error), and the layers' table.
Run: ``make bench`` or ``python bench/bench_strategies.py``; exits 1 if a goal is missed.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from concurrent.futures import Executor

import benchkit
import numpy as np
import pandas as pd

from kmm_interactive.sim import lab
from kmm_interactive.sim.lab_results import LabResults

GAMES = 6
LAST_START = 2 * 3600.0
SEEDS = range(1, 21)
LAYER_SEEDS = range(1, 11)
DAY_TARGET_S = 30.0
RIVALS = ("tob", "linear", "as2008")
BOOTSTRAPS = 2000
BOOTSTRAP_SEED = 7
COLUMNS = [
    "scenario", "strategy", "seeds", "mean_pnl", "sd_pnl", "pnl_over_sd", "worst_q_over_cap",
    "worst_case_over_cap", "adverse_loss", "fees", "fills", "taker_share", "q_at_start",
    "budget_share", "wall_seconds",
]  # fmt: skip


def markdown(frame: pd.DataFrame) -> str:
    shown = frame[COLUMNS].copy()
    for column in COLUMNS[3:]:
        shown[column] = shown[column].map(benchkit.fmt)
    head = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(False)]
    return "\n".join([head, rule, *rows])


def strategies(pool: Executor, scenarios: list[lab.LabScenario]) -> LabResults:
    configs = [lab.LabConfig(strategy=s) for s in lab.Strategy]
    started = time.perf_counter()
    results = lab.sweep(configs, SEEDS, scenarios, executor=pool, progress=False)
    print(f"{len(results)} strategy runs in {time.perf_counter() - started:.0f} s", flush=True)
    return results


def _sharpe(pnl: np.ndarray) -> np.ndarray:
    """PnL/σ(PnL) along the last axis (σ with one degree of freedom, as pandas' std)."""
    return np.asarray(pnl.mean(axis=-1) / pnl.std(axis=-1, ddof=1))


def paired(runs: pd.DataFrame) -> str:
    """hjb against each rival seed by seed (the same games, agents and news on a seed): the
    mean PnL difference with its standard error, and the PnL/σ difference with a standard
    error from resampling the seeds in pairs, so that a gap can be told from noise."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    lines = [
        "| scenario | rival | mean PnL(hjb − rival) | s.e. | hjb ahead on | PnL/σ(hjb) − "
        "PnL/σ(rival) | bootstrap s.e. | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario, rows in runs.groupby("scenario", sort=False):
        pnl = rows.pivot(index="seed", columns="strategy", values="pnl")
        picks = rng.integers(0, len(pnl), size=(BOOTSTRAPS, len(pnl)))
        hjb = pnl["hjb"].to_numpy(dtype=float)
        for rival in [s.value for s in lab.Strategy if s is not lab.Strategy.HJB]:
            other = pnl[rival].to_numpy(dtype=float)
            diff = hjb - other
            se = float(diff.std(ddof=1)) / len(diff) ** 0.5
            gap = float(_sharpe(hjb) - _sharpe(other))
            gap_se = float(np.std(_sharpe(hjb[picks]) - _sharpe(other[picks]), ddof=1))
            verdict = (
                "hjb ahead" if gap > 2 * gap_se
                else f"{rival} ahead" if gap < -2 * gap_se
                else "within noise"
            )  # fmt: skip
            lines.append(
                f"| {scenario} | {rival} | {benchkit.fmt(float(diff.mean()))} | "
                f"{benchkit.fmt(se)} | {int((diff > 0).sum())} of {len(diff)} seeds | "
                f"{gap:+.2f} | {gap_se:.2f} | {verdict} |"
            )
    lines += [
        "",
        "Read a goal that is short together with this table: a PnL/σ gap inside two "
        "bootstrap standard errors is what 20 seeds cannot tell apart, and the goal's "
        "ratio then says no more than that. Where hjb is behind, compare σ(PnL) and fills "
        "in the strategies table: a rival that quotes less often takes less inventory "
        "risk and loses mean PnL for it.",
    ]
    return "\n".join(lines)


def layers(pool: Executor, scenarios: list[lab.LabScenario]) -> pd.DataFrame:
    configs = [lab.LabConfig()]
    configs += [lab.LabConfig(layers=frozenset({layer})) for layer in lab.Layer]
    configs += [lab.LabConfig(layers=frozenset(lab.Layer), label="hjb+all layers")]
    started = time.perf_counter()
    results = lab.sweep(configs, LAYER_SEEDS, scenarios, executor=pool, progress=False)
    print(f"{len(results)} layer runs in {time.perf_counter() - started:.0f} s", flush=True)
    return results.summary()


def day_speed() -> bool:
    workers = os.cpu_count() or 1
    split = lab.run("competition", seed=1, workers=workers)
    serial = lab.run("competition", seed=1)
    assert split.same_outcome(serial), "a split day must equal the one-process day"
    games = len(split.games)
    benchkit.goal(
        f"{games}-game day in the lab, {workers} processes",
        split.wall_seconds, "s", target=f"<= {DAY_TARGET_S:.0f} s",
        passed=split.wall_seconds <= DAY_TARGET_S,
        reference=serial.wall_seconds, reference_name="the same day in one process",
    )  # fmt: skip
    return split.wall_seconds <= DAY_TARGET_S


def main() -> int:
    scenarios = [
        dataclasses.replace(spec, games=GAMES, last_start=LAST_START)
        for spec in lab.SCENARIOS.values()
    ]
    with lab.local_executor() as pool:
        results = strategies(pool, scenarios)
        layer_table = layers(pool, scenarios)
    table = results.summary()
    ok = True
    for scenario, rows in table.groupby("scenario", sort=False):
        sharpe = dict(zip(rows["strategy"], rows["pnl_over_sd"].astype(float), strict=True))
        worst = dict(zip(rows["strategy"], rows["worst_case_over_cap"].astype(float), strict=True))
        for rival in RIVALS:
            passed = sharpe["hjb"] > sharpe[rival]
            ok &= passed
            benchkit.goal(
                f"{scenario}: hjb PnL/σ vs {rival}", sharpe["hjb"], "",
                target=f"> {rival}", passed=passed,
                reference=sharpe[rival], reference_name=rival,
            )  # fmt: skip
        inside = worst["hjb"] <= 1.0
        ok &= inside
        benchkit.goal(
            f"{scenario}: hjb worst case (q + resting) / cap", worst["hjb"], "",
            target="<= 1", passed=inside,
        )  # fmt: skip
    ok &= day_speed()
    benchkit.note(
        f"strategies, {GAMES} games a scenario, seeds {SEEDS.start}-{SEEDS.stop - 1}",
        markdown(table),
    )
    benchkit.note("hjb against each rival, seed by seed", paired(results.runs()))
    benchkit.note(
        f"hjb with the optional layers, seeds {LAYER_SEEDS.start}-{LAYER_SEEDS.stop - 1}",
        markdown(layer_table),
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
