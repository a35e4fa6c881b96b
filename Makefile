# Everything runs inside .venv, created on first use; the project is (re)installed into it only
# when pyproject.toml changes. `make run` needs the runtime dependencies, the rest the dev extra.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: run test test-pgbouncer lint format migrate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(RUNTIME)

run: $(RUNTIME)  ## serve on http://127.0.0.1:8000 (SQLite unless DATABASE_URL says otherwise)
	$(BIN)/todo-api serve

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
