"""Order and application schemas: camelCase on the wire, minor units and UTC inside."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from api.fields import (
    Amount,
    Currency,
    FreeFormObject,
    PageArgsSchema,
    PaginationSchema,
    amount_with_currency,
    minor_from,
    money_out,
)
from api.smorest import Schema
from core.config import Settings
from core.enums import ApplicationStatus, OrderStatus
from domain.location_input import latitude, longitude
from domain.projections import order_view

MAX_REQUIREMENTS_BYTES = 4096
_DEFAULTS = Settings.model_fields
#: The service radius's bounds are settings (ORDER_MIN_RADIUS_M, ORDER_MAX_RADIUS_M); the
#: document, built once, states their defaults.
RADIUS_DOC = {"minimum": _DEFAULTS["order_min_radius_m"].default,
              "maximum": _DEFAULTS["order_max_radius_m"].default,
              "description": "Metres; bounds are ORDER_MIN_RADIUS_M / ORDER_MAX_RADIUS_M."}
REQUIREMENTS_DOC = {"description": f"Any JSON object of at most {MAX_REQUIREMENTS_BYTES} bytes."}
TAG_RULES = [validate.Length(1, 40), validate.Regexp(r"^[\w\-]+$")]
TAG = fields.String(validate=TAG_RULES)


class LocationSchema(Schema):
    latitude = latitude(required=True)
    longitude = longitude(required=True)
    address = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=500))


def _requirements_size(value: dict[str, Any]) -> None:
    if len(json.dumps(value)) > MAX_REQUIREMENTS_BYTES:
        raise ma.ValidationError(f"At most {MAX_REQUIREMENTS_BYTES} bytes of JSON.")


class OrderCreateSchema(Schema):
    OPENAPI_EXTRA = amount_with_currency("baseAmount", "currency", default="USD")

    title = fields.String(required=True, validate=validate.Length(1, 255))
    description = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=5000))
    location = fields.Nested(LocationSchema, required=True)
    serviceRadius = fields.Integer(load_default=1000, strict=True, metadata=RADIUS_DOC)
    baseAmount = Amount(required=True)
    currency = Currency(load_default="USD")
    scheduledFor = fields.AwareDateTime(load_default=None, allow_none=True)
    requirements = FreeFormObject(load_default=dict, validate=_requirements_size,
                                  metadata=REQUIREMENTS_DOC)
    tags = fields.List(TAG, load_default=list, validate=validate.Length(max=20))

    @ma.post_load
    def _to_minor(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["base_amount_minor"] = minor_from(data.pop("baseAmount"), data["currency"],
                                               "baseAmount")
        return data


class OrderUpdateSchema(Schema):
    """PUT: replace the editable fields given; the currency and amount go together."""

    OPENAPI_EXTRA = {**amount_with_currency("baseAmount", "currency", default=None),
                     "minProperties": 1}
    title = fields.String(validate=validate.Length(1, 255))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    location = fields.Nested(LocationSchema)
    serviceRadius = fields.Integer(strict=True, metadata=RADIUS_DOC)
    baseAmount = Amount()
    currency = Currency()
    scheduledFor = fields.AwareDateTime(allow_none=True)
    requirements = FreeFormObject(validate=_requirements_size, metadata=REQUIREMENTS_DOC)
    tags = fields.List(TAG, validate=validate.Length(max=20))

    @ma.validates_schema
    def _amount_with_currency(self, data: dict[str, Any], **_: Any) -> None:
        if ("currency" in data) and ("baseAmount" not in data):
            raise ma.ValidationError({"baseAmount": ["Required when currency changes."]})
        if not data:
            raise ma.ValidationError({"_schema": ["Nothing to update."]})


class OrderLocationOutSchema(Schema):
    latitude = fields.Float()
    longitude = fields.Float()
    address = fields.String(allow_none=True)


class OrderSchema(Schema):
    """An order as sent: the OpenAPI declaration of ``domain.projections.order_view``, which
    builds every order the API sends (see ``OrderField``). Never dumped itself;
    tests/api/test_openapi_contract.py holds it to what real responses carry."""

    id = fields.UUID()
    title = fields.String()
    description = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf([s.value for s in OrderStatus]))
    creatorId = fields.UUID()
    providerId = fields.UUID(allow_none=True)
    location = fields.Nested(OrderLocationOutSchema)
    serviceRadius = fields.Integer()
    baseAmount = fields.String(metadata={"description": "Decimal string, e.g. \"25.50\"."})
    agreedAmount = fields.String(allow_none=True)
    currency = fields.String()
    scheduledFor = fields.DateTime(allow_none=True)
    acceptedAt = fields.DateTime(allow_none=True)
    startedAt = fields.DateTime(allow_none=True)
    completedAt = fields.DateTime(allow_none=True)
    cancelledAt = fields.DateTime(allow_none=True)
    cancellationReason = fields.String(allow_none=True)
    requirements = fields.Dict()
    tags = fields.List(fields.String())
    createdAt = fields.DateTime()
    updatedAt = fields.DateTime()


class OrderField(fields.Nested):
    """An order in a response: documented as ``OrderSchema``, sent as
    ``domain.projections.order_view`` (the one projection; marshmallow only documents it)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(OrderSchema, **kwargs)

    # marshmallow's Field and Nested name the first parameter differently: no signature
    # satisfies both for mypy, and marshmallow passes it by position.
    def _serialize(  # type: ignore[override]
            self, nested_obj: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if nested_obj is None else order_view(nested_obj)


class OrderEnvelopeSchema(Schema):
    order = OrderField()


class NextActionSchema(Schema):
    type = fields.String()  # Stripe's next_action.type, e.g. use_stripe_sdk


class PaymentActionSchema(Schema):
    """What the creator's client needs to finish 3-D Secure (Stripe.js
    ``handleNextAction({clientSecret})``), then ``POST /orders/{id}/payment/confirm``."""

    status = fields.String()  # the PaymentIntent's status (requires_action)
    intentId = fields.String()
    clientSecret = fields.String(allow_none=True)
    nextAction = fields.Nested(NextActionSchema, allow_none=True)
    expiresAt = fields.DateTime(allow_none=True)  # then the acceptance is undone


class AcceptAwaitingAuthenticationSchema(Schema):
    order = OrderField()
    payment = fields.Nested(PaymentActionSchema)


class PaymentConfirmSchema(Schema):
    order = OrderField()
    # authorized | awaiting-authentication | authentication-failed | already-held | ...
    outcome = fields.String()
    payment = fields.Nested(PaymentActionSchema, allow_none=True)


class DeletedSchema(Schema):
    id = fields.UUID()
    deleted = fields.Boolean()


class NearbyOrderSchema(OrderSchema):
    distanceMeters = fields.Float()
    creatorName = fields.String()


class NearbyPageSchema(Schema):
    items = fields.List(fields.Nested(NearbyOrderSchema))
    pagination = fields.Nested(PaginationSchema)


class OrderPageSchema(Schema):
    items = fields.List(OrderField())
    pagination = fields.Nested(PaginationSchema)


class OrderListArgsSchema(PageArgsSchema):
    status = fields.String(load_default=None,
                           validate=validate.OneOf([s.value for s in OrderStatus]))
    role = fields.String(load_default="any", validate=validate.OneOf(["creator", "provider",
                                                                       "any"]))
    # A tag that no order can carry is refused, not searched for (the filter is exact).
    tag = fields.String(load_default=None, validate=TAG_RULES)
    createdFrom = fields.AwareDateTime(load_default=None)
    createdTo = fields.AwareDateTime(load_default=None)


class NearbyArgsSchema(PageArgsSchema):
    latitude = latitude(required=True)
    longitude = longitude(required=True)
    radius = fields.Integer(load_default=5000, validate=validate.Range(1, 50_000))


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
        lambda a: money_out(a.proposed_amount_minor, a.order.currency),
        metadata={"type": "string", "nullable": True})
    estimatedArrival = fields.DateTime(attribute="estimated_arrival",
                                       allow_none=True)
    status = fields.Function(lambda a: a.status.value, metadata={
        "type": "string", "enum": [s.value for s in ApplicationStatus]})
    createdAt = fields.DateTime(attribute="created_at")


class ApplicationEnvelopeSchema(Schema):
    application = fields.Nested(ApplicationSchema)


class ApplicationPageSchema(Schema):
    items = fields.List(fields.Nested(ApplicationSchema))
    pagination = fields.Nested(PaginationSchema)


class AcceptSchema(Schema):
    applicationId = fields.UUID(required=True)
    # The card to hold the agreed amount on (saved on the way); omitted: the default saved card.
    paymentMethodId = fields.String(load_default=None, validate=validate.Regexp(
        r"^pm_[A-Za-z0-9_]{1,200}$", error="Must be a payment method id (pm_...)."))


class ReasonSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 1000))


class ResolveSchema(Schema):
    # A refund amount only with a refund (domain.payments.capture.resolve_dispute checks it).
    OPENAPI_EXTRA = {"anyOf": [{"properties": {"outcome": {"enum": ["refund"]}}},
                               {"not": {"required": ["refundAmount"]}}]}

    outcome = fields.String(required=True, validate=validate.OneOf(["release", "refund"]))
    note = fields.String(required=True, validate=validate.Length(1, 1000))
    # With outcome "refund": how much goes back to the creator (default: all of it).
    refundAmount = Amount(load_default=None)
