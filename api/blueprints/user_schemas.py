"""Account schemas shared by the auth, users and admin blueprints: camelCase on the wire."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from api.fields import FreeFormObject, PageArgsSchema, PaginationSchema
from api.smorest import NON_BLANK_TEXT_PATTERN, Schema
from core.enums import UserRole, VerificationStatus
from db.models import User
from domain.permissions import sorted_permissions
from domain.tiers import Tier
from domain.users import PROFILE_MAX_BYTES, SELF_SERVICE_ROLES, USERNAME_PATTERN, normalise_email


# Generous upper bounds only: the real password rules (length, strength) are the domain's, so
# their messages are specific. Anything longer than this is not a password.
class EmailAddress(fields.Email):
    """An email address, trimmed and lower-cased before it is validated (as it is stored)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            value = normalise_email(value)
        return str(super()._deserialize(value, attr, data, **kwargs))


def _password(new: bool = False) -> fields.String:
    # A new password's real floor is a setting (PASSWORD_MIN_LENGTH, 8-64, default 10) plus a
    # guessability score: said in the description, since the document is built once.
    description = ("At least PASSWORD_MIN_LENGTH characters (default 10) and not guessable "
                   "(400 WEAK_PASSWORD)." if new else None)
    return fields.String(required=True, validate=validate.Length(min=1, max=256),
                         metadata={"description": description} if description else {})


USERNAME = [validate.Length(min=3, max=50),
            validate.Regexp(USERNAME_PATTERN, error="3-50 letters, digits, '.', '_' or '-', "
                            "starting with a letter or digit, not 'deleted-'.")]


class UserSchema(Schema):
    # Wire names are the spec's camelCase; ``attribute`` maps them to the columns.
    id = fields.UUID(dump_only=True)
    username = fields.String()
    email = fields.String()
    role = fields.Enum(UserRole, by_value=True)
    permissions = fields.Method("_permissions", metadata={
        "type": "array", "items": {"type": "string"}})
    profile = fields.Dict()
    verificationStatus = fields.Enum(
        VerificationStatus, by_value=True, attribute="verification_status")
    verificationReason = fields.String(attribute="verification_reason", allow_none=True)
    verificationDecidedAt = fields.DateTime(attribute="verification_decided_at",
                                            allow_none=True)
    premium = fields.Boolean(attribute="is_premium")
    # Proven by a mailed link (or a password reset); the time itself stays private.
    emailVerified = fields.Method("_email_verified", metadata={"type": "boolean"})
    lastActiveAt = fields.DateTime(attribute="last_active_at", allow_none=True)
    createdAt = fields.DateTime(attribute="created_at")
    updatedAt = fields.DateTime(attribute="updated_at")

    def _permissions(self, user: User) -> list[str]:
        return sorted_permissions(user.role)

    def _email_verified(self, user: User) -> bool:
        return user.email_verified_at is not None


class UserResultSchema(Schema):
    user = fields.Nested(UserSchema)


# ------------------------------------------------------------------------------ auth


class RegisterSchema(Schema):
    username = fields.String(required=True, validate=USERNAME)
    email = EmailAddress(required=True, validate=validate.Length(max=255))
    password = _password(new=True)
    role = fields.String(required=True, validate=validate.OneOf(sorted(SELF_SERVICE_ROLES)))


class LoginSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=255))
    password = _password()


class AuthResultSchema(Schema):
    user = fields.Nested(UserSchema)
    accessToken = fields.String()
    refreshToken = fields.String()


class TokenPairSchema(Schema):
    accessToken = fields.String()
    refreshToken = fields.String()


class LogoutSchema(Schema):
    refreshToken = fields.String(validate=validate.Length(max=4096))


class LoggedOutSchema(Schema):
    revokedTokens = fields.Integer()
    allSessions = fields.Boolean()


# ---------------------------------------------------------------------------- users/me


class ProfileUpdateSchema(Schema):
    OPENAPI_EXTRA = {"minProperties": 1}

    username = fields.String(validate=USERNAME)
    profile = FreeFormObject(metadata={
        "description": f"Any JSON object of at most {PROFILE_MAX_BYTES} bytes."})

    @ma.validates_schema
    def _not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ma.ValidationError("Give a username, a profile or both.", "_schema")


class PasswordChangeSchema(Schema):
    currentPassword = _password()
    newPassword = _password(new=True)


class ErasureSchema(Schema):
    password = _password()


class ErasedSchema(Schema):
    erased = fields.Boolean()


class ExportSchema(Schema):
    exportedAt = fields.String()
    user = fields.Dict()
    permissions = fields.List(fields.String())
    orders = fields.List(fields.Dict())
    applications = fields.List(fields.Dict())
    payments = fields.List(fields.Dict())
    paymentEscrows = fields.List(fields.Dict())
    paymentCustomers = fields.List(fields.Dict())
    paymentMethods = fields.List(fields.Dict())
    payoutAccounts = fields.List(fields.Dict())
    locationHistory = fields.List(fields.Dict())
    geofenceStates = fields.List(fields.Dict())
    notifications = fields.List(fields.Dict())
    matches = fields.List(fields.Dict(), metadata={
        "description": "Invitations and auto-dispatch offers received (as a provider)."})
    assignments = fields.List(fields.Dict())
    streamSessions = fields.List(fields.Dict(), metadata={
        "description": "What the streams of my orders did; stream keys are never stored."})
    streamSegments = fields.List(fields.Dict())
    idempotencyRecords = fields.List(fields.Dict())
    refreshTokenFamilies = fields.List(fields.Dict())
    noShows = fields.List(fields.Dict())
    auditEvents = fields.List(fields.Dict())
    orderEvents = fields.List(fields.Dict())
    messages = fields.List(fields.Dict())
    notes = fields.Dict()


# ------------------------------------------------------------------------------- admin


class UserListArgsSchema(PageArgsSchema):
    role = fields.Enum(UserRole, by_value=True, load_default=None)
    verificationStatus = fields.Enum(
        VerificationStatus, by_value=True, load_default=None)


class UserPageSchema(Schema):
    items = fields.List(fields.Nested(UserSchema))
    pagination = fields.Nested(PaginationSchema)


class VerificationDecisionSchema(Schema):
    # A rejection says why: the reason is then required and not blank.
    OPENAPI_EXTRA = {"anyOf": [
        {"properties": {"status": {"enum": [VerificationStatus.VERIFIED.value]}}},
        {"required": ["reason"],
         "properties": {"reason": {"type": "string", "pattern": NON_BLANK_TEXT_PATTERN}}}]}

    status = fields.Enum(VerificationStatus, by_value=True, required=True,
                         validate=validate.OneOf([VerificationStatus.VERIFIED,
                                                  VerificationStatus.REJECTED]))
    reason = fields.String(load_default=None, allow_none=True,
                           validate=validate.Length(max=500))


class TierSchema(Schema):
    tier = fields.String(required=True, validate=validate.OneOf([t.value for t in Tier]),
                         metadata={"description": "The rate-limit tier (docs/auth.md)"})
