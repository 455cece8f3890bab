"""The watch page over the Flask test client: served without a token, locked down by its CSP,
outside the JSON API (the browser itself is tests/streams/test_watch_browser.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from api import watch as watch_module
from tests.conftest import make_settings


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _csp(header: str) -> dict[str, list[str]]:
    directives = (part.strip().split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


def test_the_page_is_served_to_anyone_without_a_token(client: FlaskClient) -> None:
    order_id = uuid.uuid4()
    response = client.get(f"/watch/{order_id}")  # no Authorization: the HTML holds nothing
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert f'data-order-id="{order_id}"' in html
    assert 'src="/watch/assets/watch/watch.js"' in html
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    # Not part of the JSON API: no envelope, no OpenAPI path.
    assert '"success"' not in html
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert not [path for path in paths if path.startswith("/watch")]


def test_a_malformed_order_id_is_not_found(client: FlaskClient) -> None:
    assert client.get("/watch/not-an-order").status_code == 404
    assert client.get("/watch/1234").status_code == 404


def test_the_csp_allows_this_origin_and_the_hls_origin_only(client: FlaskClient) -> None:
    header = client.get(f"/watch/{uuid.uuid4()}").headers["Content-Security-Policy"]
    csp = _csp(header)
    hls_origin = "http://127.0.0.1:8088"  # the default stream_hls_base's origin
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no CDN, no inline script
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'", hls_origin]
    assert csp["media-src"] == ["'self'", hls_origin, "blob:"]
    assert csp["frame-ancestors"] == ["'none'"]


def test_the_csp_follows_the_configured_hls_url(pg_url: str) -> None:
    app = create_app(make_settings(pg_url, stream_hls_url="https://video.example.com/hls"))
    csp = _csp(app.test_client().get(f"/watch/{uuid.uuid4()}")
               .headers["Content-Security-Policy"])
    assert csp["connect-src"] == ["'self'", "https://video.example.com"]
    assert csp["media-src"] == ["'self'", "https://video.example.com", "blob:"]
    # Playlists behind the same proxy as the page: nothing beyond this origin.
    assert watch_module.media_origin("/hls") is None
    assert _csp(watch_module.content_security_policy("/hls"))["connect-src"] == ["'self'"]


def test_the_page_script_and_style_are_served(client: FlaskClient) -> None:
    script = client.get("/watch/assets/watch/watch.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    assert b"Authorization" in script.data
    assert client.get("/watch/assets/watch/watch.css").status_code == 200


def test_the_player_the_build_installed_is_served(client: FlaskClient) -> None:
    if not watch_module.PLAYER_FILE.is_file():
        pytest.skip("hls.js is not installed: scripts/ensure_web_assets.sh needs node/npm")
    html = client.get(f"/watch/{uuid.uuid4()}").get_data(as_text=True)
    assert 'src="/watch/assets/vendor/hls.min.js"' in html and "player-missing" not in html
    player = client.get("/watch/assets/vendor/hls.min.js")
    assert player.status_code == 200 and b"Hls" in player.data


def test_the_page_says_when_the_player_is_missing(client: FlaskClient, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_module, "PLAYER_FILE", tmp_path / "hls.min.js")
    html = client.get(f"/watch/{uuid.uuid4()}").get_data(as_text=True)
    assert 'id="player-missing"' in html and "scripts/ensure_web_assets.sh" in html
    assert "hls.min.js" not in html  # no script tag pointing at a file that is not there


def test_the_page_and_its_files_are_outside_the_rate_limits(pg_url: str) -> None:
    app = create_app(make_settings(pg_url, rate_limit_enabled=True,
                                   rate_limit_anonymous="2 per 15 minutes"))
    client = app.test_client()
    address = {"REMOTE_ADDR": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}  # TEST-NET-2
    for _ in range(3):  # three page loads: twelve requests, none counted
        for path in (f"/watch/{uuid.uuid4()}", "/watch/assets/watch/watch.js",
                     "/watch/assets/watch/watch.css"):
            assert client.get(path, environ_base=address).status_code == 200
    # The API calls still are: the address's budget of two is whole.
    statuses = [client.get("/api/v1/users/me", environ_base=address).status_code
                for _ in range(3)]
    assert statuses == [401, 401, 429]
