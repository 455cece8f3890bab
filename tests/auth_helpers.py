"""Tokens for tests: ``auth_headers(user)`` signs in an existing user without a password round
trip (no bcrypt, no HTTP), with exactly the claims the API mints."""

from __future__ import annotations

from functools import lru_cache

from flask import Flask, current_app, has_app_context

from api.auth.tokens import configure_jwt, issue_access_token, issue_token_pair
from db.models import User
from tests.conftest import make_settings


@lru_cache(maxsize=1)
def _token_app() -> Flask:
    """A bare app carrying only the JWT configuration of the test settings (the same secret and
    lifetimes as the ``app`` fixture), for callers outside any app context."""
    app = Flask("taplive-test-tokens")
    configure_jwt(app, make_settings("sqlite://"))
    return app


def _app(app: Flask | None) -> Flask:
    if app is not None:
        return app
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
    return _token_app()


def access_token(user: User, app: Flask | None = None) -> str:
    with _app(app).app_context():
        return issue_access_token(user)


def token_pair(user: User, app: Flask | None = None) -> dict[str, str]:
    with _app(app).app_context():
        return issue_token_pair(user)


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
