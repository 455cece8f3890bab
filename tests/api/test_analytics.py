"""Analytics: the figures on a small hand-built data set, who may see them, bad windows, and
the cache (a hit serves without recomputing; a write to the user's data is seen at once)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus, PaymentStatus
from db.models import Order, OrderApplication, PaymentTransaction, User
from domain import analytics
from domain.presence_store import PresenceRegistry, ProviderLocation
from tests.auth_helpers import auth_headers
from tests.factories import OrderFactory, UserFactory

NOW = datetime.now(UTC)
ME = "/api/v1/analytics/me"
ADMIN = "/api/v1/admin/analytics"


def _order(creator: User, provider: User | None, status: OrderStatus, *, created_ago_d: float,
           to_accept_s: float | None = None, currency: str = "USD", base: int = 2500,
           agreed: int | None = None) -> Order:
    created = NOW - timedelta(days=created_ago_d)
    accepted = created + timedelta(seconds=to_accept_s) if to_accept_s is not None else None
    completed = (created + timedelta(days=1)) if status is OrderStatus.COMPLETED else None
    order: Order = OrderFactory(
        creator_id=creator.id, provider_id=provider.id if provider else None, status=status,
        currency=currency, base_amount_minor=base, agreed_amount_minor=agreed,
        created_at=created, accepted_at=accepted, completed_at=completed)
    return order


@pytest.fixture
def world(db_session: Session, redis_client: redis.Redis) -> dict[str, Any]:
    """A creator with four recent orders (and one old one), a provider who applied to all
    four and got three, one settled payment."""
    creator, provider = UserFactory(), UserFactory(provider=True, verified=True)
    o1 = _order(creator, provider, OrderStatus.COMPLETED, created_ago_d=5, to_accept_s=600,
                agreed=3000)
    o2 = _order(creator, provider, OrderStatus.COMPLETED, created_ago_d=3, to_accept_s=1200,
                currency="EUR", base=1000)
    o3 = _order(creator, None, OrderStatus.PENDING, created_ago_d=1)
    o4 = _order(creator, provider, OrderStatus.ACCEPTED, created_ago_d=1, to_accept_s=300)
    _order(creator, provider, OrderStatus.COMPLETED, created_ago_d=60, to_accept_s=5,
           agreed=99_999)  # outside the default window
    for order, status in ((o1, ApplicationStatus.ACCEPTED), (o2, ApplicationStatus.ACCEPTED),
                          (o3, ApplicationStatus.PENDING), (o4, ApplicationStatus.ACCEPTED)):
        db_session.add(OrderApplication(order_id=order.id, provider_id=provider.id,
                                        status=status))
    db_session.add_all([
        PaymentTransaction(order_id=o1.id, payer_id=creator.id, payee_id=provider.id,
                           gross_amount_minor=3000, platform_fee_minor=450,
                           processing_fee_minor=117, net_amount_minor=2433, currency="USD",
                           status=PaymentStatus.SUCCEEDED, settled_at=NOW - timedelta(days=3)),
        PaymentTransaction(order_id=o4.id, payer_id=creator.id, payee_id=provider.id,
                           gross_amount_minor=2500, platform_fee_minor=0,
                           processing_fee_minor=0, net_amount_minor=2500, currency="USD",
                           status=PaymentStatus.PROCESSING),  # not settled: not counted
    ])
    db_session.commit()
    return {"creator": creator, "provider": provider, "orders": [o1, o2, o3, o4],
            "admin": UserFactory(admin=True), "redis": redis_client}


def _get(client: FlaskClient, url: str, user: User | None, **query: str) -> Any:
    return client.get(url, query_string=query, headers=auth_headers(user) if user else {})


def test_a_creator_sees_spend_and_orders_by_status(client: FlaskClient,
                                                    world: dict[str, Any]) -> None:
    response = _get(client, ME, world["creator"])
    assert response.status_code == 200, response.json
    data = response.json["data"]
    assert data["provider"] is None
    assert data["creator"]["spend"] == {"EUR": "10.00", "USD": "30.00"}
    assert data["creator"]["ordersByStatus"] == {
        "pending": 1, "accepted": 1, "active": 0, "completed": 2, "cancelled": 0,
        "disputed": 0}


def test_a_provider_sees_earnings_and_rates(client: FlaskClient,
                                            world: dict[str, Any]) -> None:
    data = _get(client, ME, world["provider"]).json["data"]
    assert data["creator"] is None
    assert data["provider"] == {
        "earnings": {"USD": "24.33"}, "applications": 4, "acceptedApplications": 3,
        "acceptanceRate": 0.75, "assignedOrders": 3, "completedOrders": 2,
        "completionRate": 0.6667, "medianSecondsToMatch": 600.0}
    # An explicit window reaching back two months takes in the old order too.
    old = _get(client, ME, world["provider"],
               **{"from": (NOW - timedelta(days=90)).isoformat()}).json["data"]
    assert old["provider"]["assignedOrders"] == 4 and old["provider"]["completedOrders"] == 3


def test_a_both_account_gets_both_sections(client: FlaskClient, db_session: Session,
                                           redis_client: redis.Redis) -> None:
    user = UserFactory(both=True, verified=True)
    data = _get(client, ME, user).json["data"]
    assert data["creator"]["spend"] == {}
    assert data["provider"]["acceptanceRate"] is None  # no applications: no rate, not 0


def test_admin_sees_platform_figures_supply_by_area_and_queues(
        client: FlaskClient, world: dict[str, Any]) -> None:
    registry = PresenceRegistry(world["redis"])
    for lat, lon in ((51.5074, -0.1278), (51.52, -0.11), (40.71, -73.99)):
        registry.go_online(uuid.uuid4(), {"online": True, "verified": True},
                           ProviderLocation(lat, lon, 5.0, NOW), NOW.timestamp())
    response = _get(client, ADMIN, world["admin"])
    assert response.status_code == 200, response.json
    data = response.json["data"]
    assert (data["ordersPosted"], data["ordersAccepted"], data["fillRate"]) == (4, 3, 0.75)
    assert data["medianSecondsToAccept"] == 600.0
    assert data["money"] == {"USD": {"gmv": "30.00", "platformFees": "4.50",
                                     "processingFees": "1.17", "settlements": 1}}
    assert data["activeProvidersByArea"] == [
        {"cellLat": 51.0, "cellLon": -1.0, "cellSizeDeg": 1.0, "providers": 2},
        {"cellLat": 40.0, "cellLon": -74.0, "cellSizeDeg": 1.0, "providers": 1}]
    assert "51.5074" not in response.get_data(as_text=True)  # never a position
    assert "matching" in {q["queue"] for q in data["queues"]}


def test_permissions(client: FlaskClient, world: dict[str, Any]) -> None:
    assert _get(client, ME, None).status_code == 401
    assert _get(client, ADMIN, None).status_code == 401
    for user in (world["creator"], world["provider"]):
        response = _get(client, ADMIN, user)
        assert response.status_code == 403 and response.json["error"]["code"] == "FORBIDDEN"
    assert _get(client, ME, world["admin"]).status_code == 200  # admins view analytics too


@pytest.mark.parametrize("query", [
    {"from": "yesterday"},
    {"from": "2026-01-01T00:00:00"},  # naive
    {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},  # reversed
    {"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},  # over 366 days
])
def test_bad_windows_are_rejected(client: FlaskClient, world: dict[str, Any],
                                  query: dict[str, str]) -> None:
    for url, user in ((ME, world["creator"]), (ADMIN, world["admin"])):
        response = _get(client, url, user, **query)
        assert response.status_code == 400, (url, query, response.json)
        assert response.json["error"]["code"] == "VALIDATION_ERROR"


def test_the_cache_serves_hits_and_sees_the_users_own_writes(
        client: FlaskClient, db_session: Session, world: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[uuid.UUID] = []
    real = analytics.compute_user_analytics

    def counting(session: Session, user: User, window: analytics.Window) -> dict[str, Any]:
        computed.append(user.id)
        return real(session, user, window)

    monkeypatch.setattr(analytics, "compute_user_analytics", counting)
    creator = world["creator"]
    first = _get(client, ME, creator).json["data"]
    assert _get(client, ME, creator).json["data"] == first
    assert len(computed) == 1  # the second read was a hit
    [key] = analytics.user_cache_keys(world["redis"], creator.id)
    assert 0 < world["redis"].ttl(key) <= analytics.USER_STATS_TTL_S

    # The creator's pending order completes: the very next read shows it.
    pending = world["orders"][2]
    pending.status, pending.completed_at = OrderStatus.COMPLETED, NOW
    db_session.commit()
    after = _get(client, ME, creator).json["data"]
    assert len(computed) == 2
    assert after["creator"]["ordersByStatus"]["completed"] == 3
    assert after["creator"]["spend"]["USD"] == "55.00"
    # Another user's cache is its own.
    _get(client, ME, world["provider"])
    assert computed[-1] == world["provider"].id


def test_the_admin_report_is_cached_but_queues_stay_live(
        client: FlaskClient, db_session: Session, world: dict[str, Any]) -> None:
    first = _get(client, ADMIN, world["admin"]).json["data"]
    _order(world["creator"], None, OrderStatus.PENDING, created_ago_d=0.5)
    db_session.commit()
    second = _get(client, ADMIN, world["admin"]).json["data"]
    assert second["ordersPosted"] == first["ordersPosted"] == 4  # the 12-hour figures
    assert second["computedAt"] == first["computedAt"]
    world["redis"].delete(f"{analytics.KEY_PREFIX}admin:default")
    assert _get(client, ADMIN, world["admin"]).json["data"]["ordersPosted"] == 5
