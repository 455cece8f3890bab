#!/usr/bin/env bash
# Known vulnerabilities in the locked dependencies: pip-audit against the lock files.
#
#   bash scripts/audit.sh                     # requirements.lock and requirements-dev.lock
#   bash scripts/audit.sh some.lock           # another lock
#   AUDIT_SERVICE=osv bash scripts/audit.sh   # OSV (osv.dev) instead of PyPI's advisories
#   AUDIT_OSV_URL=https://osv.example/v1/query # an OSV mirror (with AUDIT_SERVICE=osv)
#
# Exit 0: no known vulnerability; or the audit could not run because the vulnerability database
# (or the index to install pip-audit from) is unreachable, said in one line starting
# "audit skipped: vulnerability database unreachable (". Exit 1: vulnerabilities found (listed,
# with the versions that fix them), or the audit failed some other way. scripts/test.sh runs it
# first, so CI audits wherever the database answers and says so plainly where it does not.
#
# The locks are hashed and complete, so pip-audit audits their pins as written (--disable-pip:
# nothing installed or re-resolved). A fresh HTTP cache each run: a cached answer must not pass
# for a live one.
set -uo pipefail
cd "$(dirname "$0")/.."
locks=("$@")
[ ${#locks[@]} -gt 0 ] || locks=(requirements.lock requirements-dev.lock)
service=${AUDIT_SERVICE:-pypi}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! bash scripts/ensure_tools.sh >"$work/tools.log" 2>&1; then
    reason=$(grep -v '^WARNING: Location' "$work/tools.log" | tail -n 1 | cut -c 1-200)
    echo "audit skipped: vulnerability database unreachable (pip-audit could not be installed" \
         "from the package index: ${reason:-no output})"
    exit 0
fi
args=()
for lock in "${locks[@]}"; do args+=(-r "$lock"); done
[ -z "${AUDIT_OSV_URL:-}" ] || args+=(--osv-url "$AUDIT_OSV_URL")
.venv-tools/bin/pip-audit "${args[@]}" --require-hashes --disable-pip \
    --vulnerability-service "$service" --progress-spinner off --timeout 15 \
    --cache-dir "$work/cache" --format json --output "$work/report.json" >/dev/null 2>"$work/stderr"
status=$?
.venv-tools/bin/python scripts/audit_report.py --service "$service" --status "$status" \
    --report "$work/report.json" --stderr "$work/stderr" "${locks[@]}"
