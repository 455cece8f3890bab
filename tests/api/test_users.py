"""My account: read and edit the profile, change the password, export and erase my data."""

from __future__ import annotations

import json

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus, PaymentStatus
from db.models import AuditEvent, OrderApplication, PaymentTransaction, User
from tests.auth_helpers import STRONG_PASSWORD, auth_headers
from tests.factories import PASSWORD, OrderFactory, UserFactory

ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_read_my_account(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory(provider=True, verified=True, premium=True, profile={"bio": "hi"})
    response = client.get(ME, headers=auth_headers(user))
    assert response.status_code == 200
    data = response.json["data"]["user"]
    assert data["id"] == str(user.id) and data["username"] == user.username
    assert data["verificationStatus"] == "verified" and data["premium"] is True
    assert data["profile"] == {"bio": "hi"}
    assert data["permissions"] == ["apply_orders", "view_analytics"]
    assert "password" not in json.dumps(data).lower()


def test_update_username_and_profile(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory(profile={"old": True})
    response = client.patch(ME, headers=auth_headers(user),
                            json={"username": "Harbour.Cam", "profile": {"city": "Lisbon"}})
    assert response.status_code == 200, response.json
    data = response.json["data"]["user"]
    assert data["username"] == "Harbour.Cam" and data["profile"] == {"city": "Lisbon"}
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.event == "user.profile_updated")).one()
    assert event.details == {"fields": ["username", "profile"]}


def test_profile_update_rules(client: FlaskClient, db_session: Session) -> None:
    UserFactory(username="taken")
    user = UserFactory()
    headers = auth_headers(user)
    db_session.commit()
    cases = [
        ({}, 400, "VALIDATION_ERROR"),
        ({"username": "TAKEN"}, 409, "ACCOUNT_EXISTS"),
        ({"username": "no spaces"}, 400, "VALIDATION_ERROR"),
        ({"profile": "not an object"}, 400, "VALIDATION_ERROR"),
        ({"profile": {"x": "y" * 20_000}}, 400, "VALIDATION_ERROR"),
        ({"role": "admin"}, 400, "VALIDATION_ERROR"),  # not editable here
        ({"premium": True}, 400, "VALIDATION_ERROR"),
    ]
    for body, status, code in cases:
        response = client.patch(ME, headers=headers, json=body)
        assert (response.status_code, response.json["error"]["code"]) == (status, code), body


def test_change_password(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    email = user.email
    db_session.commit()
    old = client.post(LOGIN, json={"email": email, "password": PASSWORD}).json["data"]
    headers = _bearer(old["accessToken"])

    wrong = client.post(f"{ME}/password", headers=headers,
                        json={"currentPassword": "wrong-password-1", "newPassword": "x"})
    assert wrong.status_code == 403 and wrong.json["error"]["code"] == "INVALID_PASSWORD"
    weak = client.post(f"{ME}/password", headers=headers,
                       json={"currentPassword": PASSWORD, "newPassword": "password1234"})
    assert weak.status_code == 400 and "newPassword" in weak.json["error"]["details"]

    changed = client.post(f"{ME}/password", headers=headers,
                          json={"currentPassword": PASSWORD, "newPassword": STRONG_PASSWORD})
    assert changed.status_code == 200, changed.json
    fresh = changed.json["data"]
    # Every earlier token is dead, the fresh ones work, and only the new password signs in.
    assert client.get(ME, headers=headers).status_code == 401
    assert client.post("/api/v1/auth/refresh",
                       headers=_bearer(old["refreshToken"])).status_code == 401
    assert client.get(ME, headers=_bearer(fresh["accessToken"])).status_code == 200
    assert client.post(LOGIN, json={"email": email, "password": PASSWORD}).status_code == 401
    assert client.post(LOGIN, json={"email": email,
                                    "password": STRONG_PASSWORD}).status_code == 200


def test_export_contains_my_data(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory(provider=True, profile={"bio": "streams from the harbour"})
    creator = UserFactory()
    OrderFactory(creator=user, title="My order", status=OrderStatus.COMPLETED)
    assigned = OrderFactory(creator=creator, title="Assigned to me", provider_id=user.id,
                            status=OrderStatus.COMPLETED)
    OrderFactory(creator=creator, title="Not mine")
    db_session.add(OrderApplication(order_id=assigned.id, provider_id=user.id,
                                    application_message="I can be there in 10 minutes",
                                    status=ApplicationStatus.ACCEPTED))
    db_session.add(PaymentTransaction(order_id=assigned.id, payer_id=creator.id,
                                      payee_id=user.id, gross_amount_minor=2500,
                                      platform_fee_minor=375, processing_fee_minor=103,
                                      net_amount_minor=2022, currency="USD",
                                      status=PaymentStatus.SUCCEEDED))
    db_session.flush()
    response = client.get(f"{ME}/export", headers=auth_headers(user))
    assert response.status_code == 200
    export = response.json["data"]
    assert export["user"]["id"] == str(user.id) and export["user"]["email"] == user.email
    assert export["user"]["profile"] == {"bio": "streams from the harbour"}
    assert "password_hash" not in export["user"]
    assert {o["title"] for o in export["orders"]} == {"My order", "Assigned to me"}
    assert [a["application_message"] for a in export["applications"]] == [
        "I can be there in 10 minutes"]
    assert [p["net_amount_minor"] for p in export["payments"]] == [2022]
    assert [e["event"] for e in export["auditEvents"]] == ["user.data_exported"]
    assert export["orders"][0]["created_at"].endswith("+00:00")  # ISO 8601, UTC


def test_erasure(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory(username="Erin", email="erin@example.test", provider=True,
                       verified=True, profile={"phone": "+351 900 000 000"}, premium=True)
    creator = UserFactory()
    order = OrderFactory(creator=user, status=OrderStatus.COMPLETED,
                         description="Meet me at Rua Augusta 12", location_address="Rua Augusta")
    payment = PaymentTransaction(order_id=order.id, payer_id=user.id, payee_id=creator.id,
                                 gross_amount_minor=1000, platform_fee_minor=150,
                                 processing_fee_minor=59, net_amount_minor=791,
                                 currency="EUR", status=PaymentStatus.SUCCEEDED)
    db_session.add(payment)
    db_session.flush()
    user_id, order_id, payment_id = user.id, order.id, payment.id
    db_session.commit()
    session = client.post(LOGIN, json={"email": "erin@example.test",
                                       "password": PASSWORD}).json["data"]
    headers = _bearer(session["accessToken"])

    refused = client.delete(ME, headers=headers, json={"password": "not-my-password"})
    assert refused.status_code == 403
    erased = client.delete(ME, headers=headers, json={"password": PASSWORD})
    assert erased.status_code == 200 and erased.json["data"] == {"erased": True}

    row = db_session.get(User, user_id)
    assert row is not None and row.erased_at is not None
    stored = json.dumps({c: str(getattr(row, c)) for c in (
        "username", "email", "profile", "password_hash", "verification_reason",
        "last_active_at")})
    for personal in ("Erin", "erin@", "+351", "$2b$"):
        assert personal.lower() not in stored.lower()
    assert row.profile == {} and row.is_premium is False and row.last_active_at is None
    # The order's free text is gone; the order and the payment (accounting records) remain.
    kept = db_session.get(type(order), order_id)
    assert kept is not None and kept.description is None and kept.location_address is None
    assert db_session.get(PaymentTransaction, payment_id) is not None
    # Signed out everywhere, and signing in is impossible.
    assert client.get(ME, headers=headers).status_code == 401
    assert client.post("/api/v1/auth/refresh",
                       headers=_bearer(session["refreshToken"])).status_code == 401
    login = client.post(LOGIN, json={"email": "erin@example.test", "password": PASSWORD})
    assert login.status_code == 401 and login.json["error"]["code"] == "INVALID_CREDENTIALS"
    events = db_session.scalars(select(AuditEvent).where(AuditEvent.subject_id == user_id))
    assert all(e.ip_address is None for e in events)  # addresses are personal data too


def test_erasure_waits_for_open_orders(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    OrderFactory(creator=user, status=OrderStatus.PENDING)
    headers = auth_headers(user)
    user_id = user.id
    db_session.commit()
    response = client.delete(ME, headers=headers, json={"password": PASSWORD})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "ERASURE_BLOCKED"
    assert response.json["error"]["details"] == {"openOrders": 1, "pendingApplications": 0,
                                                 "unsettledPayments": 0, "openOffers": 0}
    user = db_session.get(User, user_id)
    assert user is not None and user.erased_at is None


def test_erasure_needs_the_password_field(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    response = client.delete(ME, headers=auth_headers(user))
    assert response.status_code == 400
    assert set(response.json["error"]["details"]) == {"password"}
