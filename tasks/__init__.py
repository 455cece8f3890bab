"""Thin Celery tasks: take ids, re-load, check state, call one domain function."""

from tasks import (  # noqa: F401  (registers the tasks with the current app)
    events,
    mail,
    maintenance,
    matching,
    notifications,
    orders,
    payments,
    streams,
)
