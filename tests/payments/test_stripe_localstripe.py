"""The Stripe adapter on the real ``stripe`` SDK, over HTTP, against localstripe: customers,
payment methods, manual-capture intents, capture (full and partial), cancel, refunds,
declines, and signed webhooks. (Transfers and idempotent replays, which localstripe lacks, are
in test_stripe_recorded.py.)"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from db.models import User
from domain.payments import capture, reconciliation
from domain.payments.gateway import CardDeclined, ObjectMissing
from domain.payments.stripe_gateway import StripeGateway
from services import Payments
from tests.api.orders_helpers import call
from tests.payments.conftest import (
    CONFIG,
    WEBHOOK_SECRET,
    accept,
    accepted,
    deliver,
    escrow_of,
    offer,
)


@pytest.fixture
def stripe_gateway(localstripe_url: str) -> StripeGateway:
    return StripeGateway("sk_test_taplive", api_base=localstripe_url, max_network_retries=0)


@pytest.fixture
def stripe_pay(app: Flask, stripe_gateway: StripeGateway) -> Iterator[Payments]:
    original = app.extensions["taplive"].payments
    services = Payments(gateway=stripe_gateway, config=CONFIG,
                               webhook_secret=WEBHOOK_SECRET, webhook_tolerance_s=300)
    app.extensions["taplive"].payments = services
    yield services
    app.extensions["taplive"].payments = original


def _customer(gateway: StripeGateway, pm: str = "pm_card_visa") -> str:
    customer = gateway.ensure_customer(user_id=str(uuid.uuid4()), email="c@example.test",
                                       idempotency_key=f"t/{uuid.uuid4()}")
    gateway.attach_payment_method(customer_id=customer, payment_method_id=pm,
                                  idempotency_key=f"t/{uuid.uuid4()}")
    return customer


def _hold(gateway: StripeGateway, amount: int = 3000, pm: str = "pm_card_visa",
          currency: str = "USD") -> Any:
    return gateway.create_hold(amount=amount, currency=currency,
                               customer_id=_customer(gateway, pm), payment_method_id=pm,
                               order_id=str(uuid.uuid4()), off_session=False,
                               idempotency_key=f"t/{uuid.uuid4()}")


def test_manual_capture_intent_lifecycle(stripe_gateway: StripeGateway) -> None:
    held = _hold(stripe_gateway)
    assert (held.status, held.amount, held.amount_received) == ("requires_capture", 3000, 0)
    assert held.order_id is not None and held.currency == "USD"
    captured = stripe_gateway.capture(held.id, amount=2500, idempotency_key=f"t/{held.id}")
    assert (captured.status, captured.amount_received) == ("succeeded", 2500)  # partial
    refund = stripe_gateway.refund(held.id, amount=700, order_id="o",
                                   idempotency_key=f"r/{held.id}")
    assert refund.amount == 700
    assert [r.amount for r in stripe_gateway.list_refunds(held.id)] == [700]
    assert stripe_gateway.retrieve_intent(held.id).amount_received == 2500

    other = _hold(stripe_gateway, 900, currency="JPY")
    assert stripe_gateway.cancel(other.id, idempotency_key=f"c/{other.id}").status == "canceled"


def test_declines_and_unknown_objects(stripe_gateway: StripeGateway) -> None:
    with pytest.raises(CardDeclined):  # attaches, then is declined when charged
        _hold(stripe_gateway, pm="pm_card_chargeCustomerFail")
    with pytest.raises(CardDeclined):  # declined already when attached
        _customer(stripe_gateway, "pm_card_visa_chargeDeclined")
    with pytest.raises(ObjectMissing):
        stripe_gateway.retrieve_intent("pi_doesnotexist")


def test_accept_capture_refund_and_reconcile_through_the_api(
        client: FlaskClient, people: dict[str, User], stripe_pay: Payments,
        db_session: Session) -> None:
    order, app_id = offer(client, people, proposed="30.00")
    declined = accept(client, people, order["id"], app_id, "pm_card_chargeCustomerFail")
    assert declined.status_code == 402 and declined.json["error"]["code"] == "CARD_DECLINED"
    ok = accept(client, people, order["id"], app_id, "pm_card_visa")
    assert ok.status_code == 200, ok.json
    oid = uuid.UUID(order["id"])
    escrow = escrow_of(db_session, oid)
    assert escrow.state == "authorized" and (escrow.intent_ref or "").startswith("pi_")
    deliver(db_session, oid, agreed_minor=2800)
    gw, cfg = stripe_pay.gateway, stripe_pay.config
    assert capture.capture(db_session, gw, cfg, oid, datetime.now(UTC)) == "captured"
    assert capture.capture(db_session, gw, cfg, oid, datetime.now(UTC)) == "not-due"
    db_session.commit()
    assert escrow_of(db_session, oid).captured_minor == 2800
    assert call(client, "POST", f"/orders/{order['id']}/dispute", people["creator"],
                {"reason": "late"}).status_code == 200
    assert call(client, "POST", f"/admin/orders/{order['id']}/resolve", people["admin"],
                {"outcome": "refund", "note": "late", "refundAmount": "8.00"}).status_code == 200
    assert capture.apply_resolution(db_session, gw, cfg, oid, datetime.now(UTC)) == "refunded"
    db_session.commit()
    escrow = escrow_of(db_session, oid)
    assert (escrow.captured_minor, escrow.refunded_minor) == (2800, 800)
    run = reconciliation.reconcile(db_session, gw, datetime.now(UTC), CONFIG.dispute_window, 50)
    assert run.drift == [] and run.checked >= 1


# ------------------------------------------------------------------------------ webhooks


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[bytes, str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((body, self.headers["Stripe-Signature"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_inbox(localstripe_url: str) -> Iterator[list[tuple[bytes, str]]]:
    """A local endpoint localstripe delivers its signed webhooks to; the test then hands each
    delivery, byte for byte, to the API."""
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Receiver.received = []
    name = uuid.uuid4().hex
    form = urllib.parse.urlencode({"url": f"http://127.0.0.1:{server.server_port}/hook",
                                   "secret": WEBHOOK_SECRET,
                                   "events[]": "payment_intent.succeeded"}).encode()
    with urllib.request.urlopen(f"{localstripe_url}/_config/webhooks/{name}", form, timeout=5):
        pass
    yield _Receiver.received
    server.shutdown()


def _sign(payload: bytes, at: int) -> str:
    mac = hmac.new(WEBHOOK_SECRET.encode(), b"%d.%s" % (at, payload), hashlib.sha256)
    return f"t={at},v1={mac.hexdigest()}"


def _post_hook(client: FlaskClient, body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post("/api/v1/webhooks/stripe", data=body, headers=headers)


def test_signed_webhooks_are_verified_deduplicated_and_re_read(
        client: FlaskClient, people: dict[str, User], stripe_pay: Payments,
        db_session: Session, webhook_inbox: list[tuple[bytes, str]]) -> None:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid)
    escrow = escrow_of(db_session, oid)
    # Captured at the processor, but our commit was "lost": only the webhook tells us.
    stripe_pay.gateway.capture(escrow.intent_ref or "", amount=3000,
                               idempotency_key=f"lost/{oid}")
    def mine() -> list[tuple[bytes, str]]:  # other tests' events reach this inbox too
        return [(b, s) for b, s in webhook_inbox
                if json.loads(b)["data"]["object"]["id"] == escrow.intent_ref]

    deadline = time.monotonic() + 15
    while not mine() and time.monotonic() < deadline:
        time.sleep(0.1)
    [(body, signature)] = mine()

    tampered = body.replace(b'"amount": 3000', b'"amount": 1')
    assert _post_hook(client, tampered, signature).json["error"]["code"] == "INVALID_SIGNATURE"
    assert _post_hook(client, body, None).status_code == 400
    stale = _sign(body, int(time.time()) - 3600)
    assert _post_hook(client, body, stale).status_code == 400

    first = _post_hook(client, body, signature)
    assert first.status_code == 200, first.json
    assert first.json["data"]["outcome"] == "captured"
    assert escrow_of(db_session, oid).state == "captured"
    assert _post_hook(client, body, signature).json["data"]["outcome"] == "duplicate"
    # An older event arriving late (a failure notice) re-reads the intent: nothing changes.
    late = json.loads(body)
    late.update(id=f"evt_late_{uuid.uuid4().hex[:8]}", type="payment_intent.payment_failed")
    late_body = json.dumps(late).encode()
    answer = _post_hook(client, late_body, _sign(late_body, int(time.time())))
    assert answer.json["data"]["outcome"] == "in-sync"
    assert escrow_of(db_session, oid).captured_minor == 3000


# ------------------------------------------------------------------ 3-D Secure (issue 17)
# localstripe wants 3-D Secure for card 4000002760003184 (and others): a confirmed intent is
# ``requires_action`` with a client secret and ``next_action.type = use_stripe_sdk``; its
# ``POST /v1/payment_intents/{id}/_authenticate`` (publishable key + client secret, what
# Stripe.js does in the browser) passes or fails it. It emits no
# ``payment_intent.amount_capturable_updated``, so the test signs that event itself, in
# Stripe's shape; the handler re-reads the intent from localstripe either way.

SCA_NUMBER = "4000002760003184"


def _sca_method(gateway: StripeGateway) -> str:
    pm = gateway.client.v1.payment_methods.create(params={
        "type": "card", "card": {"number": SCA_NUMBER, "exp_month": 12, "exp_year": 2031,
                                 "cvc": "123"}})
    return str(pm.id)


def _authenticate(localstripe_url: str, intent_id: str, client_secret: str,
                  success: bool) -> None:
    form = urllib.parse.urlencode({"key": "pk_test_taplive", "client_secret": client_secret,
                                   "success": "true" if success else "false"}).encode()
    url = f"{localstripe_url}/v1/payment_intents/{intent_id}/_authenticate"
    with urllib.request.urlopen(url, form, timeout=5) as answer:
        assert answer.status == 200


def _event(kind: str, intent_id: str) -> bytes:
    return json.dumps({"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": kind,
                       "data": {"object": {"id": intent_id, "object": "payment_intent",
                                           "status": "requires_capture"}}}).encode()


def test_3ds_card_through_the_api_confirmed_by_the_webhook(
        client: FlaskClient, people: dict[str, User], stripe_pay: Payments,
        db_session: Session, localstripe_url: str) -> None:
    gateway = stripe_pay.gateway
    assert isinstance(gateway, StripeGateway)
    order, app_id = offer(client, people, proposed="30.00")
    answer = accept(client, people, order["id"], app_id, _sca_method(gateway))
    assert answer.status_code == 202, answer.json
    payment = answer.json["data"]["payment"]
    assert (payment["status"], payment["nextAction"]) == (
        "requires_action", {"type": "use_stripe_sdk"})
    intent_id, secret = payment["intentId"], payment["clientSecret"]
    assert secret.startswith(intent_id + "_secret_")
    assert gateway.retrieve_intent(intent_id).client_secret == secret
    oid = uuid.UUID(order["id"])
    assert escrow_of(db_session, oid).state == "awaiting_authentication"

    _authenticate(localstripe_url, intent_id, secret, success=True)
    body = _event("payment_intent.amount_capturable_updated", intent_id)
    first = _post_hook(client, body, _sign(body, int(time.time())))
    assert first.status_code == 200, first.json
    assert first.json["data"]["outcome"] == "authorized"
    assert _post_hook(client, body, _sign(body, int(time.time()))).json["data"][
        "outcome"] == "duplicate"
    escrow = escrow_of(db_session, oid)
    assert (escrow.state, escrow.authorized_minor, escrow.intent_ref) == (
        "authorized", 3000, intent_id)
    confirm = call(client, "POST", f"/orders/{order['id']}/payment/confirm", people["creator"],
                   {})
    assert confirm.json["data"]["outcome"] == "already-held"
    deliver(db_session, oid)
    assert capture.capture(db_session, gateway, CONFIG, oid, datetime.now(UTC)) == "captured"
    db_session.commit()
    assert escrow_of(db_session, oid).captured_minor == 3000
    run = reconciliation.reconcile(db_session, gateway, datetime.now(UTC), CONFIG.dispute_window,
                                   50)
    assert [d for d in run.drift if d.get("orderId") == str(oid)] == []
    assert reconciliation.ledger_drift(db_session) == []


def test_3ds_card_confirmed_by_the_creator_or_refused_by_the_bank(
        client: FlaskClient, people: dict[str, User], stripe_pay: Payments,
        db_session: Session, localstripe_url: str) -> None:
    gateway = stripe_pay.gateway
    assert isinstance(gateway, StripeGateway)
    method = _sca_method(gateway)
    order, app_id = offer(client, people, proposed="30.00")
    payment = accept(client, people, order["id"], app_id, method).json["data"]["payment"]
    path = f"/orders/{order['id']}/payment/confirm"
    waiting = call(client, "POST", path, people["creator"], {})
    assert waiting.status_code == 202, waiting.json
    assert waiting.json["data"]["payment"]["clientSecret"] == payment["clientSecret"]

    # The bank refuses: the acceptance is undone, the intent cancelled at the processor.
    _authenticate(localstripe_url, payment["intentId"], payment["clientSecret"], success=False)
    refused = call(client, "POST", path, people["creator"], {})
    assert refused.status_code == 200, refused.json
    assert refused.json["data"]["outcome"] == "authentication-failed"
    assert refused.json["data"]["order"]["status"] == "pending"
    assert gateway.retrieve_intent(payment["intentId"]).status == "canceled"

    # Accepted again, same card (a new hold: generation 2), and this time authenticated.
    again = accept(client, people, order["id"], app_id, method)
    assert again.status_code == 202, again.json
    second = again.json["data"]["payment"]
    assert second["intentId"] != payment["intentId"]
    _authenticate(localstripe_url, second["intentId"], second["clientSecret"], success=True)
    done = call(client, "POST", path, people["creator"], {})
    assert done.status_code == 200, done.json
    assert done.json["data"]["outcome"] == "authorized"
    escrow = escrow_of(db_session, uuid.UUID(order["id"]))
    assert (escrow.state, escrow.hold_generation, escrow.intent_ref) == (
        "authorized", 2, second["intentId"])
    assert reconciliation.ledger_drift(db_session) == []
