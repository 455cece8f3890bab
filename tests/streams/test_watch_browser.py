"""The watch page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; never
Playwright's own browser downloads), on the real ingest: ffmpeg publishes a test pattern to
nginx-rtmp's ``live`` app with the provider's key, nginx's on_publish callback reaches the API on
its real port and starts the order, and the creator's page, served by that same API, plays the
HLS nginx writes (its /hls/, on another origin, with CORS). The page's player loads fragments,
its position advances with the clock, and it shows the order's state."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer

from api import watch as watch_module
from core import rtmp_server
from core.enums import OrderStatus
from db.models import User
from tests.api.orders_helpers import create_order
from tests.auth_helpers import access_token
from tests.streams.conftest import Facts, Publisher, StreamedOrder, wait_until

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(not watch_module.PLAYER_FILE.is_file(),
                       reason="hls.js is not installed: run scripts/ensure_web_assets.sh "
                              "(needs node/npm)"),
]
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture
def site(api_server: BaseWSGIServer) -> str:
    """The API's own address: the page is served by the process nginx calls back."""
    return f"http://127.0.0.1:{api_server.server_port}"


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


def _wait_in_page(page: Any, condition: str, seconds: float) -> None:
    """Poll ``condition`` in the page from here: Playwright's wait_for_function evaluates a
    string in the page, which the page's CSP (no 'unsafe-eval') rightly refuses."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(condition):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {seconds}s: {condition}")
        page.wait_for_timeout(250)


def _diagnostics(rtmp: rtmp_server.RtmpServer, publisher: Publisher) -> str:
    hls = sorted(p.name for p in rtmp.config.hls_dir.iterdir())
    return (f"HLS files: {hls}; ffmpeg running: {publisher.running()}; "
            f"ffmpeg output: {publisher.output()[-2000:]}")


def _pixel_formats(fragment: Path) -> set[str]:
    """The fragment's video pixel format (ffprobe lists it per program and per stream)."""
    probed = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=pix_fmt", "-of", "default=noprint_wrappers=1:nokey=1", str(fragment)],
        capture_output=True, text=True, timeout=10, check=True)
    return set(probed.stdout.split())


# ------------------------------------------------------------------------------------ tests
def test_the_creator_watches_the_live_stream(
        stream_app: Flask, site: str, page: Any, rtmp: rtmp_server.RtmpServer,
        streamed_order: StreamedOrder, publish: Callable[[str], Publisher],
        people: dict[str, User], facts: Facts) -> None:
    order = streamed_order
    publisher = publish(order.key)  # to nginx's live app, with the provider's key
    wait_until(lambda: facts.order(order.id).status is OrderStatus.ACTIVE, 10,
               what="nginx's on_publish to start the order")

    fragments: list[str] = []
    problems: list[str] = []
    page.on("response", lambda r: fragments.append(r.url)
            if r.ok and r.url.endswith(".ts") else None)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    started = time.monotonic()
    page.goto(f"{site}/watch/{order.id}#token={access_token(people['creator'], stream_app)}")

    try:
        _wait_in_page(page, "document.getElementById('player').currentTime > 1", 30)
    except Exception as error:
        message = page.locator("#message").text_content()
        raise AssertionError(f"the player never advanced ({message!r}); "
                             f"{_diagnostics(rtmp, publisher)}; console: {problems}") from error
    first = page.evaluate("document.getElementById('player').currentTime")
    page.wait_for_timeout(2_000)
    later = page.evaluate("document.getElementById('player').currentTime")
    print(f"playing {time.monotonic() - started:.1f}s after navigation; "
          f"{len(fragments)} fragments; position {first:.2f}s -> {later:.2f}s")

    assert later > first + 1  # real playback: the position moves with the clock
    # The fragments came from nginx's /hls/ (another origin: its CORS let hls.js fetch them),
    # under the public playback id, never the key.
    assert len(fragments) >= 2
    assert all(url.startswith(f"{rtmp.config.hls_url}/{order.playback_id}")
               for url in fragments), fragments
    assert not any(order.key in url for url in fragments)
    # What was played is 4:2:0, what every browser decodes (the publisher's -pix_fmt yuv420p;
    # this Chromium would also play x264's 4:4:4, so the page's playback alone cannot tell).
    played = rtmp.config.hls_dir / fragments[-1].rsplit("/", 1)[1]
    assert _pixel_formats(played) == {"yuv420p"}
    assert page.locator("#order-status").text_content() == "active"
    assert page.locator("#stream-status").text_content() == "live"
    assert page.locator("#message").text_content() == "Live."
    assert str(page.locator("[data-fact=publishedSeconds]").text_content()).isdigit()
    # The token left the address bar (it stays in this tab's sessionStorage for reloads).
    assert "token=" not in page.url
    assert [p for p in problems if "Content Security Policy" in p] == [], problems
    assert publisher.running()


def test_the_page_says_what_is_wrong(stream_app: Flask, client: FlaskClient, site: str,
                                     page: Any, people: dict[str, User]) -> None:
    creator = people["creator"]

    def message_after(url: str, expected: str) -> str:
        page.goto("about:blank")  # else a change of fragment alone would not reload the page
        page.goto(url)
        _wait_in_page(page, f"document.getElementById('message').textContent.includes("
                            f"{expected!r})", 10)
        return str(page.locator("#message").text_content())

    token = access_token(creator, stream_app)
    unknown = uuid.uuid4()
    assert "No access token" in message_after(f"{site}/watch/{unknown}", "No access token")
    message_after(f"{site}/watch/{unknown}#token=not-a-token", "access token was refused")
    message_after(f"{site}/watch/{unknown}#token={token}", "Order not found")
    pending = create_order(client, creator)
    message_after(f"{site}/watch/{pending['id']}#token={token}", "No stream yet")
    assert page.locator("#order-status").text_content() == "pending"
