# The two commands: `make run` (the stack and the demo) and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run test lint typecheck check bench bench-lifecycle scaleout screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/cx dev up $(ARGS)

test: $(STAMP)
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m bench.ledger

# The exchange lifecycle and intake against a bare workflow (issue 12; docs/performance.md).
# Options through ARGS, e.g. `make bench-lifecycle ARGS="--exchanges 20 --skip-intake --json"`.
bench-lifecycle: $(STAMP)
	$(BIN)/python -m bench.lifecycle $(ARGS)

# Scale-out (issue 15): 1 then 3 `cx worker` processes, with 2 dispatchers and 2 APIs, drive the same batch to PAID;
# a worker and a dispatcher are killed mid-run; prints the ratio, lost, double and the ledger check (bench/scaleout.py).
# Options through ARGS, e.g. `make scaleout ARGS="--exchanges 20 --repeats 3"`.
scaleout: $(STAMP)
	$(BIN)/python -m bench.scaleout $(ARGS)

# PNGs of the web app's main pages in docs/screenshots/ (issue 14), taken by the browser tests' harness in headless
# Chromium over the real stack (tests/web/browser/screenshots.py; Chromium installed from Debian's packages if missing).
screenshots: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/web/browser/screenshots.py $(ARGS)

clean:
	rm -rf .cx
