"""The spec's response envelope: ``{success, data, error, meta}`` on every response."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import g

API_VERSION = "v1"


def meta() -> dict[str, Any]:
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestId": getattr(g, "request_id", None),
        "version": API_VERSION,
    }


def success(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data, "error": None, "meta": meta()}


def failure(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {
        "success": False,
        "data": None,
        "error": {"code": code, "message": message, "details": details or {}},
        "meta": meta(),
    }
