"""End-to-end stream wiring: a real nginx-rtmp (core/rtmp_server.py) on free ports whose
callbacks reach a real HTTP server of the API (werkzeug, in a thread), ffmpeg publishing a test
pattern, a real Celery worker, and localstripe holding and capturing the creator's money.

Everything here commits (nginx's callbacks arrive on other connections); the module's data is
truncated when the module ends.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from core import rtmp_server
from db.models import Order, PaymentEscrow, StreamSegment, StreamSession, User
from tests.api.orders_helpers import call, committed_users, create_order
from tests.conftest import discard_committed_data, make_settings
from tests.payments.conftest import localstripe_url  # noqa: F401 (a fixture, used below)
from workers.queues import ALL_QUEUES

NYC = (40.7128, -74.0060)  # orders_helpers.order_body()'s location
MIN_S = 2  # the stream must run this long before the order may complete
GRACE_S = 3  # a dropped publisher may resume within this
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(probe: Callable[[], T | None], timeout_s: float = 10.0, every_s: float = 0.1,
               what: str = "the condition") -> T:
    """Poll ``probe`` until it returns something truthy (returned), else fail after the
    timeout saying what was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


# ------------------------------------------------------------------------------- servers
@pytest.fixture(scope="module")
def tools() -> None:
    gaps = rtmp_server.missing() + ([] if shutil.which("ffmpeg") else ["ffmpeg"])
    if gaps:
        pytest.skip(f"stream tests need {', '.join(gaps)} "
                    "(bash scripts/ensure_services.sh installs them on Debian as root)")


@dataclass(frozen=True)
class Ports:
    api: int
    rtmp: int
    http: int


@pytest.fixture(scope="module")
def ports(tools: None) -> Ports:
    return Ports(api=free_port(), rtmp=free_port(), http=free_port())


@pytest.fixture(scope="module")
def stream_app(pg_url: str, ports: Ports, localstripe_url: str,  # noqa: F811
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The API as production runs it for streams: the stream is the proof (short minimum and
    grace), a card is held on acceptance (Stripe's SDK against localstripe)."""
    from api import create_app

    app = create_app(make_settings(
        pg_url, db_pool_size=20, stream_proof_required=True, stream_min_seconds=MIN_S,
        stream_grace_s=GRACE_S, stream_rtmp_port=ports.rtmp, stream_http_port=ports.http,
        stream_callback_url=f"http://127.0.0.1:{ports.api}/internal/rtmp",
        stream_hls_dir=str(tmp_path_factory.mktemp("hls")),
        # nginx's /hls/ on its HTTP port: the playbackUrl the creator is shown and the origin
        # the watch page's CSP lets the player fetch from (said outright, not left to the
        # default derived from the port).
        stream_hls_url=f"http://127.0.0.1:{ports.http}/hls",
        payment_gateway="stripe", stripe_secret_key="sk_test_taplive",
        stripe_api_base=localstripe_url, stripe_max_network_retries=0,
        payment_method_required=True))
    yield app
    discard_committed_data(app)


class _QuietHandler(WSGIRequestHandler):
    """No request lines: nginx's callback URLs carry the shared secret (gunicorn, in
    production, runs without an access log for the same reason)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@pytest.fixture(scope="module")
def api_server(stream_app: Flask, ports: Ports) -> Iterator[BaseWSGIServer]:
    """The API over real HTTP (nginx's callbacks come this way), threaded like gunicorn's."""
    server = make_server("127.0.0.1", ports.api, stream_app, threaded=True,
                         request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="api-http", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def rtmp(stream_app: Flask, api_server: BaseWSGIServer,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[rtmp_server.RtmpServer]:
    """nginx-rtmp on the module's free ports, loopback only, calling the API above."""
    settings = stream_app.extensions["taplive"].settings
    config = rtmp_server.RtmpConfig.from_settings(
        settings, tmp_path_factory.mktemp("nginx-rtmp"), listen_host="127.0.0.1")
    server = rtmp_server.RtmpServer(config).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(stream_app: Flask) -> Iterator[Celery]:
    """A real Celery worker on every queue: the order's follow-ups (capture) run here."""
    redis.Redis.from_url(stream_app.extensions["taplive"].settings.redis_url).flushdb()
    celery: Celery = stream_app.extensions["celery"]
    with start_worker(celery, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      queues=list(ALL_QUEUES), shutdown_timeout=20):
        yield celery


# ------------------------------------------------------------------------------ publisher
class Publisher:
    """ffmpeg publishing a generated test pattern (video and a tone) to the ingest."""

    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin",
                 "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                 "-f", "lavfi", "-i", "sine=frequency=440",
                 # yuv420p: testsrc is RGB, from which x264 makes High 4:4:4, a profile
                 # Firefox, Safari and hardware decoders refuse (Debian's Chromium happens to
                 # play it); OBS and phones send 4:2:0, and so does this publisher.
                 "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                 "-pix_fmt", "yuv420p", "-g", "25", "-c:a", "aac", "-f", "flv", url],
                stdout=out, stderr=subprocess.STDOUT)

    def running(self) -> bool:
        return self.process.poll() is None

    def refused(self, timeout_s: float = 10.0) -> bool:
        """True when ffmpeg gave up (nginx dropped it): it exits non-zero."""
        try:
            return self.process.wait(timeout=timeout_s) != 0
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        """As a provider stops OBS: ffmpeg closes the RTMP stream (nginx sends the done)."""
        if self.running():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def publish(rtmp: rtmp_server.RtmpServer, tmp_path: Path) -> Iterator[Callable[[str],
                                                                             Publisher]]:
    """``publish(stream_key)`` starts an ffmpeg publisher; all are stopped after the test."""
    started: list[Publisher] = []

    def start(name: str) -> Publisher:
        url = f"rtmp://127.0.0.1:{rtmp.config.rtmp_port}/live/{name}"
        publisher = Publisher(url, tmp_path / f"ffmpeg-{len(started)}.log")
        started.append(publisher)
        return publisher

    yield start
    for publisher in started:
        publisher.stop()


# ------------------------------------------------------------------------ people and orders
@pytest.fixture
def client(stream_app: Flask) -> FlaskClient:
    return stream_app.test_client()


@pytest.fixture
def people(stream_app: Flask) -> dict[str, User]:
    return committed_users(stream_app, creator={},
                           provider={"provider": True, "verified": True})


@dataclass
class StreamedOrder:
    id: str
    key: str
    playback_id: str
    playback_url: str


def accepted_with_hold(client: FlaskClient, people: dict[str, User]) -> StreamedOrder:
    """An order accepted with a card (localstripe holds it), its provider standing at the
    place; what the provider is shown to publish with, and the creator to watch."""
    order = create_order(client, people["creator"])
    applied = call(client, "POST", f"/orders/{order['id']}/applications", people["provider"],
                   {"proposedAmount": "30.00"})
    assert applied.status_code == 201, applied.json
    accepted = call(client, "POST", f"/orders/{order['id']}/accept", people["creator"],
                    {"applicationId": applied.json["data"]["application"]["id"],
                     "paymentMethodId": "pm_card_visa"})
    assert accepted.status_code == 200, accepted.json
    assert call(client, "PUT", "/providers/me/location", people["provider"],
                {"latitude": NYC[0], "longitude": NYC[1]}).status_code == 200
    mine = call(client, "GET", f"/orders/{order['id']}/stream", people["provider"])
    theirs = call(client, "GET", f"/orders/{order['id']}/stream", people["creator"])
    assert mine.status_code == 200 and theirs.status_code == 200
    playback_url = theirs.json["data"]["stream"]["playbackUrl"]
    return StreamedOrder(id=order["id"], key=mine.json["data"]["stream"]["streamKey"],
                         playback_id=playback_url.rsplit("/", 1)[1].removesuffix(".m3u8"),
                         playback_url=playback_url)


@pytest.fixture
def streamed_order(client: FlaskClient, people: dict[str, User], rtmp: Any,
                   worker: Celery) -> StreamedOrder:
    return accepted_with_hold(client, people)


# ----------------------------------------------------------------------------- reading back
class Facts:
    """What the database says now (each read its own committed transaction)."""

    def __init__(self, app: Flask) -> None:
        self.database = app.extensions["taplive"].db

    def order(self, order_id: str) -> Order:
        with self.database.transaction() as session:
            order = session.get(Order, order_id)
            assert order is not None
            session.expunge(order)
            return order

    def sessions(self, order_id: str) -> list[StreamSession]:
        with self.database.transaction() as session:
            found = list(session.scalars(select(StreamSession).where(
                StreamSession.order_id == order_id).order_by(StreamSession.created_at)))
            for row in found:
                session.expunge(row)
            return found

    def stream(self, order_id: str) -> StreamSession:
        return self.sessions(order_id)[-1]

    def segments(self, order_id: str) -> list[StreamSegment]:
        with self.database.transaction() as session:
            found = list(session.scalars(select(StreamSegment).join(
                StreamSession, StreamSession.id == StreamSegment.session_id).where(
                StreamSession.order_id == order_id).order_by(StreamSegment.started_at)))
            for row in found:
                session.expunge(row)
            return found

    def escrow(self, order_id: str) -> PaymentEscrow | None:
        with self.database.transaction() as session:
            escrow = session.scalars(select(PaymentEscrow).where(
                PaymentEscrow.order_id == order_id)).first()
            if escrow is not None:
                session.expunge(escrow)
            return escrow


@pytest.fixture
def facts(stream_app: Flask) -> Facts:
    return Facts(stream_app)


def run_task(app: Flask, name: str) -> Any:
    """A beat task, run here and now (as beat would have the worker run it)."""
    return app.extensions["celery"].tasks[name].apply().get()


def hls_file(rtmp: rtmp_server.RtmpServer, name: str) -> bytes | None:
    """The ingest's HLS file (playlist or fragment) over HTTP, or None (not there yet)."""
    with contextlib.suppress(OSError), urllib.request.urlopen(
            f"{rtmp.config.hls_url}/{name}", timeout=2) as response:
        return bytes(response.read())
    return None


def hls_playlist(rtmp: rtmp_server.RtmpServer, playback_id: str) -> str | None:
    body = hls_file(rtmp, f"{playback_id}.m3u8")
    return body.decode() if body is not None else None
