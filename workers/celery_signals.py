"""Carry the HTTP request id into every task it causes, and into the task's log lines."""

from __future__ import annotations

from typing import Any

from celery.signals import (
    before_task_publish,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_success,
)

from core.context import request_id_var, task_id_var
from core.metrics import TASK_OUTCOMES

REQUEST_ID_HEADER = "taplive_request_id"
_tokens: dict[str, tuple[Any, Any]] = {}


@before_task_publish.connect
def _stamp_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    rid = request_id_var.get()
    if headers is not None and rid and REQUEST_ID_HEADER not in headers:
        headers[REQUEST_ID_HEADER] = rid


@task_prerun.connect
def _enter_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    rid = getattr(task.request, REQUEST_ID_HEADER, None) if task is not None else None
    if rid is None and task is not None:
        rid = (task.request.headers or {}).get(REQUEST_ID_HEADER) if task.request.headers else None
    _tokens[task_id or ""] = (request_id_var.set(rid), task_id_var.set(task_id))


@task_postrun.connect
def _leave_task(task_id: str | None = None, **_: Any) -> None:
    tokens = _tokens.pop(task_id or "", None)
    if tokens:
        request_id_var.reset(tokens[0])
        task_id_var.reset(tokens[1])


@task_success.connect
def _count_success(sender: Any = None, **_: Any) -> None:
    TASK_OUTCOMES.labels(getattr(sender, "name", "?"), "success").inc()


@task_failure.connect
def _count_failure(sender: Any = None, **_: Any) -> None:
    TASK_OUTCOMES.labels(getattr(sender, "name", "?"), "failure").inc()


@task_retry.connect
def _count_retry(sender: Any = None, **_: Any) -> None:
    TASK_OUTCOMES.labels(getattr(sender, "name", "?"), "retry").inc()
