"""Every server of the embedded world listens on 127.0.0.1 only: the sockets it holds are
read from /proc (the kernel's view, not the servers' word), and asking for another host is
refused with a clear error."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kalshikit import Venue

from kmm_interactive.launch import EmbeddedExchange
from kmm_interactive.sim.clock import WallClock
from kmm_interactive.sim.loopback import listen
from kmm_interactive.sim.odds_server import OddsFeed, make_odds_app, start_odds_server
from kmm_interactive.sim.scenario import build_scenario
from kmm_interactive.sim.server import start_kalshi_server

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/net/tcp").exists(), reason="reads listening sockets from Linux's /proc"
)
LISTEN = "0A"
OTHER_HOSTS = ["0.0.0.0", "::", "", "localhost", "127.0.0.2", "::1", "192.0.2.1", "example.com"]


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word in host (little-endian) order.
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(packed)), int(port, 16)


def listening(pid: int | str = "self") -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on, IPv4 and IPv6."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for row in rows:
            fields = row.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                found.add(_address(fields[1]))
    return found


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def test_the_embedded_world_listens_on_loopback_only() -> None:
    before = listening()
    world = EmbeddedExchange(seed=3, speed=30.0, n_games=2)
    try:
        world.start()
        opened = listening() - before
        ports = {_port(world.info[name]) for name in ("rest_url", "ws_url", "odds_url")}
        assert opened == {("127.0.0.1", port) for port in ports}
        assert len(opened) == 2  # the exchange (REST and WebSocket) and the odds feed
        for name in ("rest_url", "ws_url", "odds_url"):
            assert world.info[name].split("//", 1)[1].startswith("127.0.0.1:")
    finally:
        world.stop()
    assert not (listening() - before)


def test_kmm_sim_listens_on_loopback_only() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmm_interactive", "sim", "--scenario", "small", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        deadline = time.monotonic() + 10
        while len(sockets := listening(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        ports = {_port(info[name]) for name in ("rest_url", "odds_url")}
        assert sockets == {("127.0.0.1", port) for port in ports}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("host", OTHER_HOSTS)
async def test_another_host_is_refused_clearly(venue: Venue, host: str) -> None:
    feed = OddsFeed(build_scenario("small", seed=3, now=time.time()), WallClock(), seed=1)
    message = rf"host {host!r}: the embedded servers bind 127\.0\.0\.1 only"
    before = listening()
    with pytest.raises(ValueError, match=message):
        await start_kalshi_server(venue.server, host=host)
    with pytest.raises(ValueError, match=message):
        await start_odds_server(feed, api_key="k" * 32, host=host)
    with pytest.raises(ValueError, match=message):
        await listen(make_odds_app(feed, api_key="k" * 32), host=host)
    assert listening() == before  # nothing was opened on the way to the refusal


def test_the_embedded_exchange_takes_no_host() -> None:
    with pytest.raises(TypeError, match="host"):
        EmbeddedExchange(seed=3, n_games=1, host="0.0.0.0").start()
