"""The survival test's worker: the production worker (``celery_app``) plus one tiny task and,
optionally, a pool process that dies while the worker starts.

``celery -A tests.workers.survival_worker worker ...``. ``survival.mark`` adds its token and the
pool process's pid to two Redis sets, so the test can see which tasks ran and where.
With ``TAPLIVE_CHILD_DIES_ONCE`` naming a file, the first pool process to start creates it and
SIGKILLs itself: one transient death during start-up, as when a fault schedule (or the OOM
killer) hits a worker that is just starting. Installed from outside; production code carries no
test switch.
"""

from __future__ import annotations

import os
import signal

from celery.signals import worker_process_init

from celery_app import celery
from tasks.base import ServicesTask

DONE_KEY = "survival:done"
PIDS_KEY = "survival:pids"
DIES_ONCE_ENV = "TAPLIVE_CHILD_DIES_ONCE"


@celery.task(name="survival.mark", bind=True, ignore_result=True, time_limit=20)
def mark(self: ServicesTask, token: str) -> None:
    client = self.services.redis
    client.sadd(DONE_KEY, token)
    client.sadd(PIDS_KEY, os.getpid())


@worker_process_init.connect
def _die_once(**_: object) -> None:
    marker = os.environ.get(DIES_ONCE_ENV)
    if not marker:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
