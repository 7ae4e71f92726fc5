"""Helpers for the embedded-exchange tests: a live server and signed clients.

The signing here is written from Kalshi's documentation, independently of both the
simulator and the client package, so a test that passes means the server follows the doc.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from speckit import validate_rest, validate_ws

from kmm_interactive.sim.exchange import Exchange
from kmm_interactive.sim.faults import Faults
from kmm_interactive.sim.server import KalshiServer, RunningServer

__all__ = ["validate_rest", "validate_ws"]


def sign(
    key: rsa.RSAPrivateKey, key_id: str, method: str, path: str, ts_ms: int | None = None
) -> dict[str, str]:
    ts = str(ts_ms if ts_ms is not None else int(time.time() * 1000))
    signature = key.sign(
        f"{ts}{method}{path}".encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
    return {
        "KALSHI-ACCESS-KEY": key_id,
        "KALSHI-ACCESS-TIMESTAMP": ts,
        "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode(),
    }


@dataclass
class SignedClient:
    """A minimal signed REST/WS client for one account (tests only)."""

    session: aiohttp.ClientSession
    base: str  # http://127.0.0.1:PORT
    key_id: str
    key: rsa.RSAPrivateKey

    async def call(
        self, method: str, path: str, body: Any = None, **params: Any
    ) -> tuple[int, Any]:
        full = f"/trade-api/v2{path}"
        headers = sign(self.key, self.key_id, method, full)
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        data = json.dumps(body) if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.base + full, params=query, data=data, headers=headers
        ) as r:
            text = await r.text()
            return r.status, json.loads(text) if text else None

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **params)

    async def ws(self, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        path = "/trade-api/ws/v2"
        return await self.session.ws_connect(
            self.base + path, headers=sign(self.key, self.key_id, "GET", path), **kwargs
        )


@dataclass
class World:
    exchange: Exchange
    server: KalshiServer
    running: RunningServer
    faults: Faults
    alice: SignedClient
    bob: SignedClient
    session: aiohttp.ClientSession

    @property
    def nba(self) -> str:
        return next(t for t in self.exchange.markets if t.startswith("KXNBAGAME"))

    @property
    def epl_event(self) -> str:
        return next(e for e in self.exchange.events if e.startswith("KXEPLGAME"))


@cache
def test_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return tuple(  # type: ignore[return-value]
        rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)
    )
