"""Admin: the user list, provider verification decisions and rate-limit tiers."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from api.auth import authenticated, current_user
from api.blueprints.user_schemas import (
    TierSchema,
    UserListArgsSchema,
    UserPageSchema,
    UserResultSchema,
    VerificationDecisionSchema,
)
from api.fields import page_payload
from api.services import services
from api.smorest import Blueprint
from db.models import User
from db.pagination import paginate
from db.queries import users as user_queries
from domain import tiers, users
from domain.permissions import Permission

blp = Blueprint("admin_users", __name__,
                description="Admin: users, verification and rate-limit tiers")


@blp.route("")
class AdminUsers(MethodView):
    @authenticated(Permission.MANAGE_USERS)
    @blp.arguments(UserListArgsSchema, location="query")
    @blp.response(200, UserPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List accounts, newest first, filtered by role and verification status."""
        svc = services()
        stmt = user_queries.select_users(role=args["role"],
                                         verification_status=args["verificationStatus"])
        page = paginate(svc.db.session(), stmt, created_col=User.created_at, id_col=User.id,
                        codec=svc.cursors, limit=args["limit"], cursor=args["cursor"])
        return page_payload(page, page.items)


@blp.route("/<uuid:user_id>/verification")
class AdminVerification(MethodView):
    @authenticated(Permission.VERIFY_USERS)
    @blp.arguments(VerificationDecisionSchema)
    @blp.response(200, UserResultSchema)
    def post(self, body: dict[str, Any], user_id: uuid.UUID) -> dict[str, Any]:
        """Verify or reject a provider (a rejection needs a reason)."""
        user = users.decide_verification(services().db.session(), current_user(), user_id,
                                         status=body["status"], reason=body["reason"])
        return {"user": user}


@blp.route("/<uuid:user_id>/tier")
class AdminTier(MethodView):
    @authenticated(Permission.MANAGE_USERS)
    @blp.arguments(TierSchema)
    @blp.response(200, UserResultSchema)
    def put(self, body: dict[str, Any], user_id: uuid.UUID) -> dict[str, Any]:
        """Set an account's rate-limit tier (``premium`` or ``standard``); it reaches the
        limiter with the user's next access token (their next refresh, at most 15 minutes)."""
        user = tiers.set_tier(services().db.session(), current_user(), user_id,
                              tiers.Tier(body["tier"]))
        return {"user": user}

    @authenticated(Permission.MANAGE_USERS)
    @blp.response(200, UserResultSchema)
    def delete(self, user_id: uuid.UUID) -> dict[str, Any]:
        """Clear the account's tier back to ``standard``."""
        user = tiers.set_tier(services().db.session(), current_user(), user_id,
                              tiers.Tier.STANDARD)
        return {"user": user}
