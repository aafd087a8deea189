# omnihub: `make run` starts the hub on SQLite; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.omnihub-installed

.PHONY: install run test lint format bench clean vendor

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
	$(BIN)/python -m bench.fanout

# The web workspace's third-party JavaScript: pinned npm packages, their dist file and
# licence copied into inbox/web/static/vendor/ and committed (so `make run` needs no Node).
HTMX_VERSION := 2.0.11
VENDOR := inbox/web/static/vendor

vendor:
	@command -v npm >/dev/null || { echo "make vendor needs npm (Node.js)"; exit 1; }
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cd "$$tmp" && npm pack --silent htmx.org@$(HTMX_VERSION) >/dev/null && \
	tar -xzf htmx.org-$(HTMX_VERSION).tgz && cd - >/dev/null && \
	cp "$$tmp/package/dist/htmx.min.js" $(VENDOR)/htmx.min.js && \
	cp "$$tmp/package/LICENSE" $(VENDOR)/htmx.LICENSE && \
	echo "htmx.org $(HTMX_VERSION) from npm (npm pack htmx.org@$(HTMX_VERSION))" > $(VENDOR)/VERSIONS
	@gzip -9c $(VENDOR)/*.js | wc -c | awk '{ printf "vendored JavaScript: %d bytes gzipped\n", $$1 }'

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
