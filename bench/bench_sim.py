"""Embedded exchange throughput on loopback: WebSocket messages/s to one client, REST requests/s.

The server runs in its own process (as it would for a client in another process), on the
"default" scenario with agents off so that only the measured load moves the book, and with
rate limits off: this measures what the server can carry, not what a tier allows.

* WS: the server's book changes as fast as it can (create + cancel of a resting order,
  two ``orderbook_delta`` frames each, paced by the connection's send queue) while one
  client subscribed to the market counts frames for ``SECONDS``.
* REST: ``CONCURRENCY`` client tasks send signed ``GET /markets/{ticker}/orderbook``.
  Signatures are computed before the clock starts (RSA signing is the client's cost, not
  the server's) and each is used once, as the replay check requires.

* Odds: every sport's ``/odds`` over a 200-game scenario, priced in-process (the odds server
  shares the event loop with the exchange, so this is how long one pull blocks it), once
  after every book has re-priced (cold) and once again at once (warm, from the memo).

Targets (issue 3): >= 5,000 WS messages/s and >= 500 REST requests/s. The odds figures are
reported, not judged.
Run: ``make bench`` (or ``python bench/bench_sim.py``); exits 1 if a target is missed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing as mp
import sys
import time
from decimal import Decimal
from typing import Any

import aiohttp
import benchkit
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SECONDS = 3.0
CONCURRENCY = 16
REST_REQUESTS = 3000
WS_TARGET = 5000.0
REST_TARGET = 500.0
WS_PATH = "/trade-api/ws/v2"


def _serve(public_pem: bytes, ready: Any, stop: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    from kmm_interactive.sim.auth import Verifier
    from kmm_interactive.sim.clock import WallClock
    from kmm_interactive.sim.exchange import Exchange
    from kmm_interactive.sim.ratelimit import RateLimiter
    from kmm_interactive.sim.scenario import build_scenario
    from kmm_interactive.sim.server import KalshiServer, start_kalshi_server

    async def main() -> None:
        clock = WallClock()
        scenario = build_scenario("default", seed=1, now=clock.now(), speed=1.0)
        exchange = Exchange.from_scenario(scenario, clock)
        exchange.open_account("bench", Decimal(10**9))
        exchange.open_account("pump", Decimal(10**9), keep_history=False)
        verifier = Verifier()
        key = serialization.load_pem_public_key(public_pem)
        verifier.register("bench-key", key, "bench")  # type: ignore[arg-type]
        limiter = RateLimiter("prestige")
        limiter.allow = lambda *_: True  # type: ignore[method-assign]  # capacity, not policy
        server = KalshiServer(exchange, verifier, limiter=limiter)
        running = await start_kalshi_server(server)
        ticker = next(iter(exchange.markets))
        ready.send((running.url, ticker))
        loop = asyncio.get_running_loop()
        stopped = loop.run_in_executor(None, stop.recv)
        while not stopped.done():
            queues = [c.queue.qsize() for c in server.hub.connections]
            if queues and max(queues) < 2000:
                for _ in range(200):
                    o = exchange.create_order(
                        "pump", ticker=ticker, side="bid", price="0.20", count="1",
                        time_in_force="good_till_canceled", self_trade_prevention_type="maker",
                    )  # fmt: skip
                    exchange.cancel_order("pump", o.order_id)
            await asyncio.sleep(0)
        await running.close()

    asyncio.run(main())


def _sign(key: rsa.RSAPrivateKey, method: str, path: str, ts: int) -> dict[str, str]:
    sig = key.sign(
        f"{ts}{method}{path}".encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
    return {
        "KALSHI-ACCESS-KEY": "bench-key",
        "KALSHI-ACCESS-TIMESTAMP": str(ts),
        "KALSHI-ACCESS-SIGNATURE": base64.b64encode(sig).decode(),
    }


async def _ws_rate(url: str, ticker: str, key: rsa.RSAPrivateKey) -> float:
    async with aiohttp.ClientSession() as session:
        headers = _sign(key, "GET", WS_PATH, int(time.time() * 1000))
        async with session.ws_connect(url + WS_PATH, headers=headers, max_msg_size=0) as ws:
            cmd = {"channels": ["orderbook_delta"], "market_tickers": [ticker]}
            await ws.send_str(json.dumps({"id": 1, "cmd": "subscribe", "params": cmd}))
            n, started = 0, None
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"socket ended: {msg.type!r}")
                frame = json.loads(msg.data)
                if frame["type"] == "error":
                    raise RuntimeError(f"server error: {frame}")
                if frame["type"] != "orderbook_delta":
                    continue
                if started is None:
                    started = time.perf_counter()
                    continue
                n += 1
                elapsed = time.perf_counter() - started
                if elapsed >= SECONDS:
                    return n / elapsed


async def _rest_rate(url: str, ticker: str, key: rsa.RSAPrivateKey) -> tuple[float, int]:
    path = f"/trade-api/v2/markets/{ticker}/orderbook"
    now = int(time.time() * 1000)
    signed = [_sign(key, "GET", path, now + i % 1000) for i in range(REST_REQUESTS)]
    failures = 0

    async def worker(session: aiohttp.ClientSession, mine: list[dict[str, str]]) -> None:
        nonlocal failures
        for headers in mine:
            async with session.get(url + path, headers=headers) as r:
                await r.read()
                failures += r.status != 200

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session, signed[i::CONCURRENCY]) for i in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return REST_REQUESTS / elapsed, failures


def _odds_pull_ms() -> tuple[float, float]:
    from kmm_interactive.sim.clock import VirtualClock
    from kmm_interactive.sim.odds_server import OddsFeed
    from kmm_interactive.sim.scenario import build_scenario

    now = time.time()
    scenario = build_scenario("default", n_games=200, seed=1, now=now, speed=60.0)
    clock = VirtualClock(now + 60)
    feed = OddsFeed(scenario, clock, seed=1)
    sports = sorted({g.sport.odds_sport for g in scenario.games if g.sport.odds_sport})

    def pull() -> float:
        started = time.perf_counter()
        for sport in sports:
            feed.odds(sport, regions="us,eu")
        return (time.perf_counter() - started) * 1000

    cold, warm = [], []
    for _ in range(3):
        clock.advance(10.0)  # 600 scenario seconds: every book has re-priced
        cold.append(pull())
        warm.append(pull())
    return min(cold), min(warm)


def main() -> int:
    print(__doc__.split("\n\n")[0])
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    from cryptography.hazmat.primitives import serialization

    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ready_r, ready_w = mp.Pipe(duplex=False)
    stop_r, stop_w = mp.Pipe(duplex=False)
    proc = mp.get_context("spawn").Process(target=_serve, args=(pem, ready_w, stop_r))
    proc.start()
    try:
        url, ticker = ready_r.recv()
        rest, failures = asyncio.run(_rest_rate(url, ticker, key))
        ws = asyncio.run(_ws_rate(url, ticker, key))
    finally:
        stop_w.send(True)
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    ok_ws, ok_rest = ws >= WS_TARGET, rest >= REST_TARGET and failures == 0
    print(f"{'measure':<34} {'value':>10} {'target':>10} {'ratio':>7}")
    for name, value, target in (
        ("WS orderbook_delta msgs/s, 1 client", ws, WS_TARGET),
        ("REST GET orderbook req/s", rest, REST_TARGET),
    ):
        print(f"{name:<34} {value:>10,.0f} {target:>10,.0f} {value / target:>6.1f}x")
    if failures:
        print(f"{failures} REST requests failed")
    # No reference for these two: nothing else in this run carries the same load.
    benchkit.goal(
        "WS orderbook_delta to 1 client", ws, "msgs/s",
        target=f">= {WS_TARGET:,.0f} msgs/s", passed=ok_ws,
    )  # fmt: skip
    benchkit.goal(
        "REST GET orderbook, 16 clients", rest, "req/s",
        target=f">= {REST_TARGET:,.0f} req/s, none failed", passed=ok_rest,
    )  # fmt: skip
    cold, warm = _odds_pull_ms()
    print(f"{'odds /odds, 6 sports x 200 games, cold':<34} {cold:>8.0f} ms")
    print(f"{'odds /odds, 6 sports x 200 games, warm':<34} {warm:>8.0f} ms")
    verdict = {True: "met", False: "MISSED"}
    print(f"\nWS target -> {verdict[ok_ws]}; REST target -> {verdict[ok_rest]}")
    return 0 if ok_ws and ok_rest else 1


if __name__ == "__main__":
    sys.exit(main())
