"""Why a token was refused: one exception per answer a client can act on.

Each carries the code the API has always answered with; ``api.errors`` maps them to a 401 with
a ``WWW-Authenticate`` challenge (RFC 6750), and ``AuthUnavailable`` to a 503.
"""

from __future__ import annotations

from core.errors import AuthenticationFailed, DomainError


class TokenRejected(AuthenticationFailed):
    """A request's bearer token is missing or not acceptable (401)."""

    # RFC 6750's ``error`` parameter of the challenge: a missing token gets a bare challenge.
    challenge_error: str | None = "invalid_token"


class TokenMissing(TokenRejected):
    code = "UNAUTHORIZED"
    challenge_error = None

    def __init__(self) -> None:
        super().__init__("Sign in first: this needs a bearer token.")


class TokenInvalid(TokenRejected):
    """Tampered, wrong algorithm or secret, malformed, or the wrong kind of token."""

    code = "TOKEN_INVALID"

    def __init__(self, reason: str) -> None:
        super().__init__("The token is invalid.", details={"reason": reason})


class TokenExpired(TokenRejected):
    code = "TOKEN_EXPIRED"

    def __init__(self) -> None:
        super().__init__("The token has expired.")


class TokenRevoked(TokenRejected):
    """Logged out, logout-all, password changed, account erased or gone."""

    code = "TOKEN_REVOKED"

    def __init__(self) -> None:
        super().__init__("The token has been revoked.")


class AuthUnavailable(DomainError):
    """Redis is unreachable: without the denylist a logged-out token could be replayed, so the
    check fails closed (503) instead of letting the token through."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("Authentication is temporarily unavailable.")
