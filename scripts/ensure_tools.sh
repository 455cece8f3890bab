#!/usr/bin/env bash
# The supply-chain tools' venv, .venv-tools: uv (scripts/lock.sh) and pip-audit
# (scripts/audit.sh), installed from requirements-tools.lock with hashes, apart from the
# project's .venv so neither tool's dependencies can shift the project's pins. Reinstalled when
# the lock changes (the stamp file remembers the last install). Exits non-zero, saying why, when
# the package index cannot be reached; callers decide whether that matters.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.venv-tools
STAMP=$TOOLS/.installed
if [ -f "$STAMP" ] && [ "$STAMP" -nt requirements-tools.lock ]; then
    exit 0
fi
[ -x "$TOOLS/bin/python" ] || "${PYTHON:-python3}" -m venv "$TOOLS"
# Few retries and a short timeout: an unreachable index should be reported in seconds.
"$TOOLS/bin/python" -m pip install --quiet --retries 1 --timeout 15 \
    --require-hashes -r requirements-tools.lock
touch "$STAMP"
