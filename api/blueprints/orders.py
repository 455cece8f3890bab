"""Orders: create, list, read, edit, delete, and the nearby search."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView

from api.auth import authenticated, current_caller, current_user
from api.blueprints.order_schemas import (
    DeletedSchema,
    NearbyArgsSchema,
    NearbyPageSchema,
    OrderCreateSchema,
    OrderEnvelopeSchema,
    OrderListArgsSchema,
    OrderPageSchema,
    OrderUpdateSchema,
)
from api.fields import page_payload
from api.services import services
from api.smorest import Blueprint, Serialized
from core.enums import OrderStatus
from core.errors import NotFound
from db.models import Order
from db.pagination import paginate
from db.queries import orders as order_queries
from domain import orders
from domain.order_cache import OrderReadCache
from domain.permissions import Permission, permissions_for
from domain.projections import order_view

blp = Blueprint("orders", __name__,
                description="Live-stream orders")


def rules() -> orders.OrderRules:
    s = services().settings
    return orders.OrderRules(
        min_radius_m=s.order_min_radius_m, max_radius_m=s.order_max_radius_m,
        max_schedule_ahead_days=s.order_max_schedule_ahead_days,
        dispute_window_hours=s.dispute_window_hours,
    )


def read_cache() -> OrderReadCache:
    return services().read_cache


def may_apply() -> bool:
    return Permission.APPLY_ORDERS in permissions_for(current_caller().role)


def _draft(body: dict[str, Any]) -> orders.OrderDraft:
    location = body["location"]
    return orders.OrderDraft(
        title=body["title"], description=body["description"],
        latitude=location["latitude"], longitude=location["longitude"],
        address=location["address"], service_radius=body["serviceRadius"],
        base_amount_minor=body["base_amount_minor"], currency=body["currency"],
        scheduled_for=body["scheduledFor"], requirements=body["requirements"],
        tags=body["tags"],
    )


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    """Wire names -> model attributes for the fields a PUT carries."""
    names = {"title": "title", "description": "description", "serviceRadius": "service_radius",
             "currency": "currency", "scheduledFor": "scheduled_for",
             "requirements": "requirements", "tags": "tags"}
    changes = {names[k]: v for k, v in body.items() if k in names}
    if "location" in body:
        changes.update(latitude=body["location"]["latitude"],
                       longitude=body["location"]["longitude"],
                       location_address=body["location"]["address"])
    if "baseAmount" in body:
        changes["base_amount"] = body["baseAmount"]  # judged in the order's currency
    return changes


@blp.route("")
class Orders(MethodView):
    @authenticated()
    @blp.arguments(OrderListArgsSchema, location="query")
    @blp.response(200, OrderPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List my orders (as creator and/or assigned provider), newest first."""
        caller = current_caller()

        def page() -> dict[str, Any]:
            flt = order_queries.OrderFilter(
                user_id=caller.id, as_creator=args["role"] in ("creator", "any"),
                as_provider=args["role"] in ("provider", "any"),
                status=OrderStatus(args["status"]) if args["status"] else None,
                tag=args["tag"], created_from=args["createdFrom"],
                created_to=args["createdTo"],
            )
            session = services().db.session()
            found = paginate(session, order_queries.select_for_user(flt),
                             created_col=Order.created_at, id_col=Order.id,
                             codec=services().cursors, limit=args["limit"],
                             cursor=args["cursor"])
            return page_payload(found, [order_view(order) for order in found.items])

        # Cached per caller and arguments; any change to one of the caller's orders bumps the
        # caller's version (domain/order_cache.py).
        return Serialized(read_cache().user_orders(caller.id, args, page))

    @authenticated(Permission.CREATE_ORDERS)
    @blp.arguments(OrderCreateSchema)
    @blp.response(201, OrderEnvelopeSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Post a live-stream order."""
        order = orders.create_order(services().db.session(), current_caller().id, _draft(body),
                                    rules(), datetime.now(UTC))
        return Serialized({"order": order_view(order)})


@blp.route("/nearby")
class NearbyOrders(MethodView):
    @authenticated()
    @blp.arguments(NearbyArgsSchema, location="query")
    @blp.response(200, NearbyPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Pending orders within a radius of a point, nearest first (cursor pages, forward)."""
        svc = services()
        found = order_queries.page_pending_near(
            svc.db, svc.cursors, args["latitude"], args["longitude"], args["radius"],
            limit=args["limit"], cursor=args["cursor"])
        items = []
        for near in found.items:
            item = order_view(near.order)  # a fresh dict: extended in place, not copied
            item["distanceMeters"] = round(near.distance_m, 1)
            item["creatorName"] = near.creator_name
            items.append(item)
        return Serialized(page_payload(found, items))


@blp.route("/<uuid:order_id>")
class OrderItem(MethodView):
    @authenticated()
    @blp.response(200, OrderEnvelopeSchema)
    def get(self, order_id: uuid.UUID) -> dict[str, Any]:
        """Read one order (participants, admins, and providers while it is pending)."""

        def load() -> dict[str, Any] | None:
            order = order_queries.find_by_id(services().db.session(), order_id)
            return None if order is None else order_view(order)

        # The order is cached for every viewer; who may see it is checked on every request.
        found = read_cache().order(order_id, load)
        if found is None or not orders.can_view(current_caller(), orders.OrderParties(
                creator_id=uuid.UUID(found["creatorId"]),
                provider_id=uuid.UUID(found["providerId"]) if found["providerId"] else None,
                status=OrderStatus(found["status"])), may_apply=may_apply()):
            raise NotFound("Order not found.")
        return Serialized({"order": found})

    @authenticated(Permission.CREATE_ORDERS)
    @blp.arguments(OrderUpdateSchema)
    @blp.response(200, OrderEnvelopeSchema)
    def put(self, body: dict[str, Any], order_id: uuid.UUID) -> dict[str, Any]:
        """Edit my order while it is pending."""
        order = orders.update_order(services().db.session(), order_id, current_user(),
                                    _changes(body), rules(), datetime.now(UTC))
        return {"order": order}

    @authenticated(Permission.CREATE_ORDERS)
    @blp.response(200, DeletedSchema)
    def delete(self, order_id: uuid.UUID) -> dict[str, Any]:
        """Delete my order while it is pending and was never accepted."""
        orders.delete_order(services().db.session(), order_id, current_user())
        return {"id": order_id, "deleted": True}
