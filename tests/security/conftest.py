"""``no_internet``: any connection (or name lookup) for a host other than this machine fails
the call and is listed, so a test can show that nothing tried to leave."""

from __future__ import annotations

import socket
from typing import Any

import pytest

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _local(address: Any) -> bool:
    return not isinstance(address, tuple) or address[0] in LOOPBACK  # AF_UNIX paths are local


@pytest.fixture
def no_internet(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    tried: list[Any] = []
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def refuse(what: Any) -> OSError:
        tried.append(what)
        return OSError(f"test: nothing may leave this machine ({what!r})")

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if not _local(address):
            raise refuse(address)
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if not _local(address):
            raise refuse(address)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in LOOPBACK:
            raise refuse(name)
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return tried
