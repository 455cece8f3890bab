"""Live streams over HTTP: what each participant may see of an order's stream, and the
internal endpoints nginx-rtmp calls (docs/streaming.md)."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, request
from flask.views import MethodView
from marshmallow import fields

from api.auth import authenticated, current_user
from api.blueprints.order_actions import location_store
from api.services import services
from api.smorest import Blueprint, Schema
from domain import streams
from domain.order_actions import KnownLocation
from domain.stream_sessions import StreamRules

log = logging.getLogger(__name__)

blp = Blueprint("streams", __name__, description="An order's live stream")


class IngestSchema(Schema):
    bytesIn = fields.Integer(allow_none=True)
    bitrateKbps = fields.Integer(allow_none=True)
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    sampledAt = fields.String(allow_none=True, metadata={"format": "date-time"})


class StreamFactsSchema(Schema):
    status = fields.String()
    startedAt = fields.String(allow_none=True, metadata={"format": "date-time"})
    endedAt = fields.String(allow_none=True, metadata={"format": "date-time"})
    lastPublishAt = fields.String(allow_none=True, metadata={"format": "date-time"})
    lastDisconnectAt = fields.String(allow_none=True, metadata={"format": "date-time"})
    publishedSeconds = fields.Integer()
    disconnections = fields.Integer()
    ingest = fields.Nested(IngestSchema, allow_none=True)


class SegmentSchema(Schema):
    startedAt = fields.String(metadata={"format": "date-time"})
    endedAt = fields.String(allow_none=True, metadata={"format": "date-time"})
    seconds = fields.Integer()


class StreamSchema(Schema):
    status = fields.String(metadata={"description": "ready, live, interrupted, ended, revoked"})
    facts = fields.Nested(StreamFactsSchema)
    segments = fields.List(fields.Nested(SegmentSchema), metadata={
        "description": "Each publishing period (a drop and resume makes two): the evidence "
                       "an admin reads when resolving a dispute."})
    ingestUrl = fields.String(metadata={"description": "The provider's only: where to publish "
                                        "(RTMP), with streamKey as the stream name."})
    streamKey = fields.String(metadata={"description": "The provider's only; secret."})
    playbackUrl = fields.String(metadata={"description": "The creator's only: the HLS "
                                          "playlist."})


class StreamEnvelopeSchema(Schema):
    stream = fields.Nested(StreamSchema)


def stream_rules() -> StreamRules:
    return StreamRules.from_settings(services().settings)


@blp.route("/orders/<uuid:order_id>/stream")
class OrderStream(MethodView):
    @authenticated()
    @blp.response(200, StreamEnvelopeSchema)
    def get(self, order_id: uuid.UUID) -> dict[str, Any]:
        """The order's stream: ingest URL and key for the assigned provider, the playback URL
        for the creator, the facts (times, seconds published, drops, ingest statistics) for
        both and for admins."""
        stream = streams.stream_for(services().db.session(), order_id, current_user(),
                                    stream_rules(), datetime.now(UTC))
        return {"stream": stream}


# ------------------------------------------------------------------------ nginx-rtmp callbacks
#: Not part of the public API (no OpenAPI entry): nginx-rtmp calls these. Answers are bare
#: status codes, which is all nginx reads: 2xx allows, 3xx allows under the new name in
#: ``Location``, anything else drops the publisher.
callbacks = FlaskBlueprint("rtmp_callbacks", __name__)


def _caller_allowed() -> bool:
    """The shared secret in the URL (constant time) and a peer on the allow-list."""
    settings = services().settings
    secret = request.args.get("secret", "")
    if not hmac.compare_digest(secret.encode(), settings.stream_callback_key.encode()):
        return False
    try:
        peer = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(net.strip(), strict=False)
               for net in settings.stream_callback_allow.split(",") if net.strip())


def _form(name: str) -> str:
    return str(request.form.get(name, ""))[:256]


def _locate(provider_id: uuid.UUID) -> KnownLocation | None:
    latest = location_store().latest(provider_id)
    return KnownLocation(latest.latitude, latest.longitude, latest.recorded_at) \
        if latest else None


@callbacks.post("/on_publish")
def on_publish() -> Response:
    if not _caller_allowed():
        return Response(status=403)
    key, client_id = _form("name"), _form("clientid")
    if not key or not client_id:
        return Response(status=400)
    decision = streams.publish(
        services().db.session(), key, client_id, _locate, datetime.now(UTC),
        timedelta(seconds=services().settings.location_max_age_s),
        services().settings.secret_key)
    # The key is never logged: the session id says which stream it was.
    log.info("rtmp publish %s", "allowed" if decision.allowed else "refused",
             extra={"stream_session": str(decision.session_id), "reason": decision.reason,
                    "client_id": client_id})
    if not decision.allowed:
        return Response(status=403)
    # Renamed: the HLS playlist and fragments carry the public playback id, never the key.
    return Response(status=302, headers={"Location": decision.playback_id or ""})


@callbacks.post("/on_publish_done")
def on_publish_done() -> Response:
    if not _caller_allowed():
        return Response(status=403)
    closed = streams.publish_done(services().db.session(), _form("name"), _form("clientid"),
                                  datetime.now(UTC), services().settings.secret_key)
    log.info("rtmp publish done", extra={"stream_session": str(closed) if closed else None,
                                         "client_id": _form("clientid")})
    return Response(status=200)
