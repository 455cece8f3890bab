"""What gunicorn refuses before the app sees it still comes back in the envelope (issue 14):
a real gunicorn serving ``api.wsgi:app``, spoken to over a raw socket."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT
from tests.realtime.conftest import free_port, server_env


@pytest.fixture(scope="module")
def gunicorn_port(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "api.wsgi:app", "--bind", f"127.0.0.1:{port}",
         "--workers", "1"],
        cwd=PROJECT_ROOT, env=server_env(pg_url, SERVICE_NAME="taplive-api-test"),
        stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(Path(log).read_text()[-2000:]) from None
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(10)


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize(("request_bytes", "status", "code"), [
    (b"GET /api/v1/orders?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI_TOO_LONG"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431,
     "HEADERS_TOO_LARGE"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Evil: a\x01b\r\n\r\n", 400, "BAD_REQUEST"),
    (b"NOT A REQUEST\r\n\r\n", 400, "BAD_REQUEST"),
    # A body over MAX_CONTENT_LENGTH (1 MiB by default): the app's own 413, refused from the
    # declared length before the body is read.
    (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Content-Length: 2000000\r\n\r\n{}", 413, "PAYLOAD_TOO_LARGE"),
])
def test_what_gunicorn_refuses_is_answered_in_the_envelope(
        gunicorn_port: int, request_bytes: bytes, status: int, code: str) -> None:
    got, headers, body = _raw(gunicorn_port, request_bytes)
    assert got == status, body[:300]
    assert headers["content-type"] == "application/json"
    envelope = json.loads(body)
    assert envelope["success"] is False and envelope["data"] is None
    assert envelope["error"]["code"] == code and envelope["meta"]["version"] == "v1"
    assert b"b" * 100 not in body and b"a" * 100 not in body  # the input is not echoed


def test_ordinary_requests_are_untouched(gunicorn_port: int) -> None:
    got, _, body = _raw(gunicorn_port, b"GET /health HTTP/1.1\r\nHost: x\r\n"
                                       b"Connection: close\r\n\r\n")
    assert got == 200 and json.loads(body)["data"]["status"] == "ok"
