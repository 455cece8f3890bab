"""Matching over HTTP: the creator's ranked candidates (coarsened), the provider's invitations,
decline and offer acceptance, auto-dispatch on/off, and where the assigned provider is."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import Order, OrderDispatch, OrderMatch, User
from domain import matching_service
from domain.matching_service import MatchingRules
from domain.presence import coarsen
from domain.presence_store import LocationStore, PresenceRegistry, ProviderLocation
from tests.api.orders_helpers import call
from tests.domain.test_matching_service import LONDON, go_online, index_of, north, now
from tests.factories import OrderFactory, UserFactory


@pytest.fixture
def people(db_session: Session, redis_client: redis.Redis) -> dict[str, User]:
    return {
        "creator": UserFactory(),
        "near": UserFactory(provider=True, verified=True),
        "far": UserFactory(provider=True, verified=True),
        "unverified": UserFactory(provider=True),
        "stranger": UserFactory(),
        "admin": UserFactory(admin=True),
    }


@pytest.fixture
def matched(db_session: Session, redis_client: redis.Redis,
            people: dict[str, User]) -> Order:
    """A pending London order with two invited providers (200 m and 700 m away)."""
    registry = PresenceRegistry(redis_client)
    order = OrderFactory(creator_id=people["creator"].id, latitude=LONDON[0],
                         longitude=LONDON[1], service_radius=1000)
    go_online(registry, people["near"], *north(200))
    go_online(registry, people["far"], *north(700))
    matching_service.match_order(db_session, order.id, index_of(registry), registry, now(),
                                 MatchingRules())
    return order


def _match_id(db_session: Session, order: Order, user: User) -> uuid.UUID:
    return db_session.scalars(select(OrderMatch.id).where(
        OrderMatch.order_id == order.id, OrderMatch.provider_id == user.id)).one()


def test_the_creator_sees_ranked_candidates_with_coarsened_positions(
        client: FlaskClient, people: dict[str, User], matched: Order) -> None:
    response = call(client, "GET", f"/orders/{matched.id}/matches", people["creator"])
    assert response.status_code == 200, response.json
    data = response.json["data"]
    assert data["orderId"] == str(matched.id) and data["dispatch"] is None
    first, second = data["items"]
    assert (first["providerId"], first["rank"], first["status"]) == (
        str(people["near"].id), 1, "invited")
    assert first["providerName"] == people["near"].username
    assert first["distanceMeters"] == 200 and second["distanceMeters"] == 700
    assert first["score"] > second["score"] and set(first["breakdown"]) >= {"distance"}
    location = first["location"]
    assert location["precision"] == "coarse"
    assert (location["latitude"], location["longitude"]) == coarsen(*north(200), 500)
    assert location["recordedAt"] is None and location["accuracy"] is None


def test_matches_are_the_creators_alone(client: FlaskClient, people: dict[str, User],
                                        matched: Order) -> None:
    path = f"/orders/{matched.id}/matches"
    assert call(client, "GET", path).status_code == 401
    for who in ("stranger", "near"):  # a provider may read the pending order, not its matches
        response = call(client, "GET", path, people[who])
        assert response.status_code == 404 and response.json["error"]["code"] == "NOT_FOUND"
    assert call(client, "GET", f"/orders/{uuid.uuid4()}/matches",
                people["creator"]).status_code == 404
    admin_view = call(client, "GET", path, people["admin"]).json["data"]["items"]
    assert admin_view[0]["location"]["precision"] == "coarse"


def test_providers_list_and_decline_their_invitations(
        client: FlaskClient, people: dict[str, User], matched: Order,
        db_session: Session) -> None:
    listed = call(client, "GET", "/providers/me/invitations", people["near"])
    assert listed.status_code == 200
    [item] = listed.json["data"]["items"]
    assert item["orderId"] == str(matched.id) and item["status"] == "invited"
    assert item["order"]["title"] == matched.title and item["distanceMeters"] == 200
    match_id = item["id"]
    assert call(client, "GET", "/providers/me/invitations", people["stranger"]).status_code \
        == 403
    assert call(client, "GET", "/providers/me/invitations?limit=0",
                people["near"]).json["error"]["code"] == "VALIDATION_ERROR"

    path = f"/providers/me/invitations/{match_id}/decline"
    assert call(client, "POST", path, people["far"]).status_code == 404  # not theirs
    assert call(client, "POST", path, people["creator"]).status_code == 403
    declined = call(client, "POST", path, people["near"])
    assert declined.status_code == 200 and declined.json["data"]["invitation"]["status"] \
        == "declined"
    again = call(client, "POST", path, people["near"])
    assert again.status_code == 409 and again.json["error"]["code"] == "INVITATION_NOT_OPEN"
    assert call(client, "GET", "/providers/me/invitations",
                people["near"]).json["data"]["items"] == []
    assert call(client, "POST", f"/providers/me/invitations/{uuid.uuid4()}/decline",
                people["near"]).status_code == 404


@pytest.mark.parametrize("body", [{}, {"enabled": "yes"}, {"enabled": 1}, {"enabled": None},
                                  {"enabled": True, "ttl": 5}])
def test_dispatch_switch_bad_input(client: FlaskClient, people: dict[str, User],
                                   matched: Order, db_session: Session,
                                   body: dict[str, Any]) -> None:
    response = call(client, "PUT", f"/orders/{matched.id}/dispatch", people["creator"], body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert db_session.get(OrderDispatch, matched.id) is None


def test_auto_dispatch_offer_accepted_over_http(client: FlaskClient, people: dict[str, User],
                                                matched: Order, db_session: Session) -> None:
    path = f"/orders/{matched.id}/dispatch"
    assert call(client, "PUT", path, people["near"], {"enabled": True}).status_code == 403
    assert call(client, "PUT", path, people["stranger"], {"enabled": True}).status_code == 404
    response = call(client, "PUT", path, people["creator"], {"enabled": True})
    assert response.status_code == 200, response.json
    near_match = _match_id(db_session, matched, people["near"])
    assert response.json["data"]["dispatch"] == {
        "status": "offering", "currentMatchId": str(near_match), "offersMade": 1}
    [offer] = call(client, "GET", "/providers/me/invitations",
                   people["near"]).json["data"]["items"]
    assert offer["status"] == "offered" and offer["offerExpiresAt"]

    far_match = _match_id(db_session, matched, people["far"])
    wrong = call(client, "POST", f"/providers/me/invitations/{far_match}/accept", people["far"])
    assert wrong.status_code == 409 and wrong.json["error"]["code"] == "OFFER_NOT_OPEN"
    accept = f"/providers/me/invitations/{near_match}/accept"
    assert call(client, "POST", accept, people["far"]).status_code == 404
    taken = call(client, "POST", accept, people["near"])
    assert taken.status_code == 200, taken.json
    order = taken.json["data"]["order"]
    assert order["status"] == "accepted" and order["providerId"] == str(people["near"].id)
    assert call(client, "POST", accept, people["near"]).status_code == 409


def test_accepting_an_offer_needs_a_verified_provider(
        client: FlaskClient, people: dict[str, User], db_session: Session) -> None:
    order = OrderFactory(creator_id=people["creator"].id)
    match = OrderMatch(order_id=order.id, provider_id=people["unverified"].id,
                       source="order_created", status="offered", rank=1, score=0.5,
                       distance_m=10.0, index_version=0)
    db_session.add(match)
    db_session.commit()
    response = call(client, "POST", f"/providers/me/invitations/{match.id}/accept",
                    people["unverified"])
    assert response.status_code == 403
    assert response.json["error"]["code"] == "PROVIDER_NOT_VERIFIED"


def test_the_assigned_providers_exact_position_only_for_its_creator_while_live(
        client: FlaskClient, people: dict[str, User], redis_client: redis.Redis,
        db_session: Session) -> None:
    provider = people["near"]
    order = OrderFactory(creator_id=people["creator"].id, provider_id=provider.id,
                         status=OrderStatus.ACCEPTED)
    path = f"/orders/{order.id}/provider-location"
    assert call(client, "GET", path, people["creator"]).json["data"]["location"] is None
    LocationStore(redis_client, 300).save(provider.id, ProviderLocation(
        51.5074321, -0.1278654, 7.0, now()))
    exact = call(client, "GET", path, people["creator"]).json["data"]
    assert exact["providerId"] == str(provider.id)
    assert exact["location"]["precision"] == "exact"
    assert (exact["location"]["latitude"], exact["location"]["accuracy"]) == (51.5074321, 7.0)
    assert call(client, "GET", path, provider).json["data"]["location"]["precision"] == "exact"
    assert call(client, "GET", path, people["admin"]).json["data"]["location"][
        "precision"] == "coarse"
    for who in ("stranger", "far"):
        assert call(client, "GET", path, people[who]).status_code == 404
    order.status = OrderStatus.COMPLETED
    db_session.commit()
    after = call(client, "GET", path, people["creator"]).json["data"]["location"]
    assert after["precision"] == "coarse" and after["latitude"] != 51.5074321
    pending = OrderFactory(creator_id=people["creator"].id)
    assert call(client, "GET", f"/orders/{pending.id}/provider-location",
                people["creator"]).status_code == 404
    assert call(client, "GET", path).status_code == 401
