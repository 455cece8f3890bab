#!/usr/bin/env bash
# The browser libraries the service serves itself (no CDN): hls.js for the watch page
# (GET /watch/{orderId}), Swagger UI and Redoc for the API docs (GET /api/v1/docs, /api/v1/redoc).
# Installs exactly web/package-lock.json (npm ci) when node_modules is missing or older than the
# lock, then copies the bundles into api/static/vendor/ (git-ignored), where they are package
# data like the pages' own scripts: `pip install .` and the image carry them.
# No package's install script runs (--ignore-scripts): nothing here needs building, and
# swagger-ui-dist's dependency @scarf/scarf would otherwise report the install to a third party.
# Without node/npm it says so and returns 0: the pages then say what is missing, and the
# browser tests skip themselves.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/web"

say() { echo "[ensure-web-assets] $*"; }
# Touched only after a successful install, so an interrupted `npm ci` is redone next time.
stamp=node_modules/.taplive-installed
vendor="$root/api/static/vendor"
# source in node_modules -> name in api/static/vendor/ (the Dockerfile's web stage copies the same)
assets=(
  "hls.js/dist/hls.min.js hls.min.js"
  "swagger-ui-dist/swagger-ui-bundle.js swagger-ui-bundle.js"
  "swagger-ui-dist/swagger-ui.css swagger-ui.css"
  "redoc/bundles/redoc.standalone.js redoc.standalone.js"
)

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "node/npm not found: the watch page will have no player and the API docs pages no"
  say "Swagger UI / Redoc (install Node.js 18+ and rerun)"
  exit 0
fi
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  say "installing web/package-lock.json (npm ci)"
  npm ci --silent --no-audit --no-fund --ignore-scripts
  touch "$stamp"
fi
mkdir -p "$vendor"
for asset in "${assets[@]}"; do
  read -r source name <<<"$asset"
  if ! cmp -s "node_modules/$source" "$vendor/$name"; then
    cp "node_modules/$source" "$vendor/$name"
    package="${source%%/*}"
    say "copied $name ($package $(node -p "require('$package/package.json').version")) to api/static/vendor/"
  fi
done
