"""The request signer: signatures verify with the public key, keys load safely, never leak."""

from __future__ import annotations

import base64
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from kmm_interactive.kalshi.auth import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CredentialsError,
    KalshiAuth,
    Signer,
    signing_path,
)

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption(),
).decode()
PEM_BODY = PEM.splitlines()[1]  # a line of the base64 key material


def verify(headers: Mapping[str, str], method: str, path: str) -> None:
    """Check a signature exactly as Kalshi documents it (raises InvalidSignature if wrong)."""
    message = f"{headers[TIMESTAMP_HEADER]}{method}{path}".encode()
    KEY.public_key().verify(
        base64.b64decode(headers[SIGNATURE_HEADER]),
        message,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize(
    ("url", "signed"),
    [
        ("/trade-api/v2/portfolio/balance", "/trade-api/v2/portfolio/balance"),
        ("/trade-api/v2/portfolio/orders?limit=5&cursor=abc", "/trade-api/v2/portfolio/orders"),
        (
            "https://external-api.kalshi.com/trade-api/v2/portfolio/events/orders/o-1?subaccount=0",
            "/trade-api/v2/portfolio/events/orders/o-1",
        ),
        ("wss://external-api-ws.kalshi.com/trade-api/ws/v2", "/trade-api/ws/v2"),
    ],
)
def test_signature_verifies_over_the_path_without_the_query(method, url, signed):
    signer = Signer("key-1", KEY)
    headers = signer.headers(method, url, timestamp_ms=1_703_123_456_789)
    assert headers[KEY_HEADER] == "key-1"
    assert headers[TIMESTAMP_HEADER] == "1703123456789"
    verify(headers, method, signed)
    with pytest.raises(InvalidSignature):
        verify(headers, method, url.split("://", 1)[-1] if "?" in url else signed + "x")


def test_method_is_signed_in_upper_case_and_timestamp_in_milliseconds():
    headers = Signer("k", KEY).headers("get", "/trade-api/v2/markets")
    verify(headers, "GET", "/trade-api/v2/markets")
    assert len(headers[TIMESTAMP_HEADER]) == 13  # milliseconds, not seconds


async def test_httpx_auth_signs_the_path_as_sent():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    auth = KalshiAuth(Signer("key-1", KEY))
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler), auth=auth, base_url="http://x/trade-api/v2"
    ) as client:
        await client.get("/portfolio/orders", params={"ticker": "A B", "limit": 5})
        await client.post("/portfolio/events/orders", json={"ticker": "T"})
        await client.delete("/portfolio/events/orders/o%2F1")
    paths = ["/trade-api/v2/portfolio/orders", "/trade-api/v2/portfolio/events/orders"]
    paths.append("/trade-api/v2/portfolio/events/orders/o%2F1")  # raw, as it went out
    for request, path in zip(seen, paths, strict=True):
        verify(request.headers, request.method, path)


def test_keys_load_from_a_file_and_from_the_environment(tmp_path: Path):
    pem_file = tmp_path / "kalshi.pem"
    pem_file.write_text(PEM)
    from_file = Signer.from_pem_file("id-1", pem_file)
    verify(from_file.headers("GET", "/p"), "GET", "/p")
    env = {"KALSHI_API_KEY_ID": "id-2", "KALSHI_PRIVATE_KEY_PATH": str(pem_file)}
    assert Signer.from_env(environ=env).key_id == "id-2"
    inline = Signer.from_env(environ={"KALSHI_API_KEY_ID": "id-3", "KALSHI_PRIVATE_KEY": PEM})
    verify(inline.headers("POST", "/q"), "POST", "/q")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, r"KALSHI_API_KEY_ID \(the API key id\) is not set"),
        ({"KALSHI_API_KEY_ID": "k"}, "no private key: set KALSHI_PRIVATE_KEY_PATH"),
        (
            {"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY_PATH": "/nonexistent/key.pem"},
            "cannot be read",
        ),
        (
            {"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY": PEM.replace("A", "B", 40)},
            "not an unencrypted PEM private key",
        ),
        ({"KALSHI_API_KEY_ID": "k\n\x00", "KALSHI_PRIVATE_KEY": PEM}, "printable characters"),
    ],
)
def test_bad_credentials_say_what_is_wrong_without_key_material(environ, message):
    with pytest.raises(CredentialsError, match=message) as info:
        Signer.from_env(environ=environ)
    assert PEM_BODY not in str(info.value)
    assert "PRIVATE KEY-----" not in str(info.value)


def test_a_non_rsa_key_is_refused():
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(CredentialsError, match="not an RSA key"):
        Signer.from_pem_text("k", ec_pem)


def test_the_key_never_shows(caplog):
    signer = Signer.from_pem_text("0123456789abcdef", PEM)
    auth = KalshiAuth(signer)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").debug("signer %r auth %r %s", signer, auth, signer)
    for text in (repr(signer), repr(auth), str(signer), caplog.text):
        assert PEM_BODY not in text
        assert "0123456789abcdef" not in text  # only a prefix of the id is shown
    assert not hasattr(signer, "__dict__")  # no vars() dump of the key
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(signer)


def test_signing_path_needs_an_absolute_path():
    assert signing_path("https://h/trade-api/v2/x?y=1") == "/trade-api/v2/x"
    with pytest.raises(ValueError, match="must start with '/'"):
        signing_path("trade-api/v2/x")


@pytest.mark.parametrize(
    ("msg", "args", "shown"),
    [
        ("> %s: %s", ("KALSHI-ACCESS-KEY", "0b6e-key-id"), "> KALSHI-ACCESS-KEY: <redacted>"),
        (
            "> %s: %s",
            ("kalshi-access-signature", "ab+/c=="),
            "> kalshi-access-signature: <redacted>",
        ),
        (
            "h %r",
            ({"KALSHI-ACCESS-SIGNATURE": "sig=="},),
            "h {'KALSHI-ACCESS-SIGNATURE': '<redacted>'}",
        ),
        (
            "> %s: %s",
            ("KALSHI-ACCESS-TIMESTAMP", "1700000000000"),
            "> KALSHI-ACCESS-TIMESTAMP: 1700000000000",
        ),
    ],
)
def test_log_records_show_no_signed_header_value(msg, args, shown):
    import logging

    from kmm_interactive.kalshi.auth import RedactSignedHeaders

    record = logging.LogRecord("websockets.client", logging.DEBUG, __file__, 1, msg, args, None)
    assert RedactSignedHeaders().filter(record) is True
    assert record.getMessage() == shown
