"""Sign-up and sign-in: the round trip, every bad input, no account enumeration, sessions."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEvent, User
from domain.passwords import verify_password
from tests.auth_helpers import STRONG_PASSWORD, register_body
from tests.factories import PASSWORD, UserFactory

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _events(session: Session, event: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.event == event)))


def test_register_then_login_round_trip(client: FlaskClient, db_session: Session) -> None:
    body = register_body(role="provider", email="  Ana.Lopez@Example.TEST ")
    created = client.post(REGISTER, json=body, headers={"X-Request-ID": "reg-1"})
    assert created.status_code == 201, created.json
    data = created.json["data"]
    assert set(data) == {"user", "accessToken", "refreshToken"}
    user = data["user"]
    assert user["email"] == "ana.lopez@example.test"  # normalised
    assert user["role"] == "provider" and user["verificationStatus"] == "pending"
    assert user["permissions"] == ["apply_orders", "view_analytics"]
    assert user["premium"] is False
    assert "password" not in created.get_data(as_text=True).lower().replace("password_", "")

    stored = db_session.get(User, user["id"])
    assert stored is not None and stored.password_hash.startswith("$2b$12$")
    assert verify_password(STRONG_PASSWORD, stored.password_hash)

    me = client.get("/api/v1/users/me", headers=_bearer(data["accessToken"]))
    assert me.status_code == 200 and me.json["data"]["user"]["id"] == user["id"]

    login = client.post(LOGIN, json={"email": "ANA.LOPEZ@example.test",
                                     "password": STRONG_PASSWORD})
    assert login.status_code == 200, login.json
    assert login.json["data"]["user"]["id"] == user["id"]
    registered = _events(db_session, "user.registered")
    assert [e.request_id for e in registered] == ["reg-1"]
    assert registered[0].actor_id == stored.id and registered[0].ip_address == "127.0.0.1"
    assert len(_events(db_session, "auth.login_succeeded")) == 1


@pytest.mark.parametrize(("body", "fields"), [
    ({}, {"username", "email", "password", "role"}),
    (register_body(email=None), {"email"}),
    (register_body(password=None), {"password"}),
    (register_body(email="not-an-email"), {"email"}),
    (register_body(role="overlord"), {"role"}),
    (register_body(role="admin"), {"role"}),  # never from outside
    (register_body(username="ab"), {"username"}),
    (register_body(username=12345), {"username"}),
    (register_body(extra="field"), {"extra"}),
])
def test_bad_registration_input_is_400(client: FlaskClient, body: dict[str, Any],
                                       fields: set[str]) -> None:
    response = client.post(REGISTER, json=body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert set(response.json["error"]["details"]) == fields


@pytest.mark.parametrize(("username", "message"), [
    ("has space", "letters, digits"),
    ("deleted-abc", "letters, digits"),  # the prefix of erased accounts
])
def test_bad_usernames(client: FlaskClient, username: str, message: str) -> None:
    response = client.post(REGISTER, json=register_body(username=username))
    assert response.status_code == 400
    assert message in response.json["error"]["details"]["username"][0]


@pytest.mark.parametrize(("password", "hint"), [
    ("short", "at least 10"),
    ("password123", "common"),
    ("P@ssw0rd2024", "similar to a commonly used"),
    ("qwertyuiop", "common"),
    ("aaaaaaaaaaaaaaa", "Repeats"),
    ("é" * 40, "at most 72 bytes"),  # bcrypt reads 72 bytes; longer is refused, not truncated
])
def test_weak_passwords_are_refused(client: FlaskClient, password: str, hint: str) -> None:
    response = client.post(REGISTER, json=register_body(password=password))
    assert response.status_code == 400
    error = response.json["error"]
    assert error["code"] == "WEAK_PASSWORD"
    assert any(hint in problem for problem in error["details"]["password"]), error


def test_password_built_from_the_username_is_weak(client: FlaskClient) -> None:
    response = client.post(REGISTER, json=register_body(username="marguerite77",
                                                        password="marguerite77!"))
    assert response.status_code == 400 and response.json["error"]["code"] == "WEAK_PASSWORD"


def test_duplicates_are_409(client: FlaskClient, db_session: Session) -> None:
    existing_id = UserFactory(username="Harbour", email="harbour@example.test").id
    db_session.commit()  # the request's unit of work rolls back on a 4xx: keep the fixture
    same_email = client.post(REGISTER, json=register_body(email="HARBOUR@example.test"))
    same_name = client.post(REGISTER, json=register_body(username="harbour"))  # any case
    for response, field in ((same_email, "email"), (same_name, "username")):
        assert response.status_code == 409
        assert response.json["error"]["code"] == "ACCOUNT_EXISTS"
        assert response.json["error"]["details"] == {"fields": [field]}
    assert db_session.scalars(select(User.id).where(User.email.like("harbour%"))).all() == [
        existing_id]


def test_oversize_body_is_413(client: FlaskClient) -> None:
    body = register_body(username="x" * 2_000_000)
    response = client.post(REGISTER, json=body)
    assert response.status_code == 413
    assert response.json["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_non_json_body_is_415(client: FlaskClient) -> None:
    response = client.post(REGISTER, data="username=x", content_type="text/plain")
    assert response.status_code == 415


def test_login_does_not_reveal_which_accounts_exist(client: FlaskClient,
                                                   db_session: Session) -> None:
    user = UserFactory()
    user_id, email = user.id, user.email
    db_session.commit()
    wrong_password = client.post(LOGIN, json={"email": email, "password": "nope-nope-1"})
    unknown_email = client.post(LOGIN, json={"email": "nobody@example.test",
                                             "password": PASSWORD})
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
    assert wrong_password.json["error"] == unknown_email.json["error"] == {
        "code": "INVALID_CREDENTIALS", "message": "The email or password is incorrect.",
        "details": {},
    }
    failed = _events(db_session, "auth.login_failed")
    assert {e.details["reason"] for e in failed} == {"wrong_password", "unknown_account"}
    assert {e.subject_id for e in failed} == {user_id, None}
    assert all(e.actor_id is None for e in failed)
    assert not any("nobody" in str(e.details) for e in failed)  # attempted emails not kept


def test_login_input_validation(client: FlaskClient) -> None:
    response = client.post(LOGIN, json={"email": "a@b.test"})
    assert response.status_code == 400
    assert set(response.json["error"]["details"]) == {"password"}


def test_refresh_gives_a_new_token_pair(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    tokens = client.post(LOGIN, json={"email": user.email, "password": PASSWORD}).json["data"]
    refreshed = client.post("/api/v1/auth/refresh", headers=_bearer(tokens["refreshToken"]))
    assert refreshed.status_code == 200
    assert set(refreshed.json["data"]) == {"accessToken", "refreshToken"}  # rotation
    me = client.get("/api/v1/users/me", headers=_bearer(refreshed.json["data"]["accessToken"]))
    assert me.status_code == 200
    # An access token is not a refresh token.
    wrong = client.post("/api/v1/auth/refresh", headers=_bearer(tokens["accessToken"]))
    assert wrong.status_code == 401 and wrong.json["error"]["code"] == "TOKEN_INVALID"


def test_logout_revokes_the_token_and_the_refresh_token(client: FlaskClient,
                                                        db_session: Session) -> None:
    user = UserFactory()
    tokens = client.post(LOGIN, json={"email": user.email, "password": PASSWORD}).json["data"]
    other = client.post(LOGIN, json={"email": user.email, "password": PASSWORD}).json["data"]
    out = client.post("/api/v1/auth/logout", headers=_bearer(tokens["accessToken"]),
                      json={"refreshToken": tokens["refreshToken"]})
    assert out.status_code == 200 and out.json["data"] == {"revokedTokens": 2,
                                                           "allSessions": False}
    for path, token in (("/api/v1/users/me", tokens["accessToken"]),
                        ("/api/v1/auth/refresh", tokens["refreshToken"])):
        method = client.get if path.endswith("me") else client.post
        response = method(path, headers=_bearer(token))
        assert response.status_code == 401 and response.json["error"]["code"] == "TOKEN_REVOKED"
    # The other session is untouched; it can log out too, without a body.
    assert client.get("/api/v1/users/me", headers=_bearer(other["accessToken"])).status_code == 200
    bare = client.post("/api/v1/auth/logout", headers=_bearer(other["accessToken"]))
    assert bare.status_code == 200 and bare.json["data"]["revokedTokens"] == 1
    assert client.get("/api/v1/users/me", headers=_bearer(other["accessToken"])).status_code == 401
    assert len(_events(db_session, "auth.logout")) == 2


def test_logout_with_someone_elses_refresh_token_is_refused(client: FlaskClient,
                                                            db_session: Session) -> None:
    me, them = UserFactory(), UserFactory()
    db_session.commit()
    mine = client.post(LOGIN, json={"email": me.email, "password": PASSWORD}).json["data"]
    theirs = client.post(LOGIN, json={"email": them.email, "password": PASSWORD}).json["data"]
    response = client.post("/api/v1/auth/logout", headers=_bearer(mine["accessToken"]),
                           json={"refreshToken": theirs["refreshToken"]})
    assert response.status_code == 400
    refreshed = client.post("/api/v1/auth/refresh", headers=_bearer(theirs["refreshToken"]))
    assert refreshed.status_code == 200


def test_logout_all_ends_every_session_and_login_works_again(client: FlaskClient,
                                                             db_session: Session) -> None:
    user = UserFactory()
    first = client.post(LOGIN, json={"email": user.email, "password": PASSWORD}).json["data"]
    second = client.post(LOGIN, json={"email": user.email, "password": PASSWORD}).json["data"]
    out = client.post("/api/v1/auth/logout-all", headers=_bearer(first["accessToken"]))
    assert out.status_code == 200 and out.json["data"] == {"allSessions": True}
    for token in (first["accessToken"], second["accessToken"]):
        response = client.get("/api/v1/users/me", headers=_bearer(token))
        assert response.status_code == 401 and response.json["error"]["code"] == "TOKEN_REVOKED"
    for token in (first["refreshToken"], second["refreshToken"]):
        assert client.post("/api/v1/auth/refresh", headers=_bearer(token)).status_code == 401
    # Within the same second: a fresh sign-in is not caught by the revocation.
    again = client.post(LOGIN, json={"email": user.email, "password": PASSWORD}).json["data"]
    assert client.get("/api/v1/users/me", headers=_bearer(again["accessToken"])).status_code == 200
    assert len(_events(db_session, "auth.logout_all")) == 1
