"""Idempotency-Key on POST: replay, mismatch, scope, and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Order, User
from tests.api.orders_helpers import call, order_body
from tests.factories import UserFactory


@pytest.fixture
def creator(db_session: Session) -> User:
    return UserFactory()


def _orders(session: Session) -> int:
    return int(session.scalar(select(func.count(Order.id))) or 0)


def test_retry_with_same_key_and_body_returns_the_first_response(
        client: FlaskClient, creator: User, db_session: Session) -> None:
    headers = {"Idempotency-Key": "create-42"}
    first = call(client, "POST", "/orders", creator, order_body(), headers=headers)
    second = call(client, "POST", "/orders", creator, order_body(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json["data"] == second.json["data"]
    assert _orders(db_session) == 1


def test_same_key_different_body_is_422(client: FlaskClient, creator: User,
                                        db_session: Session) -> None:
    headers = {"Idempotency-Key": "create-43"}
    call(client, "POST", "/orders", creator, order_body(), headers=headers)
    other = call(client, "POST", "/orders", creator, order_body(title="Other"), headers=headers)
    assert other.status_code == 422
    assert other.json["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert _orders(db_session) == 1


def test_keys_are_per_user(client: FlaskClient, creator: User, db_session: Session) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    call(client, "POST", "/orders", creator, order_body(), headers=headers)
    call(client, "POST", "/orders", UserFactory(), order_body(), headers=headers)
    assert _orders(db_session) == 2


def test_failed_requests_are_not_remembered(client: FlaskClient, creator: User,
                                            db_session: Session) -> None:
    headers = {"Idempotency-Key": "retry-after-fix"}
    bad = call(client, "POST", "/orders", creator, order_body(baseAmount="x"), headers=headers)
    assert bad.status_code == 400
    good = call(client, "POST", "/orders", creator, order_body(baseAmount="x"), headers=headers)
    assert good.status_code == 400 and "Idempotent-Replayed" not in good.headers


def test_keys_live_24_hours(client: FlaskClient, creator: User, db_session: Session) -> None:
    headers = {"Idempotency-Key": "daily"}
    start = datetime.now(UTC)
    call(client, "POST", "/orders", creator, order_body(), headers=headers)
    # tick=True: time moves on inside the frozen window (Redis clients wait on the clock).
    with freeze_time(start + timedelta(hours=23), tick=True):
        replay = call(client, "POST", "/orders", creator, order_body(), headers=headers)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    with freeze_time(start + timedelta(hours=25), tick=True):
        fresh = call(client, "POST", "/orders", creator, order_body(), headers=headers)
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh.headers
    assert _orders(db_session) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "caf\u00e9"])
def test_malformed_keys_are_400(client: FlaskClient, creator: User, key: str) -> None:
    response = call(client, "POST", "/orders", creator, order_body(),
                    headers={"Idempotency-Key": key})
    assert response.status_code == 400
