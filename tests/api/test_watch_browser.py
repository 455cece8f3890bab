"""The watch page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; never
Playwright's own browser downloads): a creator's accepted order whose stream went live through
the real on_publish callback, with real H.264 video (ffmpeg's test pattern as HLS). The page's
player loads fragments, its position advances, and it shows the order's state."""

from __future__ import annotations

import functools
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from api import create_app
from api import watch as watch_module
from db.models import User
from tests import factories
from tests.api.orders_helpers import accepted_order, call, create_order
from tests.auth_helpers import access_token
from tests.conftest import discard_committed_data, make_settings

CHROMIUM = Path("/usr/bin/chromium")
NYC = (40.7128, -74.0060)  # the order_body() location

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None,
                       reason="ffmpeg is not installed (apt-get install ffmpeg)"),
    pytest.mark.skipif(not watch_module.PLAYER_FILE.is_file(),
                       reason="hls.js is not installed: run scripts/ensure_web_assets.sh "
                              "(needs node/npm)"),
]
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


# ------------------------------------------------------------------- the HLS source (replaceable)
class _CorsFiles(SimpleHTTPRequestHandler):
    """Static files with CORS (the page's origin is the API's, the playlists' another port)
    and no caching of live playlists."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FfmpegHls:
    """Stands in for nginx-rtmp's HLS output until the lead swaps in the real server fixture
    (tests/streams/): ``url`` is what STREAM_HLS_URL is set to before the app is built;
    ``publish`` makes the session live through the real on_publish callback (as nginx would on
    ffmpeg's connect) and writes real HLS under the name that callback gave the stream."""

    def __init__(self, root: Path) -> None:
        self.directory = root / "hls"
        self.directory.mkdir()
        handler = functools.partial(_CorsFiles, directory=str(root))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/hls"
        self.log = root / "ffmpeg.log"
        self._ffmpeg: subprocess.Popen[bytes] | None = None

    def publish(self, client: FlaskClient, secret: str, stream_key: str) -> str:
        answer = client.post(f"/internal/rtmp/on_publish?secret={secret}",
                             data={"app": "live", "name": stream_key, "clientid": "1",
                                   "call": "publish", "addr": "127.0.0.1"},
                             environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert answer.status_code == 302, answer.status_code
        playback_id = str(answer.headers["Location"])
        with self.log.open("wb") as log:
            self._ffmpeg = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
                 "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                 # yuv420p: testsrc is RGB, and browsers decode 4:2:0 H.264 only.
                 "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                 "-pix_fmt", "yuv420p", "-g", "25",
                 "-f", "hls", "-hls_time", "1", "-hls_list_size", "6",
                 "-hls_flags", "delete_segments",
                 str(self.directory / f"{playback_id}.m3u8")],
                stdout=subprocess.DEVNULL, stderr=log)
        return playback_id

    def diagnostics(self) -> str:
        files = sorted(p.name for p in self.directory.iterdir())
        exited = self._ffmpeg.poll() if self._ffmpeg is not None else "not started"
        return (f"HLS files: {files}; ffmpeg exit: {exited}; "
                f"ffmpeg log: {self.log.read_text(errors='replace')[-2000:]}")

    def close(self) -> None:
        if self._ffmpeg is not None:
            self._ffmpeg.terminate()
            self._ffmpeg.wait(timeout=10)
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def hls_source(tmp_path: Path) -> Iterator[FfmpegHls]:
    source = FfmpegHls(tmp_path)
    yield source
    source.close()


# ------------------------------------------------------------------------- the app, on a port
@pytest.fixture
def app(pg_url: str, hls_source: FfmpegHls) -> Iterator[Flask]:
    app = create_app(make_settings(pg_url, stream_hls_url=hls_source.url))
    yield app
    discard_committed_data(app)


@pytest.fixture
def site(app: Flask) -> Iterator[str]:
    """The app on a real port (Chromium loads the page over HTTP), in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def people(app: Flask) -> dict[str, User]:
    database = app.extensions["taplive"].db
    with database.transaction() as session:
        factories.bind(session)
        try:
            ids = {"creator": factories.UserFactory().id,
                   "provider": factories.UserFactory(provider=True, verified=True).id}
        finally:
            factories.bind(None)
    with database.transaction() as session:
        return {k: session.get(User, v) for k, v in ids.items()}  # type: ignore[misc]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        # Muted autoplay is allowed anyway; the flag keeps a policy change from failing the test.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--autoplay-policy=no-user-gesture-required"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def _wait_until(page: Any, condition: str, seconds: float) -> None:
    """Poll ``condition`` in the page from here: Playwright's wait_for_function evaluates a
    string in the page, which the page's CSP (no 'unsafe-eval') rightly refuses."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(condition):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {seconds}s: {condition}")
        page.wait_for_timeout(250)


# ------------------------------------------------------------------------------------ tests
def test_the_creator_watches_the_live_stream(app: Flask, site: str, page: Any,
                                             hls_source: FfmpegHls,
                                             people: dict[str, User]) -> None:
    client = app.test_client()
    creator, provider = people["creator"], people["provider"]
    order = accepted_order(client, creator, provider)
    assert call(client, "PUT", "/providers/me/location", provider,
                {"latitude": NYC[0], "longitude": NYC[1]}).status_code == 200
    key = call(client, "GET", f"/orders/{order['id']}/stream", provider) \
        .json["data"]["stream"]["streamKey"]
    playback_id = hls_source.publish(client, app.extensions["taplive"].settings
                                     .stream_callback_key, key)
    assert call(client, "GET", f"/orders/{order['id']}", creator) \
        .json["data"]["order"]["status"] == "active"

    fragments: list[str] = []
    problems: list[str] = []
    page.on("response", lambda r: fragments.append(r.url)
            if r.ok and r.url.endswith(".ts") else None)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    started = time.monotonic()
    page.goto(f"{site}/watch/{order['id']}#token={access_token(creator, app)}")

    try:
        _wait_until(page, "document.getElementById('player').currentTime > 1", 30)
    except Exception as error:
        message = page.locator("#message").text_content()
        raise AssertionError(f"the player never advanced ({message!r}); "
                             f"{hls_source.diagnostics()}; console: {problems}") from error
    first = page.evaluate("document.getElementById('player').currentTime")
    page.wait_for_timeout(2_000)
    later = page.evaluate("document.getElementById('player').currentTime")
    print(f"playing {time.monotonic() - started:.1f}s after navigation; "
          f"{len(fragments)} fragments; position {first:.2f}s -> {later:.2f}s")

    assert later > first + 1  # real playback: the position moves with the clock
    assert len(fragments) >= 2 and all(f"/hls/{playback_id}" in url for url in fragments)
    assert page.locator("#order-status").text_content() == "active"
    assert page.locator("#stream-status").text_content() == "live"
    assert page.locator("#message").text_content() == "Live."
    assert str(page.locator("[data-fact=publishedSeconds]").text_content()).isdigit()
    # The token left the address bar (it stays in this tab's sessionStorage for reloads).
    assert "token=" not in page.url
    assert [p for p in problems if "Content Security Policy" in p] == [], problems


def test_the_page_says_what_is_wrong(app: Flask, site: str, page: Any,
                                     people: dict[str, User]) -> None:
    creator = people["creator"]

    def message_after(url: str, expected: str) -> str:
        page.goto("about:blank")  # else a change of fragment alone would not reload the page
        page.goto(url)
        _wait_until(page, f"document.getElementById('message').textContent.includes("
                          f"{expected!r})", 10)
        return str(page.locator("#message").text_content())

    unknown = uuid.uuid4()
    assert "No access token" in message_after(f"{site}/watch/{unknown}", "No access token")
    message_after(f"{site}/watch/{unknown}#token=not-a-token", "access token was refused")
    message_after(f"{site}/watch/{unknown}#token={access_token(creator, app)}",
                  "Order not found")
    pending = create_order(app.test_client(), creator)
    message_after(f"{site}/watch/{pending['id']}#token={access_token(creator, app)}",
                  "No stream yet")
    assert page.locator("#order-status").text_content() == "pending"
