"""Order actions (state transitions) and the admin's dispute resolution."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.views import MethodView

from api.auth import authenticated, current_user
from api.blueprints.order_schemas import (
    AcceptAwaitingAuthenticationSchema,
    AcceptSchema,
    OrderEnvelopeSchema,
    PaymentConfirmSchema,
    ReasonSchema,
    ResolveSchema,
)
from api.blueprints.orders import rules
from api.services import payments, services
from api.smorest import Blueprint, Serialized
from domain import order_actions, overdue
from domain.payments import capture, holds
from domain.permissions import Permission
from domain.presence_store import LocationStore
from domain.stream_sessions import StreamRules

blp = Blueprint("order_actions", __name__,
                description="Order lifecycle actions")


def _now() -> datetime:
    return datetime.now(UTC)


def location_store() -> LocationStore:
    svc = services()
    return LocationStore(svc.redis, svc.settings.location_max_age_s)


@blp.route("/orders/<uuid:order_id>/accept")
class Accept(MethodView):
    @authenticated(Permission.CREATE_ORDERS)
    @blp.arguments(AcceptSchema)
    @blp.response(200, OrderEnvelopeSchema)
    @blp.alt_response(202, schema=AcceptAwaitingAuthenticationSchema,
                      description="Accepted, awaiting the card's 3-D Secure: finish it with "
                                  "payment.clientSecret, then POST .../payment/confirm")
    def post(self, body: dict[str, Any], order_id: uuid.UUID) -> Any:
        """Accept one application (creator): the others are rejected, the provider assigned,
        and the agreed amount held on the creator's card (402 when declined). A card that
        wants 3-D Secure: 202, the order accepted and awaiting authentication."""
        pay = payments()
        accepted = holds.accept_with_hold(services().db.session(), pay.gateway, pay.config,
                                          order_id, body["applicationId"], current_user(),
                                          body["paymentMethodId"], _now())
        if accepted.action is not None:
            # Already in wire form: the 200 schema passes it through (api.smorest.Serialized).
            return Serialized(AcceptAwaitingAuthenticationSchema().dump(
                {"order": accepted.order, "payment": _action(accepted.action)})), 202
        return {"order": accepted.order}


def _action(action: holds.AuthenticationAction) -> dict[str, Any]:
    return {"status": action.status, "intentId": action.intent_id,
            "clientSecret": action.client_secret,
            "nextAction": {"type": action.next_action} if action.next_action else None,
            "expiresAt": action.expires_at}


@blp.route("/orders/<uuid:order_id>/payment/confirm")
class ConfirmPayment(MethodView):
    @authenticated(Permission.CREATE_ORDERS)
    @blp.response(200, PaymentConfirmSchema)
    @blp.alt_response(202, schema=PaymentConfirmSchema,
                      description="Still awaiting 3-D Secure")
    def post(self, order_id: uuid.UUID) -> Any:
        """After 3-D Secure (creator): re-read the payment from the processor. 200 with the
        order (held: ``authorized``; the bank refused: ``authentication-failed``, the order
        pending again); 202 while the processor still waits for the cardholder."""
        pay = payments()
        done = holds.confirm_by_creator(services().db.session(), pay.gateway, pay.config,
                                        order_id, current_user(), _now())
        body = {"order": done.order, "outcome": done.outcome,
                "payment": _action(done.action) if done.action else None}
        if done.action is not None:
            return Serialized(PaymentConfirmSchema().dump(body)), 202
        return body


@blp.route("/orders/<uuid:order_id>/start")
class Start(MethodView):
    @authenticated()
    @blp.response(200, OrderEnvelopeSchema)
    def post(self, order_id: uuid.UUID) -> dict[str, Any]:
        """Go live (assigned provider, from inside the service radius)."""
        user = current_user()
        latest = location_store().latest(user.id)
        known = (order_actions.KnownLocation(latest.latitude, latest.longitude,
                                             latest.recorded_at) if latest else None)
        order = order_actions.start(
            services().db.session(), order_id, user, known, _now(),
            timedelta(seconds=services().settings.location_max_age_s))
        return {"order": order}


@blp.route("/orders/<uuid:order_id>/complete")
class Complete(MethodView):
    @authenticated()
    @blp.response(200, OrderEnvelopeSchema)
    def post(self, order_id: uuid.UUID) -> dict[str, Any]:
        """Finish the stream (assigned provider)."""
        order = order_actions.complete(
            services().db.session(), order_id, current_user(), _now(),
            streams=StreamRules.from_settings(services().settings))
        return {"order": order}


@blp.route("/orders/<uuid:order_id>/cancel")
class Cancel(MethodView):
    @authenticated()
    @blp.arguments(ReasonSchema)
    @blp.response(200, OrderEnvelopeSchema)
    def post(self, body: dict[str, Any], order_id: uuid.UUID) -> dict[str, Any]:
        """Cancel (creator while pending; creator or provider once accepted or live)."""
        order = order_actions.cancel(services().db.session(), order_id, current_user(),
                                     body["reason"], _now())
        return {"order": order}


@blp.route("/orders/<uuid:order_id>/reopen")
class Reopen(MethodView):
    @authenticated(Permission.CREATE_ORDERS)
    @blp.response(200, OrderEnvelopeSchema)
    def post(self, order_id: uuid.UUID) -> dict[str, Any]:
        """Re-open an order whose provider did not show up (creator): pending again and
        matched afresh, without that provider (409 ``PAYMENT_RELEASE_PENDING`` while its hold
        is still being released: retry)."""
        order = overdue.reopen(services().db.session(), order_id, current_user(), _now())
        return {"order": order}


@blp.route("/orders/<uuid:order_id>/dispute")
class Dispute(MethodView):
    @authenticated(Permission.CREATE_ORDERS)
    @blp.arguments(ReasonSchema)
    @blp.response(200, OrderEnvelopeSchema)
    def post(self, body: dict[str, Any], order_id: uuid.UUID) -> dict[str, Any]:
        """Dispute a completed order (creator, within the dispute window)."""
        order = order_actions.dispute(services().db.session(), order_id, current_user(),
                                      body["reason"], _now(), rules())
        return {"order": order}


@blp.route("/admin/orders/<uuid:order_id>/resolve")
class Resolve(MethodView):
    @authenticated(Permission.RESOLVE_DISPUTES)
    @blp.arguments(ResolveSchema)
    @blp.response(200, OrderEnvelopeSchema)
    def post(self, body: dict[str, Any], order_id: uuid.UUID) -> dict[str, Any]:
        """Resolve a dispute (admin): release the money to the provider, or refund (all, or
        ``refundAmount``)."""
        order = capture.resolve_dispute(services().db.session(), order_id, current_user(),
                                        body["outcome"], body["note"], body["refundAmount"],
                                        _now())
        return {"order": order}
