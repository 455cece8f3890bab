"""Applications of providers to orders."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView

from api.auth import authenticated, current_user
from api.blueprints.order_schemas import (
    ApplicationCreateSchema,
    ApplicationEnvelopeSchema,
    ApplicationPageSchema,
)
from api.blueprints.orders import may_apply
from api.fields import PageArgsSchema, page_payload
from api.services import services
from api.smorest import Blueprint
from domain import applications
from domain.permissions import Permission

blp = Blueprint("applications", __name__,
                description="Provider applications to orders")


@blp.route("/<uuid:order_id>/applications")
class Applications(MethodView):
    @authenticated()
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, ApplicationPageSchema)
    def get(self, args: dict[str, Any], order_id: uuid.UUID) -> dict[str, Any]:
        """List applications, newest first: the creator sees all, a provider only their own."""
        svc = services()
        page = applications.page_for(svc.db.session(), order_id, current_user(), svc.cursors,
                                     may_apply=may_apply(), limit=args["limit"],
                                     cursor=args["cursor"])
        return page_payload(page, page.items)

    @authenticated(Permission.APPLY_ORDERS, verified=True)
    @blp.arguments(ApplicationCreateSchema)
    @blp.response(201, ApplicationEnvelopeSchema)
    def post(self, body: dict[str, Any], order_id: uuid.UUID) -> dict[str, Any]:
        """Apply to a pending order (verified providers; once per order)."""
        application = applications.apply(
            services().db.session(), order_id, current_user(), message=body["message"],
            proposed_amount=body["proposedAmount"], estimated_arrival=body["estimatedArrival"],
            now=datetime.now(UTC))
        return {"application": application}


@blp.route("/<uuid:order_id>/applications/<uuid:application_id>/withdraw")
class Withdraw(MethodView):
    @authenticated(Permission.APPLY_ORDERS)
    @blp.response(200, ApplicationEnvelopeSchema)
    def post(self, order_id: uuid.UUID, application_id: uuid.UUID) -> dict[str, Any]:
        """Withdraw my pending application."""
        application = applications.withdraw(services().db.session(), order_id, application_id,
                                            current_user())
        return {"application": application}
