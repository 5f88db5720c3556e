# The two commands: `make run` (the stack and the demo) and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run test lint typecheck check bench bench-lifecycle screenshots fuzz clean

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

# PNGs of the web app's main pages in docs/screenshots/ (issue 14), taken by the browser tests' harness in headless
# Chromium over the real stack (tests/web/browser/screenshots.py; Chromium installed from Debian's packages if missing).
screenshots: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/web/browser/screenshots.py $(ARGS)

# Every door fuzzed, longer than CI (issue 16, item 4; docs/adr/0024-every-door-fuzzed.md): the REST fuzz
# (tests/api/test_fuzz.py) and the Temporal update/signal fuzz (tests/workflows/test_fuzz_updates.py) with
# FUZZ_EXAMPLES cases per operation/message and mode (CI: 12 and 40). `make fuzz FUZZ_EXAMPLES=1000`.
FUZZ_EXAMPLES ?= 230
fuzz: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -s tests/api/test_fuzz.py tests/workflows/test_fuzz_updates.py \
		--fuzz-examples $(FUZZ_EXAMPLES) $(ARGS)

clean:
	rm -rf .cx
