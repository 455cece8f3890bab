"""Provider presence: where a provider is now (the latest position lives in Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields, validate

from api.auth import authenticated, current_user
from api.blueprints.order_actions import location_store
from api.fields import latitude, longitude
from api.smorest import Blueprint, Schema
from domain.locations import ProviderLocation
from domain.permissions import Permission

blp = Blueprint("providers", __name__,
                description="Provider presence and location")
MAX_CLOCK_SKEW = timedelta(minutes=1)


class LocationUpdateSchema(Schema):
    latitude = latitude(required=True)
    longitude = longitude(required=True)
    accuracy = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                            validate=validate.Range(0, 10_000))
    recordedAt = fields.AwareDateTime(load_default=None, allow_none=True)

    @ma.validates("recordedAt")
    def _not_in_future(self, value: datetime | None, **_: Any) -> None:
        if value is not None and value > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ma.ValidationError("Must not be in the future.")


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
        ignored)."""
        recorded_at = body["recordedAt"] or datetime.now(UTC)
        stored = location_store().save(current_user().id, ProviderLocation(
            latitude=body["latitude"], longitude=body["longitude"],
            accuracy_m=body["accuracy"], recorded_at=recorded_at))
        return {"stored": stored, "recordedAt": recorded_at}
