"""The whole periodic schedule, as data, in one place (times are UTC).

Each entry names a task by its explicit dotted name; the task itself decides whether there is
work to do, so a tick that runs twice (or late) is harmless.
"""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "maintenance-heartbeat": {
        "task": "maintenance.heartbeat",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
}
