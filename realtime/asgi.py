"""``uvicorn realtime.asgi:app``: the Socket.IO server, plus ``GET /health`` for probes.

Builds the one composition root of this process from the environment's settings.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import socketio

from core.config import load_settings
from core.logging import configure_logging
from realtime.server import RealtimeServer
from services import build_services
from workers.celery_factory import make_celery

Receive = Any
Send = Any


def create_app(server: RealtimeServer) -> socketio.ASGIApp:
    async def health(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """``/health``: the process serves (and how many sockets it holds); anything else
        outside ``/socket.io`` is a 404 in the API's envelope."""
        if scope["type"] == "lifespan":  # handled by ASGIApp's on_startup/on_shutdown
            return
        if scope.get("path") == "/health":
            status, body = 200, {"success": True, "data": {
                "status": "ok", "connections": len(server.clients)}}
        else:
            status, body = 404, {"success": False, "error": {
                "code": "NOT_FOUND", "message": "Socket.IO is served at /socket.io/."}}
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    return socketio.ASGIApp(server.sio, other_asgi_app=health, on_startup=server.start,
                            on_shutdown=server.stop)


def _build() -> socketio.ASGIApp:
    settings = load_settings()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    services = build_services(settings)
    # Position reports commit outbox rows (geofence events): the Celery app registers the
    # after-commit kick that sends them on, as in the API.
    make_celery(services)
    app = create_app(RealtimeServer(services))
    if settings.realtime_gc_tuning:
        tune_gc()
    return app


def tune_gc() -> None:
    """Move everything start-up allocated (modules, the composition root: long-lived) out of
    the collector's reach, and collect the young generation less often: each socket allocates
    a burst of small containers, and each full collection otherwise walks them all."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


app = _build()
