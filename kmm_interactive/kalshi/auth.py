"""Kalshi request signing: RSA-PSS/SHA-256 over ``timestamp_ms + METHOD + path``.

``path`` is the URL path from the root, including ``/trade-api/v2`` (or ``/trade-api/ws/v2``
for the WebSocket upgrade) and excluding the query string; the PSS salt is as long as the
digest (32 bytes). Three headers carry the result: ``KALSHI-ACCESS-KEY``,
``KALSHI-ACCESS-TIMESTAMP`` (milliseconds) and ``KALSHI-ACCESS-SIGNATURE`` (base64).

The private key comes from a PEM file or from an environment variable (either holding the
path, or holding the PEM text itself). Failure semantics: :class:`CredentialsError` says
which file or variable was wrong and why, never the key material (a path that looks like
key text is not shown); the key object is held privately and appears in no repr, which
shows at most a quarter of the key id. :class:`RedactSignedHeaders` keeps the signed headers'
values out of logs (the WebSocket library logs its handshake headers at DEBUG).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import time
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_HEADER: Final = "KALSHI-ACCESS-KEY"
TIMESTAMP_HEADER: Final = "KALSHI-ACCESS-TIMESTAMP"
SIGNATURE_HEADER: Final = "KALSHI-ACCESS-SIGNATURE"
_SIGNED_VALUE: Final = re.compile(rf"({KEY_HEADER}|{SIGNATURE_HEADER})(\W+)[^\s'\",)]+", re.I)
_PSS: Final = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
_MAX_PEM_BYTES: Final = 64 * 1024
_BASE64_RUN: Final = re.compile(r"[A-Za-z0-9+/=]{40,}")


class RedactSignedHeaders(logging.Filter):
    """Replaces the key id's and the signature's values in a log record with ``<redacted>``
    (the timestamp stays: it helps to read a clock skew)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SIGNED_VALUE.search(message):
            record.msg, record.args = _SIGNED_VALUE.sub(r"\1\2<redacted>", message), ()
        return True


class CredentialsError(ValueError):
    """The key id or private key could not be loaded (the message never holds key material)."""


def _load_private_key(pem: bytes, source: str) -> rsa.RSAPrivateKey:
    if len(pem) > _MAX_PEM_BYTES:
        raise CredentialsError(f"{source}: {len(pem)} bytes is too large for a PEM private key")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        # cryptography's messages describe the format problem, not the key's contents.
        kind = type(exc).__name__
        raise CredentialsError(
            f"{source}: not an unencrypted PEM private key ({kind}); "
            "Kalshi keys are downloaded as an RSA PRIVATE KEY PEM file"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialsError(f"{source}: the key is not an RSA key (Kalshi uses RSA)")
    return key


def _looks_like_key_text(value: str) -> bool:
    """A PEM, or its base64 body (40 or more base64 characters of mixed case and digits in
    a row), pasted where a path was due; or a value too long to be a path."""
    if "\n" in value or "-----" in value or "PRIVATE KEY" in value or len(value) > 1024:
        return True
    return any(
        re.search("[a-z]", run) and re.search("[A-Z]", run) and re.search("[0-9]", run)
        for run in _BASE64_RUN.findall(value)
    )


def _key_file_source(path: str) -> str:
    """How an error names a key file: by its path, unless the value looks like key text."""
    if _looks_like_key_text(path):
        return "private key file (the value given looks like key text, not a path: not shown)"
    return f"private key file {path!r}"


def _check_key_id(key_id: str, source: str) -> str:
    key_id = key_id.strip()
    if not key_id or len(key_id) > 128 or not key_id.isprintable():
        raise CredentialsError(f"{source}: the key id must be 1 to 128 printable characters")
    return key_id


def signing_path(url_or_path: str) -> str:
    """The part of a URL that is signed: the path from the root, without the query."""
    path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path.split("?", 1)[0]
    if not path.startswith("/"):
        raise ValueError(f"cannot sign {url_or_path!r}: the path must start with '/'")
    return path


class Signer:
    """Signs requests for one API key. Create with :meth:`from_pem_file` or :meth:`from_env`."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key_id: str, private_key: rsa.RSAPrivateKey) -> None:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise CredentialsError("the private key must be an RSA private key")
        self.key_id = _check_key_id(key_id, "key id")
        self._key = private_key

    @classmethod
    def from_pem_file(cls, key_id: str, path: str | os.PathLike[str]) -> Signer:
        source = _key_file_source(os.fspath(path))
        try:
            pem = Path(path).expanduser().read_bytes()
        except OSError as exc:
            raise CredentialsError(f"{source}: cannot be read ({exc.strerror})") from None
        except ValueError:  # a NUL in the path
            raise CredentialsError(f"{source}: cannot be read (not a valid path)") from None
        return cls(key_id, _load_private_key(pem, source))

    @classmethod
    def from_pem_text(cls, key_id: str, pem: str, source: str = "PEM text") -> Signer:
        return cls(key_id, _load_private_key(pem.encode(), source))

    @classmethod
    def from_env(
        cls,
        key_id_env: str = "KALSHI_API_KEY_ID",
        private_key_path_env: str = "KALSHI_PRIVATE_KEY_PATH",
        private_key_env: str = "KALSHI_PRIVATE_KEY",
        environ: Mapping[str, str] | None = None,
    ) -> Signer:
        """Key id from ``key_id_env``; the key from the PEM file named by
        ``private_key_path_env``, else from the PEM text in ``private_key_env``."""
        env = os.environ if environ is None else environ
        key_id = env.get(key_id_env, "")
        if not key_id.strip():
            raise CredentialsError(f"environment variable {key_id_env} (the API key id) is not set")
        key_id = _check_key_id(key_id, f"environment variable {key_id_env}")
        path = env.get(private_key_path_env, "").strip()
        if path:
            return cls.from_pem_file(key_id, path)
        pem = env.get(private_key_env, "")
        if pem.strip():
            return cls.from_pem_text(key_id, pem, f"environment variable {private_key_env}")
        raise CredentialsError(
            f"no private key: set {private_key_path_env} to the PEM file's path "
            f"(or {private_key_env} to the PEM text)"
        )

    def signature(self, timestamp_ms: int, method: str, path: str) -> str:
        message = f"{timestamp_ms}{method.upper()}{signing_path(path)}".encode()
        return base64.b64encode(self._key.sign(message, _PSS, hashes.SHA256())).decode()

    def headers(self, method: str, path: str, timestamp_ms: int | None = None) -> dict[str, str]:
        """The three KALSHI-ACCESS-* headers for one request (``path`` may carry a query)."""
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        return {
            KEY_HEADER: self.key_id,
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: self.signature(ts, method, path),
        }

    def __repr__(self) -> str:
        # A prefix tells keys apart; never more than a quarter of the id (none of a short one).
        return f"Signer(key_id={self.key_id[: min(8, len(self.key_id) // 4)]!r}…)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Signer holds a private key and cannot be pickled")


class KalshiAuth(httpx.Auth):
    """httpx auth flow that signs each request over the path exactly as it is sent."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.raw_path.decode("ascii").split("?", 1)[0]
        request.headers.update(self.signer.headers(request.method, path))
        yield request

    def __repr__(self) -> str:
        return f"KalshiAuth({self.signer!r})"
