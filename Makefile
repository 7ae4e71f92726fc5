# kmm_interactive: everything a fresh clone needs is installed from here, into .venv.
#   make demo           JupyterLab on the quickstart notebook (127.0.0.1 only)
#   make demo-headless  the quickstart's story in the terminal for 60 s, then a summary
#   make test           lint, types, unit tests and notebooks (what CI runs)
#   make bench          benchmarks, printed as ratios measured side by side
#   make chaos          the full chaos run (every fault at once), recorded in bench/RESULTS.md
#   make soak           200 games for 30 minutes, watched for growth, recorded likewise

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# JupyterLab refuses to run as root without being told.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help demo demo-headless test lint typecheck unit browser-deps notebooks bench chaos soak clean

help:
	@sed -n '2,8p' Makefile

$(PY):
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else f"kmm_interactive needs Python >= 3.11, found {v.major}.{v.minor}; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $(ROOT_FLAG) notebooks/01_quickstart.ipynb

demo-headless: $(VENV)/.installed
	$(BIN)/kmm demo --seconds 60

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# The browser test (tests/browser) drives Debian's Chromium; as root, install it when missing.
browser-deps:
	@if [ "$$(id -u)" = 0 ] && [ ! -x /usr/bin/chromium ]; then \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-dejavu-core; } \
			|| echo "chromium could not be installed: the browser test will skip"; \
	fi

unit: $(VENV)/.installed-test browser-deps
	$(BIN)/pytest -q

# Without credentials: 03_live_kalshi then runs on the embedded exchange (tests never reach
# the internet, whatever the calling shell holds).
notebooks: $(VENV)/.installed-test
	env -u KALSHI_API_KEY_ID -u KALSHI_PRIVATE_KEY_PATH -u ODDS_API_KEY PYTHONPATH=tests $(BIN)/pytest -q -p no:cacheprovider -p artifact_guard --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=300 notebooks

test: lint typecheck unit notebooks

bench: $(VENV)/.installed
	$(PY) bench/run.py

# The short form runs in make test (tests/chaos/test_chaos.py); this is the full one.
chaos: $(VENV)/.installed
	$(PY) tests/chaos/chaos.py --plan full --record

soak: $(VENV)/.installed
	$(PY) bench/soak.py --record

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
