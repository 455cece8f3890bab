"""JWT wiring (flask-jwt-extended): minting, revocation and the 401 answers.

Tokens are HS256 and carry the spec's claims (``sub`` = user id, ``iat``, ``exp``, ``role``,
``permissions``) plus ``jti``/``type`` (flask-jwt-extended's), ``premium`` (rate-limit tier) and
``gen``, the account's token generation when the token was minted.

Revocation, checked on every request:
* one token (logout): its ``jti`` goes on a Redis denylist until the token would expire anyway;
* every token of a user (logout-all, password change, erasure): ``users.token_generation`` is
  bumped, and a token whose ``gen`` differs is refused. It lives on the user row, so it commits
  atomically with the password change that caused it, survives a Redis flush, and has no
  clock-granularity edge (``iat`` has whole seconds: a "revoked before T" marker would also kill
  a token minted in the same second). Requests read a copy kept in Redis
  (``domain.auth.generations``: why it cannot go stale).

Cost per authenticated request (docs/benchmarks.md has the figures): a verified-claims cache hit
(see ``CachingJWTManager``) and one Redis round trip (denylist and generation in one MGET, the
activity mark pipelined with it when due). No database statement: the role comes from the
token (roles never change) and the account row is loaded only by views that need it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import redis
from cachetools import TLRUCache
from flask import Flask, Response, g, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    decode_token,
)
from flask_jwt_extended.exceptions import (
    JWTExtendedException,
    NoAuthorizationError,
    RevokedTokenError,
    UserLookupError,
    WrongTokenError,
)
from jwt import PyJWTError
from werkzeug.exceptions import ServiceUnavailable

from api.errors import error_response
from api.services import services
from core.config import Settings
from core.context import user_id_var
from core.enums import UserRole
from core.errors import ValidationFailed
from db.models import User
from db.queries import users as user_queries
from domain.auth import activity, generations
from domain.permissions import Caller, sorted_permissions

ALGORITHM = "HS256"
DENYLIST_PREFIX = "taplive:auth:denied:"


def _wall_clock() -> float:
    return time.time()  # looked up per call, so frozen test clocks apply


class CachingJWTManager(JWTManager):
    """flask-jwt-extended with a cache of verified claims, keyed by the exact token string.

    Verifying a token is pure: the same bytes, checked once against our key, stay valid until
    their own ``exp``. Yet flask-jwt-extended parses every token three times per request
    (unverified claims, unverified header, then the verified decode), and PyJWT checks each
    base64 segment character by character in Python: ~0.5 ms of a ~4 ms request for a token of
    our size. A client sends the same access token for its whole lifetime, so each worker keeps
    the claims of the tokens it verified until they expire (TLRU, bounded). Only successful
    verifications are cached; an expired or tampered token always takes the library's full path
    and gets its own error. Revocation is unaffected: the denylist and the token generation are
    checked on every request, after this.
    """

    def __init__(self, app: Flask, *, cache_size: int = 10_000) -> None:
        self._verified: TLRUCache[str, dict[str, Any]] = TLRUCache(
            maxsize=cache_size, ttu=lambda _token, claims, _now: float(claims["exp"]),
            timer=_wall_clock)
        self._verified_lock = threading.Lock()  # gthread workers share the cache
        super().__init__(app)

    def _decode_jwt_from_config(self, encoded_token: str, csrf_value: str | None = None,
                                allow_expired: bool = False) -> dict[str, Any]:
        if allow_expired or csrf_value is not None:
            return dict(super()._decode_jwt_from_config(encoded_token, csrf_value,
                                                         allow_expired))
        with self._verified_lock:
            claims = self._verified.get(encoded_token)
        if claims is None:
            claims = dict(super()._decode_jwt_from_config(encoded_token))
            if isinstance(claims.get("exp"), int | float):
                with self._verified_lock:
                    self._verified[encoded_token] = claims
        return dict(claims)  # a copy: callers keep it in flask.g and may add to it


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
    jwt = CachingJWTManager(app)
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


def _subject(payload: Mapping[str, Any]) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(payload["sub"]))
    except (KeyError, ValueError):
        return None


def _revocation_state(claims: Mapping[str, Any]) -> tuple[bool, int | None]:
    """Whether the token is on the denylist, and Redis's copy of its account's token
    generation (None if there is none), in one Redis command (MGET), once per request: the
    rate limiter and the token check both ask. When the caller's activity is due for a mark,
    it rides in the same round trip (a request with a correctly signed token of the account is
    activity, even if the token is then refused; an erased account's marks are dropped by the
    flush). Raises redis.RedisError when Redis is unreachable."""
    jti = str(claims["jti"])
    cache: dict[str, tuple[bool, int | None]] = g.setdefault("_taplive_revocation", {})
    if jti not in cache:
        user_id = _subject(claims)  # None: the user lookup refuses the token
        keys = [DENYLIST_PREFIX + jti]
        if user_id is not None:
            keys.append(generations.key(user_id))
        client = services().redis
        if user_id is not None and activity.due(user_id):
            pipe = client.pipeline(transaction=False)
            pipe.mget(keys)
            activity.mark(pipe, user_id)
            values = pipe.execute()[0]
        else:
            values = client.mget(keys)
        generation = values[1] if user_id is not None else None
        cache[jti] = (values[0] is not None, None if generation is None else int(generation))
    return cache[jti]


def is_denied(claims: Mapping[str, Any]) -> bool:
    """Whether the token (which has a ``jti``) is on the denylist (see ``_revocation_state``)."""
    return _revocation_state(claims)[0]


def _is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
    if not payload.get("jti"):
        return True  # every token we mint has one
    try:
        return is_denied(payload)
    except redis.RedisError as exc:
        # Fail closed: without the denylist a logged-out token could be replayed.
        raise ServiceUnavailable("Authentication is temporarily unavailable.") from exc


def _current_generation(user_id: uuid.UUID, claimed: int, known: int | None) -> int | None:
    """The account's token generation: ``known``, Redis's copy (read with the denylist), or,
    when there is none or it is older than the token's own (a copy left stale by a lost
    publish: tokens only carry generations the database once had), the database's, which then
    refreshes the copy. None if the account is gone or erased."""
    if known is not None and known >= claimed:
        return known
    current = user_queries.find_token_generation(services().db.session(), user_id)
    if current is None:
        return None
    try:
        return generation_register().offer(user_id, current)
    except redis.RedisError as exc:
        raise ServiceUnavailable("Authentication is temporarily unavailable.") from exc


def _load_user(_header: dict[str, Any], payload: dict[str, Any]) -> Caller | None:
    """The token's caller, once per request; None (-> 401) if the account is gone or erased or
    the token predates a logout-all / password change."""
    user_id = _subject(payload)
    try:
        role = UserRole(payload["role"])
        claimed = int(payload["gen"])
        known = _revocation_state(payload)[1]  # answered by the denylist check, no new I/O
    except (KeyError, TypeError, ValueError):
        return None
    except redis.RedisError as exc:
        raise ServiceUnavailable("Authentication is temporarily unavailable.") from exc
    if user_id is None or _current_generation(user_id, claimed, known) != claimed:
        return None
    user_id_var.set(str(user_id))
    return Caller(user_id, role)


def verify_access_token() -> Caller:
    """The ``@authenticated`` check: a valid, unrevoked access token in the Authorization
    header, and its caller. The same steps and the same errors (and so the same 401 answers)
    as flask-jwt-extended's ``verify_jwt_in_request()`` for a header token, without its
    per-request machinery around them (the token locations loop, and a second, uncached parse
    of the token's header by PyJWT): ~5 % of a fast endpoint. The scheme is matched
    case-insensitively, as RFC 6750 has it."""
    token = bearer_token()
    if token is None:
        raise NoAuthorizationError("Missing Authorization Header")
    claims = dict(decode_token(token))  # full verification, through CachingJWTManager
    if claims.get("type") != "access":
        raise WrongTokenError("Only non-refresh tokens are allowed")
    if _is_revoked({}, claims):
        raise RevokedTokenError({}, claims)
    caller = _load_user({}, claims)
    if caller is None:
        raise UserLookupError("The token's account is not available", {}, claims)
    g.taplive_caller = caller
    return caller


def generation_register() -> generations.GenerationRegister:
    return services().generations
