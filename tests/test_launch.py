"""Connecting the engine: live hosts need keys (and prod a confirmation), the embedded world
compresses the market's pace, and ``kmm run`` trades it headless and cleans up."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kmm_interactive.config import Config
from kmm_interactive.kalshi.auth import CredentialsError
from kmm_interactive.launch import compressed, live_connection


def test_the_market_pace_is_compressed_within_the_allowed_ranges() -> None:
    base = Config()
    fast = compressed(base, 30.0)
    assert fast.risk.start_buffer == base.risk.start_buffer / 30
    assert fast.risk.order_group_contracts == base.risk.order_group_contracts * 30
    assert fast.refresh.odds == base.refresh.odds / 30
    assert fast.theo.max_age == 90.0  # 45 min / 30
    assert fast.theo.recheck_window == 2.0
    # Wall-clock settings are not the market's pace.
    assert fast.quoting.min_rest == base.quoting.min_rest
    assert fast.risk.loop_stall_after == base.risk.loop_stall_after
    slowest = compressed(base, 10_000.0)
    assert slowest.theo.max_age == 60.0  # the smallest allowed
    assert slowest.refresh.odds == 10.0
    with pytest.raises(ValueError, match="speed"):
        compressed(base, 0.0)


def test_live_connections_need_keys_and_prod_a_confirmation() -> None:
    config = Config()
    with pytest.raises(ValueError, match="real money"):
        live_connection(config, "prod", environ={})
    with pytest.raises(CredentialsError, match="KALSHI_API_KEY_ID"):
        live_connection(config, "demo", environ={})
    with pytest.raises(ValueError, match="'demo' or 'prod'"):
        live_connection(config, "embedded", environ={})


def test_kmm_run_trades_the_embedded_exchange_and_leaves_nothing_resting() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kmm_interactive", "run", "--seconds", "6", "--status-every", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("embedded exchange, time compressed 30x")
    assert any(line.startswith("ACTIVE | ws connected") for line in lines)
    assert "orders left resting at stop: 0 (verified)" in lines
