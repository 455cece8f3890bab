"""Tokens for tests: ``auth_headers(user)`` signs in an existing user without a password round
trip (no bcrypt, no HTTP), with exactly the claims the API mints."""

from __future__ import annotations

from functools import lru_cache

from flask import Flask, current_app, has_app_context

from db.models import User
from domain.auth.tokens import TokenIssuer
from tests.conftest import make_settings


@lru_cache(maxsize=1)
def _test_issuer() -> TokenIssuer:
    """The issuer of the test settings (the same secret and lifetimes as the ``app`` fixture),
    for callers outside any app context."""
    settings = make_settings("sqlite://")
    return TokenIssuer(settings.jwt_secret_key, settings.jwt_access_ttl_s,
                       settings.jwt_refresh_ttl_s)


def _issuer(app: Flask | None) -> TokenIssuer:
    if app is None and has_app_context():
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app is not None:
        minter: TokenIssuer = app.extensions["taplive"].token_issuer
        return minter
    return _test_issuer()


def access_token(user: User, app: Flask | None = None) -> str:
    return _issuer(app).issue(user)


def token_pair(user: User, app: Flask | None = None) -> dict[str, str]:
    pair = _issuer(app).issue_pair(user)
    return {"accessToken": pair.access, "refreshToken": pair.refresh}


def auth_headers(user: User, app: Flask | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <access token>"}`` for an existing user."""
    return {"Authorization": f"Bearer {access_token(user, app)}"}


STRONG_PASSWORD = "harbour-fireworks-at-dusk"


def register_body(**overrides: object) -> dict[str, object]:
    """A valid registration body; ``overrides`` replace (or, with None, drop) fields."""
    import uuid

    name = f"u{uuid.uuid4().hex[:10]}"
    body: dict[str, object] = {"username": name, "email": f"{name}@example.test",
                               "password": STRONG_PASSWORD, "role": "creator"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}
