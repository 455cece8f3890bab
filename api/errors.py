"""Every error becomes the envelope: HTTP errors, webargs validation, domain errors, crashes.

This is the one place where domain exceptions are mapped to status codes.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, InternalServerError

from api.envelope import failure
from core import errors as domain
from domain.auth.errors import AuthUnavailable, TokenRejected
from domain.payments.errors import ProcessorUnavailable

log = logging.getLogger(__name__)

HTTP_ERROR_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    402: "PAYMENT_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE_ENTITY",
    429: "RATE_LIMITED",
    431: "HEADERS_TOO_LARGE",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

DOMAIN_STATUS: list[tuple[type[domain.DomainError], int]] = [
    (domain.ValidationFailed, 400),
    (domain.AuthenticationFailed, 401),
    (domain.PaymentRequired, 402),
    (domain.PermissionDenied, 403),
    (domain.NotFound, 404),
    (domain.Conflict, 409),
    (domain.Unprocessable, 422),
    (ProcessorUnavailable, 503),
    (AuthUnavailable, 503),
]


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> Response:
    response = jsonify(failure(code, message, details))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    # Keep what the exception says about itself (405's Allow, 429's Retry-After, ...).
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    messages = data.get("messages") or data.get("errors")
    if status == 400 and messages:
        return error_response(400, "VALIDATION_ERROR", "The request is not valid.",
                              _flatten_webargs(messages), headers)
    code = data.get("code") or HTTP_ERROR_CODES.get(status, "HTTP_ERROR")
    message = data.get("message") or error.description or error.name
    return error_response(status, code, message, messages, headers)


def _flatten_webargs(messages: dict[str, Any]) -> dict[str, Any]:
    """webargs nests by location (``{"json": {"title": [...]}}``); clients want fields."""
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def handle_domain_error(error: domain.DomainError) -> Response:
    status = next((code for cls, code in DOMAIN_STATUS if isinstance(error, cls)), 400)
    headers = None
    if isinstance(error, TokenRejected):
        # RFC 6750: a missing token gets a bare challenge, a refused one says why.
        challenge = error.challenge_error
        headers = {"WWW-Authenticate": "Bearer" if challenge is None
                   else f'Bearer error="{challenge}"'}
    return error_response(status, error.code, error.message, error.details, headers)


def handle_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    log.exception("unhandled error")
    return error_response(500, "INTERNAL_ERROR", InternalServerError.description)


def handle_stale_data(_error: StaleDataError) -> Response:
    # Two writers raced on the same row version; the loser is told to retry.
    return error_response(409, "CONCURRENT_UPDATE",
                          "The resource was changed by another request; retry.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(StaleDataError, handle_stale_data)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(domain.DomainError, handle_domain_error)
    app.register_error_handler(Exception, handle_unexpected)
