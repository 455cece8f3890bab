"""Payment tasks: thin, named, on the payments queue.

Each takes an order id, opens its own transaction and calls one domain command, which
re-loads the rows under lock and checks state: a redelivered message (``acks_late``: a worker
killed mid-task leaves its message to be delivered again) finds the work done, or repeats the
processor call with the same idempotency key and gets the first answer back. Processor outages
and 429s are retried with exponential backoff; batch jobs handle each order in its own
transaction so one bad order never blocks the others.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from celery import shared_task
from sqlalchemy.orm import Session

from db.queries import payments as queries
from domain.payments import capture as capture_cmd
from domain.payments import holds, reconciliation, settlement
from domain.payments.config import PaymentConfig
from domain.payments.gateway import GatewayError, PaymentGateway, RateLimited, Unavailable
from services import Services
from tasks import catchup
from tasks.base import ServicesTask
from tasks.catchup import Round

log = logging.getLogger(__name__)
BATCH = 200
Command = Callable[[Session, PaymentGateway, PaymentConfig, uuid.UUID, datetime], str]
# Applied to every payment task: at-least-once delivery, transient processor errors retried.
MONEY_TASK = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (Unavailable, RateLimited),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
    "time_limit": 120,
    "soft_time_limit": 100,
    "ignore_result": True,
    "bind": True,
}
# A 429 on one order's settlement: wait what the processor asks (Retry-After), else
# exponential from this, capped. The wait is a Celery retry, never a sleep in the worker.
SETTLE_BACKOFF_BASE_S = 2.0
SETTLE_BACKOFF_CAP_S = 300.0


def _now() -> datetime:
    return datetime.now(UTC)


def _run(svc: Services, command: Command, order_id: str) -> str:
    pay = svc.payments
    with svc.db.transaction() as session:
        outcome = command(session, pay.gateway, pay.config, uuid.UUID(order_id), _now())
    log.info("payment step", extra={"order": order_id, "step": command.__name__,
                                    "outcome": outcome})
    return outcome


@shared_task(name="payments.authorize_hold", **MONEY_TASK)
def authorize_hold(self: ServicesTask, order_id: str) -> str:
    """After every acceptance: hold the money unless the request already did."""
    return _run(self.services, holds.authorize, order_id)


@shared_task(name="payments.capture", **MONEY_TASK)
def capture(self: ServicesTask, order_id: str) -> str:
    return _run(self.services, capture_cmd.capture, order_id)


@shared_task(name="payments.release", **MONEY_TASK)
def release(self: ServicesTask, order_id: str) -> str:
    return _run(self.services, holds.release, order_id)


@shared_task(name="payments.apply_resolution", **MONEY_TASK)
def apply_resolution(self: ServicesTask, order_id: str) -> str:
    return _run(self.services, capture_cmd.apply_resolution, order_id)


def settle_one(svc: Services, order_id: uuid.UUID) -> bool:
    """Both settlement steps of one order, each in its own transaction (a crash between them
    leaves a state the next run picks up). Raises ``RateLimited`` on a 429: the caller decides
    when to come back."""
    pay = svc.payments
    with svc.db.transaction() as session:
        settlement.split(session, pay.config, order_id, _now())
    with svc.db.transaction() as session:
        return settlement.pay_out(session, pay.gateway, order_id, _now())


def settle_backoff_s(retry_after: float | None, attempt: int) -> float:
    """How long to wait before settling again after a 429."""
    delay = retry_after if retry_after is not None else SETTLE_BACKOFF_BASE_S * 2**attempt
    return min(SETTLE_BACKOFF_CAP_S, max(0.0, delay))


@shared_task(name="payments.settle_order", **(MONEY_TASK | {"autoretry_for": (Unavailable,)}))
def settle_order(self: ServicesTask, order_id: str) -> bool:
    """Settle one order. A 429 is retried as a Celery retry after the processor's
    Retry-After (the worker is free meanwhile), at most PAYMENT_RATE_LIMIT_RETRIES times."""
    try:
        return settle_one(self.services, uuid.UUID(order_id))
    except RateLimited as exc:
        # Past max_retries Celery re-raises ``exc`` itself: the order waits for settle_due.
        raise self.retry(exc=exc, countdown=settle_backoff_s(exc.retry_after,
                                                             self.request.retries),
                         max_retries=self.services.payments.config.rate_limit_retries) from exc


def _each(svc: Services, ids: list[uuid.UUID], command: Command, what: str) -> int:
    done = 0
    for order_id in ids:
        try:
            _run(svc, command, str(order_id))
            done += 1
        except RateLimited:
            log.warning("%s: rate limited, the rest waits for the next tick", what)
            break
        except GatewayError:
            log.exception("%s failed", what, extra={"order": str(order_id)})
    return done


@shared_task(name="payments.authorize_due", bind=True, time_limit=300, soft_time_limit=280,
             ignore_result=True)
def authorize_due(self: ServicesTask) -> int:
    """Far-future orders whose time to be authorised has come."""
    svc = self.services
    with svc.db.transaction() as session:
        ids = queries.find_due_for_authorization(session, _now(), BATCH)
    return _each(svc, ids, holds.authorize, "authorize")


@shared_task(name="payments.expire_authentications", bind=True, time_limit=300,
             soft_time_limit=280, ignore_result=True)
def expire_authentications(self: ServicesTask) -> int:
    """Acceptances whose 3-D Secure was not completed in time go back to pending (the
    abandoned intent cancelled with its key; each order re-checked under its lock)."""
    svc = self.services
    with svc.db.transaction() as session:
        ids = queries.find_authentication_lapsed(session, _now(), BATCH)
    return _each(svc, ids, holds.expire_authentication, "expire authentication")


@shared_task(name="payments.renew_holds", bind=True, time_limit=300, soft_time_limit=280,
             ignore_result=True)
def renew_holds(self: ServicesTask) -> int:
    """Renew holds about to lapse (or flag the order when renewal is declined)."""
    svc = self.services
    with svc.db.transaction() as session:
        renew = queries.find_due_for_renewal(
            session, _now() + svc.payments.config.timing.renew_before, BATCH)
    return _each(svc, renew, holds.renew, "renew")


@shared_task(name="payments.retry_captures", bind=True, time_limit=300, soft_time_limit=280,
             ignore_result=True)
def retry_captures(self: ServicesTask, chain: str | None = None,
                   cursor: str | None = None) -> int:
    """Capture completed orders whose capture task gave up (processor down longer than its
    retries, a lost message): the capture command re-checks the escrow, so a capture that
    did happen is not repeated. A backlog drains in one chain of rounds (tasks/catchup.py)."""
    svc = self.services

    def work(after: str | None) -> Round:
        with svc.db.transaction() as session:
            ids = queries.find_captured_awaiting_completion(
                session, BATCH, uuid.UUID(after) if after else None)
        handled, last = 0, after
        for order_id in ids:
            try:
                _run(svc, capture_cmd.capture, str(order_id))
            except RateLimited as exc:
                log.warning("capture: rate limited, the chain waits")
                return Round(handled, handled + 1, more=True, cursor=last,
                             retry_after=settle_backoff_s(exc.retry_after, 0))
            except GatewayError:
                log.exception("capture failed", extra={"order": str(order_id)})
            handled, last = handled + 1, str(order_id)
        return Round(handled, handled, more=len(ids) == BATCH, cursor=last)

    return catchup.run_round(self, svc.redis, "retry_captures", chain, cursor,
                             svc.payments.config.gateway_rate_per_s, work)


def _settle_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    when, order_id = cursor.split("|")
    return datetime.fromisoformat(when), uuid.UUID(order_id)


@shared_task(name="payments.settle_due", bind=True, time_limit=600, soft_time_limit=570,
             ignore_result=True)
def settle_due(self: ServicesTask, chain: str | None = None, cursor: str | None = None) -> int:
    """Settle orders past their dispute window, a batch per round, the whole backlog in one
    chain (tasks/catchup.py). On a 429 the rest of the batch is handed to
    ``payments.settle_order`` (which waits out Retry-After as a Celery retry) instead of
    sleeping here, and the chain's next batch waits as long."""
    svc = self.services
    batch = svc.payments.config.settlement_batch

    def work(after: str | None) -> Round:
        with svc.db.transaction() as session:
            ids = queries.find_due_for_settlement(session, _now(), batch, _settle_cursor(after))
        settled = calls = 0
        wait: float | None = None
        for position, order_id in enumerate(ids):
            calls += 1
            try:
                settled += settle_one(svc, order_id)
            except RateLimited as exc:
                log.warning("settlement rate limited: the rest of the batch is queued")
                wait = settle_backoff_s(exc.retry_after, 0)
                for waiting in ids[position:]:
                    self.app.send_task("payments.settle_order", args=[str(waiting)],
                                       countdown=wait)
                break
            except GatewayError:
                log.exception("settlement failed", extra={"order": str(order_id)})
        if settled:
            log.info("settled %d orders", settled)
        full = len(ids) == batch
        if not full:
            return Round(settled, calls, more=False)
        with svc.db.transaction() as session:
            at = queries.settle_cursor(session, ids[-1])
        return Round(settled, calls, more=at is not None,
                     cursor=f"{at[0].isoformat()}|{at[1]}" if at else None,
                     retry_after=wait if at else None)

    return catchup.run_round(self, svc.redis, "settle_due", chain, cursor,
                             svc.payments.config.gateway_rate_per_s, work)


@shared_task(name="payments.reconcile", bind=True, time_limit=600, soft_time_limit=570,
             ignore_result=True)
def reconcile(self: ServicesTask) -> int:
    """Compare the ledger with the processor; returns the number of drifts found."""
    svc = self.services
    lookback = timedelta(hours=svc.settings.payment_reconcile_lookback_hours)
    with svc.db.transaction() as session:
        run = reconciliation.reconcile(session, svc.payments.gateway, _now(), lookback, 1000)
        return len(run.drift)


@shared_task(name="payments.sweep_orphan_holds", bind=True, time_limit=300,
             soft_time_limit=280, ignore_result=True)
def sweep_orphan_holds(self: ServicesTask) -> int:
    svc = self.services
    pay = svc.payments
    with svc.db.transaction() as session:
        return len(reconciliation.sweep_orphan_holds(
            session, pay.gateway, _now(), pay.config.orphan_grace,
            pay.config.timing.validity + timedelta(days=1)))
