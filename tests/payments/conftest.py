"""Payments test wiring: a per-test offline processor (in memory), people, order helpers, and
a localstripe server for the whole session (the real ``stripe`` SDK over HTTP)."""

from __future__ import annotations

import hashlib
import hmac
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import Order, OrderApplication, PaymentEscrow, PayoutAccount, User
from domain.money import FeePolicy
from domain.payments.config import PaymentConfig
from domain.payments.offline import MemoryStore, OfflineGateway
from services import Payments
from tests.api.orders_helpers import call, create_order
from tests.factories import UserFactory

WEBHOOK_SECRET = "whsec_test_secret"
CONFIG = PaymentConfig(fee_policy=FeePolicy(1500, 290, 30), require_method_at_accept=True)


def stripe_signature(body: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``body`` (``t=<time>,v1=<HMAC>``)."""
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), b"%d.%s" % (at, body), hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


class Clock:
    """A settable clock for the offline processor (holds lapse by its time)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(clock: Clock) -> OfflineGateway:
    return OfflineGateway(MemoryStore(), clock=clock)


@pytest.fixture
def pay(app: Flask, gateway: OfflineGateway) -> Iterator[Payments]:
    """The app's payment services for this test: the in-memory processor, cards required."""
    original = app.extensions["taplive"].payments
    services = Payments(gateway=gateway, config=CONFIG, webhook_secret=WEBHOOK_SECRET,
                               webhook_tolerance_s=300)
    app.extensions["taplive"].payments = services
    yield services
    app.extensions["taplive"].payments = original


@pytest.fixture
def people(db_session: Session) -> dict[str, User]:
    return {
        "creator": UserFactory(),
        "provider": UserFactory(provider=True, verified=True),
        "rival": UserFactory(provider=True, verified=True),
        "stranger": UserFactory(),
        "admin": UserFactory(admin=True),
    }


def offer(client: FlaskClient, people: dict[str, User], *, proposed: str | None = "30.00",
          **order_overrides: Any) -> tuple[dict[str, Any], str]:
    """A pending order with the provider's (and a rival's) application: (order, app id)."""
    order = create_order(client, people["creator"], **order_overrides)
    body: dict[str, Any] = {"proposedAmount": proposed} if proposed else {}
    response = call(client, "POST", f"/orders/{order['id']}/applications", people["provider"],
                    body)
    assert response.status_code == 201, response.json
    call(client, "POST", f"/orders/{order['id']}/applications", people["rival"], {})
    return order, response.json["data"]["application"]["id"]


def accept(client: FlaskClient, people: dict[str, User], order_id: str, application_id: str,
           pm: str | None = "pm_card_visa") -> Any:
    body: dict[str, Any] = {"applicationId": application_id}
    if pm is not None:
        body["paymentMethodId"] = pm
    return call(client, "POST", f"/orders/{order_id}/accept", people["creator"], body)


def accepted(client: FlaskClient, people: dict[str, User], pm: str = "pm_card_visa",
             **overrides: Any) -> dict[str, Any]:
    order, app_id = offer(client, people, **overrides)
    response = accept(client, people, order["id"], app_id, pm)
    assert response.status_code == 200, response.json
    return dict(response.json["data"]["order"])


def deliver(session: Session, order_id: str | uuid.UUID, *, ago: timedelta = timedelta(0),
            agreed_minor: int | None = None) -> Order:
    """Mark an accepted order delivered (completed ``ago``), as start + complete would."""
    order = session.get(Order, uuid.UUID(str(order_id)))
    assert order is not None
    when = datetime.now(UTC) - ago
    order.status = OrderStatus.COMPLETED
    order.started_at = when - timedelta(hours=1)
    order.completed_at = when
    if agreed_minor is not None:
        order.agreed_amount_minor = agreed_minor
    session.commit()
    return order


def escrow_of(session: Session, order_id: str | uuid.UUID) -> PaymentEscrow:
    session.expire_all()
    escrow = session.scalars(select(PaymentEscrow).where(
        PaymentEscrow.order_id == uuid.UUID(str(order_id)))).one()
    return escrow


def onboard(session: Session, provider: User, account: str = "acct_provider1") -> None:
    session.add(PayoutAccount(user_id=provider.id, gateway="offline", account_ref=account,
                              payouts_enabled=True))
    session.commit()


def application_statuses(session: Session, order_id: str) -> list[str]:
    return sorted(s.value for s in session.scalars(select(OrderApplication.status).where(
        OrderApplication.order_id == uuid.UUID(order_id))))


# ---------------------------------------------------------------------------- localstripe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """localstripe (installed by the ``test`` extra) on a free local port, for the session.
    ``--from-scratch``: never load another run's state."""
    port = _free_port()
    log = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"localstripe did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
