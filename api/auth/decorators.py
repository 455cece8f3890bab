"""The view decorators: a valid token, then the role's permissions (``domain.permissions``).

Put ``@authenticated(...)`` outermost on a MethodView method, above ``@blp.arguments``: the token
is checked before the body, so an anonymous caller learns nothing about validation rules.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from functools import wraps
from typing import Any, Literal, TypeVar, cast

from werkzeug.exceptions import Unauthorized

from api.auth.request_token import EXPECTED_KIND_ATTR, request_token
from api.services import services
from core.enums import VerificationStatus
from db.models import User
from db.queries.users import find_verification_status
from domain.permissions import PROVIDER_ROLES, Caller, Permission, require_verified_provider

F = TypeVar("F", bound=Callable[..., Any])
BEARER_SCHEME = "bearerAuth"


def current_caller() -> Caller:
    """Who is calling (id and role), as checked by this request's token check."""
    return request_token().caller


def current_user() -> User:
    """The authenticated user's account row, loaded on first use (by primary key, then from
    the session's identity map): many views only need ``current_caller()``."""
    user = services().db.session().get(User, current_caller().id)
    if user is None:  # deleted between the token check and now
        raise Unauthorized("The account no longer exists.")
    return user


def authenticated(*permissions: Permission, verified: bool = False) -> Callable[[F], F]:
    """Require a valid, unrevoked ACCESS token, then every permission in ``permissions``
    (403 FORBIDDEN); with ``verified=True`` a provider must also be verified (403
    PROVIDER_NOT_VERIFIED)."""
    needed = frozenset(permissions)

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = request_token().caller
            caller.require(needed)
            if verified and caller.role in PROVIDER_ROLES:
                status = find_verification_status(services().db.session(), caller.id)
                require_verified_provider(caller.role, status or VerificationStatus.PENDING)
            return fn(*args, **kwargs)

        _document(wrapper, sorted(needed), forbidden=bool(needed) or verified)
        return cast(F, wrapper)

    return decorator


def token_required(kind: Literal["refresh", "any"]) -> Callable[[F], F]:
    """For the auth endpoints only: a refresh token (``/auth/refresh``) or either kind
    (``/auth/logout`` revokes whichever token it is called with). The request's one token
    check reads the kind from the view (``api.auth.request_token``)."""

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request_token()
            return fn(*args, **kwargs)

        setattr(wrapper, EXPECTED_KIND_ATTR, kind)
        _document(wrapper, [], forbidden=False)
        return cast(F, wrapper)

    return decorator


def _document(wrapper: Callable[..., Any], permissions: list[str], *, forbidden: bool) -> None:
    """OpenAPI: bearer security, the 401 (and 403) answers, and the permissions required."""
    # Copy: functools.wraps shares the wrapped function's _apidoc dict with the wrapper.
    apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))
    manual = apidoc.setdefault("manual_doc", {})
    manual["security"] = [{BEARER_SCHEME: []}]
    responses = manual.setdefault("responses", {})
    responses["401"] = {"description": "Missing, invalid, expired or revoked token"}
    if forbidden:
        responses["403"] = {"description": "The caller's role or verification does not allow it"}
    if permissions:
        manual["x-permissions"] = permissions
    wrapper._apidoc = apidoc  # type: ignore[attr-defined]
