"""The one rule for every embedded server: listen on 127.0.0.1 only (port 0 = any free port)."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

LOOPBACK: Final = "127.0.0.1"


async def listen(
    app: web.Application, *, host: str = LOOPBACK, port: int = 0, **runner_options: Any
) -> tuple[web.AppRunner, int]:
    """Start ``app`` on loopback; returns the runner (``cleanup()`` stops it) and the port."""
    if host != LOOPBACK:
        raise ValueError(f"host {host!r}: the embedded servers bind {LOOPBACK} only")
    runner = web.AppRunner(app, shutdown_timeout=1.0, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = [a[1] for a in runner.addresses if isinstance(a, tuple)]
    return runner, int(bound[0]) if bound else port
