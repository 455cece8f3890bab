"""The real-time server: python-socketio's ``AsyncServer`` on uvicorn (docs/realtime.md).

Fanned out across processes by ``AsyncRedisManager`` on ``core.notifier.SOCKETIO_CHANNEL``:
every emitter (API, workers, this process) publishes there and every server process delivers
to its own sockets. The composition root (``services.build_services``) is built once; its
synchronous parts (the token check, the database) run in worker threads so one slow query
never stalls ten thousand sockets.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs

import marshmallow as ma
import redis
import socketio
from socketio import packet

from core.enums import UserRole
from core.errors import DomainError
from core.notifier import SOCKETIO_CHANNEL, invited_room, order_room, user_room
from db.queries import orders as order_queries
from domain import presence
from domain.auth import generations
from domain.auth.errors import AuthUnavailable, TokenRejected
from domain.auth.tokens import DENYLIST_PREFIX, FAMILY_DENYLIST_PREFIX, VerifiedToken
from domain.location_input import LocationUpdateSchema
from domain.permissions import Permission, permissions_for
from domain.presence_store import LocationStore, ProviderLocation
from domain.realtime import invited_provider_ids
from services import Services

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long a recovery session id (``pid``) is remembered after its socket went away.
PID_PREFIX = "taplive:rt:pid:"
#: Position reports accepted per socket per second (the REST route has its rate limit; the
#: history sample gate inside ``report_location`` is shared by both ways in).
LOCATION_UPDATES_PER_S = 5


@dataclass
class Client:
    """One authenticated socket."""

    user_id: uuid.UUID
    role: UserRole
    token: str
    jti: str
    exp: float
    generation: int
    pid: str
    family: str | None = None  # the token's refresh-token family (revoked on reuse, logout)
    location_window: list[float] = field(default_factory=list)
    #: Its denylist entry and its account's generation copy, built once: the revocation
    #: check asks for them every half second for every socket.
    #: A token without a family reads a key nobody writes: three keys per socket.
    revocation_keys: tuple[str, str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.revocation_keys = (DENYLIST_PREFIX + self.jti,
                                FAMILY_DENYLIST_PREFIX + (self.family or "-"),
                                generations.key(self.user_id))


@dataclass
class Handshake:
    """What the CONNECT reply must carry and what follows it (see ``_send_packet``)."""

    pid: str
    replay: list[tuple[str, dict[str, Any]]]
    sync_required: bool


class _RecoveringServer(socketio.AsyncServer):
    """python-socketio does not implement Socket.IO's connection-state recovery; its client
    half is in the official JavaScript client. This adds the server half: the CONNECT reply
    carries a ``pid`` (the client hands it back with its last offset on reconnect), and the
    missed events are replayed right after that reply, before anything else reaches the
    socket."""

    handshakes: dict[str, Handshake]

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        handshake = None
        if pkt.packet_type == packet.CONNECT and isinstance(pkt.data, dict) \
                and "sid" in pkt.data:
            handshake = self.handshakes.pop(pkt.data["sid"], None)
            if handshake is not None:
                pkt.data["pid"] = handshake.pid
        await super()._send_packet(eio_sid, pkt)
        if handshake is None:
            return
        sid = pkt.data["sid"]
        # The socket is this process's own: straight to it, not a round trip through the
        # Redis channel per event (a reconnect after two minutes replays a hundred).
        for offset, event in handshake.replay:
            await self.emit(event["event"], (event, offset), to=sid, ignore_queue=True)
        if handshake.sync_required:
            await self.emit("sync:required", {
                "reason": "Some events are older than the replay window; catch up with "
                          "GET /api/v1/notifications.",
                "notifications": "/api/v1/notifications"}, to=sid, ignore_queue=True)


class RealtimeServer:
    def __init__(self, services: Services, *, cors_allowed_origins: Any = "*") -> None:
        self.services = services
        settings = services.settings
        self.sio = _RecoveringServer(
            async_mode="asgi",
            client_manager=socketio.AsyncRedisManager(settings.redis_url,
                                                      channel=SOCKETIO_CHANNEL),
            cors_allowed_origins=cors_allowed_origins, logger=False, engineio_logger=False,
            # A dead client is noticed within ping_interval + ping_timeout.
            ping_interval=settings.realtime_ping_interval_s,
            ping_timeout=settings.realtime_ping_timeout_s, max_http_buffer_size=64 * 1024)
        self.sio.handshakes = {}
        self.clients: dict[str, Client] = {}
        self._watch: asyncio.Task[None] | None = None
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("join", self.on_join)
        self.sio.on("leave", self.on_leave)
        self.sio.on("location:update", self.on_location)

    # --------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_revocations())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        """Run sync root code in a worker thread; its scoped database session is removed in
        that same thread."""
        def run() -> T:
            try:
                return fn()
            finally:
                self.services.db.session.remove()
        return await asyncio.to_thread(run)

    # ---------------------------------------------------------------------------- connect
    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        auth = auth if isinstance(auth, dict) else {}
        token = _token_from(auth, environ)
        try:
            verified = await self._in_thread(
                lambda: self.services.token_verifier.verify(token))
        except (TokenRejected, AuthUnavailable) as exc:
            # Socket.IO's convention: the client's connect_error has ``message`` and ``data``.
            raise socketio.exceptions.ConnectionRefusedError(
                exc.message, {"code": exc.code, "message": exc.message}) from None
        assert token is not None
        user_id = verified.user_id
        handshake = await self._in_thread(lambda: self._handshake(user_id, auth))
        self.clients[sid] = _client(verified, token, handshake.pid)
        await self.sio.enter_room(sid, user_room(user_id))
        self.sio.handshakes[sid] = handshake
        return True

    def _handshake(self, user_id: uuid.UUID, auth: dict[str, Any]) -> Handshake:
        """The recovery session id to hand out (the client's own if it is this user's) and
        what it missed since ``auth.offset``."""
        client = self.services.redis
        pid = auth.get("pid")
        if not (isinstance(pid, str) and len(pid) <= 64
                and _text(client.get(PID_PREFIX + pid)) == str(user_id)):
            pid = secrets.token_urlsafe(16)
        client.set(PID_PREFIX + pid, str(user_id),
                   ex=self.services.settings.realtime_retention_s)
        offset = auth.get("offset")
        if not isinstance(offset, str) or not offset:
            return Handshake(pid, [], False)
        replay = self.services.pusher.replay(user_id, offset[:64])
        if replay is None:
            return Handshake(pid, [], True)
        return Handshake(pid, replay, False)

    async def on_disconnect(self, sid: str, *_: Any) -> None:
        client = self.clients.pop(sid, None)
        self.sio.handshakes.pop(sid, None)
        if client is not None:
            # The window in which this pid can resume starts now.
            try:
                await self._in_thread(lambda: self.services.redis.expire(
                    PID_PREFIX + client.pid, self.services.settings.realtime_retention_s))
            except redis.RedisError:
                log.warning("could not keep the recovery session", exc_info=True)

    # ------------------------------------------------------------------------------ rooms
    async def on_join(self, sid: str, data: Any = None) -> dict[str, Any]:
        client = self.clients.get(sid)
        order_id = _order_id(data)
        if client is None or order_id is None:
            return _refused("VALIDATION_ERROR", "Send {\"orderId\": \"<uuid>\"}.")
        room = await self._in_thread(lambda: self._room_for(client, order_id))
        if room is None:
            return _refused("FORBIDDEN", "Only the order's participants may join its room.")
        await self.sio.enter_room(sid, room)
        return {"ok": True, "room": room}

    def _room_for(self, client: Client, order_id: uuid.UUID) -> str | None:
        order = order_queries.find_by_id(self.services.db.session(), order_id)
        if order is None:
            return None
        if client.user_id in (order.creator_id, order.provider_id):
            return order_room(order_id)
        if client.user_id in invited_provider_ids(self.services.db.session(), order_id):
            return invited_room(order_id)
        return None

    async def on_leave(self, sid: str, data: Any = None) -> dict[str, Any]:
        order_id = _order_id(data)
        if order_id is None:
            return _refused("VALIDATION_ERROR", "Send {\"orderId\": \"<uuid>\"}.")
        for room in (order_room(order_id), invited_room(order_id)):
            await self.sio.leave_room(sid, room)
        return {"ok": True}

    # --------------------------------------------------------------------------- location
    async def on_location(self, sid: str, data: Any = None) -> dict[str, Any]:
        client = self.clients.get(sid)
        if client is None or Permission.APPLY_ORDERS not in permissions_for(client.role):
            return _refused("FORBIDDEN", "Only providers report a position.")
        now_s = time.monotonic()
        client.location_window = [t for t in client.location_window if now_s - t < 1.0]
        if len(client.location_window) >= LOCATION_UPDATES_PER_S:
            return _refused("RATE_LIMITED", "Too many position reports; slow down.")
        client.location_window.append(now_s)
        try:
            body = LocationUpdateSchema().load(data if isinstance(data, dict) else {})
        except ma.ValidationError as exc:
            return _refused("VALIDATION_ERROR", "Invalid position report.",
                            details=exc.normalized_messages())
        try:
            stored, recorded_at = await self._in_thread(
                lambda: self._report(client.user_id, body))
        except DomainError as exc:
            return _refused(exc.code, exc.message)
        return {"ok": True, "stored": stored, "recordedAt": recorded_at.isoformat()}

    def _report(self, provider_id: uuid.UUID, body: dict[str, Any]) -> tuple[bool, datetime]:
        svc = self.services
        now = datetime.now(UTC)
        recorded_at = body["recordedAt"] or now
        with svc.db.transaction() as session:
            stored = presence.report_location(
                session, LocationStore(svc.redis, svc.settings.location_max_age_s),
                svc.presence, provider_id,
                ProviderLocation(latitude=body["latitude"], longitude=body["longitude"],
                                 accuracy_m=body["accuracy"], recorded_at=recorded_at),
                now, presence.PresenceRules.from_settings(svc.settings))
        return stored, recorded_at

    # ------------------------------------------------------------------------- revocation
    async def _watch_revocations(self) -> None:
        interval = self.services.settings.realtime_revocation_check_s
        while True:
            await asyncio.sleep(interval)
            try:
                for sid, code in await self._in_thread(self._revoked):
                    await self._cut(sid, code)
            except Exception:  # keep watching: a Redis blip must not end revocation
                log.warning("revocation check failed", exc_info=True)

    def _revoked(self) -> list[tuple[str, str]]:
        """The sockets whose token was revoked (denylist, its family revoked, a newer
        generation) or expired, in one Redis round trip for all of them."""
        clients = list(self.clients.items())
        if not clients:
            return []
        now = time.time()
        keys = [key for _, c in clients for key in c.revocation_keys]
        values = self.services.redis.mget(keys)
        cut = []
        for i, (sid, c) in enumerate(clients):
            denied, family_denied, generation = values[3 * i:3 * i + 3]
            if c.exp <= now:
                cut.append((sid, "TOKEN_EXPIRED"))
            elif denied is not None or family_denied is not None \
                    or not self._same_generation(c, generation):
                cut.append((sid, "TOKEN_REVOKED"))
        return cut

    def _same_generation(self, client: Client, copy: bytes | str | None) -> bool:
        """Whether the account's token generation is still the token's. With no copy in
        Redis, the full check (reads the database, refills the copy)."""
        if copy is not None:
            return int(copy) == client.generation
        try:
            self.services.token_verifier.verify(client.token)
        except TokenRejected:
            return False
        return True

    async def _cut(self, sid: str, code: str) -> None:
        message = "The token has expired." if code == "TOKEN_EXPIRED" \
            else "The token has been revoked."
        await self.sio.emit("session:ended", {"code": code, "message": message}, to=sid)
        await self.sio.disconnect(sid)


def _client(verified: VerifiedToken, token: str, pid: str) -> Client:
    return Client(user_id=verified.user_id, role=verified.caller.role, token=token,
                  jti=verified.jti, exp=verified.exp, generation=verified.generation, pid=pid,
                  family=verified.family)


def _token_from(auth: dict[str, Any], environ: dict[str, Any]) -> str | None:
    """``auth.token`` (what the clients send), else ``?token=``, else a bearer header."""
    token = auth.get("token")
    if isinstance(token, str) and token:
        return token
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if query.get("token"):
        return query["token"][0]
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def _order_id(data: Any) -> uuid.UUID | None:
    raw = data.get("orderId") if isinstance(data, dict) else None
    try:
        return uuid.UUID(raw) if isinstance(raw, str) and len(raw) <= 64 else None
    except ValueError:
        return None


def _refused(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message, **extra}}


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
