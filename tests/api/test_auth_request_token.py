"""One token check per request: the rate limiter, the idempotency scope and the view decorator
all read the same outcome, so they cannot disagree about who is calling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api import create_app
from domain.auth.tokens import TokenVerifier
from tests.api.orders_helpers import order_body
from tests.auth_helpers import auth_headers, token_pair
from tests.conftest import make_settings
from tests.factories import UserFactory

ME = "/api/v1/users/me"


@pytest.fixture(scope="module")
def limited_app(pg_url: str) -> Flask:
    """Rate limits on (the limiter is then the first to ask who is calling)."""
    return create_app(make_settings(pg_url, rate_limit_enabled=True))


@pytest.fixture
def limited(limited_app: Flask, db_session: Session,
            redis_client: redis.Redis) -> Iterator[FlaskClient]:
    database = limited_app.extensions["taplive"].db
    database.bind_to_connection(db_session.connection())
    try:
        yield limited_app.test_client()
    finally:
        database.unbind()


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kind each token check of the test was run for (the real check runs)."""
    seen: list[str] = []
    real = TokenVerifier.verify

    def counting(self: TokenVerifier, token: str | None, expected: Any = "access") -> Any:
        seen.append(expected)
        return real(self, token, expected)

    monkeypatch.setattr(TokenVerifier, "verify", counting)
    return seen


def test_a_write_is_checked_once_for_limiter_idempotency_and_view(
        limited: FlaskClient, limited_app: Flask, db_session: Session,
        checks: list[str]) -> None:
    creator = UserFactory()
    headers = {**auth_headers(creator, limited_app), "Idempotency-Key": "once-per-request"}
    response = limited.post("/api/v1/orders", json=order_body(), headers=headers)
    assert response.status_code == 201, response.json
    assert response.headers["X-RateLimit-Limit"] == "1000"  # counted as the signed-in user
    assert checks == ["access"]
    replay = limited.post("/api/v1/orders", json=order_body(), headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"  # scoped to the same user
    assert checks == ["access"] * 2


def test_a_refused_token_is_checked_once_and_counted_as_anonymous(
        limited: FlaskClient, limited_app: Flask, db_session: Session,
        checks: list[str]) -> None:
    forged = auth_headers(UserFactory(), limited_app)["Authorization"][:-2] + "xx"
    response = limited.get(ME, headers={"Authorization": forged})
    assert response.status_code == 401 and response.json["error"]["code"] == "TOKEN_INVALID"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.headers["X-RateLimit-Limit"] == "100"  # the anonymous budget
    assert checks == ["access"]


def test_the_auth_endpoints_are_checked_once_for_the_kind_they_take(
        limited: FlaskClient, limited_app: Flask, db_session: Session,
        checks: list[str]) -> None:
    pair = token_pair(UserFactory(), limited_app)
    refreshed = limited.post("/api/v1/auth/refresh",
                             headers={"Authorization": f"Bearer {pair['refreshToken']}"})
    assert refreshed.status_code == 200
    rotated = refreshed.json["data"]["refreshToken"]  # the presented one is retired
    out = limited.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {rotated}"})
    assert out.status_code == 200 and out.json["data"]["revokedTokens"] == 1
    assert checks == ["refresh", "any"]


def test_a_missing_token_gets_a_bare_challenge(client: FlaskClient) -> None:
    response = client.get(ME)
    assert response.status_code == 401 and response.json["error"]["code"] == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_request_nobody_asks_about_runs_no_check(client: FlaskClient,
                                                  checks: list[str]) -> None:
    assert client.get("/health", headers={"Authorization": "Bearer x"}).status_code == 200
    assert checks == []
