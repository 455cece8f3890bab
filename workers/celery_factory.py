"""One Celery app built from the composition root (``services.Services``), not from Flask.

A worker or beat process builds the root and this app and nothing else: no HTTP app, no JWT
manager, no rate limiter, no OpenAPI document. The API builds the same app from its own root
to send tasks (the outbox kick). Tasks reach the root as ``self.services``
(``tasks.base.ServicesTask``): one per process, never a module global, so tests can run several
apps side by side.
"""

from __future__ import annotations

from functools import partial

from beat_schedule import BEAT_SCHEDULE
from services import Services
from tasks.base import ServicesTask, TapLiveCelery
from workers import queues


def make_celery(services: Services, name: str = "taplive") -> TapLiveCelery:
    settings = services.settings
    celery = TapLiveCelery(name, task_cls=ServicesTask)
    celery.services = services
    celery.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
        task_queues=queues.task_queues(),
        task_default_queue=queues.DEFAULT,
        task_routes=queues.TASK_ROUTES,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=3600,
        timezone="UTC",
        enable_utc=True,
        task_always_eager=settings.celery_always_eager,
        task_eager_propagates=True,
        # Tasks are idempotent and re-checked on run: prefer at-least-once delivery.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=300,
        task_soft_time_limit=240,
        broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,  # publishing from a request fails fast if Redis is gone
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        beat_schedule=BEAT_SCHEDULE,
        beat_scheduler="redbeat.RedBeatScheduler",
        redbeat_redis_url=settings.redis_url,
        redbeat_redis_options={"retry_period": 30},
        redbeat_lock_timeout=90,
    )
    celery.set_default()
    celery.autodiscover_tasks(["tasks"], related_name=None, force=True)
    import workers.celery_signals  # noqa: F401  (connects the request-id signals)
    from tasks.events import kick_after_commit
    from tasks.mail import send_after_commit

    services.db.on_commit(partial(kick_after_commit, celery, services.redis))
    services.db.on_commit(partial(send_after_commit, celery))
    return celery
