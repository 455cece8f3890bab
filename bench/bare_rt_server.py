"""The baseline of bench/realtime_bench.py: a bare python-socketio ``AsyncServer`` on uvicorn
with the same Redis manager and ping settings as ``realtime.server`` and nothing of ours (no
token check, no revocation watch, no recovery). A socket joins the room named by its
``auth.token``, so the same client fleet and the same emitter (``SocketIONotifier``) drive it.

``uvicorn bench.bare_rt_server:app`` (``BARE_REDIS_URL``; channel ``BARE_CHANNEL``).
"""

from __future__ import annotations

import os
from typing import Any

import socketio

BARE_CHANNEL = "taplive:bench:bare"

sio = socketio.AsyncServer(
    async_mode="asgi",
    client_manager=socketio.AsyncRedisManager(
        os.environ.get("BARE_REDIS_URL", "redis://127.0.0.1:6379/14"), channel=BARE_CHANNEL),
    cors_allowed_origins="*", logger=False, engineio_logger=False,
    ping_interval=int(os.environ.get("BARE_PING_INTERVAL_S", "20")),
    ping_timeout=int(os.environ.get("BARE_PING_TIMEOUT_S", "20")))


@sio.on("connect")
async def on_connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
    room = auth.get("token") if isinstance(auth, dict) else None
    if isinstance(room, str):
        await sio.enter_room(sid, room)
    return True


async def _health(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


app = socketio.ASGIApp(sio, other_asgi_app=_health)
