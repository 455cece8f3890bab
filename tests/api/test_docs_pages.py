"""The API docs pages as HTTP answers: same-origin assets only, a strict CSP, the bundles
served by the service itself, and a page that says what is missing before the build ran.

Plain ``FlaskClient(app)``: the shared ``client`` fixture leaves its own client class on the
session's app."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api import docs


def _policy(header: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in header.split("; "))}


@pytest.mark.parametrize("path", ["/api/v1/docs", "/api/v1/redoc"])
def test_the_pages_load_nothing_from_elsewhere(app: Flask, path: str) -> None:
    response = FlaskClient(app).get(path)
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    # Every src/href is a path on this origin (or the empty data: icon).
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/") or url == "data:,", url
    assert "cdn" not in html.lower()
    policy = _policy(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["style-src"]
    assert all(not value.startswith("http") for values in policy.values() for value in values)


def test_redoc_gets_a_fresh_style_nonce_per_response(app: Flask) -> None:
    client = FlaskClient(app)
    nonces = []
    for _ in range(2):
        response = client.get("/api/v1/redoc")
        style = _policy(response.headers["Content-Security-Policy"])["style-src"]
        nonce = next(value for value in style if value.startswith("'nonce-"))[7:-1]
        assert f'data-style-nonce="{nonce}"' in response.get_data(as_text=True)
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


@pytest.mark.skipif(not docs.installed(docs.SWAGGER_UI_FILES + docs.REDOC_FILES),
                    reason="run scripts/ensure_web_assets.sh (needs node/npm)")
@pytest.mark.parametrize(("path", "mimetype"), [
    ("/api/v1/docs/assets/vendor/swagger-ui-bundle.js", "text/javascript"),
    ("/api/v1/docs/assets/vendor/swagger-ui.css", "text/css"),
    ("/api/v1/docs/assets/vendor/redoc.standalone.js", "text/javascript"),
    ("/api/v1/docs/assets/docs/swagger-init.js", "text/javascript"),
    ("/api/v1/docs/assets/docs/redoc-init.js", "text/javascript"),
])
def test_the_assets_are_served_here(app: Flask, path: str, mimetype: str) -> None:
    response = FlaskClient(app).get(path)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert len(response.get_data()) > 100


def test_without_the_build_the_page_says_what_is_missing(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docs, "SWAGGER_UI_FILES", ("vendor/not-installed.js",))
    html = FlaskClient(app).get("/api/v1/docs").get_data(as_text=True)
    assert 'id="docs-missing"' in html and "scripts/ensure_web_assets.sh" in html
    assert "swagger-ui-bundle.js" not in html
