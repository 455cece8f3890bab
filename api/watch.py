"""The creator's watch page, ``GET /watch/{orderId}`` (docs/streaming.md, "Watching").

Plain HTML, not part of the JSON API (no OpenAPI entry, no envelope): the page itself needs no
token and holds nothing secret. Its script reads the creator's access token from the URL
fragment (``#token=...``, which browsers never send to the server), asks the API for the order
and its stream with ``Authorization: Bearer``, and plays the HLS playlist with hls.js.

hls.js is installed by the build (scripts/ensure_web_assets.sh: ``npm ci`` in web/, then a copy
into ``api/static/vendor/``), so it is package data served from this origin like the page's own
script: no CDN, and the Content-Security-Policy below allows scripts from ``'self'`` only.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, make_response, render_template, url_for

from api.services import services

watch = Blueprint("watch", __name__, url_prefix="/watch", template_folder="templates",
                  static_folder="static", static_url_path="/assets")

#: Where scripts/ensure_web_assets.sh puts the player; absent until the build has run it.
PLAYER_FILE = Path(__file__).parent / "static" / "vendor" / "hls.min.js"
#: How often the page asks for the stream again (the order only when the stream's status moved,
#: or every 30 s): about 210 requests per 15 minutes of the creator's budget of 1000.
POLL_MS = 5000


def media_origin(hls_base: str) -> str | None:
    """The scheme://host[:port] the playlists come from, or None when they are served from the
    page's own origin (a path-only base behind the same proxy)."""
    parts = urlsplit(hls_base)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def content_security_policy(hls_base: str) -> str:
    """Everything from this origin only, except the video: playlists and fragments may come
    from the HLS origin (hls.js fetches them: connect-src; native HLS loads them: media-src).
    hls.js plays through Media Source Extensions (a ``blob:`` media URL) and runs its demuxer
    in a worker it builds from a ``blob:`` URL."""
    origin = media_origin(hls_base)
    media = " ".join(filter(None, ["'self'", origin]))
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        f"connect-src {media}",
        f"media-src {media} blob:",
        "worker-src blob:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])


@watch.get("/<uuid:order_id>")
def watch_page(order_id: uuid.UUID) -> Response:
    player_present = PLAYER_FILE.is_file()
    html = render_template(
        "watch.html", order_id=str(order_id), api_base="/api/v1", poll_ms=POLL_MS,
        player_present=player_present,
        player_url=url_for("watch.static", filename="vendor/hls.min.js"))
    response = make_response(html)
    response.headers["Content-Security-Policy"] = content_security_policy(
        services().settings.stream_hls_base)
    # The page is the same for everyone; the answers it fetches are the creator's own.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
