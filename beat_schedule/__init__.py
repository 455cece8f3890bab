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
    # Safety net of the pushes: a notification stored but not pushed (a crash between its
    # commit and its push) is pushed within seconds (docs/realtime.md).
    "notifications-push-pending": {
        "task": "notifications.push_pending",
        "schedule": 10.0,
        "options": {"expires": 9},
    },
    # Safety net of the email outbox (domain/email_outbox.py): mails whose after-commit send
    # was lost are sent; mails stuck mid-send are given up, never sent twice.
    "notifications-sweep-email": {
        "task": "notifications.sweep_email",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    # A publisher that dropped and did not resume within STREAM_GRACE_S: the order completes.
    "streams-finish-idle": {
        "task": "streams.finish_idle",
        "schedule": 10.0,
        "options": {"expires": 9},
    },
    # Ingest statistics (nginx-rtmp's /stat) of live streams, and the end of a stream whose
    # publisher vanished with a restarted ingest. Asks nginx nothing while no stream is live.
    "streams-sample-stats": {
        "task": "streams.sample_stats",
        "schedule": 5.0,
        "options": {"expires": 4},
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
    # Orders that hang (issue 17, docs/orders.md "Automatic steps").
    "maintenance-cancel-no-shows": {  # accepted, never started: cancelled as a no-show
        "task": "maintenance.cancel_no_shows",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "maintenance-settle-overdue-active": {  # live too long: completed, or escalated
        "task": "maintenance.settle_overdue_active",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
    "maintenance-settle-overdue-disputes": {  # escalated, then resolved by the default rule
        "task": "maintenance.settle_overdue_disputes",
        "schedule": 900.0,
        "options": {"expires": 890},
    },
    # Retention: published outbox rows and old notifications (ages in settings).
    "maintenance-purge-outbox": {
        "task": "maintenance.purge_outbox",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    "maintenance-purge-notifications": {
        "task": "maintenance.purge_notifications",
        "schedule": 3600.0,
        "options": {"expires": 3000},
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
    # Matching (docs/matching.md): re-balance every pending order against current positions.
    "matching-rematch-all": {
        "task": "matching.rematch_all",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Providers silent past PRESENCE_OFFLINE_AFTER_S leave the matching index.
    "maintenance-sweep-presence": {
        "task": "maintenance.sweep_presence",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    # Location history older than LOCATION_HISTORY_RETENTION_DAYS is deleted.
    "maintenance-purge-location-history": {
        "task": "maintenance.purge_location_history",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # Payments (docs/payments.md). Each job re-checks every escrow under its row lock.
    "payments-authorize-due": {  # far-future orders, authorised shortly before their time
        "task": "payments.authorize_due",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
    # Acceptances still waiting for the creator's 3-D Secure past
    # PAYMENT_AUTHENTICATION_TIMEOUT_MINUTES: the intent is cancelled, the order pending again.
    "payments-expire-authentications": {
        "task": "payments.expire_authentications",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "payments-renew-holds": {  # holds about to lapse: renew, or flag the order
        "task": "payments.renew_holds",
        "schedule": 900.0,
        "options": {"expires": 890},
    },
    "payments-retry-captures": {  # completed orders whose capture task gave up
        "task": "payments.retry_captures",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
    # Settlement is also where the dispute window closes: an order is settled only once its
    # window (DISPUTE_WINDOW_HOURS after completion) has passed without a dispute.
    "payments-settle-due": {  # completed orders past their dispute window, in batches
        "task": "payments.settle_due",
        "schedule": 600.0,
        "options": {"expires": 590},
    },
    "payments-reconcile": {  # ledger vs processor: drift is recorded and logged
        "task": "payments.reconcile",
        "schedule": 3600.0,
        "options": {"expires": 3500},
    },
    "payments-sweep-orphan-holds": {  # holds no escrow owns (a request that never committed)
        "task": "payments.sweep_orphan_holds",
        "schedule": 1800.0,
        "options": {"expires": 1790},
    },
}
