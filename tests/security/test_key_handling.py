"""Keys come only from files and the environment, and no message, repr or log shows them:
a bad key file's errors (and their whole traceback), a Signer's repr, the Odds API key in
request URLs, and the entry points, none of which takes key text."""

from __future__ import annotations

import inspect
import json
import logging
import re
import traceback
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securitykit import assert_clean, material, new_key_id, pem_text, rsa_key

from kmm_interactive import cli, launch
from kmm_interactive.config import ConfigError, config_from_mapping, load_config
from kmm_interactive.kalshi.auth import CredentialsError, KalshiAuth, Signer
from kmm_interactive.odds.client import OddsClient, OddsError
from kmm_interactive.session import Session

ROOT = Path(__file__).resolve().parents[2]
KEY_ID = new_key_id()
ODDS_KEY = "c0ffee" + "5ecret" * 4 + "0dd5"
PEM = pem_text()
SECRETS = material(PEM, KEY_ID, ODDS_KEY)


def _everything(exc: BaseException) -> str:
    """What an exception can show: its str and repr, and the traceback with its chain."""
    return f"{exc}\n{exc!r}\n{''.join(traceback.format_exception(exc))}"


# --------------------------------------------------------------------------- the Signer


@pytest.mark.parametrize(
    "key_id", ["k", "abcd", "0123456789abcdef", KEY_ID, "x" * 128], ids=[1, 4, 16, 36, 128]
)
def test_a_signers_repr_shows_at_most_a_quarter_of_the_key_id(key_id: str) -> None:
    signer = Signer(key_id, rsa_key())
    for text in (repr(signer), str(signer), repr(KalshiAuth(signer)), f"{signer!r:>200}"):
        shown = re.search(r"key_id='([^']*)'", text)
        assert shown is not None
        assert len(shown.group(1)) <= len(key_id) // 4
        assert len(key_id) < 4 or key_id not in text
        assert_clean(text, material(PEM), "a Signer's repr")


def _bad_files(tmp: Path) -> dict[str, str]:
    """Paths that cannot give a key, each as the value of KALSHI_PRIVATE_KEY_PATH."""
    cases: dict[str, str] = {}

    def write(name: str, content: str | bytes) -> str:
        path = tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    lines = PEM.splitlines()
    cases["missing"] = str(tmp / "nope.pem")
    cases["directory"] = str(tmp)
    cases["empty"] = write("empty.pem", "")
    cases["garbage"] = write("garbage.pem", "not a key\n" * 20)
    cases["truncated"] = write("truncated.pem", "\n".join(lines[: len(lines) // 2]))
    cases["corrupted"] = write("corrupted.pem", PEM.replace(lines[5], lines[5][::-1]))
    cases["body only"] = write("body.pem", "\n".join(lines[1:-1]))
    cases["public key"] = write(
        "public.pem",
        rsa_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    cases["encrypted"] = write(
        "encrypted.pem",
        rsa_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        ),
    )
    cases["not RSA"] = write(
        "ec.pem",
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    cases["too large"] = write("huge.pem", PEM * 60)
    cases["the PEM itself, pasted for its path"] = PEM
    cases["one PEM line, pasted for its path"] = lines[3]
    return cases


def test_a_bad_key_file_is_refused_without_showing_key_material(tmp_path: Path) -> None:
    for case, path in _bad_files(tmp_path).items():
        environ = {"KALSHI_API_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY_PATH": path}
        for load in (
            lambda: Signer.from_pem_file(KEY_ID, path),  # noqa: B023 (called at once)
            lambda: Signer.from_env(environ=environ),  # noqa: B023
            lambda: launch.live_connection(config_from_mapping({}), "demo", environ=environ),  # noqa: B023
        ):
            with pytest.raises(CredentialsError) as caught:
                load()
            error = caught.value  # no chained exception may carry the PEM's bytes along
            assert error.__cause__ is None
            assert error.__context__ is None or error.__suppress_context__
            assert_clean(_everything(caught.value), SECRETS, f"the error for {case}")


def test_connection_details_with_a_bad_key_file_show_no_key(tmp_path: Path) -> None:
    for case, path in _bad_files(tmp_path).items():
        info = {
            "rest_url": "http://127.0.0.1:9/trade-api/v2",
            "ws_url": "ws://127.0.0.1:9/trade-api/ws/v2",
            "key_id": KEY_ID,
            "private_key_path": path,
            "odds_url": "http://127.0.0.1:9",
            "odds_api_key": ODDS_KEY,
        }
        with pytest.raises(CredentialsError) as caught:
            launch.connection_from_info(info)
        assert_clean(_everything(caught.value), SECRETS, f"the error for {case}")


def test_kmm_run_with_a_bad_key_says_so_on_stderr_without_the_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_internet: list[Any],
) -> None:
    monkeypatch.setenv("KALSHI_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("ODDS_API_KEY", ODDS_KEY)
    for case, path in _bad_files(tmp_path).items():
        monkeypatch.setenv("KALSHI_PRIVATE_KEY_PATH", path)
        assert cli.main(["run", "--env", "demo", "--seconds", "1"]) == 2, case
        out, err = capsys.readouterr()
        assert err.startswith("kmm: error: ")
        assert_clean(out + err, SECRETS, f"kmm run's output for {case}")
    assert no_internet == []


# --------------------------------------------------------------------------- where keys come from


def _parameters(fn: Any) -> set[str]:
    return set(inspect.signature(fn).parameters)


KEYISH = re.compile(r"key|secret|pem|token|password|credential", re.I)


def test_no_entry_point_takes_key_text() -> None:
    for fn in (Session.live, Session.from_config, Session.demo, launch.live_connection):
        assert not {p for p in _parameters(fn) if KEYISH.search(p)}, fn.__qualname__
    parser = cli.build_parser()
    options = [
        option
        for commands in parser._subparsers._group_actions  # type: ignore[union-attr]
        for sub in commands.choices.values()  # type: ignore[union-attr]
        for action in sub._actions
        for option in action.option_strings
    ]
    assert "--env" in options
    assert not [o for o in options if KEYISH.search(o)]


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("exchange", "private_key", PEM),
        ("exchange", "key_id", KEY_ID),
        ("exchange", "api_key_id", KEY_ID),
        ("exchange", "private_key_path", "/home/me/kalshi.pem"),
        ("odds", "api_key", ODDS_KEY),
    ],
    ids=["pem", "key id", "api key id", "key path", "odds key"],
)
def test_a_configuration_file_cannot_hold_keys(section: str, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{section}.{key}.*unknown key"):
        config_from_mapping({section: {key: value}})


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("exchange", "private_key", PEM),
        ("exchange", "key_id_env", KEY_ID),  # the key id where its variable's name belongs
        ("odds", "api_key", ODDS_KEY),
    ],
    ids=["pem", "key id for its variable's name", "odds key"],
)
def test_a_refused_configuration_value_is_not_printed_back(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    path = tmp_path / "kmm.toml"
    path.write_text(f"[{section}]\n{key} = {json.dumps(value)}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert_clean(_everything(caught.value), SECRETS, "the configuration error")


def test_the_shipped_configuration_and_notebooks_name_variables_only() -> None:
    config = load_config(ROOT / "kmm.toml")
    names = (
        config.exchange.key_id_env,
        config.exchange.private_key_path_env,
        config.odds.api_key_env,
    )
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", n) for n in names)
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert "PRIVATE KEY" not in code, notebook.name
        assert not re.search(r"os\.environ\[[^]]*\]\s*=|os\.environ\.update|putenv", code)
        assert not re.search(r"from_pem_text|Signer\(|api_key\s*=", code), notebook.name


# --------------------------------------------------------------------------- the Odds API key


async def _fail_with(handler: Any) -> OddsError:
    transport = httpx.MockTransport(handler)
    async with OddsClient(
        "https://odds.test", ODDS_KEY, bookmakers=["pinnacle"], max_retries=0, transport=transport
    ) as client:
        with pytest.raises(OddsError) as caught:
            await client.odds("basketball_nba")
        result = await client.pull("basketball_nba")
        assert_clean(repr(result) + repr(client), SECRETS, "a pull result")
    return caught.value


def _echo_in_reason(request: httpx.Request) -> httpx.Response:
    return httpx.Response(502, extensions={"reason_phrase": f"bad {request.url}".encode()})


def _redirect_to_itself(request: httpx.Request) -> httpx.Response:
    return httpx.Response(302, headers={"Location": str(request.url)}, text=f"see {request.url}")


def _echo_in_json(request: httpx.Request) -> httpx.Response:
    body = {"message": f"{request.url}", "error_code": "X", "details_url": f"{request.url}"}
    return httpx.Response(400, json=body)


def _connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"cannot reach {request.url}", request=request)


def _too_many_redirects(request: httpx.Request) -> httpx.Response:
    raise httpx.TooManyRedirects(f"loop at {request.url}", request=request)


@pytest.mark.parametrize(
    "handler",
    [_echo_in_reason, _redirect_to_itself, _echo_in_json, _connect_error, _too_many_redirects],
)
async def test_odds_api_failures_show_no_key_in_errors_or_logs(
    handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    error = await _fail_with(handler)
    assert_clean(_everything(error), SECRETS, "the error")
    logged = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
    )  # fmt: skip
    assert "apiKey=***" in logged  # the request line was logged, redacted
    assert_clean(logged, SECRETS, "the log")


async def test_a_closed_port_fails_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with OddsClient(
        "http://127.0.0.1:1", ODDS_KEY, bookmakers=["pinnacle"], max_retries=1,
        retry_base=0.01, retry_cap=0.01,
    ) as client:  # fmt: skip
        with pytest.raises(OddsError) as caught:
            await client.odds("basketball_nba")
    assert_clean(_everything(caught.value), SECRETS, "the error")
    assert_clean(caplog.text, SECRETS, "the log")
