# The two commands: `make run` (the stack and the demo) and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run test lint typecheck check bench bench-lifecycle scaleout simulate screenshots fuzz clean

# The runtime dependencies at the versions the image ships (requirements/runtime.lock, its hashes stripped: pip takes
# no hashes for an editable install), so the tests run on what is deployed (issue 15; docs/adr/0017-packaging.md).
$(STAMP): pyproject.toml requirements/runtime.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	sed -e '/--hash=/d' -e 's/ \\$$//' requirements/runtime.lock > $(VENV)/runtime-constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/runtime-constraints.txt -e '.[dev]'
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

# The programme simulation (issue 17; docs/adr/0027-programme-simulation.md): a small baseline run, then the full
# two-year, 1,500-application run on the time-skipping server with the real worker; prints both times and the
# ratio of time per application. Options through ARGS, e.g. `make simulate ARGS="--applications 300 --json"`.
simulate: $(STAMP)
	$(BIN)/python -m bench.simulate $(ARGS)

# PNGs of the web app's main pages in docs/screenshots/ (issue 14), taken by the browser tests' harness in headless
# Chromium over the real stack (tests/web/browser/screenshots.py; Chromium installed from Debian's packages if missing).
# The KPI report (issue 17, item 3) too: tests/reports/screenshot.py.
screenshots: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/web/browser/screenshots.py tests/reports/screenshot.py $(ARGS)

# Every door fuzzed, longer than CI (issue 16, item 4; docs/adr/0024-every-door-fuzzed.md): the REST fuzz
# (tests/api/test_fuzz.py) and the Temporal update/signal fuzz (tests/workflows/test_fuzz_updates.py) with
# FUZZ_EXAMPLES cases per operation/message and mode (CI: 12 and 40). `make fuzz FUZZ_EXAMPLES=1000`.
FUZZ_EXAMPLES ?= 230
fuzz: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -s tests/api/test_fuzz.py tests/workflows/test_fuzz_updates.py \
		--fuzz-examples $(FUZZ_EXAMPLES) $(ARGS)

clean:
	rm -rf .cx

# Deployment (issue 15, items 2-5; docs/deploy.md, docs/adr/0017-packaging.md).
# `make lock`: the image's dependencies, pinned with their hashes, from pyproject.toml's runtime `dependencies` (the
# only target that needs PyPI); the build backend gets its own lock. tests/deploy/test_lock.py fails when they drift.
LOCK := $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform linux \
	--custom-compile-command "make lock"
.PHONY: lock deploy-check
# Needs only uv (at its pin in pyproject.toml), not the constrained install: a new pin must be lockable.
$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$$(grep -o '"uv==[^"]*"' pyproject.toml | tr -d '"')"
lock: $(BIN)/uv
	mkdir -p requirements
	$(LOCK) pyproject.toml -o requirements/runtime.lock
	echo "setuptools>=68" | $(LOCK) - -o requirements/build.lock

# The deployment artefacts checked offline: compose, kustomize, Prometheus rules, Grafana, the lock, the entry point.
deploy-check: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/deploy $(ARGS)
