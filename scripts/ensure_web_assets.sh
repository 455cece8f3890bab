#!/usr/bin/env bash
# The browser libraries the service serves itself (no CDN): hls.js for the watch page
# (GET /watch/{orderId}). Installs exactly web/package-lock.json (npm ci) when node_modules is
# missing or older than the lock, then copies the player into api/static/vendor/ (git-ignored),
# where it is package data like the page's own script: `pip install .` and the image carry it.
# Without node/npm it says so and returns 0: the page then says the player is missing, and the
# browser test skips itself.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/web"

say() { echo "[ensure-web-assets] $*"; }
# Touched only after a successful install, so an interrupted `npm ci` is redone next time.
stamp=node_modules/.taplive-installed
player=node_modules/hls.js/dist/hls.min.js
target="$root/api/static/vendor/hls.min.js"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "node/npm not found: the watch page will have no player (install Node.js 18+ and rerun)"
  exit 0
fi
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  say "installing hls.js from web/package-lock.json (npm ci)"
  npm ci --silent --no-audit --no-fund
  touch "$stamp"
fi
if ! cmp -s "$player" "$target"; then
  mkdir -p "$(dirname "$target")"
  cp "$player" "$target"
  say "copied hls.js $(node -p 'require("hls.js/package.json").version') to api/static/vendor/"
fi
