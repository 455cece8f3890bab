"""The OpenAPI document says what the API sends: real responses of every order endpoint (and the
main shapes of applications and users) validated against their declared schemas, strictly
(tests/api/openapi_contract.py: no undocumented field, no missing one, no undeclared null)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import Order, OrderMatch, PaymentEscrow, User
from domain.presence_store import LocationStore, ProviderLocation
from tests.api.openapi_contract import Contract, published_contract, strict
from tests.api.orders_helpers import call, order_body
from tests.factories import OrderFactory, UserFactory

V1 = "/api/v1"
NYC = (40.7128, -74.0060)
#: Success schemas that carry an order: every operation answering one must be checked here.
ORDER_SHAPES = {"OrderEnvelopeEnvelope", "OrderPageEnvelope", "NearbyListEnvelope",
                "DeletedEnvelope", "InvitationListEnvelope"}


@pytest.fixture(scope="module")
def contract(app: Flask) -> Contract:
    return published_contract(app)


@pytest.fixture
def people(committed_session: Session, redis_client: redis.Redis) -> dict[str, User]:
    return {"creator": UserFactory(), "provider": UserFactory(provider=True, verified=True),
            "admin": UserFactory(admin=True)}


def _order_operations(contract: Contract) -> set[tuple[str, str]]:
    found = set()
    for path, operations in contract.doc["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):  # the path's own "parameters"
                continue
            for status, response in operation.get("responses", {}).items():
                ref = (response.get("content", {}).get("application/json", {})
                       .get("schema", {}).get("$ref", ""))
                if status.startswith("2") and ref.rsplit("/", 1)[-1] in ORDER_SHAPES:
                    found.add((method, path))
    return found


def test_every_order_endpoint_sends_what_openapi_declares(
        committed_client: FlaskClient, contract: Contract, people: dict[str, User],
        committed_session: Session, redis_client: redis.Redis) -> None:
    # Real commits on PostgreSQL, then SQLite: nearby reads through the production path.
    client, db_session = committed_client, committed_session
    creator, provider, admin = people["creator"], people["provider"], people["admin"]

    def check(method: str, documented: str, user: User, body: Any = None,
              **ids: str) -> dict[str, Any]:
        response = call(client, method, documented.format(**ids), user, body)
        return contract.check(response, method, V1 + documented.split("?")[0])

    # Create (with and without the optional fields), list, read (a miss, then a cache hit), edit.
    order = check("POST", "/orders", creator, order_body())["order"]
    bare = order_body(description=None, tags=[])
    bare["location"] = {"latitude": NYC[0], "longitude": NYC[1]}
    check("POST", "/orders", creator, bare)
    assert len(check("GET", "/orders", creator)["items"]) == 2
    for _ in range(2):
        check("GET", "/orders/{order_id}", creator, order_id=order["id"])
    check("PUT", "/orders/{order_id}", creator, {"title": "Edited"}, order_id=order["id"])
    assert check("GET", "/orders/nearby?latitude={lat}&longitude={lon}", provider,
                 lat=str(NYC[0]), lon=str(NYC[1]))["items"]
    # Applications (their main shape) and the whole lifecycle, one action at a time.
    application = check("POST", "/orders/{order_id}/applications", provider,
                        {"proposedAmount": "30.00"}, order_id=order["id"])["application"]
    check("GET", "/orders/{order_id}/applications", creator, order_id=order["id"])
    accepted = check("POST", "/orders/{order_id}/accept", creator,
                     {"applicationId": application["id"]}, order_id=order["id"])["order"]
    assert accepted["agreedAmount"] == "30.00"
    LocationStore(redis_client, 300).save(provider.id, ProviderLocation(
        *NYC, 5.0, datetime.now(UTC)))
    for action, who in (("start", provider), ("complete", provider)):
        check("POST", "/orders/{order_id}/" + action, who, order_id=order["id"])
    check("POST", "/orders/{order_id}/dispute", creator, {"reason": "no audio"},
          order_id=order["id"])
    resolved = check("POST", "/admin/orders/{order_id}/resolve", admin,
                     {"outcome": "refund", "note": "audio missing"}, order_id=order["id"])
    assert resolved["order"]["cancellationReason"] is None or isinstance(
        resolved["order"]["cancellationReason"], str)
    # Cancel and delete.
    second = check("POST", "/orders", creator, order_body())["order"]
    check("POST", "/orders/{order_id}/cancel", creator, {"reason": "rain"},
          order_id=second["id"])
    third = check("POST", "/orders", creator, order_body())["order"]
    check("DELETE", "/orders/{order_id}", creator, order_id=third["id"])
    # Re-opened after a provider's no-show (issue 17; the beat's cancellation and the hold's
    # release stand in as rows).
    fourth = check("POST", "/orders", creator, order_body())["order"]
    bid = check("POST", "/orders/{order_id}/applications", provider, {},
                order_id=fourth["id"])["application"]
    check("POST", "/orders/{order_id}/accept", creator, {"applicationId": bid["id"]},
          order_id=fourth["id"])
    db_session.expire_all()
    no_show = db_session.get(Order, uuid.UUID(fourth["id"]))
    assert no_show is not None
    no_show.status, no_show.cancellation_reason = OrderStatus.CANCELLED, "no_show"
    db_session.execute(update(PaymentEscrow).where(PaymentEscrow.order_id == no_show.id)
                       .values(state="released"))
    db_session.commit()
    assert check("POST", "/orders/{order_id}/reopen", creator,
                 order_id=fourth["id"])["order"]["status"] == "pending"
    # A provider's invitations and an exclusive offer taken.
    pending = OrderFactory(creator_id=creator.id, latitude=NYC[0], longitude=NYC[1])
    offer = OrderMatch(order_id=pending.id, provider_id=provider.id, source="order_created",
                       status="offered", rank=1, score=0.5, distance_m=10.0, index_version=0,
                       offer_expires_at=datetime.now(UTC).replace(year=2100))
    db_session.add(offer)
    db_session.commit()
    [invitation] = check("GET", "/providers/me/invitations", provider)["items"]
    assert invitation["order"]["id"] == str(pending.id)
    check("POST", "/providers/me/invitations/{match_id}/accept", provider,
          match_id=str(offer.id))
    # Users' main shape.
    check("GET", "/users/me", creator)

    missed = _order_operations(contract) - contract.checked
    assert not missed, f"order endpoints never checked against their schema: {missed}"


def test_strict_schemas_catch_undocumented_missing_and_null_fields(
        contract: Contract) -> None:
    """The checker itself: each kind of lie fails."""
    order = {"id": "6a1f1f5e-33a4-4a1e-9a53-2f0d7e8f0b11", "title": "t", "description": None,
             "status": "pending", "creatorId": "6a1f1f5e-33a4-4a1e-9a53-2f0d7e8f0b12",
             "providerId": None,
             "location": {"latitude": 1.0, "longitude": 2.0, "address": None},
             "serviceRadius": 500, "baseAmount": "25.00", "agreedAmount": None,
             "currency": "USD", "scheduledFor": None, "acceptedAt": None, "startedAt": None,
             "completedAt": None, "cancelledAt": None, "cancellationReason": None,
             "requirements": {}, "tags": [], "createdAt": "2026-11-25T09:00:00+00:00",
             "updatedAt": "2026-11-25T09:00:00+00:00"}
    contract.component("Order", order)
    lies = [order | {"extra": 1}, {k: v for k, v in order.items() if k != "tags"},
            order | {"title": None}, order | {"createdAt": "2026-11-25T09:00:00"},
            order | {"status": "lost"}]
    for lie in lies:
        with pytest.raises(AssertionError):
            contract.component("Order", lie)
    assert strict({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
