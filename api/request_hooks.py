"""Per-request plumbing: request ids, content-type enforcement, access log, session cleanup."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request
from werkzeug.exceptions import UnsupportedMediaType

from core.context import accept_or_generate_request_id, request_id_var, user_id_var
from db.session import read_only_var

log = logging.getLogger("taplive.access")
BODY_METHODS = {"POST", "PUT", "PATCH"}
READ_METHODS = {"GET", "HEAD"}


def _start() -> None:
    g.request_id = accept_or_generate_request_id(request.headers.get("X-Request-ID"))
    g.request_started = time.perf_counter()
    g.context_tokens = (request_id_var.set(g.request_id), user_id_var.set(None),
                        read_only_var.set(request.method in READ_METHODS))
    if (
        request.routing_exception is None  # 404/405 win over 415
        and request.method in BODY_METHODS
        and (request.content_length or request.headers.get("Transfer-Encoding"))
        and not request.is_json
        # nginx-rtmp posts its callbacks form-encoded (the one documented exception).
        and request.blueprint != "rtmp_callbacks"
    ):
        raise UnsupportedMediaType("Request bodies must be application/json.")


def _finish(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    # Every answer is data of the type it declares (JSON): no browser may guess HTML from an
    # echoed string.
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    elapsed_ms = (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000
    # Never log query strings: they can carry precise locations.
    log.info(
        "%s %s %s %.1fms",
        request.method,
        request.path,
        response.status_code,
        elapsed_ms,
        extra={"status": response.status_code, "duration_ms": round(elapsed_ms, 2)},
    )
    return response


def _teardown(_exc: BaseException | None) -> None:
    from api.services import services

    services().db.session.remove()
    tokens = g.pop("context_tokens", None)
    if tokens:
        request_id_var.reset(tokens[0])
        user_id_var.reset(tokens[1])
        read_only_var.reset(tokens[2])


def register_request_hooks(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_teardown)
