"""Errors from the Kalshi REST API, with the exchange's code and message read from any body shape.

Kalshi answers errors in three shapes (reference/apis.md §1.4.6): the spec's flat
``{"code", "message", "details"}``, the nested ``{"error": {"code", "message", ...}}`` seen
on the V2 order endpoints, and the 429 body ``{"error": "too many requests"}``; proxies may
answer with HTML or nothing. :func:`error_from_response` reads all of them and never fails,
not even on a body nested too deep to decode.

Failure semantics: a :class:`KalshiError` says which call failed (method and path, never the
query, headers or signature) and what the exchange said. Subclasses say how to react:
:class:`RateLimited` (429: the request was refused whole and changed nothing),
:class:`ServerError` (5xx) and :class:`TransportError` (timeout, connection) are transient
and may or may not have been applied; :class:`AuthFailed` (401/403) will not go away by
retrying.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

_MAX_TEXT: Final = 300
#: Kalshi's codes are short identifiers; a longer "code" is clipped like any other text.
_MAX_CODE: Final = 64


def _clip(value: object, limit: int = _MAX_TEXT) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, default=str)
        except (ValueError, RecursionError):  # circular or too deeply nested
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "…"


class KalshiError(Exception):
    """A request the exchange refused, or one whose outcome could not be learned.

    ``status`` is the HTTP status (None when no response came back, or for one item of a
    batch, whose status Kalshi does not report); ``code`` is Kalshi's error code
    (``order_already_exists``, ``MARKET_INACTIVE``, …) or a client-side code such as
    ``timeout``.
    """

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        details: str = "",
        *,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.method = method
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method else ""
        status = f"HTTP {self.status} " if self.status is not None else ""
        details = f" ({_clip(self.details)})" if self.details else ""
        return f"{where}{status}{self.code}: {_clip(self.message)}{details}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status!r}, {self.code!r}, {_clip(self.message)!r})"

    @property
    def is_transient(self) -> bool:
        """Worth retrying later: rate limited, a server error, or no answer at all."""
        return isinstance(self, RateLimited | ServerError | TransportError)


class RateLimited(KalshiError):
    """429: the token bucket was short; the request was refused whole and changed nothing."""


class ServerError(KalshiError):
    """5xx: the exchange failed; a write may or may not have been applied."""


class TransportError(KalshiError):
    """No response (timeout, refused or dropped connection); a write may have been applied."""

    @property
    def timed_out(self) -> bool:
        return self.code == "timeout"


class AuthFailed(KalshiError):
    """401/403: the key, signature, timestamp or scope was refused; retrying will not help."""


def _read_body(body: bytes) -> tuple[str, str, str]:
    """(code, message, details) from any of Kalshi's error shapes, or from a non-JSON body."""
    try:
        data: Any = json.loads(body.decode("utf-8", "replace")) if body else None
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the decoder goes
        data = None
    if not isinstance(data, Mapping):
        text = body.decode("utf-8", "replace").strip()
        return "", _clip(text) if text else "", ""
    return _read_data(data)


def _read_data(data: Mapping[str, Any]) -> tuple[str, str, str]:
    inner = data.get("error")
    if isinstance(inner, str):  # the documented 429 body: {"error": "too many requests"}
        return "", inner, ""
    if isinstance(inner, Mapping):
        data = inner
    code, message, details = data.get("code"), data.get("message"), data.get("details")
    return (
        _clip(code, _MAX_CODE) if isinstance(code, str) else "",
        message if isinstance(message, str) else "",
        _clip(details) if details not in (None, "") else "",
    )


def error_from_response(status: int, body: bytes, *, method: str, path: str) -> KalshiError:
    """The error for one non-2xx response; ``path`` must be given without its query."""
    code, message, details = _read_body(body)
    kind: type[KalshiError]
    if status == 429:
        kind, default = RateLimited, "too_many_requests"
    elif status >= 500:
        kind, default = ServerError, "server_error"
    elif status in (401, 403):
        kind, default = AuthFailed, "unauthorized" if status == 401 else "forbidden"
    else:
        kind, default = KalshiError, f"http_{status}"
    return kind(
        status, code or default, message or f"HTTP {status}", details, method=method, path=path
    )


def error_from_item(value: object, *, method: str, path: str) -> KalshiError:
    """The per-item ``error`` object of a batch response (flat ``{code, message, details}``)."""
    # Wrapped as {"error": value} so that an object or a bare string both read as above.
    code, message, details = _read_data({"error": value})
    return KalshiError(
        None, code or "batch_item_failed", message or "refused", details, method=method, path=path
    )
