"""The envelope for what gunicorn refuses before the app sees a request.

An over-long request line (414), oversized or too many headers (431), a control character in a
header or a malformed request line (400): gunicorn answers these itself, as an HTML page. Clients
of this API always parse the envelope, so gunicorn's error writer is replaced (once, when the
WSGI module loads in a worker) by one that writes the same JSON envelope the app writes, with the
same codes (``api.errors.HTTP_ERROR_CODES``). Limits stay gunicorn's (``--limit-request-line``
etc.): only the answer's shape changes.
"""

from __future__ import annotations

import socket
from typing import Any

import orjson
from flask import Flask

from api.envelope import failure
from api.errors import HTTP_ERROR_CODES

#: What a client is told; gunicorn's own message may echo the offending input back.
_MESSAGES = {
    400: "The request could not be read (malformed request line or header).",
    403: "The request is forbidden.",
    414: "The request URL is too long.",
    431: "The request's headers are too large.",
    500: "The server encountered an internal error.",
    501: "The request's transfer coding is not supported.",
}


def envelope_response(app: Flask, status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 response (connection closed, as gunicorn's own) with the envelope."""
    with app.app_context():
        body = orjson.dumps(failure(HTTP_ERROR_CODES.get(status, "HTTP_ERROR"),
                                    _MESSAGES.get(status, reason)))
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def install(app: Flask) -> None:
    """Replace gunicorn's error writer in this process; a no-op where gunicorn is absent."""
    try:
        from gunicorn import util
    except ImportError:  # another server (tests, uwsgi): nothing to patch
        return

    def write_error(sock: socket.socket, status_int: int, reason: str, mesg: str,
                    *_: Any) -> None:
        util.write_nonblock(sock, envelope_response(app, int(status_int), reason))

    util.write_error = write_error
