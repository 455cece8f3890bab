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

from api.payment_services import payments
from api.services import services
from db.queries import payments as queries
from domain.payments import capture as capture_cmd
from domain.payments import holds, reconciliation, settlement
from domain.payments.config import PaymentConfig
from domain.payments.gateway import GatewayError, PaymentGateway, RateLimited, Unavailable

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
}


def _now() -> datetime:
    return datetime.now(UTC)


def _run(command: Command, order_id: str) -> str:
    pay = payments()
    with services().db.transaction() as session:
        outcome = command(session, pay.gateway, pay.config, uuid.UUID(order_id), _now())
    log.info("payment step", extra={"order": order_id, "step": command.__name__,
                                    "outcome": outcome})
    return outcome


@shared_task(name="payments.authorize_hold", **MONEY_TASK)
def authorize_hold(order_id: str) -> str:
    """After every acceptance: hold the money unless the request already did."""
    return _run(holds.authorize, order_id)


@shared_task(name="payments.capture", **MONEY_TASK)
def capture(order_id: str) -> str:
    return _run(capture_cmd.capture, order_id)


@shared_task(name="payments.release", **MONEY_TASK)
def release(order_id: str) -> str:
    return _run(holds.release, order_id)


@shared_task(name="payments.apply_resolution", **MONEY_TASK)
def apply_resolution(order_id: str) -> str:
    return _run(capture_cmd.apply_resolution, order_id)


def settle_one(order_id: uuid.UUID) -> bool:
    """Both settlement steps of one order, each in its own transaction, with 429 backoff."""
    pay, db = payments(), services().db

    def split() -> bool:
        with db.transaction() as session:
            return settlement.split(session, pay.config, order_id, _now())

    def pay_out() -> bool:
        with db.transaction() as session:
            return settlement.pay_out(session, pay.gateway, order_id, _now())

    settlement.with_backoff(split, retries=pay.config.rate_limit_retries)
    return settlement.with_backoff(pay_out, retries=pay.config.rate_limit_retries)


@shared_task(name="payments.settle_order", **MONEY_TASK)
def settle_order(order_id: str) -> bool:
    return settle_one(uuid.UUID(order_id))


def _each(ids: list[uuid.UUID], command: Command, what: str) -> int:
    done = 0
    for order_id in ids:
        try:
            _run(command, str(order_id))
            done += 1
        except RateLimited:
            log.warning("%s: rate limited, the rest waits for the next tick", what)
            break
        except GatewayError:
            log.exception("%s failed", what, extra={"order": str(order_id)})
    return done


@shared_task(name="payments.authorize_due", time_limit=300, soft_time_limit=280,
             ignore_result=True)
def authorize_due() -> int:
    """Far-future orders whose time to be authorised has come."""
    with services().db.transaction() as session:
        ids = queries.find_due_for_authorization(session, _now(), BATCH)
    return _each(ids, holds.authorize, "authorize")


@shared_task(name="payments.renew_holds", time_limit=300, soft_time_limit=280,
             ignore_result=True)
def renew_holds() -> int:
    """Renew holds about to lapse (or flag the order when renewal is declined)."""
    config = payments().config
    with services().db.transaction() as session:
        renew = queries.find_due_for_renewal(session, _now() + config.timing.renew_before,
                                             BATCH)
    return _each(renew, holds.renew, "renew")


@shared_task(name="payments.retry_captures", time_limit=300, soft_time_limit=280,
             ignore_result=True)
def retry_captures() -> int:
    """Capture completed orders whose capture task gave up (processor down longer than its
    retries): the capture command re-checks the escrow, so a capture that did happen is not
    repeated."""
    with services().db.transaction() as session:
        uncaptured = queries.find_captured_awaiting_completion(session, BATCH)
    return _each(uncaptured, capture_cmd.capture, "capture")


@shared_task(name="payments.settle_due", time_limit=600, soft_time_limit=570,
             ignore_result=True)
def settle_due() -> int:
    """Settle one batch of orders past their dispute window."""
    config = payments().config
    with services().db.transaction() as session:
        ids = queries.find_due_for_settlement(session, _now(), config.settlement_batch)
    settled = 0
    for order_id in ids:
        try:
            settled += settle_one(order_id)
        except RateLimited:
            log.warning("settlement rate limited: the rest of the batch waits")
            break
        except GatewayError:
            log.exception("settlement failed", extra={"order": str(order_id)})
    if settled:
        log.info("settled %d orders", settled)
    return settled


@shared_task(name="payments.reconcile", time_limit=600, soft_time_limit=570,
             ignore_result=True)
def reconcile() -> int:
    """Compare the ledger with the processor; returns the number of drifts found."""
    lookback = timedelta(hours=services().settings.payment_reconcile_lookback_hours)
    with services().db.transaction() as session:
        run = reconciliation.reconcile(session, payments().gateway, _now(), lookback, 1000)
        return len(run.drift)


@shared_task(name="payments.sweep_orphan_holds", time_limit=300, soft_time_limit=280,
             ignore_result=True)
def sweep_orphan_holds() -> int:
    pay = payments()
    with services().db.transaction() as session:
        return len(reconciliation.sweep_orphan_holds(
            session, pay.gateway, _now(), pay.config.orphan_grace,
            pay.config.timing.validity + timedelta(days=1)))
