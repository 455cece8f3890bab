"""Thin Celery tasks: take ids, re-load, check state, call one domain function."""

from tasks import events, maintenance, matching, notifications, orders, payments  # noqa: F401  (registers the tasks with the current app)
