"""The production processes of one load-and-faults run, as real subprocesses on free ports:
a redis-server of the run's own (the broker, cache and offline processor's store, with the
append-only file production's broker has), gunicorn on ``api.wsgi:app``, a Celery worker
(prefork, every queue) and Celery beat. Supervised by ``workers.supervisor.Supervisor`` (each
child leads a session, stops in dependency order); a restart policy thread brings a dead worker
back, as compose's ``restart: unless-stopped`` or Kubernetes would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from core.embedded_redis import free_port, start_redis_server
from domain.payments.offline import RedisStore
from workers.queues import (
    ALL_QUEUES,
    DEFAULT,
    MAINTENANCE,
    MATCHING,
    NOTIFICATIONS,
    PAYMENTS,
)
from workers.standalone import _wait_http
from workers.supervisor import Supervisor

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec_reliability"
# How long after the worker's death the "restart policy" starts it again (compose restarts at
# once; Kubernetes backs off from 10 s: a second is between the two and keeps the run short).
RESTART_AFTER_S = 1.0
# With ``split_workers``: which queues each worker serves.
WORKERS = {"worker": (PAYMENTS,), "worker-matching": (MATCHING,),
           "worker-rest": (NOTIFICATIONS, MAINTENANCE, DEFAULT)}


def run_settings(database_url: str, redis_url: str, secret: str) -> dict[str, str]:
    """The environment every process of the run shares. What differs from production, and why:
    the offline processor in Redis (localstripe has no transfers, so settlement could not run
    against it; the offline processor logs every action it really performs, which is what the
    invariants need); a dispute window of 7.2 s (0.002 h: long enough for the refund outcomes'
    creator to dispute after seeing the completion, short enough not to hold every settlement
    back for long), settlement grace at 0 and a stream proof of 1 s with a 1 s grace (the run
    would otherwise wait days and minutes); a 15 s broker visibility
    timeout (production: 1 h) so a message held by a SIGKILLed worker comes back within the
    run; no rate limits (all clients share one address)."""
    return {
        "APP_ENV": "test", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
        "SECRET_KEY": secret, "JWT_SECRET_KEY": secret + "-jwt", "JWT_ACCESS_TTL_S": "86400",
        "LOG_FORMAT": "console", "LOG_LEVEL": "WARNING",
        "PAYMENT_GATEWAY": "offline", "PAYMENT_METHOD_REQUIRED": "true",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DISPUTE_WINDOW_HOURS": "0.002", "PAYMENT_SETTLEMENT_GRACE_MINUTES": "0",
        "STREAM_PROOF_REQUIRED": "true", "STREAM_MIN_SECONDS": "1", "STREAM_GRACE_S": "1",
        "CELERY_VISIBILITY_TIMEOUT_S": "15", "RATE_LIMIT_ENABLED": "false",
        "DB_POOL_SIZE": "10", "STREAM_CALLBACK_SECRET": callback_secret(secret),
    }


def callback_secret(secret: str) -> str:
    """The secret nginx-rtmp would put in its callback URLs (the harness plays nginx)."""
    return secret + "-rtmp-callbacks"


@dataclass
class Stack:
    """Start, kill, restart and stop the run's processes; ``log`` records every action."""

    database_url: str
    workdir: Path
    secret: str
    worker_concurrency: int = 2
    split_workers: bool = False
    api_workers: int = 4  # the Procfile's WEB_CONCURRENCY default: sync workers, 2 per core
    say: Callable[[str], None] = print
    redis_port: int = 0
    api_port: int = 0
    supervisor: Supervisor = field(init=False)
    restarts: dict[str, int] = field(default_factory=dict)  # by the restart policy, by name
    _starters: dict[str, Callable[[], None]] = field(default_factory=dict)
    _watch: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        self.redis_port, self.api_port = free_port(), free_port()
        env = {**os.environ, **run_settings(self.database_url, self.redis_url, self.secret)}
        env.pop("TAPLIVE_FAULT_POINT", None)
        self.supervisor = Supervisor(env=env, cwd=REPO, say=self.say)
        self.start_redis()
        self._starters["api"] = self._start_api
        self._start_api()
        for name in (WORKERS if self.split_workers else ("worker",)):
            self.start_worker(name)
        self.start_beat("beat")
        if not _wait_http(f"{self.base_url}/health", 60):
            raise RuntimeError(f"the API did not come up; see {self.workdir}/api.log")
        self._watch = threading.Thread(target=self._restart_policy, daemon=True)
        self._watch.start()

    def _start_api(self) -> None:
        python = sys.executable
        self._spawn("api", [
            python, "-m", "gunicorn", "api.wsgi:app", "--bind", f"127.0.0.1:{self.api_port}",
            "--workers", str(self.api_workers), "--graceful-timeout", "4"],
            grace_s=5)

    def _spawn(self, name: str, argv: list[str], grace_s: float) -> None:
        """As ``Supervisor.start`` (a session of its own), its output appended to
        ``<workdir>/<name>.log`` (restarts append to the same file)."""
        with (self.workdir / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(argv, env={**self.supervisor.env,
                                               "SERVICE_NAME": f"taplive-{name}"},
                                    cwd=REPO, start_new_session=True, stdout=out,
                                    stderr=subprocess.STDOUT)
        with self._lock:
            self.supervisor.adopt(name, proc, grace_s)

    def tracebacks(self) -> dict[str, int]:
        """How many tracebacks each process's log holds (for the report)."""
        return {path.stem: path.read_text(errors="replace").count("Traceback")
                for path in sorted(self.workdir.glob("*.log"))}

    # ------------------------------------------------------------------------- the broker
    def start_redis(self) -> None:
        proc, _ = start_redis_server(self.workdir / "redis", persist=False, own_session=True,
                                     port=self.redis_port, appendonly=True)
        with self._lock:
            self.supervisor.adopt("redis", proc, grace_s=10)

    def restart_broker(self) -> float:
        """SIGTERM redis-server (it writes its append-only file out and exits), start it again
        on the same port with the same data: a broker restart as ``docker restart`` does it.
        Returns the seconds it was down."""
        began = time.monotonic()
        proc = self.supervisor.children["redis"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        self.start_redis()
        return time.monotonic() - began

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def processor_log(self) -> list[dict[str, Any]]:
        """Every action the offline processor really performed (replays excluded)."""
        return RedisStore(self.redis()).members("operations")

    # ------------------------------------------------------------------- worker and beat
    def start_worker(self, name: str = "worker") -> None:
        """``worker`` serves every queue (the Procfile's), or, with ``split_workers``, the
        payments queue only, beside ``worker-matching`` and ``worker-rest`` (compose's and
        Kubernetes' split: payments never wait behind matching). The faults hit ``worker``."""
        queues = WORKERS[name] if self.split_workers else ALL_QUEUES
        self._starters[name] = lambda: self.start_worker(name)
        concurrency = self.worker_concurrency if name == "worker" else 1
        self._spawn(name, [
            sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork",
            "--queues", ",".join(queues), "--concurrency", str(concurrency),
            "--hostname", f"{name}-{time.monotonic_ns()}@%h", "--loglevel", "WARNING"],
            grace_s=10)

    def start_beat(self, name: str) -> None:
        """Beat with the production schedule, the payment sweeps' intervals shortened
        (``tests.reliability.fast_beat``); ``name`` "beat2" is the duplicate."""
        self._starters[name] = lambda: self.start_beat(name)
        self._spawn(name, [
            sys.executable, "-m", "celery", "-A", "tests.reliability.fast_beat", "beat",
            "--loglevel", "WARNING",
            "--schedule", str(self.workdir / f"{name}-schedule")], grace_s=5)

    def stop_beat(self, name: str) -> None:
        with self._lock:
            proc = self.supervisor.children.pop(name)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def worker_children(self) -> list[int]:
        """The pool processes of the running worker (its main process's children)."""
        main = self.supervisor.children["worker"].pid
        try:
            raw = Path(f"/proc/{main}/task/{main}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in raw.split()]

    def kill_worker_child(self, wait_s: float = 15.0) -> int | None:
        """SIGKILL one pool process; a worker still starting (after a restart) is waited for
        until its pool is up, so the fault lands."""
        deadline = time.monotonic() + wait_s
        while not (children := self.worker_children()):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.kill(children[0], signal.SIGKILL)
        return children[0]

    def kill_worker(self) -> int:
        """SIGKILL the worker's main process (its pool children die with their parent: the
        pool watches it); the restart policy starts a new one."""
        proc = self.supervisor.children["worker"]
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        return proc.pid

    def _restart_policy(self) -> None:
        """Any process of the run that exits (a SIGKILLed worker; Celery's "Could not start
        worker processes" after a pool child died during its start; a beat that lost the
        broker) is started again, as every deployment's restart policy does. Redis is the
        fault schedule's to restart."""
        while not self._stop.wait(0.2):
            try:
                self._restart_dead()
            except Exception as exc:  # the policy must outlive any one failed restart
                self.say(f"restart policy: {exc!r}")

    def _restart_dead(self) -> None:
        with self._lock:  # the fault schedule adds and removes beats concurrently
            dead = [(name, proc) for name, proc in self.supervisor.children.items()
                    if name != "redis" and proc.poll() is not None]
        for name, proc in dead:
            # Whatever of its tree is left (orphaned pool processes) goes first.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            self.say(f"{name} exited ({proc.returncode}); restarting in "
                     f"{RESTART_AFTER_S:.0f} s")
            time.sleep(RESTART_AFTER_S)
            with self._lock:
                if self._stop.is_set() or self.supervisor.children.get(name) is not proc:
                    continue  # stopping, or the schedule already replaced or removed it
            self._starters[name]()
            self.restarts[name] = self.restarts.get(name, 0) + 1

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.join(timeout=5)
        self.supervisor.stop_all()
