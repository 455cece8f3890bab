"""The whole periodic schedule, as data, in one place (times are UTC).

Each entry names a task by its explicit dotted name; the task itself decides whether there is
work to do, so a tick that runs twice (or late) is harmless.
"""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Safety net of the transactional outbox: publishes anything a crashed kick left behind.
    "events-sweep-outbox": {
        "task": "events.drain_outbox",
        "schedule": 10.0,
        "options": {"expires": 9},
    },
    "maintenance-purge-idempotency-keys": {
        "task": "maintenance.purge_idempotency_keys",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    "maintenance-expire-orders": {
        "task": "maintenance.expire_orders",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "maintenance-heartbeat": {
        "task": "maintenance.heartbeat",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    # Users' last_active_at is marked in Redis per request and written here in one batch.
    "maintenance-flush-last-active": {
        "task": "maintenance.flush_last_active",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}
