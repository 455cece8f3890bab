"""The token matrix: every way a bearer token can be wrong is a 401 in the envelope."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy.orm import Session

from db.models import User
from domain.auth.tokens import claims_for
from tests.auth_helpers import access_token, auth_headers, token_pair
from tests.factories import UserFactory

ME = "/api/v1/users/me"
JWT_SECRET = "test-secret-key-0123456789abcdef0123456789-jwt"  # tests.conftest.make_settings


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(user: User, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": str(user.id), "iat": now, "nbf": now, "exp": now + 600,
              "jti": str(uuid.uuid4()), "type": "access", "fresh": False,
              **claims_for(user)}
    claims.update(overrides)
    return claims


def _tamper_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{payload}.{flipped}"


def _escalate_payload(token: str) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(role="admin", permissions=["manage_users", "verify_users"])
    return f"{head}.{_b64(claims)}.{signature}"


def _alg_none(user: User) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(user))}."


BadToken = Callable[[User, Flask], str]
CASES: dict[str, tuple[BadToken, str]] = {
    "tampered signature": (lambda u, a: _tamper_signature(access_token(u, a)), "TOKEN_INVALID"),
    "tampered claims": (lambda u, a: _escalate_payload(access_token(u, a)), "TOKEN_INVALID"),
    "alg none": (lambda u, a: _alg_none(u), "TOKEN_INVALID"),
    "other secret": (lambda u, a: jwt.encode(_claims(u), "x" * 40, "HS256"), "TOKEN_INVALID"),
    "other algorithm": (lambda u, a: jwt.encode(_claims(u), JWT_SECRET, "HS512"),
                        "TOKEN_INVALID"),
    "garbage": (lambda u, a: "not.a.token", "TOKEN_INVALID"),
    "refresh as access": (lambda u, a: token_pair(u, a)["refreshToken"], "TOKEN_INVALID"),
    "no generation claim": (
        lambda u, a: jwt.encode({k: v for k, v in _claims(u).items() if k != "gen"},
                                JWT_SECRET, "HS256"), "TOKEN_REVOKED"),
    "unknown user": (lambda u, a: jwt.encode(_claims(u, sub=str(uuid.uuid4())), JWT_SECRET,
                                             "HS256"), "TOKEN_REVOKED"),
    "sub not a uuid": (lambda u, a: jwt.encode(_claims(u, sub="42"), JWT_SECRET, "HS256"),
                       "TOKEN_REVOKED"),
}


def _assert_401(response: Any, code: str) -> None:
    assert response.status_code == 401, response.json
    body = response.json
    assert body["success"] is False and body["data"] is None
    assert body["error"]["code"] == code
    assert set(body["meta"]) == {"timestamp", "requestId", "version"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_helper_token_is_accepted(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    assert client.get(ME, headers=auth_headers(user)).status_code == 200


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 forgery
def test_bad_tokens_are_401(app: Flask, client: FlaskClient, db_session: Session,
                            case: str) -> None:
    user = UserFactory()
    make, code = CASES[case]
    response = client.get(ME, headers={"Authorization": f"Bearer {make(user, app)}"})
    _assert_401(response, code)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz",
                                    "Token abc"])
def test_missing_token_is_401(client: FlaskClient, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] in {"UNAUTHORIZED", "TOKEN_INVALID"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_is_401(app: Flask, client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    minted_at = datetime.now(UTC)
    with freeze_time(minted_at):
        token = access_token(user, app)
    with freeze_time(minted_at + timedelta(seconds=899)):
        assert client.get(ME, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with freeze_time(minted_at + timedelta(seconds=901)):
        response = client.get(ME, headers={"Authorization": f"Bearer {token}"})
    _assert_401(response, "TOKEN_EXPIRED")


def test_refresh_token_lives_longer(app: Flask, client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    minted_at = datetime.now(UTC)
    with freeze_time(minted_at):
        pair = token_pair(user, app)
    with freeze_time(minted_at + timedelta(days=13)):
        ok = client.post("/api/v1/auth/refresh",
                         headers={"Authorization": f"Bearer {pair['refreshToken']}"})
        assert ok.status_code == 200
    with freeze_time(minted_at + timedelta(days=15)):
        late = client.post("/api/v1/auth/refresh",
                           headers={"Authorization": f"Bearer {pair['refreshToken']}"})
    _assert_401(late, "TOKEN_EXPIRED")


def test_revoked_token_is_401(app: Flask, client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    token = access_token(user, app)
    verifier = app.extensions["taplive"].token_verifier
    signed = verifier.read_signed(token)
    verifier.revoke(signed.jti, signed.exp)
    _assert_401(client.get(ME, headers={"Authorization": f"Bearer {token}"}), "TOKEN_REVOKED")


def test_token_carries_the_spec_claims(app: Flask, db_session: Session) -> None:
    user = UserFactory(provider=True)
    claims = jwt.decode(access_token(user, app), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(user.id)
    assert claims["role"] == "provider"
    assert claims["permissions"] == ["apply_orders", "view_analytics"]
    assert claims["exp"] - claims["iat"] == 900
    assert {"jti", "type", "premium", "gen"} <= set(claims)
    assert jwt.get_unverified_header(access_token(user, app))["alg"] == "HS256"


def test_erased_users_tokens_stop_working(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    headers = auth_headers(user)
    user.erased_at = datetime.now(UTC)
    db_session.flush()
    _assert_401(client.get(ME, headers=headers), "TOKEN_REVOKED")


def test_a_token_is_verified_once_then_served_from_the_cache(
        app: Flask, client: FlaskClient, db_session: Session,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """PyJWT runs only for the first request with a token; every later request still checks
    expiry (test above), the denylist and the account's token generation."""
    calls: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(token))
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    user = UserFactory()
    headers = auth_headers(user, app)
    for _ in range(3):
        assert client.get(ME, headers=headers).status_code == 200
    first = len(calls)
    assert first > 0
    for _ in range(5):
        assert client.get(ME, headers=headers).status_code == 200
    assert len(calls) == first

    # Revocation still bites on a cached token: logout-all bumps the generation.
    assert client.post("/api/v1/auth/logout-all", headers=headers).status_code == 200
    _assert_401(client.get(ME, headers=headers), "TOKEN_REVOKED")


def test_the_bearer_scheme_is_case_insensitive(client: FlaskClient, db_session: Session) -> None:
    """RFC 6750 (via RFC 7235): the auth scheme is matched case-insensitively."""
    token = access_token(UserFactory())
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert client.get(ME, headers={"Authorization": f"{scheme} {token}"}).status_code == 200
