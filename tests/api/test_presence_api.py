"""Provider presence over HTTP: availability, location updates (matching presence, sampled
history, geofence events), validation, permissions and privacy (positions never logged)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import LocationSample, OutboxMessage, User
from domain.presence_store import KEY, PresenceRegistry
from tests.api.orders_helpers import call
from tests.factories import OrderFactory, UserFactory

LAT, LON = 51.5074321, -0.1278654


@pytest.fixture
def people(db_session: Session, redis_client: redis.Redis) -> dict[str, User]:
    return {
        "provider": UserFactory(provider=True, verified=True),
        "unverified": UserFactory(provider=True),
        "creator": UserFactory(),
        "admin": UserFactory(admin=True),
    }


def _locate(client: FlaskClient, user: User, lat: float = LAT, lon: float = LON,
            **extra: Any) -> Any:
    return call(client, "PUT", "/providers/me/location", user,
                {"latitude": lat, "longitude": lon, "accuracy": 8.0} | extra)


def _available(client: FlaskClient, user: User, **body: Any) -> Any:
    return call(client, "PUT", "/providers/me/availability", user, {"online": True} | body)


def _samples(db_session: Session) -> int:
    return int(db_session.scalar(select(func.count()).select_from(LocationSample)) or 0)


def test_going_online_makes_a_located_provider_matchable(
        client: FlaskClient, people: dict[str, User], redis_client: redis.Redis) -> None:
    provider = people["provider"]
    registry = PresenceRegistry(redis_client)
    before = _available(client, provider, maxTravelMeters=3000)
    assert before.status_code == 200, before.json
    assert before.json["data"] == {"online": True, "maxTravelMeters": 3000, "matchable": False,
                                   "location": None}
    assert _locate(client, provider).status_code == 200
    record = registry.snapshot().records[str(provider.id)]
    assert (record["lat"], record["lon"], record["maxTravelM"]) == (LAT, LON, 3000)
    assert record["verified"] is True
    mine = call(client, "GET", "/providers/me/availability", provider).json["data"]
    assert mine["matchable"] is True
    assert (mine["location"]["latitude"], mine["location"]["longitude"]) == (LAT, LON)

    off = _available(client, provider, online=False)
    assert off.status_code == 200 and off.json["data"]["online"] is False
    assert registry.snapshot().records == {}
    _locate(client, provider, LAT + 0.001)  # offline: the position is kept, not published
    assert registry.snapshot().records == {}


@pytest.mark.parametrize("body", [
    {}, {"online": "yes"}, {"online": 1}, {"online": None},
    {"online": True, "maxTravelMeters": 50}, {"online": True, "maxTravelMeters": "500"},
    {"online": True, "maxTravelMeters": 10**9}, {"online": True, "maxTravelMeters": 1.5},
    {"online": True, "extra": 1},
])
def test_availability_bad_input_is_400_and_changes_nothing(
        client: FlaskClient, people: dict[str, User], redis_client: redis.Redis,
        body: dict[str, Any]) -> None:
    response = call(client, "PUT", "/providers/me/availability", people["provider"], body)
    assert response.status_code == 400
    assert response.json["success"] is False
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert PresenceRegistry(redis_client).profile(people["provider"].id) is None


def test_availability_needs_a_verified_provider(client: FlaskClient,
                                               people: dict[str, User]) -> None:
    assert call(client, "PUT", "/providers/me/availability", None,
                {"online": True}).status_code == 401
    assert _available(client, people["creator"]).json["error"]["code"] == "FORBIDDEN"
    assert _available(client, people["admin"]).status_code == 403
    response = _available(client, people["unverified"])
    assert response.status_code == 403
    assert response.json["error"]["code"] == "PROVIDER_NOT_VERIFIED"
    assert call(client, "GET", "/providers/me/availability", people["creator"]).status_code \
        == 403


@pytest.mark.parametrize("body", [
    {"latitude": 91, "longitude": 0}, {"latitude": 0, "longitude": -181},
    {"latitude": "NaN", "longitude": 0}, {"latitude": 0}, {"latitude": 0, "longitude": 0,
                                                            "accuracy": -1},
    {"latitude": 0, "longitude": 0, "recordedAt": "2999-01-01T00:00:00Z"},
    {"latitude": 0, "longitude": 0, "recordedAt": "2026-01-01T00:00:00"},  # naive
])
def test_location_bad_input_is_400_and_writes_nothing(
        client: FlaskClient, people: dict[str, User], redis_client: redis.Redis,
        db_session: Session, body: dict[str, Any]) -> None:
    provider = people["provider"]
    response = call(client, "PUT", "/providers/me/location", provider, body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert not redis_client.exists(KEY.format(provider.id))
    assert _samples(db_session) == 0


def test_history_is_sampled_once_per_interval_and_old_reports_are_ignored(
        client: FlaskClient, people: dict[str, User], db_session: Session,
        redis_client: redis.Redis) -> None:
    provider = people["provider"]
    now = datetime.now(UTC) - timedelta(seconds=90)
    assert _locate(client, provider, recordedAt=now.isoformat()).json["data"]["stored"]
    assert _locate(client, provider, LAT + 0.0001,
                   recordedAt=(now + timedelta(seconds=5)).isoformat()).json["data"]["stored"]
    old = _locate(client, provider, LAT + 0.0002,
                  recordedAt=(now - timedelta(minutes=1)).isoformat())
    assert old.status_code == 200 and old.json["data"]["stored"] is False
    assert _samples(db_session) == 1
    [sample] = db_session.scalars(select(LocationSample)).all()
    assert (sample.provider_id, sample.latitude, sample.accuracy_m) == (provider.id, LAT, 8.0)
    redis_client.delete(f"taplive:presence:sampled:{provider.id}")  # the interval passes
    assert _locate(client, provider, recordedAt=(now + timedelta(seconds=61)).isoformat()
                   ).json["data"]["stored"]
    assert _samples(db_session) == 2


def test_a_stale_fix_does_not_make_a_provider_matchable(
        client: FlaskClient, people: dict[str, User], redis_client: redis.Redis) -> None:
    provider = people["provider"]
    _available(client, provider)
    stale = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    assert _locate(client, provider, recordedAt=stale).json["data"]["stored"] is True
    assert PresenceRegistry(redis_client).snapshot().records == {}


def test_locations_are_never_logged(client: FlaskClient, people: dict[str, User],
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider = people["provider"]
    _available(client, provider)
    _locate(client, provider)
    _locate(client, provider, 91.0)  # even a rejected one
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in ("51.507", "-0.1278", "0.12786"):
        assert secret not in text


def test_geofence_events_fire_on_entering_and_leaving_only(
        client: FlaskClient, people: dict[str, User], db_session: Session) -> None:
    provider = people["provider"]
    order = OrderFactory(latitude=LAT, longitude=LON, service_radius=500,
                         provider_id=provider.id, status=OrderStatus.ACCEPTED)
    OrderFactory(latitude=LAT, longitude=LON, status=OrderStatus.PENDING)  # not theirs

    def topics() -> list[str]:
        return list(db_session.scalars(select(OutboxMessage.topic).where(
            OutboxMessage.topic.like("location:%")).order_by(OutboxMessage.id)))

    def at(metres_north: float, seconds: int) -> None:
        response = _locate(client, provider, LAT + metres_north / 111_195.0, LON,
                           recordedAt=(start + timedelta(seconds=seconds)).isoformat())
        assert response.status_code == 200, response.json

    start = datetime.now(UTC) - timedelta(seconds=30)
    at(2000, 0)
    assert topics() == []  # first seen outside: nothing to report
    at(300, 1)
    assert topics() == ["location:geofence_entered"]
    at(510, 2)  # within the hysteresis band: still inside
    at(100, 3)
    assert topics() == ["location:geofence_entered"]
    at(800, 4)
    assert topics() == ["location:geofence_entered", "location:geofence_exited"]
    event = db_session.scalars(select(OutboxMessage).where(
        OutboxMessage.topic == "location:geofence_exited")).one()
    assert event.aggregate_id == str(order.id)
    assert event.payload["distanceMeters"] == 800
    assert "latitude" not in event.payload and "longitude" not in event.payload
