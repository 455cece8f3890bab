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

# The watch page's player (hls.js from web/package-lock.json) is installed first.
run: $(VENV)/.installed
	bash scripts/ensure_web_assets.sh
	$(BIN)/taplive standalone

test: $(VENV)/.installed-test
	bash scripts/test.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy .

# Every benchmark, each printing its own table (docs/benchmarks.md has the figures and setup).
# Needs PostgreSQL+PostGIS and Redis as for `make test`, wrk for the HTTP one, and nginx with
# libnginx-mod-rtmp plus ffmpeg for the stream one.
bench: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	bash scripts/ensure_services.sh
	$(BIN)/python -m bench.matching_bench
	$(BIN)/python -m bench.matching_e2e_bench
	$(BIN)/python -m bench.analytics_bench
	$(BIN)/python -m bench.cache_bench
	$(BIN)/python -m bench.api_bench
	$(BIN)/python -m bench.stream_bench

clean:
	rm -rf $(VENV) var build *.egg-info
