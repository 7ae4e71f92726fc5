"""The strategy lab (kmm_interactive.sim.lab): determinism, parallel runs, money, inputs, tables.

Every run here is a tiny scenario (two or three games starting 10-30 minutes into the
virtual day), so one run takes well under a second and the file a few tens of seconds.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import statistics
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest

from kmm_interactive.config import Config
from kmm_interactive.sim import lab, lab_layers
from kmm_interactive.sim.lab_pool import SubprocessExecutor, WorkerError
from kmm_interactive.sim.lab_results import LabResults, RunResult

COMPETITION = lab.SCENARIOS["competition"].agents

#: Two NBA games (two markets each, one inventory per game).
TINY = lab.LabScenario(
    "tiny", mix="day", games=2, agents=COMPETITION, first_start=600.0, last_start=1800.0
)
#: An NBA game and an EPL game (three markets: home, away, tie; one inventory per market).
MIXED = lab.LabScenario(
    "mixed", mix="small", games=2, agents=COMPETITION, first_start=600.0, last_start=1800.0
)

HJB = lab.LabConfig()
TOB = lab.LabConfig(strategy=lab.Strategy.TOB)

#: The rejection codes a run may count without anything being wrong. Only one: the lab's own
#: ``order_gone`` (lab.py ``_apply``), a cancel/decrease/amend whose order was filled or
#: cancelled while the write travelled, which real latency makes unavoidable. Every exchange
#: code means the lab sent something wrong: ``invalid_parameters``/``invalid_price`` (a bad
#: price, size or amend count), ``insufficient_balance`` (the account holds 10M),
#: ``order_not_resting`` (``_apply`` checks ``order.live`` first, in the same instant),
#: ``MARKET_INACTIVE`` (the lab stops quoting before the start; markets close at the end),
#: ``not_found``, ``order_already_exists``.
BENIGN_REJECTIONS = frozenset({"order_gone"})


def _keys(results: LabResults) -> list[tuple[str, str, int]]:
    return [(r.scenario, r.strategy, r.seed) for r in results.runs_done]


def _assert_same_runs(got: LabResults, want: LabResults) -> None:
    assert _keys(got) == _keys(want)
    for a, b in zip(got.runs_done, want.runs_done, strict=True):
        assert a.same_outcome(b), (a.scenario, a.strategy, a.seed)


# The sweep the parallel executors must reproduce, in job order: scenarios, configs, seeds.
SWEEP_SCENARIOS = (TINY, MIXED)
SWEEP_CONFIGS = (HJB, TOB)
SWEEP_SEEDS = (1, 2)


@pytest.fixture(scope="module")
def serial_sweep() -> LabResults:
    return lab.sweep(SWEEP_CONFIGS, SWEEP_SEEDS, SWEEP_SCENARIOS, executor=None, progress=False)


# --------------------------------------------------------------------------- 1. determinism


def test_same_seed_gives_the_same_outcome() -> None:
    first = lab.run(MIXED, HJB, 7)
    again = lab.run(MIXED, HJB, 7)
    # Not vacuous: the run traded, in both games.
    assert len(first.games) == 2
    assert all(g.fills > 0 for g in first.games)
    assert first.decisions > 0
    assert first.same_outcome(again)
    assert first.games == again.games
    assert first.exchange_cash == again.exchange_cash


def test_same_outcome_ignores_only_the_wall_time() -> None:
    r = lab.run(TINY, HJB, 1)
    assert r.same_outcome(dataclasses.replace(r, wall_seconds=r.wall_seconds + 123.0))
    assert not r.same_outcome(dataclasses.replace(r, decisions=r.decisions + 1))
    assert not r.same_outcome(dataclasses.replace(r, exchange_cash=r.exchange_cash + 1))
    assert not r.same_outcome(dataclasses.replace(r, games=r.games[:1]))


def test_different_seeds_take_different_paths() -> None:
    one, two = lab.run(TINY, HJB, 1), lab.run(TINY, HJB, 2)
    assert not one.same_outcome(two)
    per_game = [[(g.fills, g.contracts, g.pnl) for g in r.games] for r in (one, two)]
    assert per_game[0] != per_game[1]
    assert one.pnl != two.pnl
    assert [g.event_ticker for g in one.games] != [g.event_ticker for g in two.games]


def test_outcome_does_not_depend_on_the_process_or_its_hash_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run in a fresh interpreter (another PYTHONHASHSEED, so any iteration over a set of
    strings would change order) equals the run in this process."""
    here = lab.run(MIXED, HJB, 5)
    for hash_seed in ("11", "4242"):
        monkeypatch.setenv("PYTHONHASHSEED", hash_seed)  # read when the worker starts
        with SubprocessExecutor(1) as pool:
            there = pool.submit(lab.run, MIXED, HJB, 5).result(timeout=60)
        assert there.same_outcome(here), hash_seed


# --------------------------------------------------------------------------- 2. the split day


def test_run_over_two_worker_processes_equals_one_process() -> None:
    three = lab.LabScenario(
        "three", mix="small", games=3, agents=COMPETITION, first_start=600.0, last_start=1800.0
    )
    split = lab.run(three, HJB, 4, workers=2)
    whole = lab.run(three, HJB, 4)
    assert len(whole.games) == 3
    assert sum(g.fills for g in whole.games) > 0
    assert split.same_outcome(whole)
    assert split.exchange_cash == whole.exchange_cash
    assert split.wall_seconds > 0


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("parts", [1, 2, 3, 7, 20, 25])
def test_split_games_covers_every_game_once_in_scenario_order(seed: int, parts: int) -> None:
    day = lab.LabScenario("day").build(seed)  # the full 20-game day
    tickers = [g.event_ticker for g in day.games]
    position = {t: i for i, t in enumerate(tickers)}
    groups = lab.split_games(day, parts)

    assert len(groups) == min(parts, len(tickers))
    assert all(groups), "no empty group"
    flat = [t for group in groups for t in group]
    assert Counter(flat) == Counter(tickers)  # each game exactly once
    for group in groups:
        assert [position[t] for t in group] == sorted(position[t] for t in group)
    # About equal work (pre-game seconds): the greedy split is within one game of even.
    work = {g.event_ticker: g.start - day.origin for g in day.games}
    loads = [sum(work[t] for t in group) for group in groups]
    assert max(loads) - min(loads) <= max(work.values()) + 1e-9


# --------------------------------------------------------------------------- 3./4. sweeps


def test_sweep_on_local_processes_equals_the_serial_sweep(serial_sweep: LabResults) -> None:
    want_keys = [
        (s.name, c.name, seed)
        for s in SWEEP_SCENARIOS
        for c in SWEEP_CONFIGS
        for seed in SWEEP_SEEDS
    ]
    assert _keys(serial_sweep) == want_keys
    with lab.local_executor(2) as pool:
        parallel = lab.sweep(
            SWEEP_CONFIGS, SWEEP_SEEDS, SWEEP_SCENARIOS, executor=pool, progress=False
        )
    _assert_same_runs(parallel, serial_sweep)


def test_sweep_on_a_local_dask_cluster_equals_the_serial_sweep(serial_sweep: LabResults) -> None:
    distributed = pytest.importorskip(
        "distributed", reason="the Dask test needs the 'distributed' package (a dev extra)"
    )
    cluster = client = None
    try:
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=50,  # logging.CRITICAL
        )
        client = distributed.Client(cluster)
        on_dask = lab.sweep(
            SWEEP_CONFIGS,
            SWEEP_SEEDS,
            SWEEP_SCENARIOS,
            executor=client.get_executor(),
            progress=False,
        )
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    _assert_same_runs(on_dask, serial_sweep)


# --------------------------------------------------------------------------- 5. money


@pytest.mark.parametrize(
    ("scenario", "config", "seed"),
    [
        (TINY, HJB, 1),
        (MIXED, HJB, 2),
        (MIXED, TOB, 1),
        (MIXED, lab.LabConfig(layers=frozenset(lab.Layer)), 3),
    ],
    ids=["tiny-hjb", "mixed-hjb", "mixed-tob", "mixed-all-layers"],
)
def test_exchange_cash_after_settlement_equals_the_ledger_pnl(
    scenario: lab.LabScenario, config: lab.LabConfig, seed: int
) -> None:
    settled = lab.run(scenario, dataclasses.replace(config, run_to_settlement=True), seed)
    assert isinstance(settled.exchange_cash, Decimal)
    assert all(isinstance(g.pnl, Decimal) for g in settled.games)
    assert sum(g.fills for g in settled.games) > 0
    assert any(g.settlement != 0 for g in settled.games)
    assert settled.exchange_cash == settled.pnl == sum((g.pnl for g in settled.games), Decimal(0))

    # The default run stops after the last start and settles at the drawn result itself:
    # nothing is quoted in play, so each game's money is the same as the exchange's account.
    short = lab.run(scenario, config, seed)
    assert short.virtual_seconds < settled.virtual_seconds
    assert [(g.event_ticker, g.fills, g.pnl) for g in short.games] == [
        (g.event_ticker, g.fills, g.pnl) for g in settled.games
    ]


# --------------------------------------------------------------------------- 6. every strategy


_MODEL_LAYERS = frozenset(lab.Layer) - {lab.Layer.REESTIMATE}
_CASES: list[tuple[lab.Strategy, frozenset[lab.Layer]]] = [
    *((s, frozenset()) for s in lab.Strategy),
    *(
        (s, frozenset(lab.Layer))
        for s in lab.Strategy
        if s not in (lab.Strategy.TOB, lab.Strategy.GLFT)
    ),
    (lab.Strategy.GLFT, _MODEL_LAYERS),  # GLFT cannot take per-market k: refused, see below
    *((lab.Strategy.HJB, frozenset({layer})) for layer in lab.Layer),
]


def _case_id(case: tuple[lab.Strategy, frozenset[lab.Layer]]) -> str:
    strategy, layers = case
    if layers == frozenset(lab.Layer):
        return f"{strategy.value}+all"
    if layers == _MODEL_LAYERS:
        return f"{strategy.value}+all-but-reestimate"
    return "+".join([strategy.value, *sorted(x.value for x in layers)])


def _check_clean(r: RunResult) -> None:
    codes = set(dict(r.rejected))
    assert codes <= BENIGN_REJECTIONS, f"unexpected rejections {r.rejected}"
    assert r.decisions > 0
    assert sum(g.fills for g in r.games) > 0, "the strategy never traded"
    for g in r.games:
        assert g.max_abs_q <= g.cap, (g.event_ticker, g.max_abs_q, g.cap)
        assert g.q_at_start <= g.max_abs_q
    assert r.model_errors == 0


@pytest.mark.parametrize("case", _CASES, ids=[_case_id(c) for c in _CASES])
def test_every_strategy_and_layer_runs_clean(
    case: tuple[lab.Strategy, frozenset[lab.Layer]],
) -> None:
    strategy, layers = case
    r = lab.run(MIXED, lab.LabConfig(strategy=strategy, layers=layers), 3)
    assert r.strategy == lab.LabConfig(strategy=strategy, layers=layers).name
    assert [g.sport for g in r.games] == ["nba", "epl"]
    _check_clean(r)


def test_a_slow_jittery_wire_only_loses_orders_in_flight() -> None:
    """Half-second writes with ±90% jitter: fills overtake writes often, and still every
    rejection is an order gone while the write travelled."""
    config = lab.LabConfig(layers=frozenset(lab.Layer), order_latency=0.5, latency_jitter=0.9)
    r = lab.run(TINY, config, 2)
    _check_clean(r)


def test_the_layers_change_what_the_quoter_does() -> None:
    plain = lab.run(MIXED, HJB, 3)
    layered = lab.run(MIXED, lab.LabConfig(layers=frozenset(lab.Layer)), 3)
    assert not plain.same_outcome(dataclasses.replace(layered, strategy=plain.strategy))


# --------------------------------------------------------------------------- 7. bad input


def _sweep_with_two_hjb() -> object:
    return lab.sweep([lab.LabConfig(), lab.LabConfig(label="hjb")], [1], TINY, progress=False)


_BAD: list[tuple[str, Callable[[], object], str]] = [
    (
        "strategy",
        lambda: lab.LabConfig(strategy="nope"),  # type: ignore[arg-type]
        r"strategy = 'nope': allowed hjb, glft, as2008, linear, tob",
    ),
    (
        "layers",
        lambda: lab.LabConfig(layers={"bogus"}),  # type: ignore[arg-type]
        r"layers = \{'bogus'\}: allowed adaptive_spread, imbalance, toxicity, reestimate",
    ),
    (
        "order_latency",
        lambda: lab.LabConfig(order_latency=0),
        r"order_latency = 0: must be a number in \(0, 3600\]",
    ),
    (
        "tier",
        lambda: lab.LabConfig(tier="gold"),
        r"tier = 'gold': allowed basic, advanced, expert, premier, paragon, prime",
    ),
    (
        "gamma",
        lambda: lab.LabConfig(params={"nba": {"gamma": -1}}),
        r"params for nba: gamma = -1.*allowed: 0\.0 < gamma <= 1\.0",
    ),
    (
        "sport",
        lambda: lab.LabConfig(params={"cricket": {"gamma": 0.1}}),
        r"params: sport 'cricket' is unknown \(allowed: .*\bnba\b",
    ),
    (
        "params-shape",
        lambda: lab.LabConfig(params={"nba": 3}),  # type: ignore[dict-item]
        r"params = .*: must map sport -> \{parameter: value\}",
    ),
    (
        "games",
        lambda: lab.LabScenario("x", games=0),
        r"games = 0: must be a whole number in \[1, 5000\], or None",
    ),
    (
        "scenario",
        lambda: lab.run("unknown-scenario"),
        r"scenario 'unknown-scenario' is unknown \(allowed: competition, news, retail_bias\)",
    ),
    ("seed", lambda: lab.run(seed="1"), r"seed = '1': must be a whole number"),  # type: ignore[arg-type]
    ("workers", lambda: lab.run(workers=0), r"workers = 0: must be a whole number >= 1"),
    (
        "sweep-names",
        _sweep_with_two_hjb,
        r"configs must be distinct .*set label= on configs\), got \['hjb', 'hjb'\]",
    ),
    (
        "sweep-seeds",
        lambda: lab.sweep(HJB, [1, 1], TINY, progress=False),
        r"seeds must be distinct .* got \[1, 1\]",
    ),
    (
        "tob-layers",
        lambda: lab.LabConfig(strategy="tob", layers={"toxicity"}),  # type: ignore[arg-type]
        r"layers with strategy 'tob': the naive rule has no model price",
    ),
    (
        "glft-reestimate",
        lambda: lab.LabConfig(strategy="glft", layers={"reestimate"}),  # type: ignore[arg-type]
        r"layer 'reestimate' with strategy 'glft': the GLFT closed form needs one k",
    ),
    (
        "unknown-param",
        lambda: lab.LabConfig(params={"nba": {"nope": 1}}),
        r"params for nba: 'nope' is not a profile setting \(allowed: .*\bgamma\b",
    ),
    (
        "jitter-bool",
        lambda: lab.LabConfig(latency_jitter=False),
        r"latency_jitter = False: must be in \[0, 1\)",
    ),
    (
        "sweep-empty",
        lambda: lab.sweep([], [1], TINY, progress=False),
        r"a sweep needs at least one config, one seed and one scenario",
    ),
]


@pytest.mark.parametrize(("bad", "message"), [b[1:] for b in _BAD], ids=[b[0] for b in _BAD])
def test_bad_input_raises_value_error_saying_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, bad: Callable[[], object], message: str
) -> None:
    def must_not_run(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a run started despite the bad input")

    monkeypatch.setattr(lab, "_Run", must_not_run)
    monkeypatch.setattr(lab, "_job", must_not_run)
    monkeypatch.setattr(lab, "local_executor", must_not_run)
    with pytest.raises(ValueError, match=message):
        bad()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mix": "nope"}, r"mix = 'nope'.*allowed.*day"),
        ({"games": 6000}, r"games = 6000"),
    ],
    ids=["mix", "games"],
)
def test_a_bad_scenario_is_refused_when_it_is_made(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lab.LabScenario("x", **kwargs)


# --------------------------------------------------------------------------- 8. tables

GAME_COLUMNS = [
    "scenario", "strategy", "seed", "event_ticker", "sport", "pnl", "settlement", "fees",
    "fills", "contracts", "traded", "taker_share", "max_abs_q", "cap", "max_q_over_cap",
    "worst_case_over_cap", "q_at_start", "markout", "adverse_loss", "news_fills", "writes",
    "cancels", "tokens", "budget", "budget_share", "rechecks",
]  # fmt: skip
RUN_COLUMNS = [
    "scenario", "strategy", "seed", "pnl", "settlement", "fees", "fills", "contracts",
    "traded", "markout", "adverse_loss", "news_fills", "writes", "cancels", "tokens",
    "rechecks", "max_q_over_cap", "worst_case_over_cap", "q_at_start", "taker_share",
    "budget_share", "wall_seconds",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "scenario", "strategy", "seeds", "mean_pnl", "sd_pnl", "pnl_over_sd", "worst_q_over_cap",
    "worst_case_over_cap", "adverse_loss", "fees", "fills", "taker_share", "q_at_start",
    "budget_share", "wall_seconds",
]  # fmt: skip


def test_games_table(serial_sweep: LabResults) -> None:
    games = serial_sweep.games()
    assert list(games.columns) == GAME_COLUMNS
    want = [
        (r.scenario, r.strategy, r.seed, g.event_ticker, float(g.pnl), g.fills)
        for r in serial_sweep.runs_done
        for g in r.games
    ]
    got = list(
        zip(
            games["scenario"], games["strategy"], games["seed"], games["event_ticker"],
            games["pnl"], games["fills"], strict=True,
        )
    )  # fmt: skip
    assert got == want
    assert (games["max_q_over_cap"] <= 1.0).all()
    assert ((games["taker_share"] >= 0) & (games["taker_share"] <= 1)).all()


def test_runs_table(serial_sweep: LabResults) -> None:
    runs = serial_sweep.runs()
    assert list(runs.columns) == RUN_COLUMNS
    assert list(zip(runs["scenario"], runs["strategy"], runs["seed"], strict=True)) == _keys(
        serial_sweep
    )
    for row, r in zip(runs.itertuples(), serial_sweep.runs_done, strict=True):
        assert row.pnl == pytest.approx(float(r.pnl), abs=1e-9)
        assert row.fills == sum(g.fills for g in r.games)
        assert row.fees == pytest.approx(float(sum((g.fees for g in r.games), Decimal(0))))
        assert row.max_q_over_cap == pytest.approx(max(float(g.max_abs_q) / g.cap for g in r.games))
        assert row.wall_seconds == r.wall_seconds


def test_summary_table_and_pnl_over_sd(serial_sweep: LabResults) -> None:
    summary = serial_sweep.summary()
    assert list(summary.columns) == SUMMARY_COLUMNS
    groups = [(s.name, c.name) for s in SWEEP_SCENARIOS for c in SWEEP_CONFIGS]
    assert list(zip(summary["scenario"], summary["strategy"], strict=True)) == groups
    for row in summary.itertuples():
        pnls = [
            r.pnl
            for r in serial_sweep.runs_done
            if (r.scenario, r.strategy) == (row.scenario, row.strategy)
        ]
        assert row.seeds == len(pnls) == len(SWEEP_SEEDS)
        mean, sd = statistics.mean(pnls), statistics.stdev(pnls)  # exact, in Decimal
        assert sd > 0
        assert row.mean_pnl == pytest.approx(float(mean))
        assert row.sd_pnl == pytest.approx(float(sd))
        assert row.pnl_over_sd == pytest.approx(float(mean / sd))


def test_pnl_over_sd_is_nan_from_one_seed_and_infinite_without_spread(
    serial_sweep: LabResults,
) -> None:
    first = serial_sweep.runs_done[0]
    assert first.pnl != 0
    one_seed = LabResults((first,)).summary()
    assert one_seed["seeds"].tolist() == [1]
    assert math.isnan(one_seed["pnl_over_sd"].iloc[0])
    twin = dataclasses.replace(first, seed=first.seed + 100)  # another seed, the same money
    flat = LabResults((first, twin)).summary()
    assert flat["seeds"].tolist() == [2]
    assert flat["pnl_over_sd"].iloc[0] == (math.inf if first.pnl > 0 else -math.inf)


def test_no_runs_or_no_games_cannot_be_tabulated(serial_sweep: LabResults) -> None:
    gameless = dataclasses.replace(serial_sweep.runs_done[0], games=())
    for results in (LabResults(()), LabResults((gameless,))):
        assert results.games().empty
        with pytest.raises(ValueError, match=r"no runs \(or runs of no games\) to tabulate"):
            results.runs()
        with pytest.raises(ValueError, match=r"no runs \(or runs of no games\) to tabulate"):
            results.summary()


# --------------------------------------------------------------------------- 9. pickling, pool


def test_lab_config_pickles_to_an_equal_object() -> None:
    config = lab.LabConfig(
        strategy="glft",  # type: ignore[arg-type]
        layers={"toxicity", "imbalance"},  # type: ignore[arg-type]
        config=Config(),
        params={"nba": {"gamma": 0.05}, "nhl": {"cap": 40}},
        label="glft-tuned",
        order_latency=0.2,
        tier="advanced",
    )
    back = pickle.loads(pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == config
    assert back.name == "glft-tuned"
    assert isinstance(back.config.sports, MappingProxyType)  # still read-only after the trip
    assert back.profiles() == config.profiles()
    assert back.profiles().sports["nba"].gamma == 0.05
    assert pickle.loads(pickle.dumps(TINY)) == TINY


def test_params_in_any_order_make_equal_configs() -> None:
    a = lab.LabConfig(params={"nba": {"gamma": 0.05, "cap": 50}, "nhl": {"cap": 40}})
    b = lab.LabConfig(params={"nhl": {"cap": 40}, "nba": {"cap": 50, "gamma": 0.05}})
    assert a == b
    assert (
        a.params == b.params == (("nba", (("cap", 50), ("gamma", 0.05))), ("nhl", (("cap", 40),)))
    )


@pytest.fixture
def pool() -> Iterator[SubprocessExecutor]:
    executor = SubprocessExecutor(1)
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def test_pool_raises_the_function_s_own_exception(pool: SubprocessExecutor) -> None:
    with pytest.raises(ValueError, match="invalid literal for int"):
        pool.submit(int, "not a number").result(timeout=60)
    assert pool.submit(pow, 2, 10).result(timeout=60) == 1024


def test_pool_survives_a_worker_that_dies(pool: SubprocessExecutor) -> None:
    assert pool.submit(os.getpid).result(timeout=60) > 0
    first_pid = pool.submit(os.getpid).result(timeout=60)
    with pytest.raises(WorkerError, match="a lab worker process failed"):
        pool.submit(os._exit, 3).result(timeout=60)
    assert pool.submit(pow, 2, 10).result(timeout=60) == 1024
    assert pool.submit(os.getpid).result(timeout=60) != first_pid  # a new worker


def test_pool_keeps_its_pipe_clean_when_a_job_prints(pool: SubprocessExecutor) -> None:
    assert pool.submit(print, "noise on the worker's stdout").result(timeout=60) is None
    assert pool.submit(pow, 3, 3).result(timeout=60) == 27


def _phantom() -> int:
    return 1


def test_pool_fails_a_job_the_worker_cannot_import(
    pool: SubprocessExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A function pickled by reference from a module only this process has."""
    module = types.ModuleType("lab_tests_phantom_module")
    monkeypatch.setattr(_phantom, "__module__", module.__name__)
    monkeypatch.setattr(_phantom, "__qualname__", "phantom")
    module.phantom = _phantom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(WorkerError):
        pool.submit(_phantom).result(timeout=60)
    assert pool.submit(pow, 2, 5).result(timeout=60) == 32


def test_pool_rejects_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match=r"workers = 0: must be a whole number >= 1"):
        SubprocessExecutor(0)
    executor = SubprocessExecutor(1)
    with pytest.raises(TypeError, match="positional arguments only"):
        executor.submit(pow, 2, exp=3)
    executor.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(pow, 2, 3)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_pool_fails_a_job_that_cannot_be_pickled() -> None:
    def local() -> int:  # a local function does not pickle (AttributeError on 3.11)
        return 1

    executor = SubprocessExecutor(1)
    future: Future[int] | None = None
    try:
        future = executor.submit(local)
        assert future.exception(timeout=1) is not None  # failed, not hung
        assert executor.submit(pow, 2, 2).result(timeout=60) == 4
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------------ 10. the cap on the wire


@pytest.mark.parametrize("strategy", [lab.Strategy.HJB, lab.Strategy.TOB])
def test_slow_writes_never_let_the_worst_case_pass_the_cap(strategy: lab.Strategy) -> None:
    """A small cap, slow and jittery writes: a create may not overtake the cancel sent with
    it (growing writes wait for the rest, as in the engine), so q plus every resting order
    of one direction stays inside the sport's cap at every landing."""
    config = lab.LabConfig(
        strategy=strategy,
        params={"nba": {"cap": 6, "quote_size": 3}},
        order_latency=0.3,
        latency_jitter=0.9,
    )
    for seed in (1, 2, 3):
        r = lab.run(TINY, config, seed)
        assert sum(g.fills for g in r.games) > 0
        for g in r.games:
            assert g.cap == 6
            assert g.max_worst <= g.cap, (seed, g.event_ticker, g.max_worst)
            assert g.max_abs_q <= g.cap


def test_imbalance_depth_leaves_out_our_order_only_where_it_is_counted() -> None:
    # Centi-contracts by tick: the others' best bid is 50; 51 is ours (we outbid), 40 deep.
    sizes = {50: 1000, 51: 500, 40: 300}
    assert lab_layers.near_depth(sizes, 50, True, None) == Decimal(10)
    assert lab_layers.near_depth({50: 1000}, 50, True, (50, 500)) == Decimal(5)
    # Ours above their best or deeper than NEAR ticks is not in their depth: nothing is taken.
    assert lab_layers.near_depth(sizes, 50, True, (51, 500)) == Decimal(10)
    assert lab_layers.near_depth(sizes, 50, True, (40, 300)) == Decimal(10)
    assert lab_layers.near_depth({60: 700, 62: 100}, 60, False, (62, 100)) == Decimal(7)
    assert lab_layers.near_depth(sizes, None, True, None) == Decimal(0)
