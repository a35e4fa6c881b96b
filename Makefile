# Everything runs inside .venv, installed by uv from the committed lock (uv.lock), exactly: the
# same versions on every machine (--locked: a pyproject.toml changed without `make lock` stops). uv itself is installed from PyPI into .tools/ on first use, so
# a fresh machine needs nothing but Python 3.11+ and make. `make run` needs the runtime
# dependencies, the rest the dev extra (with the redis and sentry extras it tests).
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# Named after the version, so changing UV_VERSION installs that one (the Dockerfile's ARG says the
# same; tests/test_deployment_files.py checks they agree).
UV_STAMP := $(TOOLS)/.uv-$(UV_VERSION)
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8000
# uv installs into .venv with this machine's Python, never one it downloads.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test test-pgbouncer lint format migrate bench lock clean

$(UV_STAMP):
	@echo "make: installing uv $(UV_VERSION) into $(TOOLS)/ (once)"
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/python -m pip install -qq --disable-pip-version-check uv==$(UV_VERSION)
	@touch $@

$(RUNTIME): pyproject.toml uv.lock | $(UV_STAMP)
	@echo "make: installing the locked runtime dependencies into $(VENV)/ (under a minute the first time)"
	@$(UV) sync --locked --inexact --quiet
	@touch $@

$(DEV): pyproject.toml uv.lock | $(UV_STAMP)
	@echo "make: installing the locked runtime and development dependencies into $(VENV)/"
	@$(UV) sync --locked --extra dev --quiet
	@touch $@ $(RUNTIME)

# After changing a dependency in pyproject.toml: resolve again and commit uv.lock.
lock: | $(UV_STAMP)
	$(UV) lock

run: $(RUNTIME)  ## serve on http://$(HOST):$(PORT) (SQLite unless DATABASE_URL says otherwise)
	@echo "make: starting the server on $(HOST):$(PORT); its last start-up line gives the URLs to open"
	$(BIN)/todo-api serve --host $(HOST) --port $(PORT)

test: $(DEV)  ## the suite with coverage; its PostgreSQL half runs when TEST_DATABASE_URL is set
	$(BIN)/pytest -n 2 --cov --cov-report=term:skip-covered

# The PostgreSQL half of the suite through a transaction-pooling PgBouncer at PGBOUNCER_URL.
PGBOUNCER_URL ?= postgresql://postgres@127.0.0.1:6432/test
test-pgbouncer: $(DEV)
	DB_POOLER=pgbouncer TEST_DATABASE_URL=$(PGBOUNCER_URL) $(BIN)/pytest -n 2 -k postgres

lint: $(DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint Dockerfile

format: $(DEV)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

migrate: $(RUNTIME)
	$(BIN)/todo-api migrate

bench: $(DEV)  ## service vs bare-asyncpg baseline under wrk (needs wrk and PostgreSQL); BENCH_ARGS=--help
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
