"""Authentication and authorisation for the API: the per-request token check, the view
decorators, rate limits. Tokens themselves (format, minting, the check) are ``domain.auth``.

The contract other blueprints use::

    from api.auth import authenticated, current_user

    @authenticated(Permission.APPLY_ORDERS, verified=True)
    @blp.arguments(...)
    def post(self, body): ... current_user() ...
"""

from __future__ import annotations

from flask import Flask

from api.auth.decorators import (
    BEARER_SCHEME,
    authenticated,
    current_caller,
    current_user,
    token_required,
)
from api.smorest import Api
from core.config import Settings
from domain.users import PasswordPolicy

__all__ = ["authenticated", "current_caller", "current_user", "init_auth", "password_policy",
           "token_required"]


def password_policy(settings: Settings) -> PasswordPolicy:
    return PasswordPolicy(min_length=settings.password_min_length,
                          min_strength=settings.password_min_strength)


def init_auth(app: Flask, api: Api, settings: Settings) -> None:
    """Wire tokens, the client-address context and the rate limiter into ``app``. Call it after
    the blueprints are registered (the limiter guards their views) and after the request-id
    hook (so a 429 carries the request id)."""
    from api.auth.client import init_client_context
    from api.auth.ratelimit import init_rate_limits

    init_client_context(app, settings)
    api.spec.components.security_scheme(
        BEARER_SCHEME, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    init_rate_limits(app, settings)
