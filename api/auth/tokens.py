"""The API's side of tokens: the root's issuer and verifier, the bearer header,
and the token uses of the auth endpoints (minting, the refresh token in a logout body,
revocation). The format and the check itself are ``domain.auth.tokens``.
"""

from __future__ import annotations

from flask import request

from api.services import services
from core.errors import ValidationFailed
from db.models import User
from domain.auth.errors import TokenRejected
from domain.auth.tokens import SignedToken, TokenIssuer, TokenVerifier, VerifiedToken


def issuer() -> TokenIssuer:
    return services().token_issuer


def verifier() -> TokenVerifier:
    return services().token_verifier


def issue_access_token(user: User) -> str:
    return issuer().issue(user)


def issue_token_pair(user: User) -> dict[str, str]:
    pair = issuer().issue_pair(user)
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
