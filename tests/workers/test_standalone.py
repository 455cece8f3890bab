"""`make run`'s engine: standalone mode starts API, real-time server, worker and beat on embedded
SQLite + Redis, and stops them all in order on Ctrl-C.

Runs the real launcher as a subprocess with --check: it must serve /health and /ready, and beat
must schedule a task that a worker runs, before it exits 0 and stops everything. Then runs it as a
user does, until Ctrl-C, and talks to the real-time server it printed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import redis
from celery import Celery

from bench.stop_time import process_tree, start_launcher, stop_launcher
from core import rtmp_server
from tasks.maintenance import HEARTBEAT_KEY
from tests.waiting import poll
from workers.queues import MAINTENANCE

# Measured 4.5-5.6 s (up to 10 s under heavier load) on 2 shared cores (docs/reliability.md);
# before, 2.4-17 s with an orphaned gunicorn worker now and then, and SIGTERM left all 13
# processes running.
STOP_WITHIN_S = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_port_below_ephemeral() -> int:
    """A free port in 20000-29999 whose successor is free too (the launcher moves to it)."""
    for candidate in range(20000 + os.getpid() % 5000, 30000, 7):
        try:
            with socket.socket() as one, socket.socket() as two:
                one.bind(("127.0.0.1", candidate))
                two.bind(("127.0.0.1", candidate + 1))
        except OSError:
            continue
        return candidate
    raise RuntimeError("no free port pair in 20000-29999")


def _launcher_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'standalone.sqlite3'}"
    env["ADMIN_PASSWORD"] = "a-test-admin-password"
    return env


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_standalone_starts_everything_and_stops_cleanly(tmp_path: Path) -> None:
    env = _launcher_env(tmp_path)
    taplive = Path(sys.executable).with_name("taplive")
    proc = subprocess.run(
        [str(taplive), "standalone", "--check", "--port", str(_free_port())],
        env=env, capture_output=True, text=True, timeout=220,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "admin login: admin@taplive.local / a-test-admin-password" in out
    assert "check: ready=True worker+beat heartbeat=True" in out
    assert "[taplive] Realtime   ws://127.0.0.1:" in out
    if rtmp_server.missing():  # says how to install it, and the fallback
        assert "[taplive] Streaming  not started" in out and "apt-get install nginx" in out
    else:
        assert "[taplive] RTMP       rtmp://127.0.0.1:" in out
        assert "[taplive] HLS        http://127.0.0.1:" in out
    assert "[taplive] stopped" in out
    assert (tmp_path / "standalone.sqlite3").exists()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_standalone_serves_realtime_on_the_next_free_port_until_ctrl_c(tmp_path: Path) -> None:
    env = _launcher_env(tmp_path)
    taplive = Path(sys.executable).with_name("taplive")
    # Something else already listens on REALTIME_PORT: the launcher must move past it.
    with socket.socket() as squatter:
        # Below the kernel's ephemeral range (32768+): there, the port after the squatter's
        # may be taken as the local port of any outgoing connection (the launcher's children
        # connecting to Redis) between the launcher's check and uvicorn's bind.
        squatter.bind(("127.0.0.1", _free_port_below_ephemeral()))
        squatter.listen()
        taken = int(squatter.getsockname()[1])
        env["REALTIME_PORT"] = str(taken)
        proc = subprocess.Popen(
            [str(taplive), "standalone", "--port", str(_free_port())],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if "running; press Ctrl-C" in line or "[taplive] stopped" in line:
                    break
            out = "".join(lines)
            found = re.search(r"\[taplive\] Realtime   ws://127\.0\.0\.1:(\d+)/socket\.io/", out)
            assert found, out[-4000:]
            port = int(found[1])
            assert port > taken
            status, body = _get(f"http://127.0.0.1:{port}/health")
            assert status == 200 and json.loads(body)["data"]["status"] == "ok"
            # It is a Socket.IO server: the Engine.IO handshake ("0" + open packet) answers.
            status, body = _get(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling")
            assert status == 200 and body.startswith("0")
            assert json.loads(body[1:])["sid"]
        finally:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            rest, _ = proc.communicate(timeout=60)
    out = "".join(lines) + rest
    assert proc.returncode == 0, out[-4000:]
    assert "[taplive] stopped" in out
    with pytest.raises(OSError):
        _get(f"http://127.0.0.1:{port}/health")


def test_a_port_that_is_a_live_connections_local_end_is_not_free() -> None:
    """Nothing listens on it (a connect is refused), yet no server could bind it: the launcher
    must skip it (it once picked one and the real-time server failed to start)."""
    from workers.standalone import _free_port_from, _port_is_free

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as outgoing:
            local = int(outgoing.getsockname()[1])
            assert not _port_is_free(local)
            assert _free_port_from(local, taken=set()) != local
    assert _port_is_free(_free_port())


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", ["terminal", "sigterm"])
def test_ctrl_c_or_sigterm_stops_everything_in_order_within_seconds(tmp_path: Path,
                                                                    how: str) -> None:
    """A Ctrl-C in the terminal (SIGINT to the launcher's whole process group) or a SIGTERM to
    the launcher: exit 0 within seconds, nothing "unexpected", the children stopped in
    dependency order, and no process of the launcher's tree (noted before the signal) left."""
    proc, started = start_launcher(_launcher_env(tmp_path))
    try:
        assert "running; press Ctrl-C" in started, started[-4000:]
        result = stop_launcher(proc, how, timeout_s=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = result.output
    assert result.exit_code == 0, out[-4000:]
    assert result.seconds < STOP_WITHIN_S, out[-4000:]
    assert "unexpectedly" not in out and "killed " not in out, out[-4000:]
    assert result.tree_size >= 6  # api + its 2 workers, realtime, worker + pool, beat, redis
    assert result.left == [], out[-4000:]
    stages = re.findall(r"\[taplive\] stopped (\w+)", out)
    assert stages == ["api", "beat", "worker", "redis"], out[-4000:]
    assert out.rstrip().endswith("[taplive] stopped")


def _child_running(parent: int, *words: str) -> int:
    """The pid of ``parent``'s direct child whose command line holds all ``words``."""
    for pid in process_tree(parent):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == parent and all(word.encode() in cmdline for word in words):
            return pid
    raise AssertionError(f"no child of {parent} runs {words}")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_worker_is_relaunched_and_does_the_next_task(tmp_path: Path) -> None:
    """SIGKILL the Celery worker's main process (what the OOM killer does; and a worker can
    exit on its own, docs/reliability.md): the launcher relaunches it within seconds instead of
    stopping everything, a task sent afterwards is done, and Ctrl-C still stops all cleanly."""
    proc, started = start_launcher(_launcher_env(tmp_path))
    lines: list[str] = []
    try:
        assert "running; press Ctrl-C" in started, started[-4000:]
        found = re.search(r"\[taplive\] Redis      (\S+)", started)
        assert found, started[-4000:]
        redis_url = found[1]
        worker = _child_running(proc.pid, "celery", "worker")
        killed_at = time.monotonic()
        os.kill(worker, signal.SIGKILL)
        assert proc.stdout is not None
        for line in proc.stdout:  # reading also keeps the children's log pipe flowing
            lines.append(line)
            if "[taplive] relaunched worker" in line or "[taplive] stopped" in line:
                break
        relaunched_s = time.monotonic() - killed_at
        assert "[taplive] relaunched worker" in lines[-1], "".join(lines)[-4000:]
        sent_at = time.time()
        sender = Celery(broker=redis_url)
        sender.send_task("maintenance.heartbeat", queue=MAINTENANCE)
        sender.close()
        client = redis.Redis.from_url(redis_url, decode_responses=True)

        def ran_after_sending() -> bool:
            value = client.get(HEARTBEAT_KEY)
            return bool(value) and datetime.fromisoformat(str(value)).timestamp() >= sent_at

        assert poll(ran_after_sending, timeout=60), "the relaunched worker did not run it"
        done_s = time.monotonic() - killed_at
        print(f"\nworker SIGKILLed: relaunched after {relaunched_s:.1f} s, "
              f"a task sent then done {done_s:.1f} s after the kill")
        result = stop_launcher(proc, "terminal", timeout_s=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = started + "".join(lines) + result.output
    assert "[taplive] worker exited with -9 after " in out and "relaunching in 1 s" in out, out
    assert relaunched_s < 5, out[-4000:]
    assert result.exit_code == 0 and "unexpectedly" not in out, out[-4000:]
    assert result.left == [], out[-4000:]
    assert re.findall(r"\[taplive\] stopped (\w+)", out) == ["api", "beat", "worker", "redis"]
