"""Access and refresh tokens: the one place that knows their format, mints them and checks them.

Tokens are HS256 JWTs (PyJWT) with these claims: ``sub`` (user id), ``iat``, ``nbf``, ``exp``,
``jti`` (token id), ``type`` (``access`` or ``refresh``), ``role``, ``permissions`` (for
clients; the server re-reads the role), ``premium`` (rate-limit tier), ``gen``, the account's
token generation when the token was minted, and ``fam``, the refresh-token family (one sign-in,
``domain.auth.families``) the token descends from.

``TokenVerifier.verify`` is the one check, for HTTP (once per request, ``api.auth``) and any
other caller. In order, each step with the error the API has always answered:

1. no token -> ``TokenMissing``; signature, algorithm (HS256 only: ``alg: none`` and algorithm
   confusion are refused by PyJWT before a claim is read), ``exp``/``nbf``/``iat`` ->
   ``TokenInvalid`` / ``TokenExpired``;
2. the kind (access vs refresh) -> ``TokenInvalid``;
3. revocation of one token (logout: its ``jti`` on a Redis denylist) or of its family (logout,
   a reused refresh token: the ``fam`` on a Redis denylist) -> ``TokenRevoked``;
4. revocation of every token of an account (logout-all, password change, erasure bump
   ``users.token_generation``; a token whose ``gen`` differs is refused) -> ``TokenRevoked``.
   The generation is read from a Redis copy (``domain.auth.generations``: why it cannot go
   stale), from the database when the copy is missing or older than the token's own.

Redis unreachable -> ``AuthUnavailable`` (fail closed).

Cost per check (docs/benchmarks.md): a verified-claims cache hit and one Redis round trip
(denylists and generation in one MGET, the activity mark pipelined with it when due). No
database statement: the role comes from the token (roles never change).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

import jwt
import redis
from cachetools import TLRUCache

from core.enums import UserRole
from db.models import User
from db.queries import users as user_queries
from db.session import Database
from domain.auth import activity, generations
from domain.auth.errors import (
    AuthUnavailable,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRevoked,
)
from domain.permissions import Caller, sorted_permissions

ALGORITHM = "HS256"
DENYLIST_PREFIX = "taplive:auth:denied:"
#: A revoked refresh-token family (``domain.auth.families``): every token carrying its ``fam``.
FAMILY_DENYLIST_PREFIX = "taplive:auth:family-denied:"

TokenKind = Literal["access", "refresh"]
# What a check accepts: one kind, or either (``/auth/logout`` revokes whichever it is given).
Expected = Literal["access", "refresh", "any"]
# The reasons are the ones clients have always seen in ``details.reason``.
_WRONG_KIND = {"access": "Only non-refresh tokens are allowed",
               "refresh": "Only refresh tokens are allowed"}


def _wall_clock() -> float:
    return time.time()  # looked up per call, so frozen test clocks apply


# ------------------------------------------------------------------------------- minting


class TokenPair(NamedTuple):
    access: str
    refresh: str
    refresh_jti: str = ""  # what the family row records as its current refresh token


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    """Mints tokens. Pure: needs only the key and the lifetimes (no I/O)."""

    secret: str
    access_ttl_s: int
    refresh_ttl_s: int

    def issue(self, user: User, kind: TokenKind = "access") -> str:
        return self._encode(str(user.id), kind, claims_for(user), str(uuid.uuid4()))

    def issue_pair(self, user: User, family: uuid.UUID | None = None) -> TokenPair:
        """An access and a refresh token; both carry ``family`` (``fam``) when given, so
        revoking the family refuses the access token too. The API always gives one
        (``domain.auth.families``); tests may mint family-less pairs."""
        claims = claims_for(user)
        if family is not None:
            claims["fam"] = str(family)
        refresh_jti = str(uuid.uuid4())
        return TokenPair(self._encode(str(user.id), "access", claims, str(uuid.uuid4())),
                         self._encode(str(user.id), "refresh", claims, refresh_jti),
                         refresh_jti)

    def _encode(self, subject: str, kind: TokenKind, claims: Mapping[str, Any],
                jti: str) -> str:
        now = int(time.time())
        ttl = self.access_ttl_s if kind == "access" else self.refresh_ttl_s
        payload = {"sub": subject, "iat": now, "nbf": now, "exp": now + ttl,
                   "jti": jti, "type": kind, **claims}
        return jwt.encode(payload, self.secret, algorithm=ALGORITHM)


def claims_for(user: User) -> dict[str, Any]:
    """The account's claims a token carries besides its own identity and times."""
    return {
        "role": str(user.role),
        "permissions": sorted_permissions(user.role),
        "premium": bool(user.is_premium),
        "gen": user.token_generation,
    }


# ---------------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a valid, unrevoked token says about its caller."""

    caller: Caller
    kind: str
    jti: str
    exp: float
    premium: bool
    generation: int
    claims: Mapping[str, Any]  # every claim, read-only
    family: str | None = None  # the refresh-token family (``fam``); None on older tokens

    @property
    def user_id(self) -> uuid.UUID:
        return self.caller.id


@dataclass(frozen=True, slots=True)
class SignedToken:
    """A token whose signature and times are valid; nothing else is checked yet. Immutable,
    so one instance serves every request that presents the same token (the claims cache)."""

    claims: Mapping[str, Any]
    kind: str
    jti: str | None
    exp: float
    user_id: uuid.UUID | None
    family: str | None
    # What ``verify`` returns once revocation is ruled out; None when the claims cannot name a
    # live account (no id, role or generation): such a token is refused as revoked.
    verified: VerifiedToken | None


class TokenVerifier:
    """The token check. Collaborators: the signing key, the app's Redis (denylist, generation
    copy, activity marks) and the database (the generation when Redis has no current copy,
    read on the thread's ``database.session()``: the caller removes it when its unit of work
    ends, as the API's request teardown does). Thread-safe: one per process."""

    def __init__(self, secret: str, client: redis.Redis, database: Database, *,
                 cache_size: int = 10_000) -> None:
        self._secret = secret
        self._redis = client
        self._database = database
        self.generations = generations.GenerationRegister(client)
        # Verifying a token is pure: the same bytes, checked once against our key, stay valid
        # until their own ``exp``. PyJWT checks each base64 segment character by character in
        # Python (~0.2 ms for a token of our size), and a client sends the same access token
        # for its whole life, so each process keeps what it verified until it expires (TLRU,
        # bounded). Only successes are cached: an expired or tampered token always takes the
        # full path and gets its own error. Revocation is checked on every call, after this.
        self._signed: TLRUCache[str, SignedToken] = TLRUCache(
            maxsize=cache_size, ttu=lambda _token, signed, _now: signed.exp, timer=_wall_clock)
        self._signed_lock = threading.Lock()  # threaded workers share the cache

    def verify(self, token: str | None, expected: Expected = "access") -> VerifiedToken:
        """The caller of ``token`` if it is valid, of the ``expected`` kind and not revoked;
        else raises a ``TokenRejected`` (or ``AuthUnavailable`` when Redis is down)."""
        if not token:
            raise TokenMissing()
        signed = self.read_signed(token)
        if expected != "any" and signed.kind != expected:
            raise TokenInvalid(_WRONG_KIND[expected])
        if signed.jti is None:
            raise TokenRevoked()  # every token we mint has one: nothing to revoke it by
        denied, known = self._revocation_state(signed.jti, signed.user_id, signed.family)
        verified = signed.verified
        if denied or verified is None:
            raise TokenRevoked()
        if self._current_generation(verified, known) != verified.generation:
            raise TokenRevoked()
        return verified

    def read_signed(self, token: str) -> SignedToken:
        """Signature, algorithm and times only (``TokenInvalid``/``TokenExpired``): for a token
        that is about to be revoked, or the first step of ``verify``."""
        with self._signed_lock:
            signed = self._signed.get(token)
        if signed is None:
            signed = self._decode(token)
            with self._signed_lock:
                self._signed[token] = signed
        return signed

    def revoke(self, jti: str, exp: float) -> None:
        """Deny one token until it would have expired anyway (then the key disappears)."""
        ttl = max(1, int(exp - time.time()) + 1)
        try:
            self._redis.set(DENYLIST_PREFIX + jti, "1", ex=ttl)
        except redis.RedisError as exc:
            raise AuthUnavailable() from exc

    def _decode(self, token: str) -> SignedToken:
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM],
                                options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired() from exc
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from exc
        return _signed(claims)

    def revoke_family(self, family: str, ttl_s: int) -> None:
        """Deny every token of a refresh-token family for ``ttl_s`` (the refresh lifetime: no
        token of the family minted before now outlives it, and none is minted after)."""
        try:
            self._redis.set(FAMILY_DENYLIST_PREFIX + family, "1", ex=max(1, ttl_s))
        except redis.RedisError as exc:
            raise AuthUnavailable() from exc

    def _revocation_state(self, jti: str, user_id: uuid.UUID | None,
                          family: str | None) -> tuple[bool, int | None]:
        """Whether the token or its family is on a denylist, and Redis's copy of its account's
        generation (None if there is none), in one round trip. When the caller's activity is
        due for a mark it rides along (a correctly signed token of the account is activity,
        even if it is then refused; an erased account's marks are dropped by the flush)."""
        keys = [DENYLIST_PREFIX + jti]
        if family is not None:
            keys.append(FAMILY_DENYLIST_PREFIX + family)
        if user_id is not None:
            keys.append(generations.key(user_id))
        try:
            if user_id is not None and activity.due(user_id):
                pipe = self._redis.pipeline(transaction=False)
                pipe.mget(keys)
                activity.mark(pipe, user_id)
                values = pipe.execute()[0]
            else:
                values = self._redis.mget(keys)
        except redis.RedisError as exc:
            raise AuthUnavailable() from exc
        denied = any(value is not None for value in values[:2 if family is not None else 1])
        generation = values[-1] if user_id is not None else None
        return denied, None if generation is None else int(generation)

    def _current_generation(self, token: VerifiedToken, known: int | None) -> int | None:
        """The account's token generation: ``known`` (Redis's copy), or, when there is none or
        it is older than the token's own (a copy left stale by a lost publish: tokens only
        carry generations the database once had), the database's, which then refreshes the
        copy. None if the account is gone or erased."""
        if known is not None and known >= token.generation:
            return known
        current = user_queries.find_token_generation(self._database.session(), token.user_id)
        if current is None:
            return None
        try:
            return self.generations.offer(token.user_id, current)
        except redis.RedisError as exc:
            raise AuthUnavailable() from exc


def _signed(claims: dict[str, Any]) -> SignedToken:
    """Parse once what every later check of the same token needs."""
    kind = str(claims.get("type", "access"))
    jti = str(claims["jti"]) if claims.get("jti") else None
    family = str(claims["fam"]) if claims.get("fam") else None
    exp = float(claims["exp"])  # PyJWT has checked it is a number
    frozen = MappingProxyType(claims)
    user_id = _uuid(claims["sub"])
    verified = None
    try:
        if user_id is not None and jti is not None:
            verified = VerifiedToken(
                caller=Caller(user_id, UserRole(claims["role"])), kind=kind, jti=jti, exp=exp,
                premium=claims.get("premium") is True, generation=int(claims["gen"]),
                claims=frozen, family=family)
    except (KeyError, TypeError, ValueError):
        verified = None
    return SignedToken(claims=frozen, kind=kind, jti=jti, exp=exp, user_id=user_id,
                       family=family, verified=verified)


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
