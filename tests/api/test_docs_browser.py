"""The API docs pages in headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
Swagger UI lists every operation of the spec and Redoc renders, with the assets served by the
service itself and under its content-security policy. Every request that does not go to
127.0.0.1 is blocked and recorded: the test fails if the page tried to reach anything else (a
CDN, validator.swagger.io, a font host)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from api import docs

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(not docs.installed(docs.SWAGGER_UI_FILES + docs.REDOC_FILES),
                       reason="Swagger UI / Redoc are not installed: run "
                              "scripts/ensure_web_assets.sh (needs node/npm)"),
]
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

#: Redoc's side menu shows the Redocly logo from its CDN; the page's img-src refuses it before
#: any request is made (the one CSP report expected, see api/docs.py).
REDOC_LOGO_REFUSED = "Loading the image 'https://cdn.redoc.ly/redoc/logo-mini.svg' violates"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


@pytest.fixture(scope="module")
def site(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="docs-http", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def operations(app: Flask) -> int:
    spec = FlaskClient(app).get("/api/v1/openapi.json").get_json()
    return sum(1 for item in spec["paths"].values() for method in item if method in HTTP_METHODS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


class Watched:
    """A page whose requests off localhost are aborted and noted, with its errors."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context()
        self.outside: list[str] = []
        self.problems: list[str] = []
        self.refused_logo = False
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))

    def _route(self, route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def _console(self, message: Any) -> None:
        # A CSP violation is reported on the console as an error, before any request is made.
        if message.type != "error":
            return
        if message.text.startswith(REDOC_LOGO_REFUSED):
            self.refused_logo = True
        else:
            self.problems.append(message.text)

    def count(self, selector: str, at_least: int, seconds: float) -> int:
        """Poll from here: the page's CSP (no 'unsafe-eval') refuses wait_for_function."""
        deadline = time.monotonic() + seconds
        while (found := self.page.locator(selector).count()) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"{found} of {at_least} {selector!r} after {seconds}s; "
                                     f"problems: {self.problems}; outside: {self.outside}")
            self.page.wait_for_timeout(250)
        return found


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    watched = Watched(browser)
    yield watched
    watched.context.close()


def test_swagger_ui_lists_every_operation_offline(site: str, watched: Watched,
                                                  operations: int) -> None:
    assert operations > 50  # the spec is the real one
    response = watched.page.goto(f"{site}/api/v1/docs")
    assert response is not None and response.ok
    assert "script-src 'self'" in response.headers["content-security-policy"]
    found = watched.count(".opblock", operations, 30)
    assert found == operations
    assert watched.page.locator(".info .title").first.text_content().startswith("TapLive API")
    assert watched.outside == []
    assert watched.problems == []


def test_redoc_renders_offline(site: str, watched: Watched, operations: int) -> None:
    response = watched.page.goto(f"{site}/api/v1/redoc")
    assert response is not None and response.ok
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # The side menu lists every operation (tag/<tag>/paths/<path>/<method>), and the content
    # shows them: the title, and the first operations' sections.
    found = watched.count("li[data-item-id*='/paths/']", operations, 30)
    assert found == operations
    watched.count("[data-section-id*='/paths/']", 1, 30)
    assert "TapLive API" in (watched.page.locator("h1").first.text_content() or "")
    assert watched.outside == []
    assert watched.problems == []
    assert watched.refused_logo  # refused by the CSP, so never requested
