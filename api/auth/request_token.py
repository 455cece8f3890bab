"""The token check, once per request: its outcome (the verified token, or why it was refused)
is kept on ``flask.g`` and everything that asks reads it: ``@authenticated`` and
``token_required``, the rate limiter's key and tier, the idempotency scope.

The check runs on first use, so a request that nobody asks about (``/health``, a login) costs
nothing. Which kind of token a request is checked for is declared by its view:
``token_required("refresh" | "any")`` on the auth endpoints, access tokens everywhere else. So
the first reader, whoever it is, gets the answer the view itself would get.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request

from api.auth.tokens import bearer_token, verifier
from core.context import user_id_var
from domain.auth.errors import AuthUnavailable, TokenRejected
from domain.auth.tokens import Expected, VerifiedToken

# Set by ``token_required`` on a view method that takes another kind of token than access.
EXPECTED_KIND_ATTR = "taplive_token_kind"
_OUTCOME = "_taplive_token"

Outcome = VerifiedToken | TokenRejected | AuthUnavailable


def request_token() -> VerifiedToken:
    """This request's verified token; raises why it was refused (mapped to 401/503)."""
    outcome = _outcome()
    if isinstance(outcome, VerifiedToken):
        return outcome
    raise outcome


def request_token_or_none() -> VerifiedToken | None:
    """This request's verified token, or None (no token, refused, or Redis down): for the
    callers that only need to know who is calling if anyone is (limiter, idempotency)."""
    outcome = _outcome()
    return outcome if isinstance(outcome, VerifiedToken) else None


def _outcome() -> Outcome:
    outcome: Outcome | None = g.get(_OUTCOME)
    if outcome is None:
        try:
            outcome = verifier().verify(bearer_token(), _expected_kind())
            user_id_var.set(str(outcome.user_id))  # the logs' user, reset at teardown
        except (TokenRejected, AuthUnavailable) as refused:
            outcome = refused
        setattr(g, _OUTCOME, outcome)
    return outcome


def _expected_kind() -> Expected:
    view = current_app.view_functions.get(request.endpoint or "")
    view_class: Any = getattr(view, "view_class", None)
    handler: Any = view
    if view_class is not None:
        method = request.method.lower()
        handler = getattr(view_class, method, None)
        if handler is None and method == "head":  # MethodView serves HEAD with get
            handler = getattr(view_class, "get", None)
    expected: Expected = getattr(handler, EXPECTED_KIND_ATTR, "access")
    return expected
