"""Admin: grant and clear the premium rate-limit tier (domain/tiers.py). The limiter's side
(the new tier's budget at the user's next token) is in tests/api/test_ratelimit.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEvent, User
from tests.auth_helpers import auth_headers
from tests.factories import UserFactory

USERS = "/api/v1/admin/users"


def _tier(client: FlaskClient, method: str, user_id: object, headers: dict[str, str],
          body: Any = None) -> tuple[int, dict[str, Any]]:
    kwargs = {} if body is None else {"json": body}
    response = client.open(f"{USERS}/{user_id}/tier", method=method, headers=headers, **kwargs)
    return response.status_code, response.json


def test_an_admin_sets_and_clears_the_premium_tier_audited(
        client: FlaskClient, db_session: Session) -> None:
    admin, user = UserFactory(admin=True), UserFactory()
    db_session.commit()
    headers = auth_headers(admin)

    status, body = _tier(client, "PUT", user.id, headers, {"tier": "premium"})
    assert status == 200, body
    assert body["data"]["user"]["id"] == str(user.id) and body["data"]["user"]["premium"] is True
    db_session.refresh(user)
    assert user.is_premium is True
    # The user sees it (read-only) in their own account.
    me = client.get("/api/v1/users/me", headers=auth_headers(user))
    assert me.json["data"]["user"]["premium"] is True

    status, body = _tier(client, "DELETE", user.id, headers)
    assert status == 200 and body["data"]["user"]["premium"] is False
    db_session.refresh(user)
    assert user.is_premium is False

    events = list(db_session.scalars(select(AuditEvent).where(
        AuditEvent.event == "admin.tier_changed").order_by(AuditEvent.occurred_at)))
    assert [(e.actor_id, e.subject_id, e.details) for e in events] == [
        (admin.id, user.id, {"tier": "premium", "previous": "standard"}),
        (admin.id, user.id, {"tier": "standard", "previous": "premium"}),
    ]


@pytest.mark.parametrize("body", [
    {"tier": "gold"}, {"tier": ""}, {"tier": 1}, {"tier": None}, {}, {"tier": "premium", "x": 1},
])
def test_bad_tier_bodies_are_400(client: FlaskClient, db_session: Session,
                                 body: dict[str, Any]) -> None:
    admin, user = UserFactory(admin=True), UserFactory()
    db_session.commit()
    status, response = _tier(client, "PUT", user.id, auth_headers(admin), body)
    assert status == 400, response
    assert response["success"] is False and response["error"]["code"] == "VALIDATION_ERROR"
    db_session.refresh(user)
    assert user.is_premium is False


def test_a_non_json_body_is_400(client: FlaskClient, db_session: Session) -> None:
    admin, user = UserFactory(admin=True), UserFactory()
    db_session.commit()
    response = client.put(f"{USERS}/{user.id}/tier", data="premium",
                          headers={**auth_headers(admin), "Content-Type": "text/plain"})
    assert 400 <= response.status_code < 500 and response.json["success"] is False


def test_only_admins_may_change_tiers(client: FlaskClient, db_session: Session) -> None:
    admin, user = UserFactory(admin=True), UserFactory()
    provider = UserFactory(provider=True, verified=True)
    db_session.commit()
    for someone in (user, provider):  # not even one's own
        for method, body in (("PUT", {"tier": "premium"}), ("DELETE", None)):
            status, response = _tier(client, method, user.id, auth_headers(someone), body)
            assert status == 403 and response["error"]["code"] == "FORBIDDEN"
    status, response = _tier(client, "PUT", user.id, {}, {"tier": "premium"})
    assert status == 401
    db_session.refresh(user)
    assert user.is_premium is False
    assert not list(db_session.scalars(select(AuditEvent).where(
        AuditEvent.event == "admin.tier_changed")))
    assert admin.id  # the admin exists: refusals are about the caller, not the target


def test_unknown_and_erased_accounts_are_404(client: FlaskClient, db_session: Session) -> None:
    admin = UserFactory(admin=True)
    erased = UserFactory(erased_at=datetime(2026, 1, 1, tzinfo=UTC))
    db_session.commit()
    for user_id in (uuid.uuid4(), erased.id):
        status, response = _tier(client, "PUT", user_id, auth_headers(admin), {"tier": "premium"})
        assert status == 404 and response["error"]["code"] == "NOT_FOUND"
    assert db_session.get(User, erased.id).is_premium is False  # type: ignore[union-attr]
    status, _ = _tier(client, "PUT", "not-a-uuid", auth_headers(admin), {"tier": "premium"})
    assert status == 404
