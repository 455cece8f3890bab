"""Cards that want 3-D Secure (issue 17, item 2), on the offline processor: the acceptance
stands (202, with the intent's client secret and next action), the escrow waits in
``awaiting_authentication``; the creator's confirmation or the webhook makes it a hold; the
beat job undoes an acceptance left unauthenticated past its deadline (run twice). The ledger
stays balanced on every path."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus
from db.models import Order, OrderApplication, OrderEvent, PaymentTransaction, User
from db.queries import payments as queries
from domain.payments import capture, holds, settlement, webhooks
from domain.payments.gateway import IntentStatus, WebhookEvent
from domain.payments.offline import OfflineGateway
from services import Payments
from tests.api.openapi_contract import published_contract
from tests.api.orders_helpers import call
from tests.payments.conftest import accept, deliver, escrow_of, offer, onboard

SCA_CARD = "pm_card_authenticationRequired"


def _now() -> datetime:
    return datetime.now(UTC)


def _ops(pay: Payments, kind: str) -> list[dict[str, Any]]:
    gateway = pay.gateway
    assert isinstance(gateway, OfflineGateway)
    return [op for op in gateway.operations() if op["op"] == kind]


def _currency_sums(session: Session) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for _account, currency, balance in queries.ledger_balances(session):
        sums[currency] += balance
    return dict(sums)


def _ledger_balanced(session: Session) -> None:
    assert all(total == 0 for total in _currency_sums(session).values())


def _accept_sca(client: FlaskClient, people: dict[str, User]) -> tuple[str, str, Any]:
    order, app_id = offer(client, people, proposed="30.00")
    response = accept(client, people, order["id"], app_id, SCA_CARD)
    assert response.status_code == 202, response.json
    return order["id"], app_id, response.json["data"]


def _confirm(client: FlaskClient, people: dict[str, User], order_id: str,
             who: str = "creator") -> Any:
    return call(client, "POST", f"/orders/{order_id}/payment/confirm", people[who], {})


def test_acceptance_waits_for_authentication_then_the_creator_confirms(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order_id, _app, data = _accept_sca(client, people)
    payment = data["payment"]
    assert data["order"]["status"] == "accepted"
    assert payment["status"] == "requires_action"
    assert payment["nextAction"] == {"type": "use_stripe_sdk"}
    assert payment["clientSecret"].startswith(payment["intentId"] + "_secret_")
    assert payment["expiresAt"] is not None
    escrow = escrow_of(db_session, order_id)
    assert (escrow.state, escrow.intent_ref, escrow.authorized_minor) == (
        "awaiting_authentication", payment["intentId"], 0)
    txn = db_session.get(PaymentTransaction, escrow.transaction_id)
    assert txn is not None and txn.status.value == "pending"

    # The provider cannot go live on money that is not held.
    started = call(client, "POST", f"/orders/{order_id}/start", people["provider"], {})
    assert started.status_code == 409
    assert started.json["error"]["code"] == "PAYMENT_AUTHENTICATION_PENDING"
    # Nobody but the creator may confirm: another creator learns nothing (404); a provider
    # may not act for creators at all (403, as for accept).
    assert _confirm(client, people, order_id, "stranger").status_code == 404
    assert _confirm(client, people, order_id, "provider").status_code == 403
    # Confirming before the bank said yes: still waiting, the client gets its secret again.
    waiting = _confirm(client, people, order_id)
    assert waiting.status_code == 202, waiting.json
    assert waiting.json["data"]["outcome"] == "awaiting-authentication"
    assert waiting.json["data"]["payment"]["clientSecret"] == payment["clientSecret"]

    gateway = pay.gateway
    assert isinstance(gateway, OfflineGateway)
    gateway.authenticate(payment["intentId"], payment["clientSecret"])
    done = _confirm(client, people, order_id)
    assert done.status_code == 200, done.json
    assert (done.json["data"]["outcome"], done.json["data"]["payment"]) == ("authorized", None)
    again = _confirm(client, people, order_id)
    assert again.json["data"]["outcome"] == "already-held"
    escrow = escrow_of(db_session, order_id)
    assert (escrow.state, escrow.authorized_minor, escrow.hold_generation) == (
        "authorized", 3000, 1)
    assert escrow.hold_expires_at is not None
    assert escrow.hold_expires_at > _now() + timedelta(days=6)
    # The beat job leaves an authorised escrow alone.
    assert holds.expire_authentication(db_session, pay.gateway, pay.config,
                                       uuid.UUID(order_id), _now() + timedelta(days=1)) == (
        "already-held")
    assert len(_ops(pay, "hold")) == 1 and _ops(pay, "cancel") == []

    # From here it is an ordinary order: captured, settled, the ledger balanced.
    oid = uuid.UUID(order_id)
    onboard(db_session, people["provider"])
    deliver(db_session, oid, ago=pay.config.dispute_window + timedelta(hours=1))
    assert capture.capture(db_session, pay.gateway, pay.config, oid, _now()) == "captured"
    db_session.commit()
    assert settlement.split(db_session, pay.config, oid, _now())
    assert settlement.pay_out(db_session, pay.gateway, oid, _now())
    db_session.commit()
    assert escrow_of(db_session, oid).state == "settled"
    _ledger_balanced(db_session)
    assert _currency_sums(db_session) == {"USD": 0}


def test_the_webhook_confirms_the_authentication_once(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order_id, _app, data = _accept_sca(client, people)
    intent_id = data["payment"]["intentId"]
    gateway = pay.gateway
    assert isinstance(gateway, OfflineGateway)

    def event(event_id: str, kind: str) -> WebhookEvent:
        return WebhookEvent(id=event_id, type=kind, object_id=intent_id,
                            object_type="payment_intent", data={"id": intent_id})

    # An event before the cardholder acted (requires_action) changes nothing.
    assert webhooks.handle(db_session, gateway, pay.config,
                           event("evt_1", "payment_intent.requires_action"),
                           _now()) == "awaiting-authentication"
    gateway.authenticate(intent_id, data["payment"]["clientSecret"])
    capturable = event("evt_2", "payment_intent.amount_capturable_updated")
    assert webhooks.handle(db_session, gateway, pay.config, capturable, _now()) == "authorized"
    assert webhooks.handle(db_session, gateway, pay.config, capturable, _now()) == "duplicate"
    late = event("evt_3", "payment_intent.requires_action")  # out of order: re-read, in step
    assert webhooks.handle(db_session, gateway, pay.config, late, _now()) == "in-sync"
    db_session.commit()
    escrow = escrow_of(db_session, order_id)
    assert (escrow.state, escrow.authorized_minor) == ("authorized", 3000)
    # The creator's confirmation after the webhook finds the hold.
    assert _confirm(client, people, order_id).json["data"]["outcome"] == "already-held"
    _ledger_balanced(db_session)


def test_an_unauthenticated_acceptance_lapses_back_to_pending_once(
        app: Flask, client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order_id, app_id, data = _accept_sca(client, people)
    oid = uuid.UUID(order_id)
    task = app.extensions["celery"].tasks["payments.expire_authentications"]
    assert task.apply().get() == 0  # within its deadline: nothing to do
    assert escrow_of(db_session, oid).state == "awaiting_authentication"
    escrow = escrow_of(db_session, oid)
    escrow.hold_expires_at = _now() - timedelta(seconds=1)
    db_session.commit()

    assert task.apply().get() == 1
    assert task.apply().get() == 0  # the second tick finds nothing
    assert holds.expire_authentication(db_session, pay.gateway, pay.config, oid,
                                       _now()) == "not-awaiting"
    db_session.expire_all()
    order = db_session.get(Order, oid)
    assert order is not None
    assert (order.status, order.provider_id, order.accepted_at) == (
        OrderStatus.PENDING, None, None)
    accepted_app = db_session.get(OrderApplication, uuid.UUID(app_id))
    assert accepted_app is not None and accepted_app.status is ApplicationStatus.PENDING
    escrow = escrow_of(db_session, oid)
    assert (escrow.state, escrow.hold_expires_at) == ("released", None)
    assert gateway_status(pay, data["payment"]["intentId"]) == IntentStatus.CANCELED
    assert len(_ops(pay, "cancel")) == 1
    events = db_session.scalars(select(OrderEvent.event).where(
        OrderEvent.order_id == oid)).all()
    assert events.count("order:acceptance_lapsed") == 1

    # The creator accepts again, with another card: the released escrow is reused and the
    # new hold has a new key (the abandoned one is not replayed).
    again = accept(client, people, order_id, app_id, "pm_card_visa")
    assert again.status_code == 200, again.json
    escrow = escrow_of(db_session, oid)
    assert (escrow.state, escrow.hold_generation, escrow.authorized_minor) == (
        "authorized", 2, 3000)
    assert escrow.intent_ref != data["payment"]["intentId"]
    assert [op["key"].rsplit("/", 2)[-2] for op in _ops(pay, "hold")] == ["1", "2"]
    _ledger_balanced(db_session)


def gateway_status(pay: Payments, intent_id: str) -> str:
    return pay.gateway.retrieve_intent(intent_id).status


def test_a_refused_authentication_undoes_the_acceptance(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order_id, _app, data = _accept_sca(client, people)
    gateway = pay.gateway
    assert isinstance(gateway, OfflineGateway)
    gateway.authenticate(data["payment"]["intentId"], data["payment"]["clientSecret"],
                         success=False)
    refused = _confirm(client, people, order_id)
    assert refused.status_code == 200, refused.json
    assert refused.json["data"]["outcome"] == "authentication-failed"
    assert refused.json["data"]["order"]["status"] == "pending"
    assert escrow_of(db_session, order_id).state == "released"
    assert gateway_status(pay, data["payment"]["intentId"]) == IntentStatus.CANCELED
    assert _confirm(client, people, order_id).json["data"]["outcome"] == "not-awaiting"
    _ledger_balanced(db_session)


def test_cancelling_while_awaiting_authentication_cancels_the_intent(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order_id, _app, data = _accept_sca(client, people)
    cancelled = call(client, "POST", f"/orders/{order_id}/cancel", people["creator"],
                     {"reason": "changed my mind"})
    assert cancelled.status_code == 200, cancelled.json
    oid = uuid.UUID(order_id)
    for _ in range(2):  # the release task, redelivered
        holds.release(db_session, pay.gateway, pay.config, oid, _now())
        db_session.commit()
    assert escrow_of(db_session, oid).state == "released"
    assert gateway_status(pay, data["payment"]["intentId"]) == IntentStatus.CANCELED
    assert len(_ops(pay, "cancel")) == 1
    # The beat job and a late confirmation leave a cancelled order alone.
    assert holds.expire_authentication(db_session, pay.gateway, pay.config, oid,
                                       _now() + timedelta(days=1)) == "not-awaiting"
    _ledger_balanced(db_session)


def test_the_answers_are_what_openapi_declares(
        app: Flask, client: FlaskClient, people: dict[str, User], pay: Payments) -> None:
    """Strictly (tests/api/openapi_contract.py): the 202 of accept, the 202 and 200 of
    confirm, every field documented and present."""
    contract = published_contract(app)
    order, app_id = offer(client, people, proposed="30.00")
    accept_path = "/api/v1/orders/{order_id}/accept"
    confirm_path = "/api/v1/orders/{order_id}/payment/confirm"
    answer = accept(client, people, order["id"], app_id, SCA_CARD)
    assert answer.status_code == 202
    payment = contract.check(answer, "post", accept_path)["payment"]
    waiting = _confirm(client, people, order["id"])
    assert waiting.status_code == 202
    contract.check(waiting, "post", confirm_path)
    gateway = pay.gateway
    assert isinstance(gateway, OfflineGateway)
    gateway.authenticate(payment["intentId"], payment["clientSecret"])
    done = _confirm(client, people, order["id"])
    assert done.status_code == 200
    assert contract.check(done, "post", confirm_path)["payment"] is None
