"""A real Celery worker (the production app, prefork pool) survives its pool processes being
SIGKILLed again and again, and keeps doing tasks. What it cannot survive, a pool process dying
while it starts (``WorkerLostError('Could not start worker processes')``, exit 1), is why every
deployment restarts it: here the launcher's supervisor does, and the relaunched worker works.

The worker is ``celery -A tests.workers.survival_worker worker`` (``celery_app`` plus a tiny
task that records where it ran) on its own Redis database. The last test runs the Kubernetes
manifest's liveness probe against it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import redis
from celery import Celery

from bench.stop_time import process_tree
from tests.conftest import TEST_SECRET, redis_db
from tests.deploy.test_manifests import (
    argv_of,
    k8s_command,
    pod_containers,
    worker_options,
    workload,
)
from tests.waiting import poll
from tests.workers.survival_worker import DIES_ONCE_ENV, DONE_KEY, PIDS_KEY
from workers.queues import DEFAULT
from workers.supervisor import Supervisor

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
# 10 rounds in `make test` (each kills every pool process); SURVIVAL_KILL_ROUNDS=20 reproduces
# the figures in docs/reliability.md.
KILL_ROUNDS = int(os.environ.get("SURVIVAL_KILL_ROUNDS", "10"))
CONCURRENCY = 2
WORKER_ARGV = [sys.executable, "-m", "celery", "-A", "tests.workers.survival_worker", "worker",
               "--queues", DEFAULT, "--concurrency", str(CONCURRENCY), "--without-gossip",
               "--without-mingle", "--loglevel", "WARNING"]


@pytest.fixture
def broker() -> Iterator[str]:
    """Its own logical database (as the crash test's): the queue survives others' flushes."""
    url = redis_db(12)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


def _env(pg_url: str, broker: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != DIES_ONCE_ENV}
    env.update(APP_ENV="test", DATABASE_URL=pg_url, REDIS_URL=broker, SECRET_KEY=TEST_SECRET,
               JWT_SECRET_KEY=TEST_SECRET + "-jwt", LOG_FORMAT="console", **extra)
    return env


def _send(broker: str, token: str) -> None:
    """``survival.mark(token)``, to the queue the worker consumes (a bare app's default queue
    would be "celery", which no worker of ours reads)."""
    sender = Celery(broker=broker)
    try:
        sender.send_task("survival.mark", args=[token], queue=DEFAULT)
    finally:
        sender.close()


def _ran(broker: str, token: str) -> bool:
    return bool(redis.Redis.from_url(broker).sismember(DONE_KEY, token))


def _done(broker: str, token: str, timeout: float = 30) -> bool:
    """Sends the task and waits until a pool process ran it."""
    _send(broker, token)
    return bool(poll(lambda: _ran(broker, token), timeout=timeout))


def _pool(worker_pid: int) -> set[int]:
    """The worker's live pool processes (zombies not yet reaped do not count)."""
    alive = set()
    for pid in process_tree(worker_pid):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _replaced(worker_pid: int, killed: set[int]) -> bool:
    """The pool is whole again, with none of the killed processes."""
    return len(_pool(worker_pid) - killed) == CONCURRENCY


@pytest.mark.timeout(240)
def test_a_running_worker_survives_its_pool_being_killed_again_and_again(
        pg_url: str, broker: str) -> None:
    worker = subprocess.Popen(WORKER_ARGV, cwd=ROOT, env=_env(pg_url, broker),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _done(broker, "before", timeout=60), "the worker never ran a task"
        replaced_in = []
        for round_ in range(KILL_ROUNDS):
            pool = poll(lambda: len(_pool(worker.pid)) == CONCURRENCY and _pool(worker.pid),
                        timeout=30)
            assert pool, f"round {round_}: the pool was not back to {CONCURRENCY} processes"
            killed_at = time.monotonic()
            for pid in pool:  # the whole pool at once, the harshest case
                os.kill(pid, signal.SIGKILL)
            fresh = poll(partial(_replaced, worker.pid, pool), timeout=30)
            replaced_in.append(time.monotonic() - killed_at)
            assert fresh, f"round {round_}: no new pool processes"
            assert worker.poll() is None, f"round {round_}: the worker exited"
            assert _done(broker, f"after-{round_}"), f"round {round_}: a task was not done"
        print(f"\n{KILL_ROUNDS} rounds of {CONCURRENCY} SIGKILLs: pool replaced in "
              f"max {max(replaced_in):.2f} s, median {sorted(replaced_in)[KILL_ROUNDS // 2]:.2f} s")
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    pids = redis.Redis.from_url(broker).smembers(PIDS_KEY)
    assert len(pids) > CONCURRENCY, "the tasks ran in the replaced pool processes"
    assert "Could not start worker processes" not in err


@pytest.mark.timeout(240)
def test_a_pool_process_dying_at_start_up_stops_the_worker_and_the_supervisor_relaunches_it(
        pg_url: str, broker: str, tmp_path: Path) -> None:
    # Without a supervisor: the worker exits, for good, with Celery's start-up check.
    marker = tmp_path / "died-once"
    lone = subprocess.run(WORKER_ARGV, cwd=ROOT, env=_env(pg_url, broker, **{
        DIES_ONCE_ENV: str(marker)}), capture_output=True, text=True, timeout=120)
    output = lone.stdout + lone.stderr  # the app's log handler writes to stdout
    assert marker.exists()
    assert lone.returncode == 1, output[-3000:]
    assert "Unrecoverable error: WorkerLostError('Could not start worker processes')" in output

    # The same fault under the launcher's supervisor (its policy, the first wait 1 s): the first
    # launch exits the same way, and the relaunch runs a task sent while none ran.
    marker.unlink()
    said: list[str] = []
    supervisor = Supervisor(_env(pg_url, broker, **{DIES_ONCE_ENV: str(marker)}), cwd=ROOT,
                            say=said.append)
    supervisor.start("worker", WORKER_ARGV, grace_s=10)
    try:
        first = supervisor.children["worker"]
        assert poll(lambda: supervisor.revive() == [] and first.poll() is not None,
                    timeout=90, every=0.1), said
        assert first.returncode == 1, said
        token = uuid.uuid4().hex
        _send(broker, token)  # while no worker runs
        assert poll(lambda: supervisor.revive() == [] and _ran(broker, token),
                    timeout=90, every=0.1), said
        assert supervisor.relaunched == 1 and supervisor.children["worker"].poll() is None, said
    finally:
        supervisor.stop_all()
    assert said[0].startswith("worker exited with 1 after ") and said[0].endswith(
        "relaunching in 1 s"), said


@pytest.mark.timeout(240)
def test_the_kubernetes_liveness_probe_passes_while_the_worker_answers_and_fails_once_not(
        pg_url: str, broker: str) -> None:
    """The probe command exactly as deploy/k8s/worker-deployment.yaml has it, with the node name
    the manifest gives the worker (``default@%h``; in a pod %h and $HOSTNAME are the pod name)."""
    name = "taplive-worker-default"
    (container,) = pod_containers(workload("Deployment", name))
    probe = container["livenessProbe"]
    node = worker_options(argv_of(k8s_command("Deployment", name)))["--hostname"]
    env = _env(pg_url, broker, HOSTNAME=socket.gethostname(),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    worker = subprocess.Popen([*WORKER_ARGV, "--hostname", node], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def run_probe() -> tuple[int | None, str, float]:
        """Exit code (None: timed out), output, seconds taken. The bound is looser than the
        probe's timeoutSeconds (20): on this shared 2-core machine, under the rest of the suite
        and other runs, importing the app alone has taken over 20 s (a pod has its own CPU);
        the time is printed, and docs/reliability.md gives the figures."""
        began = time.monotonic()
        try:
            done = subprocess.run(probe["exec"]["command"], cwd=ROOT, env=env,
                                  capture_output=True, text=True,
                                  timeout=max(probe["timeoutSeconds"], 90))
        except subprocess.TimeoutExpired as expired:
            return None, str(expired.stdout or "") + str(expired.stderr or ""), 0.0
        return done.returncode, done.stdout + done.stderr, time.monotonic() - began

    try:
        assert _done(broker, "up", timeout=60), "the worker never ran a task"
        code, output, took = run_probe()
        assert code == 0 and "pong" in output, (code, output)
        # Wedged: the main process still exists but answers nothing.
        os.kill(worker.pid, signal.SIGSTOP)
        wedged_code, wedged_output, _ = run_probe()
        assert wedged_code != 0, wedged_output
        print(f"\nliveness probe: answered in {took:.1f} s; wedged worker: exit {wedged_code}")
    finally:
        os.kill(worker.pid, signal.SIGCONT)
        worker.terminate()
        worker.wait(timeout=30)
