"""Stream sessions: created on acceptance, revoked on cancellation, and the facts they record
(docs/streaming.md). The order's transitions call in here; ``domain.streams`` (the ingest
callbacks) builds on it.

The stream key is signed, not stored: ``sk_<session id>_<HMAC-SHA256(secret, session id)>``.
So it can be shown to the provider again, the database holds nothing a leak could publish with,
and the ingest finds the session by the id and checks the signature in constant time
(``verify_key``). A new acceptance is a new session, so a new key; revoking is the session's
status.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from db.models import Order, StreamSession

KEY_PREFIX = "sk_"


class StreamStatus(StrEnum):
    READY = "ready"  # issued, nothing published yet
    LIVE = "live"  # a publisher is on
    INTERRUPTED = "interrupted"  # the publisher dropped; may resume within the grace
    ENDED = "ended"  # finished: the key is refused from now on
    REVOKED = "revoked"  # the order was cancelled (or accepted again): the key is refused


OPEN_STATUSES = frozenset({StreamStatus.READY, StreamStatus.LIVE, StreamStatus.INTERRUPTED})


@dataclass(frozen=True)
class StreamRules:
    key_secret: str
    rtmp_base: str
    hls_base: str
    #: Whether completion and capture need a stream that ran (off only in the test suites
    #: that are not about streams, as ``payment_method_required``).
    proof_required: bool
    min_seconds: int
    grace_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamRules:
        return cls(key_secret=settings.secret_key, rtmp_base=settings.stream_rtmp_base,
                   hls_base=settings.stream_hls_base,
                   proof_required=settings.stream_proof_required_to_complete,
                   min_seconds=settings.stream_min_seconds, grace_s=settings.stream_grace_s)


def _signature(secret: str, session_id: uuid.UUID) -> str:
    digest = hmac.new(secret.encode(), f"stream-key:{session_id}".encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def stream_key(secret: str, session_id: uuid.UUID) -> str:
    return f"{KEY_PREFIX}{session_id.hex}_{_signature(secret, session_id)}"


def verify_key(secret: str, key: str) -> uuid.UUID | None:
    """The session id a well-signed key names, else None (signature compared in constant
    time)."""
    body = key.removeprefix(KEY_PREFIX)
    raw_id, _, signature = body.partition("_")
    if body == key or len(raw_id) != 32 or not signature or len(signature) > 64:
        return None
    try:
        session_id = uuid.UUID(hex=raw_id)
    except ValueError:
        return None
    if not hmac.compare_digest(signature.encode(), _signature(secret, session_id).encode()):
        return None
    return session_id


def open_session(session: Session, order: Order, now: datetime) -> StreamSession:
    """The order was accepted: revoke any earlier session, open a new one (a new key)."""
    assert order.provider_id is not None
    revoke(session, order.id, now)
    stream = StreamSession(
        id=uuid.uuid4(), order_id=order.id, provider_id=order.provider_id,
        playback_id="pb_" + secrets.token_hex(16), status=StreamStatus.READY.value,
        created_at=now, published_seconds=0, disconnections=0)
    session.add(stream)
    session.flush()
    return stream



def revoke(session: Session, order_id: uuid.UUID, now: datetime) -> None:
    """Refuse the order's open keys from now on (cancellation, a new acceptance)."""
    for stream in session.scalars(select(StreamSession).where(
            StreamSession.order_id == order_id,
            StreamSession.status.in_([s.value for s in OPEN_STATUSES])).with_for_update()):
        stream.status = StreamStatus.REVOKED.value
        stream.revoked_at = now
        stream.client_id = None


def current(session: Session, order_id: uuid.UUID, *, lock: bool = False
            ) -> StreamSession | None:
    """The order's latest session."""
    stmt = (select(StreamSession).where(StreamSession.order_id == order_id)
            .order_by(StreamSession.created_at.desc(), StreamSession.id).limit(1))
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def seconds_streamed(stream: StreamSession, now: datetime) -> int:
    """Closed segments plus the one on now."""
    running = 0
    if stream.status == StreamStatus.LIVE and stream.last_publish_at is not None:
        running = int((now - stream.last_publish_at).total_seconds())
    return stream.published_seconds + max(0, running)


def ran(session: Session, order_id: uuid.UUID, rules: StreamRules, now: datetime) -> bool:
    """Whether the order's stream ran for at least the minimum (the proof of stream)."""
    stream = current(session, order_id)
    return stream is not None and stream.started_at is not None \
        and seconds_streamed(stream, now) >= rules.min_seconds


def end(session: Session, order_id: uuid.UUID, now: datetime) -> None:
    """The order is finished: close what is open (a publisher still on stops counting)."""
    stream = current(session, order_id, lock=True)
    if stream is None or stream.status not in {s.value for s in OPEN_STATUSES}:
        return
    stream.published_seconds = seconds_streamed(stream, now)
    if stream.status == StreamStatus.LIVE:
        stream.last_done_at = now
    # An interrupted stream ended when its publisher left, not when the grace ran out.
    ended = stream.last_done_at if stream.status == StreamStatus.INTERRUPTED else now
    stream.status, stream.ended_at, stream.client_id = (
        StreamStatus.ENDED.value, ended or now, None)


def facts(stream: StreamSession, now: datetime) -> dict[str, Any]:
    """What the stream did, as every participant may see it (no key, no addresses)."""
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "status": stream.status, "startedAt": iso(stream.started_at),
        "endedAt": iso(stream.ended_at), "lastPublishAt": iso(stream.last_publish_at),
        "lastDisconnectAt": iso(stream.last_done_at),
        "publishedSeconds": seconds_streamed(stream, now),
        "disconnections": stream.disconnections,
        "ingest": None if stream.stats_at is None else {
            "bytesIn": stream.bytes_in, "bitrateKbps": stream.bitrate_kbps,
            "width": stream.width, "height": stream.height,
            "sampledAt": iso(stream.stats_at)},
    }


def view_for(stream: StreamSession, viewer_id: uuid.UUID, creator_id: uuid.UUID,
             rules: StreamRules, now: datetime) -> dict[str, Any]:
    """``GET /orders/{id}/stream``: the key and ingest URL to the provider, the playback URL
    to the creator, the facts to both (and to admins)."""
    view: dict[str, Any] = {"status": stream.status, "facts": facts(stream, now)}
    usable = stream.status in {s.value for s in OPEN_STATUSES}
    if viewer_id == stream.provider_id and usable:
        view |= {"ingestUrl": rules.rtmp_base, "streamKey": stream_key(rules.key_secret, stream.id)}
    if viewer_id == creator_id:
        view["playbackUrl"] = f"{rules.hls_base}/{stream.playback_id}.m3u8"
    return view
