"""Queues and routing, in one place.

Matching is CPU-heavy and bursty; payments must never wait behind it; notifications are many and
small; maintenance is the beat jobs' housekeeping. One queue each, so each can get its own
workers (and hosts) and a slow one never starves another.
"""

from __future__ import annotations

from kombu import Queue

MATCHING = "matching"
PAYMENTS = "payments"
NOTIFICATIONS = "notifications"
MAINTENANCE = "maintenance"
DEFAULT = "default"

ALL_QUEUES = (MATCHING, PAYMENTS, NOTIFICATIONS, MAINTENANCE, DEFAULT)

# Task names are dotted "<area>.<action>"; the area decides the queue.
TASK_ROUTES = {
    "matching.*": {"queue": MATCHING},
    "payments.*": {"queue": PAYMENTS},
    "notifications.*": {"queue": NOTIFICATIONS},
    "maintenance.*": {"queue": MAINTENANCE},
}


def task_queues() -> list[Queue]:
    return [Queue(name, routing_key=name) for name in ALL_QUEUES]
