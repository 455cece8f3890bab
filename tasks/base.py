"""The base every task runs on: the composition root as ``self.services``.

Tasks take ids, re-load, check state and call one domain command; what they need to do that
(database, Redis, the gateway, settings) comes from the root of the Celery app that runs them
(``workers.celery_factory.make_celery``), never from a module global or the HTTP app.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from services import Services


class TapLiveCelery(Celery):
    """A Celery app that carries the root its tasks use."""

    services: Services


class ServicesTask(Task):
    """Base of every task: the root as ``self.services``, and the thread's scoped database
    session removed when the task ends (whatever it left open is rolled back)."""

    @property
    def services(self) -> Services:
        app: TapLiveCelery = self.app
        return app.services

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.run(*args, **kwargs)
        finally:
            self.services.db.session.remove()
