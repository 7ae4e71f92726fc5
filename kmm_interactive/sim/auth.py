"""Request authentication exactly as Kalshi checks it: RSA-PSS/SHA-256 over time, method, path.

The signed message is ``timestamp_ms + METHOD + path`` where ``path`` is the URL path from
the root (``/trade-api/v2/...``) without the query string; the salt length equals the digest
length. Headers: ``KALSHI-ACCESS-KEY``, ``KALSHI-ACCESS-TIMESTAMP`` (milliseconds),
``KALSHI-ACCESS-SIGNATURE`` (base64). Kalshi does not document its clock-skew window; we
allow ``WINDOW_MS`` either way and refuse a signature seen before inside that window
(a replay).

Failure semantics: :class:`AuthError` carries a message that says what was wrong; it never
contains the key material.

Demo key archive: when the environment variable ``KMM_DEMO_KEY_ARCHIVE`` names a directory,
every demo secret made here or by the embedded odds feed (:func:`archive_demo_secret`) is
also copied there, so that a test run can look for each one in everything it wrote
(``tests/artifact_guard.py``). Unset (the normal case), nothing is copied; set to a
directory that cannot be written, the key is refused with the ``OSError``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

WINDOW_MS: Final = 30_000
#: Timestamps below this many milliseconds are seconds sent by mistake (before 2001 in ms).
SECONDS_CUTOFF: Final = 1_000_000_000_000
KEY_HEADER: Final = "KALSHI-ACCESS-KEY"
TIMESTAMP_HEADER: Final = "KALSHI-ACCESS-TIMESTAMP"
SIGNATURE_HEADER: Final = "KALSHI-ACCESS-SIGNATURE"
#: The variable naming the demo key archive (see the module doc); tests set it.
ARCHIVE_ENV: Final = "KMM_DEMO_KEY_ARCHIVE"


class AuthError(Exception):
    """Why a request is not authenticated (the message is safe to show)."""


@dataclass(frozen=True)
class DemoKey:
    """A throwaway key pair for a demo account: the id, and where the private PEM was written."""

    key_id: str
    private_key_path: Path
    public_key: rsa.RSAPublicKey

    def __repr__(self) -> str:
        return f"DemoKey(key_id={self.key_id!r}, private_key_path={str(self.private_key_path)!r})"


def archive_demo_secret(kind: str, **material: str) -> None:
    """Copy a demo secret into the directory named by ``KMM_DEMO_KEY_ARCHIVE`` (one JSON
    file of ``kind`` and ``material``, mode 0600, written whole or not at all); nothing when
    the variable is unset. An ``OSError`` (the directory cannot be written) is raised."""
    directory = os.environ.get(ARCHIVE_ENV, "").strip()
    if not directory:
        return
    target = Path(directory)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{kind}-{os.getpid()}-{secrets.token_hex(8)}"
    partial = target / f".{name}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"kind": kind, **material}, f)
    os.replace(partial, target / f"{name}.json")  # the guard never reads half a record


def write_demo_key(directory: Path, key_id: str) -> DemoKey:
    """Generate an RSA key, write its private half as PEM (mode 0600) and return the pair
    (archived first when ``KMM_DEMO_KEY_ARCHIVE`` is set, see the module doc)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # Kalshi's "RSA PRIVATE KEY" format
        serialization.NoEncryption(),
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "demo-key.pem"
    archive_demo_secret(
        "demo-key", key_id=key_id, pem=pem.decode("ascii"), private_key_path=str(path.resolve())
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return DemoKey(key_id, path, private.public_key())


class Verifier:
    """Registered public keys and the signatures seen recently (to refuse replays)."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[rsa.RSAPublicKey, str]] = {}
        self._seen: OrderedDict[bytes, int] = OrderedDict()

    def register(self, key_id: str, public_key: rsa.RSAPublicKey, user_id: str) -> None:
        self._keys[key_id] = (public_key, user_id)

    def verify(self, headers: Mapping[str, str], method: str, path: str, now_ms: int) -> str:
        """The user id the request is signed for; :class:`AuthError` otherwise."""
        key_id = headers.get(KEY_HEADER)
        stamp = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        missing = [
            name
            for name, value in (
                (KEY_HEADER, key_id),
                (TIMESTAMP_HEADER, stamp),
                (SIGNATURE_HEADER, signature),
            )
            if not value
        ]
        if missing:
            raise AuthError(f"missing header(s): {', '.join(missing)}")
        assert key_id is not None
        assert stamp is not None
        assert signature is not None
        if key_id not in self._keys:
            raise AuthError("unknown API key id")
        if not re.fullmatch(r"[0-9]{1,16}", stamp):
            raise AuthError(f"{TIMESTAMP_HEADER} must be Unix time in milliseconds (digits)")
        ts = int(stamp)
        if ts < SECONDS_CUTOFF:
            raise AuthError(f"{TIMESTAMP_HEADER} looks like seconds; milliseconds are required")
        if abs(now_ms - ts) > WINDOW_MS:
            raise AuthError(
                f"{TIMESTAMP_HEADER} is {abs(now_ms - ts) / 1000:.1f} s away from the server "
                f"clock (allowed: {WINDOW_MS // 1000} s)"
            )
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise AuthError(f"{SIGNATURE_HEADER} is not base64") from None
        public_key, user_id = self._keys[key_id]
        message = f"{stamp}{method.upper()}{path}".encode()
        try:
            public_key.verify(
                raw,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise AuthError(
                "signature does not match timestamp + method + path (path without the query)"
            ) from None
        self._remember(raw, ts, now_ms)
        return user_id

    def _remember(self, signature: bytes, ts: int, now_ms: int) -> None:
        while self._seen:
            oldest, seen_ts = next(iter(self._seen.items()))
            if seen_ts >= now_ms - 2 * WINDOW_MS:
                break
            del self._seen[oldest]
        if signature in self._seen:
            raise AuthError("this signature was already used (replayed request)")
        self._seen[signature] = ts
