"""One Celery app built from the Flask app (Flask's own Celery pattern).

Every task runs inside the Flask app context, so it reaches the same ``Services`` (database,
Redis, settings) as the API, and its scoped database session is removed when it ends.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery import Celery, Task
from flask import Flask

from beat_schedule import BEAT_SCHEDULE
from workers import queues


def celery_init_app(app: Flask) -> Celery:
    settings = app.extensions["taplive"].settings

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                try:
                    return self.run(*args, **kwargs)
                finally:
                    app.extensions["taplive"].db.session.remove()

    celery = Celery(app.name, task_cls=FlaskTask)
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
    import workers.signals  # noqa: F401  (connects the request-id signals)
    from tasks.events import kick_after_commit

    svc = app.extensions["taplive"]
    svc.db.on_commit(partial(kick_after_commit, celery, svc.redis))
    app.extensions["celery"] = celery
    return celery
