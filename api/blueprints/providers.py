"""Provider presence: where a provider is now (the latest position lives in Redis)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.auth import authenticated, current_user
from api.blueprints.order_actions import location_store
from api.services import services
from api.smorest import Blueprint, Schema
from domain import presence
from domain.location_input import LocationUpdateSchema
from domain.permissions import Permission
from domain.presence_store import PresenceRegistry, ProviderLocation

blp = Blueprint("providers", __name__,
                description="Provider presence and location")


class LocationAckSchema(Schema):
    stored = fields.Boolean()
    recordedAt = fields.DateTime()


@blp.route("/me/location")
class MyLocation(MethodView):
    @authenticated(Permission.APPLY_ORDERS)
    @blp.arguments(LocationUpdateSchema)
    @blp.response(200, LocationAckSchema)
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Report my current position (never logged; older reports than the stored one are
        ignored). Feeds matching while online, the sampled history and order geofences."""
        now = datetime.now(UTC)
        recorded_at = body["recordedAt"] or now
        stored = presence.report_location(
            services().db.session(), location_store(), presence_registry(), current_user().id,
            ProviderLocation(latitude=body["latitude"], longitude=body["longitude"],
                             accuracy_m=body["accuracy"], recorded_at=recorded_at),
            now, presence_rules())
        return {"stored": stored, "recordedAt": recorded_at}


# Availability (issue 5): online/offline for matching, and how far the provider will travel.
def presence_registry() -> PresenceRegistry:
    return services().presence


def presence_rules() -> presence.PresenceRules:
    return presence.PresenceRules.from_settings(services().settings)


class StrictBoolean(fields.Boolean):
    """JSON true/false only: marshmallow's Boolean also takes "yes", 1, "on"... (and 1 == True
    in Python, so ``truthy={True}`` alone lets 1 through)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class AvailabilityUpdateSchema(Schema):
    online = StrictBoolean(required=True)
    maxTravelMeters = fields.Integer(load_default=None, allow_none=True, strict=True,
                                     validate=validate.Range(100, 100_000))


class OwnLocationSchema(Schema):
    latitude = fields.Float()
    longitude = fields.Float()
    accuracy = fields.Float(attribute="accuracy_m", allow_none=True)
    recordedAt = fields.DateTime(attribute="recorded_at")


class AvailabilitySchema(Schema):
    online = fields.Boolean()
    maxTravelMeters = fields.Integer(attribute="max_travel_m", allow_none=True)
    matchable = fields.Boolean()
    # The provider's own exact position: only ever returned to the provider.
    location = fields.Nested(OwnLocationSchema, allow_none=True)


@blp.route("/me/availability")
class MyAvailability(MethodView):
    @authenticated(Permission.APPLY_ORDERS)
    @blp.response(200, AvailabilitySchema)
    def get(self) -> presence.Availability:
        """My availability for matching and my last known position."""
        return presence.availability(location_store(), presence_registry(), current_user().id,
                                     datetime.now(UTC), presence_rules())

    @authenticated(Permission.APPLY_ORDERS, verified=True)
    @blp.arguments(AvailabilityUpdateSchema)
    @blp.response(200, AvailabilitySchema)
    def put(self, body: dict[str, Any]) -> presence.Availability:
        """Go online (matched to new orders once a live position is known) or offline."""
        return presence.set_availability(
            services().db.session(), location_store(), presence_registry(), current_user(),
            online=body["online"], max_travel_m=body["maxTravelMeters"], now=datetime.now(UTC),
            rules=presence_rules())
