"""`make run`'s engine: standalone mode starts API, worker and beat on embedded SQLite + Redis.

Runs the real launcher as a subprocess with --check: it must serve /health and /ready, and beat
must schedule a task that a worker runs, before it exits 0 and stops everything.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_standalone_starts_everything_and_stops_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'standalone.sqlite3'}"
    env["ADMIN_PASSWORD"] = "a-test-admin-password"
    taplive = Path(sys.executable).with_name("taplive")
    proc = subprocess.run(
        [str(taplive), "standalone", "--check", "--port", str(_free_port())],
        env=env, capture_output=True, text=True, timeout=220,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "admin login: admin@taplive.local / a-test-admin-password" in out
    assert "check: ready=True worker+beat heartbeat=True" in out
    assert "[taplive] stopped" in out
    assert (tmp_path / "standalone.sqlite3").exists()
