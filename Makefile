# kubeguard: `make demo` and `make test` each set up what they need on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint typecheck bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup-host.sh
	bash scripts/setup-host.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/kubeguard demo

lint: setup
	$(VENV)/bin/ruff check src tests bench

test: lint
	$(PY) -m pytest -q

# the fast lane: everything but the data-heavy tests (marked slow)
test-fast: lint
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
