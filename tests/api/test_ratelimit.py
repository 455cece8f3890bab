"""Rate limits in Redis: shared by two app instances, per IP / user / premium user, brute-force
guards on login and register, 429 in the envelope with Retry-After and X-RateLimit-* headers.

The apps here are built with tiny limits; the suite's shared app runs without limits (APP_ENV
test), so no other test is ever throttled.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api import create_app
from api.auth.ratelimit import EXTENSION_KEY
from tests.auth_helpers import auth_headers, register_body
from tests.conftest import make_settings
from tests.factories import PASSWORD, UserFactory

LOW_LIMITS: dict[str, Any] = {
    "rate_limit_enabled": True,
    "rate_limit_anonymous": "5 per 15 minutes",
    "rate_limit_authenticated": "6 per 15 minutes",
    "rate_limit_premium": "9 per 15 minutes",
    "rate_limit_login_ip": "3 per 15 minutes",
    "rate_limit_login_account": "2 per 15 minutes",
    "rate_limit_register_ip": "2 per 15 minutes",
    "rate_limit_register_account": "1 per 15 minutes",
}
ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"
_addresses = (f"203.0.113.{i}" for i in itertools.count(1))  # TEST-NET-3, never routed


@pytest.fixture(scope="module")
def instances(pg_url: str) -> tuple[Flask, Flask]:
    """Two API processes' worth of app, sharing one Redis (and one database)."""
    return (create_app(make_settings(pg_url, **LOW_LIMITS)),
            create_app(make_settings(pg_url, **LOW_LIMITS)))


class Caller:
    """Requests from one client address, alternating between the two instances."""

    def __init__(self, clients: tuple[FlaskClient, FlaskClient]) -> None:
        self.clients = clients
        self.address = next(_addresses)
        self._turn = itertools.cycle(clients)

    def open(self, method: str, path: str, **kwargs: Any) -> Any:
        client = next(self._turn)
        return client.open(path, method=method, environ_base={"REMOTE_ADDR": self.address},
                           **kwargs)


@pytest.fixture
def caller(instances: tuple[Flask, Flask], db_session: Session,
           redis_client: redis.Redis) -> Iterator[Any]:
    databases = [app.extensions["taplive"].db for app in instances]
    for database in databases:
        database.bind_to_connection(db_session.connection())
    clients = (instances[0].test_client(), instances[1].test_client())
    try:
        yield lambda: Caller(clients)
    finally:
        for database in databases:
            database.unbind()


def assert_429(response: Any, limit: int) -> None:
    assert response.status_code == 429, response.json
    body = response.json
    assert body["success"] is False and body["error"]["code"] == "RATE_LIMITED"
    assert body["meta"]["requestId"]
    assert 0 <= int(response.headers["Retry-After"]) <= 15 * 60
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > 0


def test_the_suite_app_is_not_limited(app: Flask) -> None:
    assert app.extensions["taplive"].settings.rate_limits_on is False
    assert EXTENSION_KEY not in app.extensions


def test_anonymous_budget_is_per_ip_and_shared_by_instances(caller: Any) -> None:
    anonymous = caller()
    first = [anonymous.open("GET", ME) for _ in range(5)]  # instances A, B, A, B, A
    assert [r.status_code for r in first] == [401] * 5
    assert [r.headers["X-RateLimit-Remaining"] for r in first] == ["4", "3", "2", "1", "0"]
    assert first[0].headers["X-RateLimit-Limit"] == "5"
    assert_429(anonymous.open("GET", ME), limit=5)  # instance B knows what A counted
    assert caller().open("GET", ME).status_code == 401  # another address is unaffected
    assert anonymous.open("GET", "/health").status_code == 200  # probes are never limited


def test_users_are_counted_by_id_and_premium_gets_more(caller: Any,
                                                      db_session: Session) -> None:
    user, premium = UserFactory(), UserFactory(premium=True)
    db_session.commit()
    same_place = caller()
    for who, limit in ((user, 6), (premium, 9)):
        headers = auth_headers(who)
        statuses = [same_place.open("GET", ME, headers=headers).status_code
                    for _ in range(limit)]
        assert statuses == [200] * limit
        assert_429(same_place.open("GET", ME, headers=headers), limit=limit)
    # The address's anonymous budget was never touched by the signed-in traffic.
    assert same_place.open("GET", ME).headers["X-RateLimit-Remaining"] == "4"


def test_an_admin_granted_tier_reaches_the_limiter_at_the_next_token(
        caller: Any, db_session: Session) -> None:
    """``PUT /admin/users/{id}/tier``: the user's budget changes with their next token (the
    tier travels in the token; ``/auth/refresh`` mints from the account row)."""
    admin, user = UserFactory(admin=True), UserFactory()
    db_session.commit()
    user_id, email = user.id, user.email
    device = caller()
    tokens = device.open("POST", LOGIN, json={"email": email, "password": PASSWORD}).json["data"]

    def limit_with(token: str) -> str:
        response = device.open("GET", ME, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        return str(response.headers["X-RateLimit-Limit"])

    def refresh() -> str:
        response = device.open("POST", "/api/v1/auth/refresh",
                               headers={"Authorization": f"Bearer {tokens['refreshToken']}"})
        assert response.status_code == 200, response.json
        tokens.update(response.json["data"])
        return tokens["accessToken"]

    assert limit_with(tokens["accessToken"]) == "6"
    operator = caller()
    granted = operator.open("PUT", f"/api/v1/admin/users/{user_id}/tier",
                            headers=auth_headers(admin), json={"tier": "premium"})
    assert granted.status_code == 200, granted.json
    assert limit_with(refresh()) == "9"
    cleared = operator.open("DELETE", f"/api/v1/admin/users/{user_id}/tier",
                            headers=auth_headers(admin))
    assert cleared.status_code == 200, cleared.json
    assert limit_with(refresh()) == "6"


def test_a_forged_token_is_counted_as_anonymous(caller: Any, db_session: Session) -> None:
    user = UserFactory()
    db_session.commit()
    forged = {"Authorization": auth_headers(user)["Authorization"][:-2] + "xx"}
    someone = caller()
    assert [someone.open("GET", ME, headers=forged).status_code for _ in range(5)] == [401] * 5
    assert_429(someone.open("GET", ME, headers=forged), limit=5)
    assert someone.open("GET", ME, headers=auth_headers(user)).status_code == 200


def test_failed_logins_lock_the_account_not_the_user_who_signs_in_often(
    caller: Any, db_session: Session
) -> None:
    victim, regular = UserFactory(), UserFactory()
    victim_email, regular_email = victim.email, regular.email
    db_session.commit()
    # Successful sign-ins do not count against the account ...
    home = caller()
    for _ in range(3):  # the address's login budget
        assert home.open("POST", LOGIN, json={"email": regular_email,
                                              "password": PASSWORD}).status_code == 200
    # ... failed ones do, from any address, and then even the right password waits.
    for _ in range(2):
        assert caller().open("POST", LOGIN, json={"email": victim_email.upper(),
                                                  "password": "guess-guess-1"}).status_code == 401
    locked = caller().open("POST", LOGIN, json={"email": victim_email, "password": PASSWORD})
    assert_429(locked, limit=2)


def test_one_address_cannot_spray_many_accounts(caller: Any, db_session: Session) -> None:
    emails = [UserFactory().email for _ in range(4)]
    db_session.commit()
    sprayer = caller()
    statuses = [sprayer.open("POST", LOGIN, json={"email": e, "password": "guess-guess-1"})
                .status_code for e in emails[:3]]
    assert statuses == [401] * 3
    assert_429(sprayer.open("POST", LOGIN, json={"email": emails[3], "password": "x"}), limit=3)


def test_registration_is_limited_per_address_and_per_email(caller: Any) -> None:
    office = caller()
    assert office.open("POST", "/api/v1/auth/register",
                       json=register_body()).status_code == 201
    assert office.open("POST", "/api/v1/auth/register",
                       json=register_body(email="dup@example.test")).status_code == 201
    assert_429(office.open("POST", "/api/v1/auth/register", json=register_body()), limit=2)
    # The same email again, from elsewhere: refused before it can probe for a 409.
    assert_429(caller().open("POST", "/api/v1/auth/register",
                             json=register_body(email="DUP@example.test")), limit=1)


def test_a_dead_redis_degrades_instead_of_failing(pg_url: str, db_session: Session) -> None:
    app = create_app(make_settings(pg_url, redis_url="redis://127.0.0.1:1/0",
                                   readiness_timeout_s=0.2, **LOW_LIMITS))
    database = app.extensions["taplive"].db
    database.bind_to_connection(db_session.connection())
    try:
        client = app.test_client()
        user = UserFactory()
        # Limits fall back to process memory: anonymous requests are still served ...
        assert client.get(ME).status_code == 401
        # ... but without the denylist a token cannot be trusted: 503, not a pass.
        response = client.get(ME, headers=auth_headers(user, app))
        assert response.status_code == 503
        assert response.json["error"]["code"] == "SERVICE_UNAVAILABLE"
    finally:
        database.unbind()
        database.engine.dispose()


def test_with_limits_on_the_token_check_still_reads_no_database(
        caller: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The limiter asks whether the token is denied before the token check does; both share
    one Redis read, which also brings the account's token generation, so a request whose
    generation copy is in Redis needs no database statement to be authenticated."""
    from db.queries import users as user_queries

    reads: list[object] = []
    real = user_queries.find_token_generation

    def counting(*args: Any) -> Any:
        reads.append(args)
        return real(*args)

    monkeypatch.setattr(user_queries, "find_token_generation", counting)
    headers = auth_headers(UserFactory())
    client = caller()
    assert client.open("GET", ME, headers=headers).status_code == 200
    first = len(reads)  # at most one: fills the Redis copy
    assert first <= 1
    for _ in range(3):
        assert client.open("GET", ME, headers=headers).status_code == 200
    assert len(reads) == first
