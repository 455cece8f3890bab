#!/usr/bin/env bash
# Make sure PostgreSQL (with PostGIS) and Redis answer on 127.0.0.1 for the test suite, and that
# the streaming tools are installed (nginx + its RTMP module, ffmpeg, chromium).
# On Debian as root: installs missing packages with apt and starts stopped servers (never the
# system's nginx: the tests run their own). Elsewhere: says exactly what is missing and fails
# (the streaming tools only warn: their tests then skip, saying why).
set -euo pipefail

say() { echo "[ensure-services] $*"; }
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
apt_updated=0
apt_install() {
  if [ $apt_updated = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

# --- PostgreSQL ---------------------------------------------------------------------------
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  say "using TEST_DATABASE_URL from the environment"
else
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    if can_apt; then say "installing PostgreSQL"; apt_install postgresql postgresql-client
    else say "PostgreSQL is missing: install PostgreSQL 15+ with PostGIS 3 and start it on 127.0.0.1:5432 (or set TEST_DATABASE_URL)"; exit 1; fi
  fi
  pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if [ ! -f "/usr/share/postgresql/$pg_version/extension/postgis.control" ]; then
    if can_apt; then say "installing PostGIS for PostgreSQL $pg_version"; apt_install "postgresql-$pg_version-postgis-3"
    else say "PostGIS is missing: install postgresql-$pg_version-postgis-3 (or your platform's PostGIS 3)"; exit 1; fi
  fi
  if ! pg_ready; then
    if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
      say "creating a PostgreSQL cluster"; pg_createcluster "$pg_version" main >/dev/null
    fi
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start || true
    for _ in $(seq 1 50); do pg_ready && break; sleep 0.2; done
  fi
  pg_ready || { say "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }
  # A fresh Debian cluster asks for a password over TCP; the suite connects as postgres/postgres.
  if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v su >/dev/null; then
      su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
      echo "TEST_DATABASE_URL=postgresql://postgres:postgres@127.0.0.1:5432/postgres" > var/test-env
      say "set a password for the postgres role (TCP auth is not trust here)"
    fi
  fi
fi

# --- Redis --------------------------------------------------------------------------------
if [ -z "${TEST_REDIS_URL:-}" ] && ! redis_ready; then
  if ! command -v redis-server >/dev/null 2>&1; then
    if can_apt; then say "installing Redis"; apt_install redis-server
    else say "Redis is missing: install redis-server and start it on 127.0.0.1:6379 (or set TEST_REDIS_URL)"; exit 1; fi
  fi
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 50); do redis_ready && break; sleep 0.1; done
  redis_ready || { say "Redis does not answer on 127.0.0.1:6379"; exit 1; }
fi
say "PostgreSQL+PostGIS and Redis are available"

# --- Streaming: nginx + RTMP module, ffmpeg, chromium -------------------------------------
# The stream tests start nginx themselves (core/rtmp_server.py), on ports of their own; the
# system's nginx service must not start (it would take port 80 and a config we do not own).
rtmp_module_present() {
  [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || [ -f /usr/share/nginx/modules/ngx_rtmp_module.so ]
}
stream_missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || stream_missing+=(nginx)
rtmp_module_present || stream_missing+=(libnginx-mod-rtmp)
command -v ffmpeg >/dev/null 2>&1 || stream_missing+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || stream_missing+=(chromium)
if [ ${#stream_missing[@]} -gt 0 ]; then
  if can_apt; then
    # policy-rc.d exiting 101 tells invoke-rc.d not to start the services the packages bring.
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\n# ensure_services.sh: install packages without starting their services\nexit 101\n' \
        > /usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      created_policy=1
    fi
    say "installing ${stream_missing[*]} (the system's nginx service is not started)"
    if ! apt_install "${stream_missing[@]}"; then
      say "could not install ${stream_missing[*]}: the stream tests will skip"
    fi
    if [ $created_policy = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  else
    say "missing for the stream tests (they will skip): ${stream_missing[*]};" \
      "on Debian/Ubuntu: apt-get install nginx libnginx-mod-rtmp ffmpeg chromium"
  fi
else
  say "nginx-rtmp, ffmpeg and chromium are installed"
fi
