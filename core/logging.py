"""Structured JSON logging with correlation ids injected from contextvars."""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from core.context import request_id_var, task_id_var, user_id_var

_base_factory = logging.getLogRecordFactory()
_service_name = "taplive"


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Stamp every record at creation with the service and the ids in scope, so every handler
    (ours, gunicorn's, Celery's, pytest's) sees the same correlation fields."""
    record = _base_factory(*args, **kwargs)
    record.service = _service_name
    record.request_id = request_id_var.get()
    record.task_id = task_id_var.get()
    record.user_id = user_id_var.get()
    return record


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Install one stdout handler on the root logger (idempotent: safe to call per app/worker)."""
    global _service_name
    _service_name = service
    logging.setLogRecordFactory(_record_factory)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_taplive", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler._taplive = True  # type: ignore[attr-defined]
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s %(service)s "
                "%(request_id)s %(task_id)s %(user_id)s",
                rename_fields={"levelname": "level"},
                timestamp=True,  # ISO 8601 in UTC
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s [%(service)s rid=%(request_id)s task=%(task_id)s] "
                "%(name)s: %(message)s"
            )
        )
    root.addHandler(handler)
    root.setLevel(level.upper())
