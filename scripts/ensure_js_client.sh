#!/usr/bin/env bash
# The official JavaScript Socket.IO client for the real-time tests (tests/realtime/js): the
# recovery handshake it implements is what the server must answer, so the tests drive the real one.
# Installs exactly package-lock.json (npm ci) when node_modules is missing or older than the lock.
# Without node/npm it says so and returns 0: the tests that need the client skip themselves.
set -euo pipefail
cd "$(dirname "$0")/../tests/realtime/js"

say() { echo "[ensure-js-client] $*"; }
# Touched only after a successful install, so an interrupted `npm ci` is redone next time.
stamp=node_modules/.taplive-installed

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "node/npm not found: the tests that use the JavaScript Socket.IO client will be skipped (install Node.js 18+ to run them)"
  exit 0
fi
if [ -f "$stamp" ] && [ ! package-lock.json -nt "$stamp" ] && [ ! package.json -nt "$stamp" ]; then
  exit 0
fi
say "installing socket.io-client from tests/realtime/js/package-lock.json (npm ci)"
npm ci --silent --no-audit --no-fund
touch "$stamp"
