# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench clean lock audit

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Dependencies come from the lock files, every file checked against its hash (scripts/lock.sh
# writes them from pyproject.toml; docs/operations.md, "Dependencies: lock and audit"); then the
# project itself, editable, with no dependency resolution of its own. Re-installed whenever a
# lock or pyproject.toml changes; the stamp files remember the last install.
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

# The dev lock holds the runtime pins too (same versions) plus the [test] and [bench] extras.
$(VENV)/.installed-test: requirements-dev.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
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
	bash scripts/ensure_services.sh
	$(BIN)/python -m bench.matching_bench
	$(BIN)/python -m bench.matching_e2e_bench
	$(BIN)/python -m bench.realtime_bench
	$(BIN)/python -m bench.analytics_bench
	$(BIN)/python -m bench.cache_bench
	$(BIN)/python -m bench.api_bench
	$(BIN)/python -m bench.stream_bench

# Regenerate the locks from pyproject.toml (ARGS=--upgrade or ARGS="--upgrade-package flask").
lock:
	bash scripts/lock.sh $(ARGS)

# Known vulnerabilities in the locks (scripts/test.sh runs this too).
audit:
	bash scripts/audit.sh

clean:
	rm -rf $(VENV) .venv-tools var build *.egg-info
