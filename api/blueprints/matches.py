"""Matching as the clients see it: an order's ranked candidates (creator), the provider's
invitations and offers (decline, accept an offer), auto-dispatch on/off, and where the
assigned provider is. Positions obey ``domain.presence``'s privacy rule."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.auth import authenticated, current_caller, current_user
from api.blueprints.order_actions import location_store
from api.blueprints.order_schemas import OrderEnvelopeSchema, OrderField
from api.blueprints.providers import StrictBoolean, presence_registry, presence_rules
from api.fields import PageArgsSchema, PaginationSchema, page_payload
from api.services import services
from api.smorest import Blueprint, Schema
from db.models import Order, OrderMatch
from db.pagination import paginate
from db.queries import matching as match_queries
from domain import dispatch, presence
from domain.permissions import Permission

blp = Blueprint("matches", __name__,
                description="Matching: candidates, invitations, auto-dispatch")


def _offer_ttl() -> timedelta:
    return timedelta(seconds=services().settings.matching_offer_ttl_s)


class PositionSchema(Schema):
    latitude = fields.Float()
    longitude = fields.Float()
    precision = fields.Function(lambda p: "exact" if p.exact else "coarse")
    accuracy = fields.Float(attribute="accuracy_m", allow_none=True)
    recordedAt = fields.DateTime(attribute="recorded_at", allow_none=True)


class MatchSchema(Schema):
    id = fields.UUID(attribute="match.id")
    providerId = fields.UUID(attribute="match.provider_id")
    providerName = fields.String(attribute="provider_name")
    rank = fields.Integer(attribute="match.rank")
    score = fields.Float(attribute="match.score")
    breakdown = fields.Dict(attribute="match.breakdown")
    distanceMeters = fields.Integer(attribute="distance_m")
    status = fields.String(attribute="match.status")
    source = fields.String(attribute="match.source")
    offerExpiresAt = fields.DateTime(attribute="match.offer_expires_at", allow_none=True)
    invitedAt = fields.DateTime(attribute="match.created_at")
    location = fields.Nested(PositionSchema, attribute="position", allow_none=True)


class DispatchSchema(Schema):
    status = fields.String()
    currentMatchId = fields.UUID(attribute="current_match_id", allow_none=True)
    offersMade = fields.Integer(attribute="offers_made")


class MatchListSchema(Schema):
    orderId = fields.UUID()
    items = fields.List(fields.Nested(MatchSchema))
    dispatch = fields.Nested(DispatchSchema, allow_none=True)


class InvitationSchema(Schema):
    id = fields.UUID()
    orderId = fields.UUID(attribute="order_id")
    status = fields.String()
    rank = fields.Integer()
    distanceMeters = fields.Function(lambda m: round(m.distance_m),  # the provider's own
                                     metadata={"type": "integer"})
    offerExpiresAt = fields.DateTime(attribute="offer_expires_at", allow_none=True)
    invitedAt = fields.DateTime(attribute="created_at")


class InvitationItemSchema(InvitationSchema):
    order = OrderField()


class InvitationPageSchema(Schema):
    items = fields.List(fields.Nested(InvitationItemSchema))
    pagination = fields.Nested(PaginationSchema)


class InvitationEnvelopeSchema(Schema):
    invitation = fields.Nested(InvitationSchema)


class InvitationArgsSchema(PageArgsSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 100))


class DispatchUpdateSchema(Schema):
    enabled = StrictBoolean(required=True)


class DispatchEnvelopeSchema(Schema):
    dispatch = fields.Nested(DispatchSchema, allow_none=True)


class ProviderLocationSchema(Schema):
    orderId = fields.UUID()
    providerId = fields.UUID()
    location = fields.Nested(PositionSchema, allow_none=True)


@blp.route("/orders/<uuid:order_id>/matches")
class OrderMatches(MethodView):
    @authenticated()
    @blp.response(200, MatchListSchema)
    def get(self, order_id: uuid.UUID) -> dict[str, Any]:
        """My order's ranked candidates (creator): coarsened positions, rounded distances."""
        order, views, state = presence.matches_for(
            services().db.session(), presence_registry(), order_id, current_user(),
            datetime.now(UTC), presence_rules())
        return {"orderId": order.id, "items": views, "dispatch": state}


@blp.route("/orders/<uuid:order_id>/dispatch")
class OrderDispatch(MethodView):
    @authenticated(Permission.CREATE_ORDERS)
    @blp.arguments(DispatchUpdateSchema)
    @blp.response(200, DispatchEnvelopeSchema)
    def put(self, body: dict[str, Any], order_id: uuid.UUID) -> dict[str, Any]:
        """Switch auto-dispatch on (exclusive offers, best candidate first) or off."""
        state = dispatch.set_enabled(services().db.session(), order_id, current_user(),
                                     body["enabled"], datetime.now(UTC), _offer_ttl())
        return {"dispatch": state}


@blp.route("/orders/<uuid:order_id>/provider-location")
class AssignedProviderLocation(MethodView):
    @authenticated()
    @blp.response(200, ProviderLocationSchema)
    def get(self, order_id: uuid.UUID) -> dict[str, Any]:
        """Where the assigned provider is (exact for the creator while accepted or active)."""
        order, position = presence.assigned_provider_position(
            services().db.session(), location_store(), order_id, current_user(),
            datetime.now(UTC), presence_rules())
        return {"orderId": order.id, "providerId": order.provider_id, "location": position}


@blp.route("/providers/me/invitations")
class MyInvitations(MethodView):
    @authenticated(Permission.APPLY_ORDERS)
    @blp.arguments(InvitationArgsSchema, location="query")
    @blp.response(200, InvitationPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """My open invitations and offers on pending orders, newest first (cursor pages)."""
        svc = services()
        session = svc.db.session()
        page = paginate(session, match_queries.select_invitations(current_caller().id),
                        created_col=OrderMatch.created_at, id_col=OrderMatch.id,
                        codec=svc.cursors, limit=args["limit"], cursor=args["cursor"])
        orders = match_queries.orders_by_id(session, (m.order_id for m in page.items))
        return page_payload(page, [_Invitation(m, orders[m.order_id]) for m in page.items])


@blp.route("/providers/me/invitations/<uuid:match_id>/decline")
class DeclineInvitation(MethodView):
    @authenticated(Permission.APPLY_ORDERS)
    @blp.response(200, InvitationEnvelopeSchema)
    def post(self, match_id: uuid.UUID) -> dict[str, Any]:
        """Decline an invitation or my offer (the offer moves to the next candidate)."""
        match = dispatch.decline(services().db.session(), match_id, current_user(),
                                 datetime.now(UTC), _offer_ttl())
        return {"invitation": match}


@blp.route("/providers/me/invitations/<uuid:match_id>/accept")
class AcceptOffer(MethodView):
    @authenticated(Permission.APPLY_ORDERS, verified=True)
    @blp.response(200, OrderEnvelopeSchema)
    def post(self, match_id: uuid.UUID) -> dict[str, Any]:
        """Take my exclusive offer: the order is accepted with me as its provider."""
        order = dispatch.accept_offer(services().db.session(), match_id, current_user(),
                                      datetime.now(UTC))
        return {"order": order}


@dataclass(frozen=True)
class _Invitation:
    match: OrderMatch
    order: Order

    def __getattr__(self, name: str) -> Any:
        # Reads like the match itself, so InvitationSchema dumps it as is.
        return getattr(self.match, name)
