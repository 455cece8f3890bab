"""JWT wiring (flask-jwt-extended): minting, revocation and the 401 answers.

Tokens are HS256 and carry the spec's claims (``sub`` = user id, ``iat``, ``exp``, ``role``,
``permissions``) plus ``jti``/``type`` (flask-jwt-extended's), ``premium`` (rate-limit tier) and
``gen``, the account's token generation when the token was minted.

Revocation, checked on every request:
* one token (logout): its ``jti`` goes on a Redis denylist until the token would expire anyway;
* every token of a user (logout-all, password change, erasure): ``users.token_generation`` is
  bumped, and a token whose ``gen`` differs is refused. It lives on the user row, which is loaded
  on every authenticated request anyway, so it costs nothing, commits atomically with the password
  change that caused it, survives a Redis flush, and has no clock-granularity edge (``iat`` has
  whole seconds: a "revoked before T" marker would also kill a token minted in the same second).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import redis
from flask import Flask, Response, g, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    decode_token,
)
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError
from werkzeug.exceptions import ServiceUnavailable

from api.auth import activity
from api.errors import error_response
from api.services import services
from core.config import Settings
from core.context import user_id_var
from db.models import User
from db.queries import users as user_queries
from domain.errors import ValidationFailed
from domain.permissions import sorted_permissions

ALGORITHM = "HS256"
DENYLIST_PREFIX = "taplive:auth:denied:"


def configure_jwt(app: Flask, settings: Settings) -> JWTManager:
    """Configure flask-jwt-extended on ``app``: keys, lifetimes, and every failure as a 401 in
    the envelope. Needs neither the database nor Redis (tests mint tokens with it alone)."""
    app.config.update(
        JWT_SECRET_KEY=settings.jwt_secret_key,
        JWT_ALGORITHM=ALGORITHM,
        # Only HS256 is accepted, whatever a token's header says: "alg: none" and algorithm
        # confusion are refused by PyJWT before any claim is read.
        JWT_DECODE_ALGORITHMS=[ALGORITHM],
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=settings.jwt_access_ttl_s),
        JWT_REFRESH_TOKEN_EXPIRES=timedelta(seconds=settings.jwt_refresh_ttl_s),
    )
    jwt = JWTManager(app)
    jwt.token_in_blocklist_loader(_is_revoked)
    jwt.user_lookup_loader(_load_user)
    jwt.unauthorized_loader(
        lambda _reason: _unauthorized("UNAUTHORIZED", "Sign in first: this needs a bearer token.",
                                      error=None))
    jwt.invalid_token_loader(
        lambda reason: _unauthorized("TOKEN_INVALID", "The token is invalid.", {"reason": reason}))
    jwt.expired_token_loader(
        lambda _h, _p: _unauthorized("TOKEN_EXPIRED", "The token has expired."))
    jwt.revoked_token_loader(
        lambda _h, _p: _unauthorized("TOKEN_REVOKED", "The token has been revoked."))
    jwt.user_lookup_error_loader(
        lambda _h, _p: _unauthorized("TOKEN_REVOKED", "The token has been revoked."))
    jwt.token_verification_failed_loader(
        lambda _h, _p: _unauthorized("TOKEN_INVALID", "The token is invalid."))
    jwt.needs_fresh_token_loader(
        lambda _h, _p: _unauthorized("FRESH_TOKEN_REQUIRED", "Sign in again to do this."))
    return jwt


def _unauthorized(code: str, message: str, details: dict[str, Any] | None = None, *,
                  error: str | None = "invalid_token") -> Response:
    # RFC 6750: a missing token gets a bare challenge, a bad one says invalid_token.
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return error_response(401, code, message, details, headers={"WWW-Authenticate": challenge})


# ---------------------------------------------------------------------------- minting


def claims_for(user: User) -> dict[str, Any]:
    return {
        "role": str(user.role),
        "permissions": sorted_permissions(user.role),
        "premium": bool(user.is_premium),
        "gen": user.token_generation,
    }


def issue_access_token(user: User) -> str:
    return create_access_token(identity=str(user.id), additional_claims=claims_for(user))


def issue_token_pair(user: User) -> dict[str, str]:
    claims = claims_for(user)
    return {
        "accessToken": create_access_token(identity=str(user.id), additional_claims=claims),
        "refreshToken": create_refresh_token(identity=str(user.id), additional_claims=claims),
    }


def decode(token: str) -> dict[str, Any] | None:
    """The verified claims of ``token`` (signature, algorithm, expiry), else None."""
    try:
        return dict(decode_token(token))
    except (PyJWTError, JWTExtendedException):
        return None


def refresh_claims_of(user: User, token: str) -> dict[str, Any]:
    """The claims of ``token`` if it is a live refresh token of ``user``; else 400."""
    claims = decode(token)
    if claims is None or claims.get("type") != "refresh" or claims.get("sub") != str(user.id):
        raise ValidationFailed("Not a valid refresh token of this account.",
                               details={"refreshToken": ["Invalid or expired token."]})
    return claims


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


# -------------------------------------------------------------------------- revocation


def revoke(claims: Mapping[str, Any]) -> None:
    """Deny one token until it would have expired anyway (then the key disappears by itself)."""
    ttl = max(1, int(claims["exp"] - time.time()) + 1)
    services().redis.set(DENYLIST_PREFIX + str(claims["jti"]), "1", ex=ttl)


def is_denied(jti: str) -> bool:
    """Whether ``jti`` is on the denylist; answered once per request (the rate limiter asks
    too). Raises redis.RedisError when Redis is unreachable."""
    cache: dict[str, bool] = g.setdefault("_taplive_denied", {})
    if jti not in cache:
        cache[jti] = bool(services().redis.exists(DENYLIST_PREFIX + jti))
    return cache[jti]


def _is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
    jti = payload.get("jti")
    if not jti:
        return True  # every token we mint has one
    try:
        return is_denied(str(jti))
    except redis.RedisError as exc:
        # Fail closed: without the denylist a logged-out token could be replayed.
        raise ServiceUnavailable("Authentication is temporarily unavailable.") from exc


def _load_user(_header: dict[str, Any], payload: dict[str, Any]) -> User | None:
    """The token's user, once per request; None (-> 401) if the account is gone or erased or
    the token predates a logout-all / password change."""
    try:
        user_id = uuid.UUID(str(payload["sub"]))
    except ValueError:
        return None
    user = user_queries.find_by_id(services().db.session(), user_id)
    if user is None or user.erased_at is not None or payload.get("gen") != user.token_generation:
        return None
    user_id_var.set(str(user.id))
    activity.mark(services().redis, user.id)
    return user
