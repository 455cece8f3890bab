"""Refresh-token rotation and reuse detection (domain/auth/families.py, docs/auth.md): each
refresh returns a new refresh token and retires the old one; presenting a retired one revokes
every token of that sign-in (its family), and nothing of the account's other sign-ins."""

from __future__ import annotations

import jwt
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEvent, RefreshTokenFamily
from domain.auth.tokens import FAMILY_DENYLIST_PREFIX
from tests.auth_helpers import token_pair
from tests.factories import PASSWORD, UserFactory

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _login(client: FlaskClient, email: str) -> dict[str, str]:
    response = client.post(LOGIN, json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.json
    tokens: dict[str, str] = response.json["data"]
    return tokens


def _refresh(client: FlaskClient, refresh_token: str) -> tuple[int, dict[str, object]]:
    response = client.post(REFRESH, headers=_bearer(refresh_token))
    return response.status_code, response.json


def _code(client: FlaskClient, method: str, path: str, token: str) -> str | None:
    response = client.open(path, method=method, headers=_bearer(token))
    return None if response.status_code < 400 else str(response.json["error"]["code"])


def _family(token: str) -> str:
    fam: str = jwt.decode(token, options={"verify_signature": False})["fam"]
    return fam


def test_every_refresh_rotates_and_the_old_token_stops_working(
        client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    first = _login(client, user.email)
    status, body = _refresh(client, first["refreshToken"])
    assert status == 200
    second = body["data"]
    assert isinstance(second, dict)
    assert second["refreshToken"] != first["refreshToken"]
    # Same sign-in: the new pair belongs to the family the login started.
    assert _family(second["refreshToken"]) == _family(first["refreshToken"]) \
        == _family(second["accessToken"])
    assert _code(client, "GET", ME, second["accessToken"]) is None
    # The new refresh token rotates in turn.
    status, body = _refresh(client, second["refreshToken"])
    assert status == 200
    family = db_session.get(RefreshTokenFamily, _family(first["refreshToken"]))
    assert family is not None
    db_session.refresh(family)
    assert family.rotations == 2 and family.revoked_at is None
    # A refresh token is stored by id only, never as the token itself.
    assert family.current_jti == jwt.decode(
        body["data"]["refreshToken"], options={"verify_signature": False})["jti"]  # type: ignore[index]


def test_a_reused_refresh_token_revokes_its_family_and_nothing_else(
        client: FlaskClient, db_session: Session, app: Flask) -> None:
    user = UserFactory()
    phone = _login(client, user.email)        # one family
    laptop = _login(client, user.email)       # another device: another family
    status, body = _refresh(client, phone["refreshToken"])
    assert status == 200
    rotated = body["data"]
    assert isinstance(rotated, dict)

    # The retired token comes back (a thief's copy, or the owner's after the thief rotated).
    status, body = _refresh(client, phone["refreshToken"])
    assert status == 401 and body["error"]["code"] == "TOKEN_REVOKED"  # type: ignore[index]

    # Every token of that sign-in is dead: both refresh tokens, both access tokens.
    assert _refresh(client, rotated["refreshToken"])[0] == 401
    assert _code(client, "GET", ME, rotated["accessToken"]) == "TOKEN_REVOKED"
    assert _code(client, "GET", ME, phone["accessToken"]) == "TOKEN_REVOKED"
    # The other device's sign-in is untouched.
    assert _code(client, "GET", ME, laptop["accessToken"]) is None
    assert _refresh(client, laptop["refreshToken"])[0] == 200

    family = db_session.get(RefreshTokenFamily, _family(phone["refreshToken"]))
    assert family is not None
    db_session.refresh(family)
    assert family.revoked_reason == "reuse" and family.revoked_at is not None
    [event] = db_session.scalars(select(AuditEvent).where(
        AuditEvent.event == "auth.refresh_token_reused", AuditEvent.subject_id == user.id))
    assert event.details == {"family": str(family.id), "rotations": 1}


def test_a_revoked_family_stays_revoked_without_redis(
        client: FlaskClient, db_session: Session, app: Flask) -> None:
    """The row is the truth for refreshes: losing the Redis key (a flush) does not bring the
    family back (its access tokens then live at most until they expire)."""
    user = UserFactory()
    first = _login(client, user.email)
    rotated = _refresh(client, first["refreshToken"])[1]["data"]
    assert isinstance(rotated, dict)
    assert _refresh(client, first["refreshToken"])[0] == 401  # reuse
    r: redis.Redis = app.extensions["taplive"].redis
    key = FAMILY_DENYLIST_PREFIX + _family(first["refreshToken"])
    assert r.exists(key)
    r.delete(key)
    status, body = _refresh(client, rotated["refreshToken"])
    assert status == 401 and body["error"]["code"] == "TOKEN_REVOKED"  # type: ignore[index]


def test_logout_ends_the_whole_sign_in(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    session = _login(client, user.email)
    other = _login(client, user.email)
    rotated = _refresh(client, session["refreshToken"])[1]["data"]
    assert isinstance(rotated, dict)
    out = client.post("/api/v1/auth/logout", headers=_bearer(rotated["accessToken"]))
    assert out.status_code == 200 and out.json["data"]["revokedTokens"] == 1
    # The refresh token was not presented, but the sign-in it belongs to has ended.
    status, body = _refresh(client, rotated["refreshToken"])
    assert status == 401 and body["error"]["code"] == "TOKEN_REVOKED"  # type: ignore[index]
    assert _code(client, "GET", ME, rotated["accessToken"]) == "TOKEN_REVOKED"
    assert _code(client, "GET", ME, other["accessToken"]) is None
    assert _refresh(client, other["refreshToken"])[0] == 200
    family = db_session.get(RefreshTokenFamily, _family(session["refreshToken"]))
    assert family is not None
    db_session.refresh(family)
    assert family.revoked_reason == "logout"


def test_logout_all_and_password_change_still_end_every_family(
        client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    one, two = _login(client, user.email), _login(client, user.email)
    assert client.post("/api/v1/auth/logout-all",
                       headers=_bearer(one["accessToken"])).status_code == 200
    for tokens in (one, two):
        assert _refresh(client, tokens["refreshToken"])[0] == 401


def test_a_pre_rotation_refresh_token_is_exchanged_once(
        app: Flask, client: FlaskClient, db_session: Session) -> None:
    """Tokens minted before rotation carry no family: the first exchange starts one and
    retires the old token; a second use is refused (it cannot revoke a family it never had)."""
    user = UserFactory()
    db_session.commit()
    legacy = token_pair(user, app)
    assert "fam" not in jwt.decode(legacy["refreshToken"], options={"verify_signature": False})
    status, body = _refresh(client, legacy["refreshToken"])
    assert status == 200
    fresh = body["data"]
    assert isinstance(fresh, dict) and _family(fresh["refreshToken"])
    status, body = _refresh(client, legacy["refreshToken"])
    assert status == 401 and body["error"]["code"] == "TOKEN_REVOKED"  # type: ignore[index]
    assert _refresh(client, fresh["refreshToken"])[0] == 200


def test_a_forged_family_claim_is_refused(app: Flask, client: FlaskClient,
                                          db_session: Session) -> None:
    """A validly signed refresh token naming a family that is not the account's (or none that
    exists) cannot be exchanged."""
    victim, attacker = UserFactory(), UserFactory()
    db_session.commit()
    theirs = _login(client, victim.email)
    issuer = app.extensions["taplive"].token_issuer
    import uuid as _uuid
    for family in (_uuid.UUID(_family(theirs["refreshToken"])), _uuid.uuid4()):
        forged = issuer.issue_pair(attacker, family=family)
        status, body = _refresh(client, forged.refresh)
        assert status == 401 and body["error"]["code"] == "TOKEN_REVOKED"  # type: ignore[index]
    assert _refresh(client, theirs["refreshToken"])[0] == 200  # the victim's is untouched
