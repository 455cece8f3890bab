"""Processor webhooks. No token: the signature over the raw body is the authentication."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import request
from flask.views import MethodView

from api.blueprints.payment_schemas import WebhookAckSchema
from api.services import payments, services
from api.smorest import Blueprint
from domain.payments import webhooks

blp = Blueprint("webhooks", __name__, description="Payment processor webhooks")


@blp.route("/stripe")
class StripeWebhook(MethodView):
    @blp.response(200, WebhookAckSchema)
    def post(self) -> dict[str, Any]:
        """Receive a Stripe event (signature verified, deduplicated by event id)."""
        pay = payments()
        outcome = webhooks.receive_stripe(
            services().db.session(), pay.gateway, pay.config, request.get_data(cache=True),
            request.headers.get("Stripe-Signature"), pay.webhook_secret,
            pay.webhook_tolerance_s, datetime.now(UTC))
        return {"received": True, "outcome": outcome}


@blp.route("/stripe/connect")
class StripeConnectWebhook(MethodView):
    @blp.response(200, WebhookAckSchema)
    def post(self) -> dict[str, Any]:
        """Receive a Stripe Connect event (connected accounts: ``account.updated``,
        ``payout.*``), signed with the Connect endpoint's own secret; handled like the rest."""
        pay = payments()
        outcome = webhooks.receive_stripe(
            services().db.session(), pay.gateway, pay.config, request.get_data(cache=True),
            request.headers.get("Stripe-Signature"), pay.connect_webhook_secret,
            pay.webhook_tolerance_s, datetime.now(UTC))
        return {"received": True, "outcome": outcome}
