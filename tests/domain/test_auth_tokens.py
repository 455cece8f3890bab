"""The token check called directly, as a non-HTTP caller (a socket connect) would: no Flask app,
no app context; a real PostgreSQL (the test's connection) and a real Redis."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
import jwt
import pytest
import redis
from freezegun import freeze_time
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.enums import UserRole
from core.redis import make_redis
from db.models import User
from db.session import Database, make_engine
from domain.auth import activity, generations
from domain.auth.errors import (
    AuthUnavailable,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRevoked,
)
from domain.auth.tokens import TokenIssuer, TokenVerifier, claims_for
from tests.conftest import TEST_REDIS_URL
from tests.factories import UserFactory

SECRET = "verifier-test-secret-0123456789abcdef0123456789"
ISSUER = TokenIssuer(SECRET, access_ttl_s=900, refresh_ttl_s=3600)


@pytest.fixture
def database(pg_url: str, db_session: Session) -> Iterator[Database]:
    """A ``Database`` of its own (not the app's), on the test's connection so it sees the
    test's rows."""
    db = Database(make_engine(pg_url))
    db.bind_to_connection(db_session.connection())
    try:
        yield db
    finally:
        db.session.remove()
        db.unbind()
        db.engine.dispose()


@pytest.fixture
def verifier(database: Database, redis_client: redis.Redis) -> TokenVerifier:
    assert not flask.has_app_context()  # nothing here leans on an app
    return TokenVerifier(SECRET, make_redis(TEST_REDIS_URL), database)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(user: User, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": str(user.id), "iat": now, "nbf": now, "exp": now + 600,
            "jti": str(uuid.uuid4()), "type": "access", **claims_for(user), **overrides}


def test_a_valid_token_gives_its_callers_claims(verifier: TokenVerifier,
                                                db_session: Session) -> None:
    user = UserFactory(provider=True, premium=True)
    token = ISSUER.issue(user)
    verified = verifier.verify(token)
    assert verified.caller.id == verified.user_id == user.id
    assert verified.caller.role == UserRole.PROVIDER
    assert verified.premium is True and verified.kind == "access"
    assert verified.generation == user.token_generation
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert verified.jti == claims["jti"] and verified.exp == claims["exp"]
    assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] == claims["iat"]
    assert verified.claims["permissions"] == ["apply_orders", "view_analytics"]


def test_no_token_is_missing(verifier: TokenVerifier) -> None:
    for token in (None, ""):
        with pytest.raises(TokenMissing) as refused:
            verifier.verify(token)
        assert refused.value.code == "UNAUTHORIZED" and refused.value.challenge_error is None


def test_an_expired_token_is_refused(verifier: TokenVerifier, db_session: Session) -> None:
    user = UserFactory()
    minted_at = datetime.now(UTC)
    with freeze_time(minted_at):
        token = ISSUER.issue(user)
    with freeze_time(minted_at + timedelta(seconds=899)):
        verifier.verify(token)  # cached from here on: the cache entry dies with the token
    with freeze_time(minted_at + timedelta(seconds=901)), pytest.raises(TokenExpired) as refused:
        verifier.verify(token)
    assert refused.value.code == "TOKEN_EXPIRED"


@pytest.mark.parametrize("forge", ["signature", "claims", "alg none", "other secret", "HS512",
                                   "garbage"])
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_forged_token_is_invalid(verifier: TokenVerifier, db_session: Session,
                                   forge: str) -> None:
    user = UserFactory()
    head, payload, signature = ISSUER.issue(user).split(".")
    escalated = {**_claims(user), "role": "admin"}
    token = {
        "signature": f"{head}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}",
        "claims": f"{head}.{_b64(escalated)}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(user))}.",
        "other secret": jwt.encode(_claims(user), "x" * 40, "HS256"),
        "HS512": jwt.encode(_claims(user), SECRET, "HS512"),
        "garbage": "not.a.token",
    }[forge]
    with pytest.raises(TokenInvalid) as refused:
        verifier.verify(token)
    assert refused.value.code == "TOKEN_INVALID" and refused.value.details["reason"]


def test_kinds_are_not_interchangeable(verifier: TokenVerifier, db_session: Session) -> None:
    pair = ISSUER.issue_pair(UserFactory())
    with pytest.raises(TokenInvalid) as refused:
        verifier.verify(pair.refresh)
    assert refused.value.details == {"reason": "Only non-refresh tokens are allowed"}
    with pytest.raises(TokenInvalid) as refused:
        verifier.verify(pair.access, "refresh")
    assert refused.value.details == {"reason": "Only refresh tokens are allowed"}
    assert verifier.verify(pair.refresh, "refresh").kind == "refresh"
    assert verifier.verify(pair.refresh, "any").kind == "refresh"
    assert verifier.verify(pair.access, "any").kind == "access"


def test_a_revoked_token_is_refused(verifier: TokenVerifier, db_session: Session) -> None:
    token = ISSUER.issue(UserFactory())
    verified = verifier.verify(token)
    verifier.revoke(verified.jti, verified.exp)
    with pytest.raises(TokenRevoked):
        verifier.verify(token)


def test_a_token_of_an_older_generation_is_refused(verifier: TokenVerifier, database: Database,
                                                   db_session: Session) -> None:
    """Logout-all / password change bump the generation: the copy in Redis says so at once,
    and with no copy the database does."""
    user = UserFactory()
    token = ISSUER.issue(user)
    verifier.verify(token)
    database.session.remove()  # the caller's unit of work ends (a request's teardown does it)
    verifier.generations.offer(user.id, user.token_generation + 1)  # a published bump
    with pytest.raises(TokenRevoked):
        verifier.verify(token)

    db_session.execute(update(User).where(User.id == user.id)
                       .values(token_generation=User.token_generation + 1))
    db_session.flush()
    db_session.refresh(user)
    verifier.generations._client.delete(generations.key(user.id))  # no copy: the database
    with pytest.raises(TokenRevoked):
        verifier.verify(token)
    assert verifier.verify(ISSUER.issue(user)).generation == user.token_generation


def test_claims_that_name_no_live_account_are_revoked(verifier: TokenVerifier,
                                                      db_session: Session) -> None:
    user = UserFactory()
    for claims in (_claims(user, sub=str(uuid.uuid4())), _claims(user, sub="42"),
                   {k: v for k, v in _claims(user).items() if k != "gen"},
                   {k: v for k, v in _claims(user).items() if k != "jti"}):
        with pytest.raises(TokenRevoked):
            verifier.verify(jwt.encode(claims, SECRET, "HS256"))


def test_redis_down_fails_closed(database: Database, db_session: Session) -> None:
    token = ISSUER.issue(UserFactory())
    down = TokenVerifier(SECRET, make_redis("redis://127.0.0.1:1/0", 0.2), database)
    with pytest.raises(AuthUnavailable) as refused:
        down.verify(token)
    assert refused.value.code == "SERVICE_UNAVAILABLE"


def test_one_redis_round_trip_and_one_signature_check_per_token(
        verifier: TokenVerifier, db_session: Session, redis_client: redis.Redis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    user = UserFactory()
    token = ISSUER.issue(user)
    verifier.verify(token)  # fills the generation copy
    assert redis_client.hget(activity.PENDING_KEY, str(user.id)) is not None  # marked
    decodes: list[str] = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decodes.append(a[0]) or real_decode(*a, **k))
    commands: list[str] = []
    client = verifier.generations._client
    real_execute = client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        commands.append(str(args[0]))
        return real_execute(*args, **kwargs)

    monkeypatch.setattr(client, "execute_command", counting)
    for _ in range(3):
        verifier.verify(token)
    assert decodes == []  # the verified-claims cache
    assert commands == ["MGET"] * 3  # denylist + generation; activity not due again yet


def test_the_verifier_imports_no_web_framework() -> None:
    code = ("import sys, domain.auth.tokens; "
            "assert not [m for m in sys.modules if m.split('.')[0] in "
            "('flask', 'flask_jwt_extended', 'api')], 'web modules loaded'")
    subprocess.run([sys.executable, "-c", code], check=True)
