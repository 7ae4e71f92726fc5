"""Helpers for the security tests: a key with the shape Kalshi hands out, and the pieces of
its material to search for (the ``no_internet`` fixture is in this directory's conftest)."""

from __future__ import annotations

import uuid
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_text(key: rsa.RSAPrivateKey | None = None) -> str:
    """The key as Kalshi hands it out ("RSA PRIVATE KEY", unencrypted)."""
    return (
        (key or rsa_key())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )


def new_key_id() -> str:
    return str(uuid.uuid4())


def material(pem: str, *others: str) -> dict[str, str]:
    """What must never show: 24-character pieces of every PEM body line (so that a line cut
    short is still caught), the PEM markers, and the other secrets given."""
    found: dict[str, str] = {}
    lines = [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]
    for i, line in enumerate(lines):
        for start in range(0, max(len(line) - 24, 0) + 1, 12):
            found[f"PEM line {i}[{start}:]"] = line[start : start + 24]
    found["PEM marker"] = "PRIVATE KEY-----"
    for i, other in enumerate(others):
        found[f"secret {i}"] = other
    return found


def assert_clean(text: str, secrets: dict[str, str], where: str) -> None:
    leaked = [name for name, secret in secrets.items() if secret in text]
    assert not leaked, f"{where} holds {', '.join(leaked)}"
