"""Kill a real worker process (SIGKILL) at every step of capture and settlement, restart, and
show that each order is captured once, transferred once, and the ledger balances.

The worker is a ``celery worker`` subprocess on the payments queue with the offline processor,
whose state (and its log of actions actually performed) lives in Redis, shared with this test
as it would be with Stripe. ``TAPLIVE_FAULT_POINT`` makes it SIGKILL itself at one named
point (hooks installed from outside by ``tests/payments/fault_worker.py``). Its message is left
unacknowledged (``acks_late``); the restarted worker, with a short broker visibility timeout,
gets it back and runs it again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select, text

from api import create_app
from api.services import payments
from db.models import LedgerEntry, LedgerTransaction, PaymentEscrow, PayoutAccount, User
from tests import factories
from tests.api.orders_helpers import order_body
from tests.auth_helpers import auth_headers
from tests.conftest import TEST_SECRET, discard_committed_data, make_settings, redis_db
from tests.payments.conftest import deliver

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
# Its own Redis database: the broker queue and the processor state must survive other tests'
# flushes of the shared test database.
REDIS_URL = ""  # set per run by the fixture below (db 12 of the run's own Redis)
ENV = "TAPLIVE_FAULT_POINT"  # read by tests/payments/fault_worker.py
POINTS = ("capture.before_gateway", "capture.after_gateway", "capture.after_ledger",
          "settle.after_split", "settle.before_transfer", "settle.after_transfer")


@pytest.fixture
def fault_app(pg_url: str) -> Iterator[Flask]:
    global REDIS_URL
    REDIS_URL = redis_db(12)
    redis.Redis.from_url(REDIS_URL).flushdb()
    app = create_app(make_settings(pg_url, redis_url=REDIS_URL, payment_method_required=True))
    yield app
    discard_committed_data(app)
    redis.Redis.from_url(REDIS_URL).flushdb()


def _worker(pg_url: str, fault: str | None, visibility_s: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env.update(APP_ENV="test", DATABASE_URL=pg_url, REDIS_URL=REDIS_URL,
               SECRET_KEY=TEST_SECRET, JWT_SECRET_KEY=TEST_SECRET + "-jwt",
               LOG_FORMAT="console", PAYMENT_GATEWAY="offline",
               CELERY_VISIBILITY_TIMEOUT_S=str(visibility_s))
    if fault:
        env[ENV] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.payments.fault_worker", "worker",
         "--pool=solo", "--queues=payments", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "--loglevel=WARNING"], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _delivered_order(app: Flask, people: dict[str, User]) -> uuid.UUID:
    """Through the API: posted, applied for, accepted with a held card; then delivered four
    days ago (past the dispute window), with the provider's payout account on file."""
    client = app.test_client()
    creator, provider = people["creator"], people["provider"]
    order = client.post("/api/v1/orders", json=order_body(baseAmount="41.37"),
                        headers=auth_headers(creator, app)).json["data"]["order"]
    application = client.post(f"/api/v1/orders/{order['id']}/applications", json={},
                              headers=auth_headers(provider, app)).json["data"]["application"]
    accepted = client.post(f"/api/v1/orders/{order['id']}/accept",
                           json={"applicationId": application["id"],
                                 "paymentMethodId": "pm_card_visa"},
                           headers=auth_headers(creator, app))
    assert accepted.status_code == 200, accepted.json
    with app.app_context(), app.extensions["taplive"].db.transaction() as session:
        deliver(session, order["id"], ago=timedelta(days=4))
    return uuid.UUID(order["id"])


def _state(app: Flask, order_id: uuid.UUID) -> str:
    with app.extensions["taplive"].db.transaction() as session:
        return str(session.scalars(select(PaymentEscrow.state).where(
            PaymentEscrow.order_id == order_id)).one())


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """Celery's warm shutdown for each worker still running, SIGKILL after 20 s."""
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()


def _creator_and_paid_provider(app: Flask, account_ref: str | None) -> dict[str, Any]:
    """A creator and a verified provider, with a payout account on the offline processor unless
    ``account_ref`` is None; committed (the workers are other processes)."""
    database = app.extensions["taplive"].db
    with database.transaction() as session:
        factories.bind(session)
        try:
            people = {"creator": factories.UserFactory(),
                      "provider": factories.UserFactory(provider=True, verified=True)}
        finally:
            factories.bind(None)
        if account_ref is not None:
            session.add(PayoutAccount(user_id=people["provider"].id, gateway="offline",
                                      account_ref=account_ref, payouts_enabled=True))
    return people


def test_killed_at_every_step_each_order_is_captured_and_settled_exactly_once(
        fault_app: Flask, pg_url: str) -> None:
    people = _creator_and_paid_provider(fault_app, "acct_crashtest")
    database = fault_app.extensions["taplive"].db
    celery = fault_app.extensions["celery"]
    orders: dict[str, uuid.UUID] = {}
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for point in POINTS:
            order_id = orders[point] = _delivered_order(fault_app, people)
            worker = _worker(pg_url, point, visibility_s=3600)
            workers.append(worker)
            celery.send_task("payments.capture", args=[str(order_id)])
            celery.send_task("payments.settle_order", args=[str(order_id)])
            assert worker.wait(timeout=90) == -9, f"the worker did not die at {point}"
            assert _state(fault_app, order_id) in ("authorized", "captured", "settling"), point
        # Restart: a healthy worker whose 1 s visibility timeout hands it every unacknowledged
        # message back; beat's settle job (sent here by hand) settles the rest.
        healthy = _worker(pg_url, None, visibility_s=1)
        workers.append(healthy)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(_state(fault_app, o) == "settled" for o in orders.values()):
                break
            celery.send_task("payments.settle_due")
            time.sleep(1.5)
        states = {point: _state(fault_app, o) for point, o in orders.items()}
        assert set(states.values()) == {"settled"}, states
    finally:
        _stop_workers(workers)

    with fault_app.app_context():
        operations = payments().gateway.operations()  # type: ignore[attr-defined]
    for point, order_id in orders.items():
        mine = [op for op in operations if op.get("order") == str(order_id)]
        kinds = sorted(op["op"] for op in mine)
        assert kinds == ["capture", "hold", "transfer"], (point, kinds)
        # 41.37: 6.21 platform (15 %), 1.50 processing (2.9 % + 0.30), 33.66 net.
        assert [op["amount"] for op in mine if op["op"] == "transfer"] == [3366], point
    with database.transaction() as session:
        totals = dict(session.execute(select(LedgerEntry.currency, func.sum(
            LedgerEntry.amount_minor)).group_by(LedgerEntry.currency)).all())
        assert totals == {"USD": 0}
        postings = session.scalar(select(func.count()).select_from(LedgerTransaction))
        assert postings == 3 * len(POINTS)  # capture, settle, payout: once each


def test_a_settlement_sweep_killed_mid_round_continues_when_its_message_comes_back(
        fault_app: Flask, pg_url: str) -> None:
    """Found by the load-and-faults run (tests/reliability/): a pool child SIGKILLed during the
    first round of ``payments.settle_due`` (beat's message, no chain yet) left the chain's
    lease held by a token nobody knew, so the redelivered message (the same task, handed back
    because its worker died) found "another chain running" and settled nothing until the
    lease lapsed (7 minutes; with a 10-minute tick, up to 10). The round's token is now its
    message's id: the redelivery takes its own lease back and settles at once."""
    people = _creator_and_paid_provider(fault_app, "acct_sweeptest")
    celery = fault_app.extensions["celery"]
    orders = [_delivered_order(fault_app, people) for _ in range(3)]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        healthy = _worker(pg_url, None, visibility_s=1)
        workers.append(healthy)
        for order_id in orders:
            celery.send_task("payments.capture", args=[str(order_id)])
        deadline = time.monotonic() + 60
        while {_state(fault_app, o) for o in orders} != {"captured"}:
            assert time.monotonic() < deadline, [_state(fault_app, o) for o in orders]
            time.sleep(0.2)
        healthy.terminate()
        healthy.wait(timeout=20)
        dying = _worker(pg_url, "settle.before_transfer", visibility_s=1)
        workers.append(dying)
        celery.send_task("payments.settle_due")  # beat's tick: no chain, no cursor
        assert dying.wait(timeout=90) == -9, "the worker did not die at the transfer"
        # The same message comes back to a healthy worker (1 s visibility): nothing else is
        # sent, no beat tick; it must settle all three well before any lease could lapse.
        workers.append(_worker(pg_url, None, visibility_s=1))
        deadline = time.monotonic() + 45
        while {_state(fault_app, o) for o in orders} != {"settled"}:
            assert time.monotonic() < deadline, [_state(fault_app, o) for o in orders]
            time.sleep(0.3)
    finally:
        _stop_workers(workers)
    with fault_app.app_context():
        operations = payments().gateway.operations()  # type: ignore[attr-defined]
    transfers = [op["order"] for op in operations if op["op"] == "transfer"]
    assert sorted(transfers) == sorted(str(o) for o in orders)  # once each


def test_a_webhook_racing_a_payment_task_does_not_deadlock(fault_app: Flask) -> None:
    """Found by the load-and-faults run: ``POST /webhooks/stripe`` answered 500
    (``DeadlockDetected``). The payment tasks lock an order, then its escrow; the webhook's
    ``sync_intent`` locked the escrow, then the order. A task holding the order while the
    webhook held the escrow deadlocked; PostgreSQL aborted one of them. The webhook now takes
    the locks in the tasks' order."""
    from domain.payments import webhooks
    from tests.payments.conftest import CONFIG

    people = _creator_and_paid_provider(fault_app, None)
    database = fault_app.extensions["taplive"].db
    order_id = _delivered_order(fault_app, people)
    with database.transaction() as session:
        intent = session.scalars(select(PaymentEscrow.intent_ref).where(
            PaymentEscrow.order_id == order_id)).one()
    assert intent is not None
    errors: list[BaseException] = []
    task_holds_order = threading.Event()

    def payment_task() -> None:  # as capture/release: the order, then (later) its escrow
        try:
            with database.engine.begin() as conn:
                conn.execute(text("SELECT 1 FROM live_stream_orders WHERE id = :id FOR UPDATE"),
                             {"id": order_id})
                task_holds_order.set()
                time.sleep(1.0)  # the webhook meanwhile takes what it takes first
                conn.execute(text("SELECT 1 FROM payment_escrows WHERE order_id = :id "
                                  "FOR UPDATE"), {"id": order_id})
        except BaseException as exc:  # reported below
            errors.append(exc)

    def webhook() -> None:
        task_holds_order.wait(10)
        try:
            with fault_app.app_context(), database.transaction() as session:
                webhooks.sync_intent(session, payments().gateway, CONFIG, intent,
                                     datetime.now(UTC))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=payment_task), threading.Thread(target=webhook)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
