# syntax=docker/dockerfile:1
#
# One image for every TapLive process: the default CMD is the Procfile's `web`; compose and the
# Kubernetes manifests override the command with the Procfile's realtime / worker / beat / flower /
# release lines (tests/deploy/test_manifests.py checks that they stay the same commands).
#
#   docker build -t taplive:local .
#
# The two Python stages use the same base image so the virtualenv's interpreter symlinks stay valid when it
# is copied across. Pin the tag to a digest in your registry for reproducible builds.
ARG PYTHON_IMAGE=python:3.11-slim
ARG NODE_IMAGE=node:20-slim

# --- web: the browser libraries the service serves itself (no CDN) ---------------------------
# hls.js for the watch page, Swagger UI and Redoc for the API docs, exactly as
# web/package-lock.json pins them (what scripts/ensure_web_assets.sh does outside the image; no
# install scripts run). Only the bundle files leave this stage.
FROM ${NODE_IMAGE} AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts

# --- builder: resolve and install everything into /opt/venv ---------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /src
RUN python -m venv /opt/venv

# Dependencies first, in their own layer, exactly as requirements.lock pins them, every file
# checked against its hash (scripts/lock.sh writes the lock from pyproject.toml), so a code
# change does not re-download numpy and scipy and the image holds what `make run` and the tests
# ran. Every dependency ships manylinux wheels for CPython 3.11, so no compiler is needed here.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

# Then the project itself, as a regular (non-editable) install: the runtime stage gets no source
# tree, only the installed packages (migrations ride along as package data).
# .dockerignore is an allow-list, so only the packages named in pyproject.toml reach this COPY.
COPY . .
# The bundles go in as package data (pyproject.toml), so the installed api package serves them.
COPY --from=web /web/node_modules/hls.js/dist/hls.min.js api/static/vendor/hls.min.js
COPY --from=web /web/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
                /web/node_modules/swagger-ui-dist/swagger-ui.css \
                /web/node_modules/redoc/bundles/redoc.standalone.js api/static/vendor/
RUN pip install --no-cache-dir --no-deps . \
    && python -m compileall -q /opt/venv

# --- runtime: the venv, a non-root user, nothing else ----------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# APP_ENV=production is baked in on purpose: a container started without configuration then
# refuses to start (missing secrets, SQLite URL) instead of quietly running the development
# defaults against a SQLite file inside the image.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APP_ENV=production \
    RTMP_TEMPLATE=/app/deploy/nginx/rtmp.conf.template \
    RTMP_PREFIX=/tmp/nginx-rtmp \
    STREAM_HLS_DIR=/tmp/hls \
    GUNICORN_CMD_ARGS="--worker-tmp-dir /dev/shm"
# GUNICORN_CMD_ARGS: gunicorn's worker heartbeat files on an overlay filesystem can stall
# workers; /dev/shm is tmpfs. Set through the environment so the command stays the Procfile's.

RUN groupadd --system --gid 1001 taplive \
    && useradd --system --uid 1001 --gid 1001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin taplive

# The streaming server (the Procfile's `rtmp`, docs/streaming.md): Debian's nginx and its RTMP
# module. Nothing starts it but `taplive rtmp`; the package's own service never runs in a container.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx libnginx-mod-rtmp \
    && rm -rf /var/lib/apt/lists/*

COPY --from=builder /opt/venv /opt/venv
COPY deploy/nginx/rtmp.conf.template /app/deploy/nginx/rtmp.conf.template

WORKDIR /app
# Numeric user so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 1001:1001

EXPOSE 8000

# The spec's healthcheck against /health (liveness: touches no dependency). The slim image has no
# curl, so the standard library does the request; any non-2xx or connection error exits non-zero.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=2)"]

# The Procfile's `web` line. `sh -c` expands the ${VAR:-default}s; `exec` makes gunicorn PID 1 so
# it receives SIGTERM directly and shuts down gracefully.
CMD ["/bin/sh", "-c", "exec gunicorn api.wsgi:app --bind 0.0.0.0:${PORT:-8000} --workers ${WEB_CONCURRENCY:-4}"]
