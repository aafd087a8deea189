# omnihub: `make run` starts the hub on SQLite; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.omnihub-installed

.PHONY: install run test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/omnihub serve

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy storage intake routing channels bots inbox hub

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.routing
	$(BIN)/python -m bench.assignment
	$(BIN)/python -m bench.email
	$(BIN)/python -m bench.telephony
	$(BIN)/python -m bench.telegram
	$(BIN)/python -m bench.access_log
	$(BIN)/python -m bench.inbox

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
