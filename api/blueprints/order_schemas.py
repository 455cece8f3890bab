"""Order and application schemas: camelCase on the wire, minor units and UTC inside."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate
from sqlalchemy import Row

from api.fields import (
    Amount,
    Currency,
    PageArgsSchema,
    PaginationSchema,
    latitude,
    longitude,
    minor_from,
    money_out,
)
from api.smorest import Schema, Serialized
from core.enums import OrderStatus
from db.models import Order

MAX_REQUIREMENTS_BYTES = 4096
TAG = fields.String(validate=[validate.Length(1, 40), validate.Regexp(r"^[\w\-]+$")])


class LocationSchema(Schema):
    latitude = latitude(required=True)
    longitude = longitude(required=True)
    address = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=500))


def _requirements_size(value: dict[str, Any]) -> None:
    if len(json.dumps(value)) > MAX_REQUIREMENTS_BYTES:
        raise ma.ValidationError(f"At most {MAX_REQUIREMENTS_BYTES} bytes of JSON.")


class OrderCreateSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(1, 255))
    description = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=5000))
    location = fields.Nested(LocationSchema, required=True)
    serviceRadius = fields.Integer(load_default=1000, strict=True)
    baseAmount = Amount(required=True)
    currency = Currency(load_default="USD")
    scheduledFor = fields.AwareDateTime(load_default=None, allow_none=True)
    requirements = fields.Dict(load_default=dict, validate=_requirements_size)
    tags = fields.List(TAG, load_default=list, validate=validate.Length(max=20))

    @ma.post_load
    def _to_minor(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["base_amount_minor"] = minor_from(data.pop("baseAmount"), data["currency"],
                                               "baseAmount")
        return data


class OrderUpdateSchema(Schema):
    """PUT: replace the editable fields given; the currency and amount go together."""

    title = fields.String(validate=validate.Length(1, 255))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    location = fields.Nested(LocationSchema)
    serviceRadius = fields.Integer(strict=True)
    baseAmount = Amount()
    currency = Currency()
    scheduledFor = fields.AwareDateTime(allow_none=True)
    requirements = fields.Dict(validate=_requirements_size)
    tags = fields.List(TAG, validate=validate.Length(max=20))

    @ma.validates_schema
    def _amount_with_currency(self, data: dict[str, Any], **_: Any) -> None:
        if ("currency" in data) and ("baseAmount" not in data):
            raise ma.ValidationError({"baseAmount": ["Required when currency changes."]})
        if not data:
            raise ma.ValidationError({"_schema": ["Nothing to update."]})


class OrderSchema(Schema):
    id = fields.UUID()
    title = fields.String()
    description = fields.String(allow_none=True)
    status = fields.Function(lambda o: o.status.value)
    creatorId = fields.UUID(attribute="creator_id")
    providerId = fields.UUID(attribute="provider_id", allow_none=True)
    location = fields.Function(lambda o: {"latitude": o.latitude, "longitude": o.longitude,
                                          "address": o.location_address})
    serviceRadius = fields.Integer(attribute="service_radius")
    baseAmount = fields.Function(
        lambda o: money_out(o.base_amount_minor, o.currency))
    agreedAmount = fields.Function(
        lambda o: money_out(o.agreed_amount_minor, o.currency))
    currency = fields.String()
    scheduledFor = fields.DateTime(attribute="scheduled_for", allow_none=True)
    acceptedAt = fields.DateTime(attribute="accepted_at", allow_none=True)
    startedAt = fields.DateTime(attribute="started_at", allow_none=True)
    completedAt = fields.DateTime(attribute="completed_at", allow_none=True)
    cancelledAt = fields.DateTime(attribute="cancelled_at", allow_none=True)
    cancellationReason = fields.String(attribute="cancellation_reason",
                                       allow_none=True)
    requirements = fields.Dict()
    tags = fields.List(fields.String())
    createdAt = fields.DateTime(attribute="created_at")
    updatedAt = fields.DateTime(attribute="updated_at")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def order_json(order: Order | Row[Any] | Any) -> Serialized:
    """``OrderSchema().dump(order)``, hand-written for the list and search hot paths (about ten
    times faster than marshmallow for this shape). Takes an ``Order`` or a row of the orders
    table (the nearby search reads rows). tests/api/test_order_schemas.py keeps the three
    identical."""
    return Serialized({
        "id": str(order.id),
        "title": order.title,
        "description": order.description,
        "status": str(order.status),  # an OrderStatus, or its value from a raw row
        "creatorId": str(order.creator_id),
        "providerId": str(order.provider_id) if order.provider_id else None,
        "location": {"latitude": order.latitude, "longitude": order.longitude,
                     "address": order.location_address},
        "serviceRadius": order.service_radius,
        "baseAmount": money_out(order.base_amount_minor, order.currency),
        "agreedAmount": money_out(order.agreed_amount_minor, order.currency),
        "currency": order.currency,
        "scheduledFor": _iso(order.scheduled_for),
        "acceptedAt": _iso(order.accepted_at),
        "startedAt": _iso(order.started_at),
        "completedAt": _iso(order.completed_at),
        "cancelledAt": _iso(order.cancelled_at),
        "cancellationReason": order.cancellation_reason,
        "requirements": order.requirements,
        "tags": order.tags,
        "createdAt": _iso(order.created_at),
        "updatedAt": _iso(order.updated_at),
    })


class OrderEnvelopeSchema(Schema):
    order = fields.Nested(OrderSchema)


class DeletedSchema(Schema):
    id = fields.UUID()
    deleted = fields.Boolean()


class NearbyOrderSchema(OrderSchema):
    distanceMeters = fields.Float()
    creatorName = fields.String()


class NearbyListSchema(Schema):
    items = fields.List(fields.Nested(NearbyOrderSchema))


class OrderPageSchema(Schema):
    items = fields.List(fields.Nested(OrderSchema))
    pagination = fields.Nested(PaginationSchema)


class OrderListArgsSchema(PageArgsSchema):
    status = fields.String(load_default=None,
                           validate=validate.OneOf([s.value for s in OrderStatus]))
    role = fields.String(load_default="any", validate=validate.OneOf(["creator", "provider",
                                                                       "any"]))
    tag = fields.String(load_default=None, validate=validate.Length(1, 40))
    createdFrom = fields.AwareDateTime(load_default=None)
    createdTo = fields.AwareDateTime(load_default=None)


class NearbyArgsSchema(Schema):
    latitude = latitude(required=True)
    longitude = longitude(required=True)
    radius = fields.Integer(load_default=5000, validate=validate.Range(1, 50_000))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class ApplicationCreateSchema(Schema):
    message = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))
    proposedAmount = Amount(load_default=None, allow_none=True)
    estimatedArrival = fields.AwareDateTime(load_default=None, allow_none=True)


class ApplicationSchema(Schema):
    id = fields.UUID()
    orderId = fields.UUID(attribute="order_id")
    providerId = fields.UUID(attribute="provider_id")
    message = fields.String(attribute="application_message", allow_none=True)
    proposedAmount = fields.Function(
        lambda a: money_out(a.proposed_amount_minor, a.order.currency))
    estimatedArrival = fields.DateTime(attribute="estimated_arrival",
                                       allow_none=True)
    status = fields.Function(lambda a: a.status.value)
    createdAt = fields.DateTime(attribute="created_at")


class ApplicationEnvelopeSchema(Schema):
    application = fields.Nested(ApplicationSchema)


class ApplicationListSchema(Schema):
    items = fields.List(fields.Nested(ApplicationSchema))


class AcceptSchema(Schema):
    applicationId = fields.UUID(required=True)
    # The card to hold the agreed amount on (saved on the way); omitted: the default saved card.
    paymentMethodId = fields.String(load_default=None, validate=validate.Regexp(
        r"^pm_[A-Za-z0-9_]{1,200}$", error="Must be a payment method id (pm_...)."))


class ReasonSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 1000))


class ResolveSchema(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(["release", "refund"]))
    note = fields.String(required=True, validate=validate.Length(1, 1000))
    # With outcome "refund": how much goes back to the creator (default: all of it).
    refundAmount = Amount(load_default=None)
