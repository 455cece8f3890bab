"""deploy/nginx/taplive.conf carries Socket.IO to the realtime upstream and pages to the API.

Runs the real nginx with the shipped file (hosts, ports, certificate and log paths pointed at local
stand-ins) in front of a minimal python-socketio server on uvicorn, and talks through it with the
Python Socket.IO client over WebSocket, over long-polling, and with the default polling-then-upgrade
handshake. A missing Upgrade/Connection header, HTTP/1.0 upstream or wrong location fails here.
The server is a stand-in on purpose: what is under test is the proxy, not realtime.asgi.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio

NGINX_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "taplive.conf"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("openssl") is None,
                       reason="nginx (Debian: nginx) or openssl is not installed"),
]

STUB_SERVER = '''
import socketio

# Short pings: a polling client's disconnect waits for its pending long-poll, held up to one
# ping interval (25 s by default).
sio = socketio.AsyncServer(async_mode="asgi", ping_interval=2, ping_timeout=5)


@sio.on("echo")
async def echo(sid, data):
    return data


app = socketio.ASGIApp(sio)
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _local_conf(tmp_path: Path, realtime_port: int, https_port: int, http_port: int,
                backend_port: int) -> str:
    conf = NGINX_CONF.read_text()
    conf = re.sub(r"api\d+\.taplive\.internal:8001", f"127.0.0.1:{realtime_port}", conf)
    conf = re.sub(r"api\d+\.taplive\.internal:8000", f"127.0.0.1:{backend_port}", conf)
    conf = re.sub(r"api\d+\.taplive\.internal", "127.0.0.1", conf)
    conf = conf.replace("listen [::]:443 ssl http2;", "").replace("listen [::]:80;", "")
    conf = conf.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    conf = conf.replace("/etc/nginx/tls/taplive.", f"{tmp_path}/tls.")
    return conf.replace("/var/log/nginx/", f"{tmp_path}/")


# Paths the API answers that nginx must pass on, and one it must keep internal.
BACKEND_PATHS = ("/api/v1/orders", "/watch/order-1", "/watch/assets/vendor/hls.min.js",
                 "/metrics")
PUBLIC_PATHS = BACKEND_PATHS[:3]


@pytest.fixture(scope="module")
def proxied_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """https://127.0.0.1:<port> of nginx, the stub Socket.IO server as its realtime upstream."""
    tmp_path = tmp_path_factory.mktemp("nginx")
    realtime_port, https_port, http_port = _free_port(), _free_port(), _free_port()
    backend_port = _free_port()
    (tmp_path / "stub_realtime.py").write_text(STUB_SERVER)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "stub_realtime:app", "--app-dir", str(tmp_path),
         "--host", "127.0.0.1", "--port", str(realtime_port), "--log-level", "warning"])
    # The API upstream's stand-in: a static file server whose files name the paths it was asked
    # for, so a response says the request reached the backend.
    site = tmp_path / "site"
    for path in BACKEND_PATHS:
        (site / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (site / path.lstrip("/")).write_text(f"backend:{path}")
    backend = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(backend_port), "--bind", "127.0.0.1",
         "--directory", str(site)], stderr=subprocess.DEVNULL)
    nginx: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", str(tmp_path / "tls.key"),
                        "-out", str(tmp_path / "tls.crt")],
                       check=True, capture_output=True, timeout=60)
        (tmp_path / "taplive.conf").write_text(
            _local_conf(tmp_path, realtime_port, https_port, http_port, backend_port))
        temp_paths = "".join(f"    {kind}_temp_path {tmp_path}/{kind};\n"
                             for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (tmp_path / "nginx.conf").write_text(
            f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
            f"events {{}}\nhttp {{\n{temp_paths}    access_log {tmp_path}/access.log;\n"
            f"    include {tmp_path}/taplive.conf;\n}}\n")
        nginx = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                                  "-e", str(tmp_path / "error.log")])
        _wait_listening(realtime_port, server)
        _wait_listening(backend_port, backend)
        _wait_listening(https_port, nginx)
        yield f"https://127.0.0.1:{https_port}"
    finally:
        if nginx is not None:
            _stop(nginx)
        _stop(server)
        _stop(backend)


async def _echo_through(url: str, transports: list[str] | None) -> str:
    """Connects, makes one acknowledged call, and returns the transport it ended on."""
    async with socketio.AsyncSimpleClient(ssl_verify=False) as client:
        await client.connect(url, transports=transports, wait_timeout=10)
        assert await client.call("echo", {"n": 1}, timeout=10) == {"n": 1}
        if transports is None:
            # The default client upgrades from polling in the background: give it a moment.
            for _ in range(50):
                if client.transport == "websocket":
                    break
                await asyncio.sleep(0.1)
        return client.transport


@pytest.mark.timeout(90)
def test_nginx_carries_socketio_over_websocket(proxied_url: str) -> None:
    assert asyncio.run(_echo_through(proxied_url, ["websocket"])) == "websocket"


@pytest.mark.timeout(90)
def test_nginx_carries_socketio_over_long_polling(proxied_url: str) -> None:
    assert asyncio.run(_echo_through(proxied_url, ["polling"])) == "polling"


@pytest.mark.timeout(90)
def test_nginx_lets_the_default_handshake_upgrade_to_websocket(proxied_url: str) -> None:
    assert asyncio.run(_echo_through(proxied_url, None)) == "websocket"


def _get(url: str) -> tuple[int, str]:
    """(status, body) of a GET through nginx's self-signed TLS."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_nginx_passes_the_api_and_the_watch_page_to_the_backend(proxied_url: str,
                                                                   path: str) -> None:
    # The creator's watch page was a 404 behind this file (only /api/ was routed).
    assert _get(proxied_url + path) == (200, f"backend:{path}")


@pytest.mark.timeout(60)
def test_nginx_keeps_metrics_internal(proxied_url: str) -> None:
    assert _get(proxied_url + "/metrics")[0] == 404
