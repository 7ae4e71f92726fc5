"""The embedded world as the session and ``kmm sim`` start it: both servers, agents, demo key."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from simkit import sign

from kmm_interactive.sim.embedded import start_embedded


async def test_start_embedded_serves_a_live_market_with_a_working_demo_key() -> None:
    sim = await start_embedded(seed=5, scenario="small", speed=60)
    info = sim.connection_info()
    key_path = Path(info["private_key_path"])
    try:
        assert set(info) == {
            "rest_url",
            "ws_url",
            "odds_url",
            "odds_api_key",
            "key_id",
            "private_key_path",
        }
        assert all(
            info[k].startswith(("http://127.0.0.1:", "ws://127.0.0.1:"))
            for k in ("rest_url", "ws_url", "odds_url")
        )
        assert oct(key_path.stat().st_mode & 0o777) == "0o600"
        assert info["odds_api_key"] not in repr(sim)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        path = "/trade-api/v2/portfolio/balance"
        async with aiohttp.ClientSession() as http:
            headers = sign(key, info["key_id"], "GET", path)  # type: ignore[arg-type]
            async with http.get(
                info["rest_url"].removesuffix("/trade-api/v2") + path, headers=headers
            ) as r:
                assert r.status == 200
                assert (await r.json())["balance"] == 1_000_000
            async with http.get(
                info["odds_url"] + "/v4/sports/basketball_nba/odds",
                params={"apiKey": info["odds_api_key"], "regions": "eu"},
            ) as r:
                assert r.status == 200
                games = await r.json()
                assert games
                assert games[0]["bookmakers"][0]["key"] == "pinnacle"
            await asyncio.sleep(1.0)  # the agents trade on the wall clock
            ws_headers = sign(key, info["key_id"], "GET", "/trade-api/ws/v2")  # type: ignore[arg-type]
            async with http.ws_connect(info["ws_url"], headers=ws_headers) as ws:
                tickers = [o.ticker for o in sim.scenario.games[0].outcomes]
                await ws.send_json(
                    {
                        "id": 1,
                        "cmd": "subscribe",
                        "params": {"channels": ["orderbook_delta"], "market_tickers": tickers},
                    }
                )
                frames = [await ws.receive_json(timeout=2) for _ in range(3)]
        assert [f["type"] for f in frames] == [
            "subscribed",
            "orderbook_snapshot",
            "orderbook_snapshot",
        ]
        assert any(f["msg"].get("yes_dollars_fp") for f in frames[1:])  # the makers are quoting
    finally:
        await sim.close()
    assert not key_path.exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_kmm_sim_prints_its_connection_details_and_cleans_up_on_a_signal(sig: int) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kmm_interactive",
            "sim",
            "--seed",
            "3",
            "--scenario",
            "small",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        info = json.loads(line)
        assert set(info) == {
            "rest_url",
            "ws_url",
            "odds_url",
            "odds_api_key",
            "key_id",
            "private_key_path",
        }
        assert Path(info["private_key_path"]).exists()
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        assert not Path(info["private_key_path"]).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--speed", "0"], "speed must be in"),
        (["--scenario", "mars"], "invalid choice"),
        (["--seed", "x"], "invalid int"),
    ],
)
def test_kmm_sim_refuses_bad_flags(args: list[str], fragment: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kmm_interactive", "sim", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert fragment in result.stderr
