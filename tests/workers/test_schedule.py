"""The schedule names every periodic job the operations issue lists, each an existing task."""

from __future__ import annotations

from flask import Flask

from beat_schedule import BEAT_SCHEDULE

# The list -> the task that does it.
REQUIRED = {
    "order expiry": "maintenance.expire_orders",
    "hold authorisation": "payments.authorize_due",
    "hold renewal": "payments.renew_holds",
    "capture retries": "payments.retry_captures",
    "settlement (closes the dispute window)": "payments.settle_due",
    "batch re-matching": "matching.rematch_all",
    "offline-provider sweep": "maintenance.sweep_presence",
    "location-history purge": "maintenance.purge_location_history",
    "idempotency-key purge": "maintenance.purge_idempotency_keys",
    "ledger reconciliation": "payments.reconcile",
    "outbox sweep": "events.drain_outbox",
    # Issue 17: orders that hang, and retention.
    "provider no-shows": "maintenance.cancel_no_shows",
    "overdue active orders": "maintenance.settle_overdue_active",
    "overdue disputes": "maintenance.settle_overdue_disputes",
    "published outbox purge": "maintenance.purge_outbox",
    "notification purge": "maintenance.purge_notifications",
}


def test_every_required_job_is_scheduled_and_exists(app: Flask) -> None:
    scheduled = {entry["task"] for entry in BEAT_SCHEDULE.values()}
    tasks = app.extensions["celery"].tasks
    for job, task in REQUIRED.items():
        assert task in scheduled, f"{job}: {task} is not in the schedule"
        assert task in tasks, f"{job}: {task} is not a registered task"


def test_every_entry_expires_before_its_next_tick() -> None:
    # A tick that could not run in time is dropped, not queued behind the next one.
    for name, entry in BEAT_SCHEDULE.items():
        assert 0 < entry["options"]["expires"] < entry["schedule"], name
