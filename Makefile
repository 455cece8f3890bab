# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install whenever pyproject.toml changes; the stamp files remember the last install.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/taplive standalone

test: $(VENV)/.installed-test
	bash scripts/test.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy .

# Every benchmark, each printing its own table (docs/benchmarks.md has the figures and setup).
# Needs PostgreSQL+PostGIS and Redis as for `make test`, and wrk for the HTTP one.
bench: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	bash scripts/ensure_services.sh
	$(BIN)/python -m bench.matching_bench
	$(BIN)/python -m bench.matching_e2e_bench
	$(BIN)/python -m bench.realtime_bench
	$(BIN)/python -m bench.analytics_bench
	$(BIN)/python -m bench.cache_bench
	$(BIN)/python -m bench.api_bench

clean:
	rm -rf $(VENV) var build *.egg-info
