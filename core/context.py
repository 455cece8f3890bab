"""Per-request / per-task correlation ids, carried in contextvars so every log line can see them."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
task_id_var: ContextVar[str | None] = ContextVar("task_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)

# A client-supplied id is echoed into logs and headers, so only a safe alphabet is accepted.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def accept_or_generate_request_id(candidate: str | None) -> str:
    """Keep a well-formed incoming X-Request-ID, otherwise mint a fresh one."""
    # fullmatch: with match, "$" also accepts a final newline, and the echoed header then
    # fails the response (500).
    if candidate and _SAFE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex
