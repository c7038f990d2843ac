# Two commands on a fresh machine: `make demo` runs the example pipeline, `make test`
# runs the tests. Both create and fill the local virtualenv (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint unit conformance conformance-server bench bench-server bench-ui ui-screenshots clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev,postgres]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/replaybook run examples/nyc_weather_delays.yaml --catalog examples/playbooks

test: lint unit

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

unit: $(VENV)/.installed
	$(BIN)/pytest -q

conformance: $(VENV)/.installed
	$(BIN)/python scripts/conformance.py

# The same suite against `replaybook server` on PostgreSQL with two worker processes.
conformance-server: $(VENV)/.installed
	$(BIN)/python scripts/conformance_server.py

bench: $(VENV)/.installed
	$(BIN)/python bench/linear_steps.py

bench-server: $(VENV)/.installed
	$(BIN)/python bench/server_pg.py

# Web UI pages on 10,000 executions and a 1,000-step one (target: < 1 s each).
bench-ui: $(VENV)/.installed
	$(BIN)/python bench/ui_pages.py

# docs/ui/*.png from a server with demo data, in Debian's chromium.
ui-screenshots: $(VENV)/.installed
	$(BIN)/python scripts/ui_screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
