"""Getting back into an account and proving its address: password reset and email
verification, through links mailed from the email outbox (docs/auth.md, "Recovery")."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.auth import authenticated, current_user, password_policy
from api.blueprints.user_schemas import EmailAddress
from api.services import services
from api.smorest import Blueprint, Schema
from domain import account_links

blp = Blueprint("recovery", __name__,
                description="Accounts: password reset and email verification")

#: The one answer to a reset request, whether or not the address has an account.
RESET_ACCEPTED = ("If an account uses this address, a link to reset its password is on its "
                  "way. It works once and expires.")


def _token() -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=200))


class PasswordResetRequestSchema(Schema):
    email = EmailAddress(required=True, validate=validate.Length(max=255))


class PasswordResetConfirmSchema(Schema):
    token = _token()
    newPassword = fields.String(required=True, validate=validate.Length(min=1, max=256), metadata={
        "description": "At least PASSWORD_MIN_LENGTH characters (default 10) and not guessable "
                       "(400 WEAK_PASSWORD)."})


class EmailVerificationConfirmSchema(Schema):
    token = _token()


class AcceptedSchema(Schema):
    accepted = fields.Boolean()
    message = fields.String()


class PasswordResetDoneSchema(Schema):
    passwordReset = fields.Boolean()


class EmailVerifiedSchema(Schema):
    emailVerified = fields.Boolean()


@blp.route("/password-reset")
class PasswordReset(MethodView):
    rate_limit_guards = ("recovery",)

    @blp.arguments(PasswordResetRequestSchema)
    @blp.response(202, AcceptedSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Mail a password-reset link (the same answer whether or not the address has an
        account)."""
        account_links.request_password_reset(services().db.session(), body["email"])
        return {"accepted": True, "message": RESET_ACCEPTED}


@blp.route("/password-reset/confirm")
class PasswordResetConfirm(MethodView):
    rate_limit_guards = ("link",)

    @blp.arguments(PasswordResetConfirmSchema)
    @blp.response(200, PasswordResetDoneSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set a new password with a reset link's token; signs the account out everywhere."""
        svc = services()
        account_links.confirm_password_reset(svc.db.session(), body["token"],
                                             body["newPassword"], password_policy(svc.settings))
        return {"passwordReset": True}


@blp.route("/email-verification")
class EmailVerification(MethodView):
    rate_limit_guards = ("verification-mail",)

    @authenticated()
    @blp.response(202, AcceptedSchema)
    def post(self) -> dict[str, Any]:
        """Mail me a new email-verification link (the previous one stops working)."""
        svc = services()
        account_links.request_email_verification(
            svc.db.session(), current_user(), account_links.LinkConfig.from_settings(svc.settings))
        return {"accepted": True, "message": "A verification link is on its way."}


@blp.route("/email-verification/confirm")
class EmailVerificationConfirm(MethodView):
    rate_limit_guards = ("link",)

    @blp.arguments(EmailVerificationConfirmSchema)
    @blp.response(200, EmailVerifiedSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Confirm an email address with a verification link's token."""
        account_links.confirm_email_verification(services().db.session(), body["token"])
        return {"emailVerified": True}
