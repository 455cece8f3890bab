"""The signed-in user's own account: profile, password, GDPR export and erasure."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.auth import authenticated, current_user, password_policy, tokens
from api.blueprints.user_schemas import (
    ErasedSchema,
    ErasureSchema,
    ExportSchema,
    PasswordChangeSchema,
    ProfileUpdateSchema,
    TokenPairSchema,
    UserResultSchema,
)
from api.services import services
from api.smorest import Blueprint
from domain import users
from domain.presence_store import LocationStore

blp = Blueprint("users", __name__, description="The signed-in user's account")


@blp.route("/me")
class Me(MethodView):
    @authenticated()
    @blp.response(200, UserResultSchema)
    def get(self) -> dict[str, Any]:
        """Read my account."""
        return {"user": current_user()}

    @authenticated()
    @blp.arguments(ProfileUpdateSchema)
    @blp.response(200, UserResultSchema)
    def patch(self, body: dict[str, Any]) -> dict[str, Any]:
        """Change my username and/or replace my profile JSON."""
        user = users.update_profile(services().db.session(), current_user(),
                                    username=body.get("username"), profile=body.get("profile"))
        return {"user": user}

    @authenticated()
    @blp.arguments(ErasureSchema)
    @blp.response(200, ErasedSchema)
    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Erase my personal data and close my account (needs my password)."""
        svc = services()
        user = current_user()
        users.erase(svc.db.session(), user, password=body["password"])
        # Committed: now the live copies in Redis go too (the latest position, and the
        # availability record matching reads), rather than when they expire.
        LocationStore(svc.redis, svc.settings.location_max_age_s).forget(user.id)
        svc.presence.go_offline(user.id)
        return {"erased": True}


@blp.route("/me/password")
class MyPassword(MethodView):
    rate_limit_guards = ("password",)

    @authenticated()
    @blp.arguments(PasswordChangeSchema)
    @blp.response(200, TokenPairSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Change my password; every other session ends, fresh tokens are returned."""
        svc = services()
        user = users.change_password(svc.db.session(), current_user(),
                                     current=body["currentPassword"], new=body["newPassword"],
                                     policy=password_policy(svc.settings))
        return tokens.issue_token_pair(user)


@blp.route("/me/export")
class MyExport(MethodView):
    @authenticated()
    @blp.response(200, ExportSchema)
    def get(self) -> dict[str, Any]:
        """Download everything stored about me (GDPR access and portability)."""
        return users.export_data(services().db.session(), current_user())
