"""The repository's own rules: one dependency list, layered imports, clean notebooks, the CLI."""

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from kmm_interactive import __version__
from kmm_interactive.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kmm_interactive"


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["test"]
    return {(r := Requirement(line)).name.lower(): str(r.specifier) for line in lines}


def _conda_requirements() -> dict[str, str]:
    found = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.fullmatch(r"  - ([A-Za-z0-9_.-]+)\s*([<>=!~].*)?", line)
        if match and match[1] not in ("python", "pip"):
            found[match[1].lower()] = str(Requirement(match[1] + (match[2] or "")).specifier)
    return found


def test_environment_yml_lists_the_same_packages_as_pyproject():
    assert _conda_requirements() == _pyproject_requirements()


# ------------------------------------------------------------------ layers

#: What each part of the package may import from the package (DESIGN.md §3).
LAYERS = {
    "domain": set(),
    "pricing": {"domain", "pricing"},
    "config": {"domain", "pricing"},
    # Positions and PnL kept from fills: pure accounting, shared by the engine and the lab.
    "ledger": {"domain", "ledger"},
    # The other side of the wire: beside kalshi/, never importing it. Its virtual-clock lab
    # runs the strategy's pure rules and keeps its positions with the ledger.
    "sim": {"domain", "pricing", "config", "ledger", "strategy", "sim"},
    # Wire I/O: the client never imports the simulator, and the odds side never the Kalshi side.
    "kalshi": {"domain", "pricing", "config", "kalshi"},
    "odds": {"domain", "pricing", "config", "odds"},
    # Pure decisions: no I/O, so nothing below pricing. Configuration is pure data; decide's
    # inputs are built from it.
    "strategy": {"domain", "pricing", "config", "strategy"},
    # The runtime drives the wire clients; it never imports the simulator.
    "engine": {"domain", "pricing", "config", "ledger", "strategy", "kalshi", "odds", "engine"},
    "cli": {"*"},
    # Connects the engine to an exchange: Kalshi's hosts, or the embedded one it starts.
    "launch": {"domain", "config", "kalshi", "engine", "sim", "launch"},
    # The notebook's object: the engine, where it trades, and (lazily) its dashboard.
    "session": {"domain", "config", "ledger", "engine", "launch", "ui"},
    # Widgets driven by the session; they read the engine's views and submit commands.
    "ui": {"domain", "pricing", "engine", "session", "ui"},
    "__init__": {"session"},
    # The quickstart's story for a terminal: a session and nothing else.
    "story": {"session"},
    "__main__": {"cli"},
}


def _package_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {
        n.split(".")[1] if n.count(".") else "__init__"
        for n in names
        if n == "kmm_interactive" or n.startswith("kmm_interactive.")
    }


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_each_layer_imports_only_the_layers_above_it(path):
    part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    allowed = LAYERS[part]
    if "*" in allowed:
        return
    used = _package_imports(path) - {"__init__"} if part != "__init__" else _package_imports(path)
    assert used <= allowed, f"{part} imports {sorted(used - allowed)}"


@pytest.mark.parametrize("name", ["kalshi-openapi-3.13.0.yaml", "kalshi-asyncapi.yaml"])
def test_vendored_specs_match_the_shared_copies(name):
    shared = ROOT.parent / "shared" / "specs" / name
    if not shared.exists():
        pytest.skip("no ../shared/specs next to this clone")
    assert (ROOT / "tests" / "specs" / name).read_bytes() == shared.read_bytes()


def test_sim_never_imports_the_client():
    for path in (PACKAGE / "sim").rglob("*.py") if (PACKAGE / "sim").exists() else []:
        assert "kalshi" not in _package_imports(path), path


# ------------------------------------------------------------------ notebooks


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=str)
def test_notebooks_are_committed_clean(notebook):
    data = json.loads(notebook.read_text())
    for cell in data["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == []
            assert cell["execution_count"] is None
    assert "widgets" not in data["metadata"]


# ------------------------------------------------------------------ the kmm command


def test_console_script_answers_version_and_help():
    script = Path(sys.executable).with_name("kmm")
    version = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"kmm {__version__}"
    helped = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    assert "check-config" in helped.stdout
    assert "quote" in helped.stdout


def test_check_config(capsys, tmp_path):
    assert main(["check-config", str(ROOT / "kmm.toml")]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nstart_buffer = 'later'\n")
    assert main(["check-config", str(bad)]) == 2
    assert "risk.start_buffer = 'later': not a duration" in capsys.readouterr().err


def test_quote_prints_a_table(capsys):
    assert main(["quote", "--sport", "nba", "--theo", "0.62", "--tau", "10m", "--q=-50,0,50"]) == 0
    out = capsys.readouterr().out
    assert "bid A" in out
    assert "ask B" in out
    assert len([line for line in out.splitlines() if re.match(r"\s*-?\d+\s+", line)]) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["quote", "--theo", "1.2"], "a theo must lie strictly between 0 and 1"),
        (["quote", "--theo", "0.5", "--tau", "soon"], "--tau = 'soon': not a duration"),
        (["quote", "--theo", "0.5", "--q", "a,b"], "give whole contract counts"),
        (["quote", "--theo", "0.5", "--model", "magic"], "invalid choice: 'magic'"),
    ],
)
def test_bad_flags_are_explained(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_sport_is_explained(capsys):
    assert main(["quote", "--theo", "0.5", "--sport", "chess"]) == 2
    assert "no sport profile 'chess' (have: nba" in capsys.readouterr().err
