#!/usr/bin/env bash
# Regenerates the lock files from pyproject.toml, every pin with the hashes of its files on PyPI:
#   requirements.lock        runtime dependencies (`make run`, the Dockerfile)
#   requirements-dev.lock    runtime + the [test] and [bench] extras (`make test`, `make bench`),
#                            constrained by requirements.lock so both carry the same versions
#   requirements-tools.lock  uv and pip-audit themselves (requirements-tools.in)
#
#   bash scripts/lock.sh                              # add what pyproject.toml gained; keep other pins
#   bash scripts/lock.sh --upgrade-package flask      # move one package to its newest allowed version
#   bash scripts/lock.sh --upgrade                    # move everything
#
# Why uv (`uv pip compile`): a well-kept resolver (Astral) that writes pip's own requirements
# format with --hash lines, so plain `pip install --require-hashes` installs the result; it
# resolves for a target Python version without that interpreter, keeps existing pins unless told
# to upgrade (like pip-tools' pip-compile), and takes two seconds. It lives in .venv-tools, apart
# from the project (scripts/ensure_tools.sh). Resolved for the machine's python3 minor version
# (3.11, the Docker image's too) on Linux.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure_tools.sh
UV=.venv-tools/bin/uv
PY_VERSION=$("${PYTHON:-python3}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
compile() {
    "$UV" pip compile --quiet --generate-hashes --python-version "$PY_VERSION" \
        --custom-compile-command "bash scripts/lock.sh" "$@"
}
compile pyproject.toml -o requirements.lock "$@"
compile pyproject.toml --extra test --extra bench -c requirements.lock \
    -o requirements-dev.lock "$@"
compile requirements-tools.in -o requirements-tools.lock "$@"
echo "locked for Python $PY_VERSION: requirements.lock ($(grep -c '==' requirements.lock) pins)," \
     "requirements-dev.lock ($(grep -c '==' requirements-dev.lock))," \
     "requirements-tools.lock ($(grep -c '==' requirements-tools.lock))"
