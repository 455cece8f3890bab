"""A real real-time server process (uvicorn + python-socketio) on a free port, against the
run's PostgreSQL database and Redis, and real Socket.IO clients to talk to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from flask import Flask

from core.config import PROJECT_ROOT
from db.models import User
from tests import conftest as root
from tests.auth_helpers import auth_headers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "APP_ENV": "test", "DATABASE_URL": database_url,
            "REDIS_URL": root.TEST_REDIS_URL, "SECRET_KEY": root.TEST_SECRET,
            "JWT_SECRET_KEY": root.TEST_SECRET + "-jwt", "LOG_FORMAT": "console",
            "LOG_LEVEL": "WARNING", "SERVICE_NAME": "taplive-realtime-test", **extra}


def start_server(database_url: str, log: Path, **extra: str) -> tuple[subprocess.Popen[bytes],
                                                                     str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "realtime.asgi:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning",
         # As the Procfile: no per-socket zlib contexts (docs/benchmarks.md, issue 12).
         "--ws-per-message-deflate", "false"],
        cwd=PROJECT_ROOT, env=server_env(database_url, **extra),
        stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"realtime server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"realtime server did not start: {log.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def realtime_url(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's base URL; one process per test module."""
    log = tmp_path_factory.mktemp("realtime") / "server.log"
    proc, url = start_server(pg_url, log, REALTIME_REVOCATION_CHECK_S="0.2")
    yield url
    stop_server(proc)


class Recorder:
    """A python-socketio client that records every event it receives."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = socketio.Client(reconnection=False)
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()
        self.client.on("*", self._record)
        self.connect_error: Any = None
        self.client.on("connect_error", self._refused)

    def _refused(self, data: Any) -> None:
        self.connect_error = data

    def _record(self, event: str, *args: Any) -> None:
        with self._lock:
            self.events.append((event, args))

    def connect(self, token: str | None = None, **auth: Any) -> Recorder:
        if token is not None:
            auth["token"] = token
        self.client.connect(self.url, auth=auth or None, transports=["websocket"],
                            wait_timeout=10)
        return self

    def call(self, event: str, data: Any = None) -> Any:
        return self.client.call(event, data, timeout=10)

    def named(self, event: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [args for name, args in self.events if name == event]

    def wait_for(self, event: str, predicate: Callable[[tuple[Any, ...]], bool] = bool,
                 timeout: float = 10.0) -> tuple[Any, ...]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for args in self.named(event):
                if predicate(args):
                    return args
            time.sleep(0.02)
        raise AssertionError(f"no {event!r} within {timeout} s; got {self.events!r}")

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()


@pytest.fixture
def clients(realtime_url: str) -> Iterator[Callable[[], Recorder]]:
    made: list[Recorder] = []

    def make() -> Recorder:
        made.append(Recorder(realtime_url))
        return made[-1]

    yield make
    for recorder in made:
        recorder.close()


def api(app: Flask, method: str, path: str, user: User, body: Any = None,
        expect: int | None = None) -> Any:
    """A committed API call as ``user`` (asserts success unless ``expect`` says otherwise)."""
    with app.test_client() as client:
        response = client.open(f"/api/v1{path}", method=method, json=body,
                               headers=auth_headers(user, app))
    if expect is None:
        assert response.status_code < 300, response.json
        return response.json["data"]
    assert response.status_code == expect, response.json
    return response.json
