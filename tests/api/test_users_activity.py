"""last_active_at: marked in Redis per request, written by a periodic flush, never per request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from beat_schedule import BEAT_SCHEDULE
from db.models import User
from domain.auth import activity
from tasks.maintenance import flush_last_active
from tests.auth_helpers import auth_headers
from tests.factories import UserFactory


def _flush(app: Flask) -> int:
    with app.app_context():
        return int(flush_last_active.run())


def test_requests_mark_activity_without_writing_the_row(
    app: Flask, client: FlaskClient, db_session: Session, redis_client: redis.Redis
) -> None:
    user = UserFactory()
    user_id, updated_at = user.id, user.updated_at
    headers = auth_headers(user)
    db_session.commit()
    before = datetime.now(UTC)
    for _ in range(3):
        assert client.get("/api/v1/users/me", headers=headers).status_code == 200
    row = db_session.get(User, user_id)
    assert row is not None and row.last_active_at is None  # no write per request
    marked = float(redis_client.hget(activity.PENDING_KEY, str(user_id)) or 0)
    assert before.timestamp() - 1 <= marked <= datetime.now(UTC).timestamp()

    assert _flush(app) == 1
    db_session.expire_all()
    row = db_session.get(User, user_id)
    assert row is not None and row.last_active_at is not None
    assert abs(row.last_active_at.timestamp() - marked) < 0.01
    assert row.updated_at == updated_at  # activity is not an edit of the account
    assert not redis_client.exists(activity.PENDING_KEY, activity.FLUSHING_KEY)
    assert _flush(app) == 0  # nothing new: harmless to run again


def test_flush_never_moves_time_backwards_nor_revives_erased_accounts(
    app: Flask, db_session: Session, redis_client: redis.Redis
) -> None:
    now = datetime.now(UTC)
    recent = UserFactory(last_active_at=now)
    erased = UserFactory(erased_at=now)
    fresh = UserFactory()
    for user, seen in ((recent, now - timedelta(hours=1)), (erased, now), (fresh, now)):
        activity.mark(redis_client, user.id, seen)
    db_session.commit()
    assert _flush(app) == 1  # only ``fresh``
    db_session.expire_all()
    assert db_session.get(User, recent.id).last_active_at == now  # type: ignore[union-attr]
    assert db_session.get(User, erased.id).last_active_at is None  # type: ignore[union-attr]


def test_a_failed_batch_is_retried_by_the_next_flush(
    app: Flask, db_session: Session, redis_client: redis.Redis
) -> None:
    user = UserFactory()
    db_session.commit()
    activity.mark(redis_client, user.id)
    with pytest.raises(RuntimeError), activity.draining(redis_client) as seen:
        assert list(seen) == [user.id]
        raise RuntimeError("database went away")
    assert redis_client.exists(activity.FLUSHING_KEY)
    assert _flush(app) == 1


def test_the_flush_is_scheduled() -> None:
    entry = BEAT_SCHEDULE["maintenance-flush-last-active"]
    assert entry["task"] == "maintenance.flush_last_active"
    assert entry["schedule"] <= 60


def test_a_process_marks_a_user_at_most_every_thirty_seconds(
    client: FlaskClient, db_session: Session, redis_client: redis.Redis
) -> None:
    """Most requests skip the mark (and its Redis command); the time is still fresh enough for
    "last active": at most MARK_EVERY_S plus one flush late."""
    from freezegun import freeze_time

    user = UserFactory()
    headers = auth_headers(user)
    start = datetime.now(UTC)
    with freeze_time(start) as clock:
        assert client.get("/api/v1/users/me", headers=headers).status_code == 200
        first = redis_client.hget(activity.PENDING_KEY, str(user.id))
        assert first is not None
        clock.tick(activity.MARK_EVERY_S - 1)
        assert client.get("/api/v1/users/me", headers=headers).status_code == 200
        assert redis_client.hget(activity.PENDING_KEY, str(user.id)) == first
        clock.tick(2)
        assert client.get("/api/v1/users/me", headers=headers).status_code == 200
        later = float(redis_client.hget(activity.PENDING_KEY, str(user.id)) or 0)
    assert later == pytest.approx(start.timestamp() + activity.MARK_EVERY_S + 1, abs=0.01)
