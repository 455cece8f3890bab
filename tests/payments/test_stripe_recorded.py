"""Transfers, payout accounts, idempotent replays and 429 backoff through the Stripe adapter,
over the SDK's own request path with a recorded-HTTP transport (localstripe has no Connect and
ignores idempotency keys; see recorded_stripe.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from celery.exceptions import Retry
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from db.models import PayoutAccount, User
from domain.payments import capture, keys, settlement
from domain.payments.gateway import ObjectMissing, RateLimited
from domain.payments.stripe_gateway import StripeGateway
from services import Payments
from tasks.payments import settle_backoff_s
from tests.api.orders_helpers import call
from tests.payments.conftest import CONFIG, WEBHOOK_SECRET, accepted, deliver, escrow_of
from tests.payments.recorded_stripe import KNOWN_ACCOUNT, RecordedStripe


@pytest.fixture
def transport() -> RecordedStripe:
    return RecordedStripe()


@pytest.fixture
def recorded_gateway(transport: RecordedStripe) -> StripeGateway:
    return StripeGateway("sk_test_recorded", http_client=transport, max_network_retries=0)


def _transfer(gateway: StripeGateway, order_id: uuid.UUID) -> object:
    return gateway.transfer(amount=2433, currency="USD", destination=KNOWN_ACCOUNT,
                            transfer_group=str(order_id), idempotency_key=keys.transfer(order_id))


def test_transfer_carries_the_order_as_group_and_a_deterministic_key(
        recorded_gateway: StripeGateway, transport: RecordedStripe) -> None:
    order_id = uuid.uuid4()
    first = _transfer(recorded_gateway, order_id)
    again = _transfer(recorded_gateway, order_id)  # a retried step: replayed, not repeated
    assert first == again and len(transport.transfers) == 1
    sent = [r for r in transport.requests if r.path == "/v1/transfers"]
    assert [r.idempotency_key for r in sent] == [f"taplive/order/{order_id}/transfer"] * 2
    assert sent[0].params["transfer_group"] == str(order_id)
    assert sent[0].params["amount"] == "2433" and sent[0].params["currency"] == "usd"
    fetched = recorded_gateway.retrieve_transfer(first.id)  # type: ignore[attr-defined]
    assert fetched.amount == 2433 and fetched.transfer_group == str(order_id)


def test_settlement_waits_out_a_429_as_the_processor_asks() -> None:
    # Retry-After wins; without it exponential from 2 s; never beyond 5 minutes.
    assert settle_backoff_s(7.0, 0) == 7.0
    assert [settle_backoff_s(None, n) for n in range(4)] == [2.0, 4.0, 8.0, 16.0]
    assert settle_backoff_s(None, 20) == settle_backoff_s(3600.0, 0) == 300.0


def test_a_429_while_settling_is_a_celery_retry_not_a_sleep(
        app: Flask, client: FlaskClient, people: dict[str, User], pay: Payments,
        recorded_gateway: StripeGateway, transport: RecordedStripe,
        db_session: Session) -> None:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid, ago=timedelta(days=4))
    capture.capture(db_session, pay.gateway, pay.config, oid, datetime.now(UTC))
    db_session.add(PayoutAccount(user_id=people["provider"].id, gateway="offline",
                                 account_ref=KNOWN_ACCOUNT, payouts_enabled=True))
    db_session.commit()
    pay.gateway = recorded_gateway
    transport.fail_next(1)
    task = app.extensions["celery"].tasks["payments.settle_order"]
    with pytest.raises(Retry) as retry:  # the task hands itself back with a countdown
        task.apply(args=[str(oid)])
    assert retry.value.when == 2.0  # no Retry-After in this 429: the first backoff step
    assert escrow_of(db_session, oid).state == "settling" and not transport.transfers
    assert task.apply(args=[str(oid)]).get() is True  # the retry, when the broker sends it
    attempts = [r for r in transport.requests if r.path == "/v1/transfers"]
    assert len(attempts) == 2 and len(transport.transfers) == 1
    assert escrow_of(db_session, oid).state == "settled"


def test_settlement_pays_out_once_through_stripe(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        recorded_gateway: StripeGateway, transport: RecordedStripe,
        db_session: Session) -> None:
    order = accepted(client, people, proposed="30.00")  # held on the offline processor
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid, ago=timedelta(days=4))
    now = datetime.now(UTC)
    capture.capture(db_session, pay.gateway, pay.config, oid, now)
    db_session.add(PayoutAccount(user_id=people["provider"].id, gateway="offline",
                                 account_ref=KNOWN_ACCOUNT, payouts_enabled=True))
    db_session.commit()
    assert settlement.split(db_session, CONFIG, oid, now)
    db_session.commit()
    transport.fail_next(1)
    with pytest.raises(RateLimited):  # nothing booked: the step is rolled back and retried
        settlement.pay_out(db_session, recorded_gateway, oid, now)
    db_session.rollback()
    for _ in range(2):
        settlement.pay_out(db_session, recorded_gateway, oid, now)
        db_session.commit()
    escrow = escrow_of(db_session, oid)
    assert escrow.state == "settled" and escrow.transfer_ref in transport.transfers
    assert [t["amount"] for t in transport.transfers.values()] == [2433]
    assert recorded_gateway.retrieve_transfer(escrow.transfer_ref or "").amount == 2433


@pytest.fixture
def recorded_pay(app: Flask, recorded_gateway: StripeGateway) -> Iterator[Payments]:
    original = app.extensions["taplive"].payments
    app.extensions["taplive"].payments = Payments(
        gateway=recorded_gateway, config=CONFIG, webhook_secret=WEBHOOK_SECRET,
        webhook_tolerance_s=300)
    yield app.extensions["taplive"].payments
    app.extensions["taplive"].payments = original


def test_payout_account_is_checked_with_stripe(
        client: FlaskClient, people: dict[str, User], recorded_pay: Payments,
        db_session: Session) -> None:
    unknown = call(client, "POST", "/providers/me/payout-account", people["provider"],
                   {"accountId": "acct_1Unknown"})
    assert unknown.status_code == 400 and "accountId" in unknown.json["error"]["details"]
    assert call(client, "GET", "/providers/me/payout-account",
                people["provider"]).status_code == 404
    ok = call(client, "POST", "/providers/me/payout-account", people["provider"],
              {"accountId": KNOWN_ACCOUNT})
    assert ok.status_code == 200, ok.json
    assert ok.json["data"]["payoutAccount"]["accountId"] == KNOWN_ACCOUNT
    assert ok.json["data"]["payoutAccount"]["payoutsEnabled"] is True
    with pytest.raises(ObjectMissing):
        recorded_pay.gateway.retrieve_account("acct_nope")


def test_a_429_in_the_settlement_batch_queues_the_rest_instead_of_sleeping(
        app: Flask, client: FlaskClient, people: dict[str, User], pay: Payments,
        recorded_gateway: StripeGateway, transport: RecordedStripe,
        db_session: Session, redis_client: redis.Redis) -> None:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid, ago=timedelta(days=4))
    capture.capture(db_session, pay.gateway, pay.config, oid, datetime.now(UTC))
    db_session.add(PayoutAccount(user_id=people["provider"].id, gateway="offline",
                                 account_ref=KNOWN_ACCOUNT, payouts_enabled=True))
    db_session.commit()
    pay.gateway = recorded_gateway
    transport.fail_next(1)
    # Only what the batch sends below: the acceptance's commit already sent its follow-up
    # (payments.authorize_hold, the outbox fast path) to the same queue.
    redis_client.delete("payments")
    tasks = app.extensions["celery"].tasks
    assert tasks["payments.settle_due"].apply().get() == 0
    assert escrow_of(db_session, oid).state == "settling" and not transport.transfers
    # The rest of the batch went to the broker as settle_order tasks with the backoff as
    # their countdown (kombu's Redis transport keeps the queue as a list of JSON messages).
    queued = [json.loads(raw) for raw in redis_client.lrange("payments", 0, -1)]
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in queued] == [
        ("payments.settle_order", repr([str(oid)]))]
    assert queued[0]["headers"]["eta"] is not None
    # What the worker does when the countdown ends; a second run finds nothing left to do.
    assert tasks["payments.settle_order"].apply(args=[str(oid)]).get() is True
    assert tasks["payments.settle_order"].apply(args=[str(oid)]).get() is False
    assert escrow_of(db_session, oid).state == "settled" and len(transport.transfers) == 1
