"""Production needs env "prod" and a confirmation, never a default: through launch, the
session, the command line and a configuration file that says prod. The refusal comes before
any key is read or any host contacted (nothing here may leave the machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from securitykit import new_key_id, pem_text

from kmm_interactive import cli, launch
from kmm_interactive.config import KALSHI_ENDPOINTS, Config, config_from_mapping, load_config
from kmm_interactive.kalshi.auth import Signer
from kmm_interactive.session import Session

PROD_TOML = '[exchange]\nenv = "prod"\n'


class WatchedEnviron(Mapping[str, str]):
    """An environment that records every variable read."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: list[str] = []

    def __getitem__(self, name: str) -> str:
        self.read.append(name)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A usable key in the environment (so that only the gate can stop a run)."""
    pem = tmp_path / "kalshi.pem"
    pem.write_text(pem_text())
    values = {
        "KALSHI_API_KEY_ID": new_key_id(),
        "KALSHI_PRIVATE_KEY_PATH": str(pem),
        "ODDS_API_KEY": "0" * 32,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def no_key_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a key fails the test outright (an AssertionError no caller catches)."""

    def read(*_: Any, **__: Any) -> Signer:
        raise AssertionError("a key was read")

    for name in ("from_env", "from_pem_file", "from_pem_text"):
        monkeypatch.setattr(Signer, name, read)


def prod_config(**exchange: str) -> Config:
    return config_from_mapping({"exchange": {"env": "prod", **exchange}})


# --------------------------------------------------------------------------- launch


@pytest.mark.parametrize("confirm", [False, None, 1, "yes", "false", [True]])
def test_prod_is_refused_unless_confirmed_with_true_itself(
    keys: dict[str, str], confirm: Any, no_internet: list[Any]
) -> None:
    for config, env in ((Config(), "prod"), (prod_config(), None), (prod_config(), "prod")):
        environ = WatchedEnviron(keys)
        with pytest.raises(ValueError, match=r"env 'prod' trades real money.*confirm_prod=True"):
            launch.live_connection(config, env, confirm_prod=confirm, environ=environ)
        assert environ.read == []  # no key (nor even its variable's name) was read
    assert no_internet == []


def test_a_confirmed_prod_connection_reads_the_keys_and_contacts_nothing(
    keys: dict[str, str], no_internet: list[Any]
) -> None:
    for config, env in ((Config(), "prod"), (prod_config(), None)):
        connection = launch.live_connection(config, env, confirm_prod=True)
        assert connection.env == "prod"
        prod = KALSHI_ENDPOINTS["prod"]
        assert (connection.rest_url, connection.ws_url) == (prod.rest, prod.ws)
        assert connection.signer.key_id == keys["KALSHI_API_KEY_ID"]
    assert no_internet == []


@pytest.mark.usefixtures("keys")
def test_an_explicit_demo_wins_over_a_file_that_says_prod() -> None:
    elections = "api.elections.kalshi.com/trade-api"
    config = prod_config(rest_url=f"https://{elections}/v2", ws_url=f"wss://{elections}/ws/v2")
    connection = launch.live_connection(config, "demo")
    demo = KALSHI_ENDPOINTS["demo"]
    assert (connection.env, connection.rest_url, connection.ws_url) == ("demo", demo.rest, demo.ws)


@pytest.mark.parametrize(
    "host", ["api.elections.kalshi.com", "external-api.kalshi.com", "KALSHI.COM", "x.kalshi.com."]
)
def test_demo_pointed_at_a_production_host_is_refused(keys: dict[str, str], host: str) -> None:
    config = config_from_mapping(
        {
            "exchange": {
                "env": "demo",
                "rest_url": f"https://{host}/trade-api/v2",
                "ws_url": f"wss://{host}/trade-api/ws/v2",
            }
        }
    )
    environ = WatchedEnviron(keys)
    with pytest.raises(ValueError, match="env 'demo' points at a production host"):
        launch.live_connection(config, environ=environ)
    assert environ.read == []


@pytest.mark.usefixtures("keys")
def test_demo_on_its_own_hosts_is_allowed() -> None:
    host = "demo-api.kalshi.co"
    config = config_from_mapping(
        {
            "exchange": {
                "env": "demo",
                "rest_url": f"https://{host}/trade-api/v2",
                "ws_url": f"wss://{host}/trade-api/ws/v2",
            }
        }
    )
    assert launch.live_connection(config).rest_url == f"https://{host}/trade-api/v2"


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize("env", ["PROD", "production", " prod", "live", "embedded"])
def test_no_other_spelling_reaches_a_live_host(env: str) -> None:
    with pytest.raises(ValueError, match="a live connection is to 'demo' or 'prod'"):
        launch.live_connection(Config(), env, confirm_prod=True)


def test_connection_details_must_name_this_machine(tmp_path: Path) -> None:
    prod = KALSHI_ENDPOINTS["prod"]
    key = tmp_path / "k.pem"
    key.write_text(pem_text())
    info = {"key_id": new_key_id(), "private_key_path": str(key)}
    local = {"rest_url": "http://127.0.0.1:9/trade-api/v2", "ws_url": "ws://127.0.0.1:9/x"}
    for name, url in (("rest_url", prod.rest), ("ws_url", prod.ws), ("odds_url", "https://a.b")):
        with pytest.raises(ValueError, match=f"{name} is on .*, not this machine"):
            launch.connection_from_info({**info, **local, name: url})
    assert launch.connection_from_info({**info, **local}).rest_url == local["rest_url"]


# --------------------------------------------------------------------------- the session


@pytest.mark.usefixtures("keys", "no_key_reads")
def test_session_live_and_from_config_need_prod_confirmed(
    tmp_path: Path, no_internet: list[Any]
) -> None:
    path = tmp_path / "prod.toml"
    path.write_text(PROD_TOML)
    journal = tmp_path / "journal.sqlite"
    for make in (
        lambda: Session.live(Config(), env="prod", journal=journal),
        lambda: Session.live(path, env="prod", journal=journal),
        lambda: Session.live(path, env=None, journal=journal),  # type: ignore[arg-type]
        lambda: Session.from_config(path, journal=journal),
        lambda: Session.from_config(path, journal=journal, confirm_prod="yes"),
    ):
        with pytest.raises(ValueError, match="confirm"):
            make()
    assert not journal.exists()
    assert no_internet == []


@pytest.mark.usefixtures("keys")
def test_a_confirmed_session_is_prod_and_connects_only_when_started(
    tmp_path: Path, no_internet: list[Any]
) -> None:
    path = tmp_path / "prod.toml"
    path.write_text(PROD_TOML)
    s = Session.from_config(path, journal=None, confirm_prod=True)
    assert s.env == "prod"
    default = Session.live(path, journal=None)  # the file says prod; the default is demo
    assert default.env == "demo"
    assert no_internet == []


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--env", "prod", "--seconds", "1"],
        ["run", "--config", "{prod}", "--seconds", "1"],
        ["run", "--config", "{prod}", "--env", "prod"],
    ],
)
@pytest.mark.usefixtures("keys", "no_key_reads")
def test_kmm_run_prod_without_confirm_exits_2_before_keys_or_hosts(
    argv: list[str],
    tmp_path: Path,
    no_internet: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "prod.toml"
    path.write_text(PROD_TOML)

    def nothing_may_run(*_: Any, **__: Any) -> Any:
        raise AssertionError("something was started")

    monkeypatch.setattr(launch, "run_headless", nothing_may_run)
    monkeypatch.setattr(launch, "EmbeddedExchange", nothing_may_run)
    code = cli.main([a.format(prod=path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("kmm: error: env 'prod' trades real money")
    assert "--confirm-prod" in err
    assert no_internet == []


@pytest.mark.usefixtures("keys", "no_key_reads")
def test_kmm_run_connect_is_not_a_way_around_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    details = tmp_path / "exchange.json"
    details.write_text("{}")
    assert cli.main(["run", "--env", "prod", "--connect", str(details)]) == 2
    assert "--connect trades an exchange `kmm sim` started on this machine" in (
        capsys.readouterr().err
    )


def test_kmm_run_prod_reads_no_key_even_from_a_fifo(tmp_path: Path) -> None:
    """Black box: the key "file" is a FIFO nobody writes to, so reading it would hang."""
    fifo = tmp_path / "key.pem"
    os.mkfifo(fifo)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KALSHI_API_KEY_ID", "KALSHI_PRIVATE_KEY_PATH", "ODDS_API_KEY")
    }
    env |= {"KALSHI_API_KEY_ID": new_key_id(), "KALSHI_PRIVATE_KEY_PATH": str(fifo)}
    env["HTTPS_PROXY"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"  # were it to try: nowhere
    out = subprocess.run(
        [sys.executable, "-m", "kmm_interactive", "run", "--env", "prod", "--seconds", "1"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "--confirm-prod" in out.stderr
    assert out.stdout == ""


def test_the_shipped_configuration_is_not_prod() -> None:
    root = Path(__file__).resolve().parents[2]
    assert load_config(root / "kmm.toml").exchange.env != "prod"
    assert Config().exchange.env == "embedded"
    run = next(
        a for a in cli.build_parser()._subparsers._group_actions[0].choices["run"]._actions  # type: ignore[union-attr]
        if "--env" in a.option_strings
    )  # fmt: skip
    assert run.default is None  # the configuration's env, itself embedded by default
