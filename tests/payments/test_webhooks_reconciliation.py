"""Webhook endpoint rules, reconciliation drift, and the orphan-hold sweep."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import ProcessedWebhookEvent, User
from domain.payments import capture, reconciliation
from services import Payments
from tests.payments.conftest import (
    WEBHOOK_SECRET,
    accepted,
    deliver,
    escrow_of,
    stripe_signature,
)


def _event(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"id": f"evt_{uuid.uuid4().hex[:12]}", "object": "event",
                       "type": event_type, "data": {"object": obj}}).encode()


def _post(client: FlaskClient, body: bytes, secret: str = WEBHOOK_SECRET) -> Any:
    return client.post("/api/v1/webhooks/stripe", data=body, headers={
        "Content-Type": "application/json", "Stripe-Signature": stripe_signature(body, secret)})


def test_webhook_rules(client: FlaskClient, people: dict[str, User], pay: Payments,
                       db_session: Session) -> None:
    body = _event("customer.created", {"id": "cus_1", "object": "customer"})
    assert _post(client, body, "whsec_wrong").json["error"]["code"] == "INVALID_SIGNATURE"
    assert client.post("/api/v1/webhooks/stripe", data=body, headers={
        "Content-Type": "text/plain"}).status_code == 415
    assert _post(client, b"not json").status_code == 400
    assert db_session.scalar(select(func.count()).select_from(ProcessedWebhookEvent)) == 0
    assert _post(client, body).json["data"]["outcome"] == "ignored"
    assert _post(client, body).json["data"]["outcome"] == "duplicate"
    unknown = _event("payment_intent.succeeded", {"id": "pi_unknown", "object": "payment_intent"})
    assert _post(client, unknown).json["data"]["outcome"] == "unknown-intent"


def test_webhook_not_configured(client: FlaskClient, pay: Payments) -> None:
    pay.webhook_secret = None
    response = _post(client, _event("x", {}))
    assert response.status_code == 503


def test_a_chargeback_freezes_settlement(client: FlaskClient, people: dict[str, User],
                                         pay: Payments, db_session: Session) -> None:
    order = accepted(client, people)
    escrow = escrow_of(db_session, order["id"])
    body = _event("charge.dispute.created", {"id": "dp_1", "object": "dispute",
                                             "payment_intent": escrow.intent_ref})
    assert _post(client, body).json["data"]["outcome"] == "frozen"
    assert escrow_of(db_session, order["id"]).flag == "chargeback"


def test_a_lapsed_hold_reported_by_webhook_flags_the_order(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order = accepted(client, people)
    escrow = escrow_of(db_session, order["id"])
    pay.gateway.cancel(escrow.intent_ref or "", idempotency_key="outside")
    body = _event("payment_intent.canceled", {"id": escrow.intent_ref,
                                              "object": "payment_intent"})
    assert _post(client, body).json["data"]["outcome"] == "lapsed"
    escrow = escrow_of(db_session, order["id"])
    assert (escrow.state, escrow.flag) == ("failed", "hold_lapsed")


def test_reconciliation_reports_drift(client: FlaskClient, people: dict[str, User],
                                      pay: Payments, db_session: Session) -> None:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid)
    now = datetime.now(UTC)
    capture.capture(db_session, pay.gateway, pay.config, oid, now)
    db_session.commit()
    clean = reconciliation.reconcile(db_session, pay.gateway, now, timedelta(hours=1), 100)
    assert clean.drift == [] and clean.checked == 1
    # Someone refunds in the processor's dashboard: the ledger never heard of it.
    escrow = escrow_of(db_session, oid)
    pay.gateway.refund(escrow.intent_ref or "", amount=500, order_id=str(oid),
                       idempotency_key="dashboard")
    run = reconciliation.reconcile(db_session, pay.gateway, now, timedelta(hours=1), 100)
    assert [d["kind"] for d in run.drift] == ["refunded_amount"]
    assert run.drift[0]["processor"] == 500 and run.drift[0]["ledger"] == 0


def test_orphan_holds_are_cancelled_after_a_grace_period(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order = accepted(client, people)
    # A hold taken by a request that never committed: no escrow owns it.
    orphan = pay.gateway.create_hold(amount=999, currency="USD", customer_id=None,
                                     payment_method_id="pm_card_visa", order_id=str(uuid.uuid4()),
                                     off_session=False, idempotency_key="lost-request")
    now = datetime.now(UTC)
    grace, lookback = timedelta(minutes=30), timedelta(days=8)
    assert reconciliation.sweep_orphan_holds(db_session, pay.gateway, now, grace, lookback) == []
    later = now + timedelta(minutes=31)
    assert reconciliation.sweep_orphan_holds(db_session, pay.gateway, later, grace,
                                             lookback) == [orphan.id]
    assert pay.gateway.retrieve_intent(orphan.id).status == "canceled"
    owned = escrow_of(db_session, order["id"]).intent_ref or ""
    assert pay.gateway.retrieve_intent(owned).status == "requires_capture"
