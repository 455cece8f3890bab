"""Sign-up, sign-in and sessions: register, login, refresh, logout, logout-all."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.auth import authenticated, current_user, password_policy, token_required, tokens
from api.auth.request_token import request_token
from api.blueprints.user_schemas import (
    AuthResultSchema,
    LoggedOutSchema,
    LoginSchema,
    LogoutSchema,
    RegisterSchema,
    TokenPairSchema,
)
from api.services import services
from api.smorest import Blueprint
from core.enums import UserRole
from core.metrics import USER_REGISTRATIONS
from domain import account_links, users
from domain.auth.tokens import SignedToken, VerifiedToken

blp = Blueprint("auth", __name__, description="Accounts: sign-up, sign-in and sessions")


@blp.route("/register")
class Register(MethodView):
    rate_limit_guards = ("register",)

    @blp.arguments(RegisterSchema)
    @blp.response(201, AuthResultSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create an account (creator, provider or both) and sign in."""
        svc = services()
        links = account_links.LinkConfig.from_settings(svc.settings)
        user = users.register(
            svc.db.session(), username=body["username"], email=body["email"],
            password=body["password"], role=UserRole(body["role"]),
            policy=password_policy(svc.settings),
            # The verification mail commits with the account (and is sent after).
            on_created=lambda session, new: account_links.start_email_verification(
                session, new, links),
        )
        USER_REGISTRATIONS.inc()  # register() has committed: the account exists
        return {"user": user, **tokens.issue_token_pair(user)}


@blp.route("/login")
class Login(MethodView):
    rate_limit_guards = ("login",)

    @blp.arguments(LoginSchema)
    @blp.response(200, AuthResultSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Sign in with email and password."""
        user = users.authenticate(services().db.session(), email=body["email"],
                                  password=body["password"])
        return {"user": user, **tokens.issue_token_pair(user)}


@blp.route("/refresh")
class Refresh(MethodView):
    @token_required("refresh")
    @blp.response(200, TokenPairSchema)
    def post(self) -> dict[str, Any]:
        """Trade a refresh token for a new access token and a new refresh token (rotation:
        the one presented stops working; presenting it again revokes the whole sign-in)."""
        return tokens.rotate_refresh_token(current_user(), request_token())


@blp.route("/logout")
class Logout(MethodView):
    @token_required("any")
    @blp.arguments(LogoutSchema, required=False)
    @blp.response(200, LoggedOutSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Revoke the token this request carries, and the refresh token given in the body."""
        user = current_user()
        revoked: list[VerifiedToken | SignedToken] = [request_token()]
        if body.get("refreshToken"):
            revoked.append(tokens.refresh_claims_of(user, body["refreshToken"]))
        for token in revoked:
            tokens.revoke(token)
        tokens.end_sessions(user, revoked)
        users.record_logout(services().db.session(), user, revoked_tokens=len(revoked))
        return {"revokedTokens": len(revoked), "allSessions": False}


@blp.route("/logout-all")
class LogoutAll(MethodView):
    @authenticated()
    @blp.response(200, LoggedOutSchema)
    def post(self) -> dict[str, Any]:
        """Revoke every token of this account (sign out everywhere)."""
        users.revoke_all_sessions(services().db.session(), current_user())
        return {"allSessions": True}
