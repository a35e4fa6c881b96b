# Everything runs inside .venv, created on first use and reinstalled when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format migrate clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)  ## serve on http://127.0.0.1:8000 (SQLite unless DATABASE_URL says otherwise)
	$(BIN)/todo-api serve

test: $(STAMP)  ## the test suite (PostgreSQL half too when TEST_DATABASE_URL is set)
	$(BIN)/pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

migrate: $(STAMP)
	$(BIN)/todo-api migrate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
