"""One transaction per request, and ``Idempotency-Key`` on every POST.

Views and domain commands only flush. After the view, a successful write request is committed
here, together with its idempotency record, so "the order exists" and "this key produced that
response" are one atomic fact. Any 4xx/5xx rolls everything back: nothing is half-written.

Idempotency: a retry with the same key and the same body (same caller, method and path) gets
the first response again (``Idempotent-Replayed: true``); the same key with a different body is
422 ``IDEMPOTENCY_KEY_REUSED``. Two identical requests racing each other both run, but only one
commits (primary key on scope+key); the loser rolls back and replays the winner's response.
Only successful responses are remembered, so a retry after an error is evaluated afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import UTC, datetime, timedelta

from flask import Flask, Response, g, jsonify, request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from api.auth.request_token import request_token_or_none
from api.envelope import success
from api.errors import error_response
from api.services import services
from core.errors import Unprocessable, ValidationFailed
from db.models import IdempotencyRecord

log = logging.getLogger(__name__)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


def _scope() -> str:
    """Keys are per caller: the authenticated user, else the client address (a refused token
    is the view's 401 to give, not ours)."""
    token = request_token_or_none()
    if token is not None and token.kind == "access":
        return f"user:{token.user_id}"
    return f"ip:{request.remote_addr}"


def _request_hash() -> str:
    body = request.get_data(cache=True)
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True,
                               separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(b"%s %s\n%s" % (request.method.encode(), request.path.encode(),
                                          canonical)).hexdigest()


def _replay(record: IdempotencyRecord) -> Response:
    response = jsonify(success(record.response_body))
    response.status_code = record.status_code
    response.headers["Idempotent-Replayed"] = "true"
    return response


# Responses that carry credentials are never stored, so a key on them is ignored.
NOT_REPLAYABLE_BLUEPRINTS = frozenset({"auth", "users"})


def _before() -> Response | None:
    if (request.method != "POST" or HEADER not in request.headers
            or request.blueprint in NOT_REPLAYABLE_BLUEPRINTS):
        return None
    key = request.headers[HEADER]
    if not _KEY.match(key):
        raise ValidationFailed("Idempotency-Key must be 1-255 printable ASCII characters.",
                               details={HEADER: ["invalid"]})
    scope, digest = _scope(), _request_hash()
    record = services().db.session.get(IdempotencyRecord, (scope, key))
    if record is not None and record.expires_at > datetime.now(UTC):
        if record.request_hash != digest:
            raise Unprocessable("This Idempotency-Key was used with a different request.",
                                code="IDEMPOTENCY_KEY_REUSED")
        return _replay(record)
    g.idempotency = (scope, key, digest)
    return None


def _after(response: Response) -> Response:
    if request.method not in WRITE_METHODS:
        return response
    session = services().db.session
    if response.status_code >= 400 or response.headers.get("Idempotent-Replayed"):
        session.rollback()
        return response
    idempotency = g.pop("idempotency", None)
    if idempotency is not None:
        scope, key, digest = idempotency
        body = response.get_json(silent=True) or {}
        now = datetime.now(UTC)
        ttl = timedelta(hours=services().settings.idempotency_ttl_hours)
        # A plain INSERT, never an upsert: if another request committed this key meanwhile,
        # ours must fail and roll back with all its work. Only an expired record is replaced.
        session.execute(delete(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope, IdempotencyRecord.key == key,
            IdempotencyRecord.expires_at <= now))
        session.add(IdempotencyRecord(
            scope=scope, key=key, request_hash=digest, status_code=response.status_code,
            response_body=body.get("data"), created_at=now, expires_at=now + ttl))
    try:
        session.commit()
    except (IntegrityError, StaleDataError) as exc:
        session.rollback()
        if idempotency is not None:
            record = session.get(IdempotencyRecord, (idempotency[0], idempotency[1]))
            if record is not None:
                if record.request_hash == idempotency[2]:
                    return _replay(record)
                return error_response(422, "IDEMPOTENCY_KEY_REUSED",
                                      "This Idempotency-Key was used with a different request.")
        log.info("write lost a race: %s", type(exc).__name__)
        return error_response(409, "CONFLICT",
                              "The resource was changed by another request; retry.")
    return response


def register_unit_of_work(app: Flask) -> None:
    app.before_request(_before)
    app.after_request(_after)
