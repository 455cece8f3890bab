"""Admin: list users (filters, cursor pagination) and decide provider verification."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import VerificationStatus
from db.models import AuditEvent, User
from tests.auth_helpers import auth_headers
from tests.factories import UserFactory

USERS = "/api/v1/admin/users"
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _seed() -> None:
    kinds = [{"provider": True}] * 7 + [{"provider": True, "verified": True}] * 3 + [{}] * 4
    for i, traits in enumerate(kinds):
        with freeze_time(T0 + timedelta(minutes=i)):
            UserFactory(**traits)
    UserFactory(provider=True, erased_at=T0)  # erased accounts are not listed


def test_filters_and_cursor_pagination(client: FlaskClient, db_session: Session) -> None:
    admin = UserFactory(admin=True)
    _seed()
    headers = auth_headers(admin)
    db_session.commit()  # each request ends its session: keep the seeded rows
    seen: list[str] = []
    url = f"{USERS}?role=provider&verificationStatus=pending&limit=3"
    page = client.get(url, headers=headers).json["data"]
    assert page["pagination"]["totalCount"] == 7
    while True:
        seen += [u["id"] for u in page["items"]]
        assert all(u["role"] == "provider" and u["verificationStatus"] == "pending"
                   for u in page["items"])
        if not page["pagination"]["hasNextPage"]:
            break
        page = client.get(f"{url}&cursor={page['pagination']['nextCursor']}",
                          headers=headers).json["data"]
    assert len(seen) == len(set(seen)) == 7
    created = [db_session.get(User, uuid.UUID(i)).created_at for i in seen]  # type: ignore[union-attr]
    assert created == sorted(created, reverse=True)  # newest first

    everyone = client.get(f"{USERS}?limit=100", headers=headers).json["data"]
    assert everyone["pagination"]["totalCount"] == 15  # 14 seeded + the admin, not the erased
    verified = client.get(f"{USERS}?verificationStatus=verified", headers=headers).json["data"]
    assert verified["pagination"]["totalCount"] == 4  # 3 providers + the admin


def test_bad_list_arguments_are_400(client: FlaskClient, db_session: Session) -> None:
    headers = auth_headers(UserFactory(admin=True))
    db_session.commit()
    for query in ("role=overlord", "verificationStatus=maybe", "limit=0", "limit=1000",
                  "cursor=forged"):
        response = client.get(f"{USERS}?{query}", headers=headers)
        assert response.status_code == 400, query


def test_verification_decisions(client: FlaskClient, db_session: Session) -> None:
    admin = UserFactory(admin=True)
    provider = UserFactory(provider=True)
    creator = UserFactory()
    headers = auth_headers(admin)
    provider_id, admin_id, creator_id = provider.id, admin.id, creator.id
    db_session.commit()

    def decide(user_id: uuid.UUID, **body: object) -> tuple[int, dict[str, object]]:
        response = client.post(f"{USERS}/{user_id}/verification", headers=headers, json=body)
        return response.status_code, response.json

    status, body = decide(provider_id, status="rejected")
    assert status == 400 and "reason" in body["error"]["details"]  # type: ignore[index]
    status, body = decide(provider_id, status="pending")
    assert status == 400
    status, body = decide(creator_id, status="verified")
    assert status == 409 and body["error"]["code"] == "NOT_A_PROVIDER"  # type: ignore[index]
    status, body = decide(uuid.uuid4(), status="verified")
    assert status == 404

    status, body = decide(provider_id, status="rejected", reason="Blurry ID photo")
    assert status == 200
    user = body["data"]["user"]  # type: ignore[index]
    assert user["verificationStatus"] == "rejected"
    assert user["verificationReason"] == "Blurry ID photo"
    status, body = decide(provider_id, status="verified", reason=None)
    assert status == 200 and body["data"]["user"]["verificationStatus"] == "verified"  # type: ignore[index]

    row = db_session.get(User, provider_id)
    assert row is not None and row.verification_status == VerificationStatus.VERIFIED
    events = db_session.scalars(select(AuditEvent).where(
        AuditEvent.event == "admin.verification_decided").order_by(AuditEvent.occurred_at)).all()
    assert [(e.actor_id, e.subject_id, e.details["status"]) for e in events] == [
        (admin_id, provider_id, "rejected"), (admin_id, provider_id, "verified")]


def test_the_provider_sees_the_decision(client: FlaskClient, db_session: Session) -> None:
    admin, provider = UserFactory(admin=True), UserFactory(provider=True)
    db_session.commit()
    client.post(f"{USERS}/{provider.id}/verification", headers=auth_headers(admin),
                json={"status": "verified"})
    me = client.get("/api/v1/users/me", headers=auth_headers(provider)).json["data"]["user"]
    assert me["verificationStatus"] == "verified" and me["verificationDecidedAt"]
