"""The API's side of tokens: the root's issuer and verifier, the bearer header,
and the token uses of the auth endpoints (minting, rotation, the refresh token in a logout
body, revocation). The format and the check itself are ``domain.auth.tokens``; refresh-token
families and rotation are ``domain.auth.families``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import request

from api.services import services
from core.errors import ValidationFailed
from db.models import User
from domain.auth import families
from domain.auth.errors import TokenRejected
from domain.auth.tokens import (
    SignedToken,
    TokenIssuer,
    TokenPair,
    TokenVerifier,
    VerifiedToken,
)


def issuer() -> TokenIssuer:
    return services().token_issuer


def verifier() -> TokenVerifier:
    return services().token_verifier


def issue_access_token(user: User) -> str:
    return issuer().issue(user)


def issue_token_pair(user: User) -> dict[str, str]:
    """A sign-in: a new refresh-token family and its first pair (commits the family row)."""
    return _wire(families.start(services().db.session(), issuer(), user, datetime.now(UTC)))


def rotate_refresh_token(user: User, token: VerifiedToken) -> dict[str, str]:
    """``/auth/refresh``: the next pair of ``token``'s family; reuse revokes the family."""
    pair = families.rotate(services().db.session(), issuer(), user, token, datetime.now(UTC))
    if token.family is None:
        revoke(token)  # a pre-rotation token: exchanged once, then refused
    return _wire(pair)


def end_sessions(user: User, presented: list[VerifiedToken | SignedToken]) -> None:
    """Logout: revoke the families of the presented tokens (the caller's commit publishes)."""
    ttl_s = issuer().refresh_ttl_s
    for token in presented:
        families.end(services().db.session(), user, token, datetime.now(UTC), ttl_s)


def _wire(pair: TokenPair) -> dict[str, str]:
    return {"accessToken": pair.access, "refreshToken": pair.refresh}


def refresh_claims_of(user: User, token: str) -> SignedToken:
    """``token`` if it is a live refresh token of ``user`` (signature and expiry); else 400."""
    try:
        signed = verifier().read_signed(token)
    except TokenRejected:
        signed = None
    if (signed is None or signed.kind != "refresh" or signed.jti is None
            or signed.claims.get("sub") != str(user.id)):
        raise ValidationFailed("Not a valid refresh token of this account.",
                               details={"refreshToken": ["Invalid or expired token."]})
    return signed


def revoke(token: VerifiedToken | SignedToken) -> None:
    """Deny one token (logout) until it would have expired anyway."""
    if token.jti is not None:  # always: refresh_claims_of refuses a token without one
        verifier().revoke(token.jti, token.exp)


def bearer_token() -> str | None:
    """The token of ``Authorization: Bearer <token>``; the scheme is matched
    case-insensitively, as RFC 6750 has it."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
