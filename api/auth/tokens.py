"""The API's side of tokens: where the issuer and verifier live on the app, the bearer header,
and the token uses of the auth endpoints (minting, the refresh token in a logout body,
revocation). The format and the check itself are ``domain.auth.tokens``.
"""

from __future__ import annotations

from flask import Flask, current_app, request

from api.services import Services
from core.config import Settings
from db.models import User
from domain.auth.errors import TokenRejected
from domain.auth.tokens import SignedToken, TokenIssuer, TokenVerifier, VerifiedToken
from domain.errors import ValidationFailed

ISSUER_KEY = "taplive_token_issuer"
VERIFIER_KEY = "taplive_token_verifier"


def issuer_from(settings: Settings) -> TokenIssuer:
    return TokenIssuer(settings.jwt_secret_key, settings.jwt_access_ttl_s,
                       settings.jwt_refresh_ttl_s)


def init_tokens(app: Flask, settings: Settings) -> None:
    """Build the issuer and the verifier, and publish committed generation bumps (the
    revocations) to the verifier's Redis copy."""
    svc: Services = app.extensions["taplive"]
    app.extensions[ISSUER_KEY] = issuer_from(settings)
    verifier = app.extensions[VERIFIER_KEY] = TokenVerifier(
        settings.jwt_secret_key, svc.redis, svc.db)
    svc.db.on_commit(verifier.generations.publish_committed_bumps)


def issuer() -> TokenIssuer:
    minter: TokenIssuer = current_app.extensions[ISSUER_KEY]
    return minter


def verifier() -> TokenVerifier:
    checker: TokenVerifier = current_app.extensions[VERIFIER_KEY]
    return checker


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
