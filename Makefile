# Tollway: `make run` runs the gateway on 127.0.0.1:8080 (SQLite); `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
CONFIG ?= examples/quickstart.yaml
DEMO_OUT ?= .tollway/demo
export TOLLWAY_ADMIN_TOKEN ?= dev-admin-token

.PHONY: run demo test lint typecheck unit clean venv dev-venv chromium fonts

# Installs come from hashed lock files (requirements/*.lock, made by `make lock` from pyproject.toml): every
# package pinned to one version and checked against its hashes. The project itself goes in editable, without deps.
LOCK_RUN := requirements/run.lock
LOCK_DEV := requirements/dev.lock
LOCK_NO_DEPS := requirements/no-deps.lock
PIP_LOCKED := $(BIN)/pip install -q --require-hashes --no-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The run set includes the `demo` extra (the official openai SDK and httpx), so the README's SDK example works
# in .venv right after `make run`.
$(VENV)/.run-installed: pyproject.toml $(LOCK_RUN) | $(BIN)/python
	$(PIP_LOCKED) -r $(LOCK_RUN)
	$(BIN)/pip install -q --no-deps -e .
	touch $@ $(VENV)/.demo-installed

# The dev set: dev.lock (runtime, demo and dev extras) plus no-deps.lock (instructor, a client the
# structured-output tests drive, pins jiter below what the openai SDK needs; its requirements are in dev.lock).
$(VENV)/.dev-installed: pyproject.toml $(LOCK_DEV) $(LOCK_NO_DEPS) | $(BIN)/python
	$(PIP_LOCKED) -r $(LOCK_DEV) -r $(LOCK_NO_DEPS)
	$(BIN)/pip install -q --no-deps -e .
	touch $@ $(VENV)/.run-installed

venv: $(VENV)/.run-installed
dev-venv: $(VENV)/.dev-installed

$(VENV)/.demo-installed: pyproject.toml $(LOCK_RUN) | $(BIN)/python
	$(PIP_LOCKED) -r $(LOCK_RUN)
	$(BIN)/pip install -q --no-deps -e .
	touch $@ $(VENV)/.run-installed

# Re-pin the lock files after a change to pyproject.toml's dependencies (needs uv: `pip install uv`). Pins
# already in the files are kept unless pyproject.toml rules them out; `make lock LOCK_ARGS=--upgrade` moves all.
UV ?= uv
LOCK_FLAGS := --generate-hashes --universal --python-version 3.11 --custom-compile-command 'make lock' -q $(LOCK_ARGS)
.PHONY: lock audit
lock:
	$(UV) pip compile pyproject.toml --extra demo --extra otel $(LOCK_FLAGS) -o $(LOCK_RUN)
	$(UV) pip compile pyproject.toml --extra demo --extra otel --extra dev -c $(LOCK_RUN) $(LOCK_FLAGS) -o $(LOCK_DEV)
	$(UV) pip compile requirements/no-deps.in --no-deps $(LOCK_FLAGS) -o $(LOCK_NO_DEPS)

# Known vulnerabilities in the locked packages (PyPI's advisory data, through pip-audit): fails on one that a
# newer release fixes; one without a fix is listed. Without access to the advisory data it says NOT AUDITED and
# passes, unless TOLLWAY_REQUIRE_AUDIT=1 (set it where the CI machine reaches pypi.org), where it fails.
audit: dev-venv
	$(BIN)/python -m tests.audit_lock $(LOCK_DEV) $(LOCK_NO_DEPS)

run: venv
	$(BIN)/tollway serve --config $(CONFIG) --host $(HOST) --port $(PORT)

# The whole billing story offline (docs/demo.md); the invoice's HTML and PDF are kept in $(DEMO_OUT).
demo: $(VENV)/.demo-installed
	$(BIN)/tollway demo --out $(DEMO_OUT)

# lint-imports: the import contracts in .importlinter (layers, no import cycle; docs/architecture.md, "Layers").
lint: dev-venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports --no-cache

typecheck: dev-venv
	$(BIN)/mypy

unit: dev-venv
	$(BIN)/pytest -q tests/unit

# Headless Chromium renders invoice HTML in the tests (a screenshot checked for content) and drives the dashboard
# (Selenium with Debian's chromium-driver; no browser is downloaded).
chromium:
	@(command -v chromium >/dev/null || command -v chromium-browser >/dev/null) && command -v chromedriver >/dev/null || \
		(echo "make test: installing the system packages chromium chromium-driver (apt-get, needs root) for the browser tests" && \
		 apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver) || \
		echo "chromium could not be installed: the browser tests will skip"

# Fonts the invoice PDF embeds (docs/stripe.md, "Invoice documents"): DejaVu Sans (Latin, Greek, Cyrillic,
# Arabic, Hebrew), WenQuanYi Micro Hei (Chinese, Japanese, Korean), Symbola (emoji). Without them the PDF is
# Latin-1 only and the tests that read other scripts back fail under TOLLWAY_REQUIRE_SERVICES=1, else skip.
FONT_PACKAGES := fonts-dejavu-core fonts-wqy-microhei fonts-symbola
fonts:
	@dpkg -s $(FONT_PACKAGES) >/dev/null 2>&1 || \
		(echo "make test: installing the system packages $(FONT_PACKAGES) (apt-get, needs root) for invoice PDFs" && \
		 apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(FONT_PACKAGES)) || \
		echo "the invoice fonts could not be installed: PDFs are Latin-1 only and the Unicode PDF tests will skip"

# The suite runs on every core (pytest-xdist, -n auto: 2 workers on a 2-core CI); PYTEST_WORKERS=0 runs it
# in one process. --dist worksteal: each worker starts on its own run of whole files (a file's module-scoped
# servers start once) and an idle worker takes tests from a busy one, so one long file does not hold the end.
# Then the mutation check's CI subset (tests/mutation/run.py --ci, docs/testing.md): every billing, metering
# and gateway mutation whose tests are fast unit or contract tests must make one of them fail, or the build
# fails (about 20 s of CPU on 2 cores). `make mutation` runs every mutation, those that start servers too.
# pytest runs with Python's bytecode caches on (`env -u PYTHONDONTWRITEBYTECODE`; the __pycache__ folders are
# ignored by git), also where the environment turns them off: every `tollway serve` and CLI run the suite starts
# would otherwise compile Tollway from source again, and each worker would rewrite every test module's asserts
# again (docs/testing.md, "Timings").
PYTEST_WORKERS ?= auto
test: lint typecheck audit chromium fonts
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist worksteal --durations=15
	$(BIN)/python -m tests.mutation.run --ci

.PHONY: mutation
mutation: dev-venv
	$(BIN)/python -m tests.mutation.run

# Opt-in, not part of `make test` (needs node and npm, and the npm registry): installs the Claude Code CLI
# and the Anthropic and OpenAI Node SDKs into .tollway/clients and runs them against the quickstart
# (docs/clients.md, "Claude Code").
.PHONY: test-clients
test-clients: dev-venv
	$(BIN)/python -m tests.clients.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tollway.db .tollway

.PHONY: bench bench-candidates
# Benchmarks (not part of `make test`): see docs/benchmarks.md. `make bench BENCH_ARGS=--write` updates the doc.
bench: venv
	bash bench/setup.sh
	$(PYTHON) bench/run.py --repeat 3 $(BENCH_ARGS)

bench-candidates:
	bash bench/setup.sh
	$(PYTHON) bench/run.py --candidates --repeat 5 --duration 5 $(BENCH_ARGS)
