"""Rate limits (Flask-Limiter on the app's Redis, so every API process shares the counters).

* One budget per caller across the whole API, per 15 minutes by default: anonymous callers by
  IP (100), signed-in users by user id (1000), premium users by user id (5000). The caller is
  identified by the request's one token check (``api.auth.request_token``): a valid, unrevoked
  access token; anything else (refused, a refresh token, Redis down) counts as anonymous.
* Brute-force guards on top, declared by a view with ``rate_limit_guards = ("login",)``:
  ``register`` (per IP, per email), ``login`` (per IP; per email counting failed attempts only,
  so a user who signs in often is never locked out), ``password`` (per user, failed attempts),
  ``recovery`` (reset requests per IP and per email), ``link`` (redeeming a mailed link, per
  IP), ``verification-mail`` (per user).
  ``chat`` (per user, POST only) keeps one person from flooding an order's chat.
* A breach is 429 in the envelope with ``Retry-After`` and ``X-RateLimit-Limit/Remaining/Reset``.
* If Redis is down, limits fall back to per-process memory instead of failing requests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flask import Flask, Response, g, request
from flask_limiter import ApplicationLimit, Limiter

from api.auth.client import client_ip
from api.auth.request_token import request_token_or_none
from core.config import Settings
from domain.users import normalise_email

EXTENSION_KEY = "taplive_limiter"
KEY_PREFIX = "taplive"
TOO_MANY = "Too many requests: slow down and retry after the time in Retry-After."


class Tier(StrEnum):
    ANONYMOUS = "anonymous"
    AUTHENTICATED = "authenticated"
    PREMIUM = "premium"


@dataclass(frozen=True)
class Principal:
    key: str
    tier: Tier


def principal() -> Principal:
    """The caller this request is counted against (computed once per request)."""
    cached: Principal | None = g.get("_taplive_principal")
    if cached is None:
        cached = g._taplive_principal = _identify()
    return cached


def _identify() -> Principal:
    token = request_token_or_none()
    if token is not None and token.kind == "access":
        tier = Tier.PREMIUM if token.premium else Tier.AUTHENTICATED
        return Principal(f"user:{token.user_id}", tier)
    return Principal(f"ip:{client_ip()}", Tier.ANONYMOUS)


def _principal_key() -> str:
    return principal().key


def _ip_key() -> str:
    return f"ip:{client_ip()}"


def _account_key() -> str:
    """The email a login/registration is for. Never raises (a raising key function would make
    Flask-Limiter think its storage is down): bodies it cannot read share one bucket."""
    try:
        body = request.get_json(silent=True)
    except Exception:
        body = None
    email = body.get("email") if isinstance(body, dict) else None
    return "account:" + (normalise_email(email) if isinstance(email, str) else "-")


def _failed_with(status: int) -> Callable[[Response], bool]:
    return lambda response: response.status_code == status


@dataclass(frozen=True)
class Guard:
    limit: str
    key: Callable[[], str]
    scope: str
    deduct_when: Callable[[Response], bool] | None = None
    methods: tuple[str, ...] | None = None  # None: every method of the view


def guards(settings: Settings) -> dict[str, list[Guard]]:
    """The brute-force guards a view can ask for, by name."""
    return {
        "register": [
            Guard(settings.rate_limit_register_ip, _ip_key, "register-ip"),
            Guard(settings.rate_limit_register_account, _account_key, "register-account"),
        ],
        "login": [
            Guard(settings.rate_limit_login_ip, _ip_key, "login-ip"),
            Guard(settings.rate_limit_login_account, _account_key, "login-account",
                  _failed_with(401)),
        ],
        "password": [
            Guard(settings.rate_limit_login_account, _principal_key, "password",
                  _failed_with(403)),
        ],
        # Reset requests: per IP, and per email address whether or not it has an account.
        "recovery": [
            Guard(settings.rate_limit_recovery_ip, _ip_key, "recovery-ip"),
            Guard(settings.rate_limit_recovery_account, _account_key, "recovery-account"),
        ],
        # Redeeming a mailed link (reset, verification): guessing is hopeless (256-bit
        # secrets), but a client hammering the endpoint is still a client to slow down.
        "link": [
            Guard(settings.rate_limit_login_ip, _ip_key, "link-ip"),
        ],
        "verification-mail": [
            Guard(settings.rate_limit_recovery_account, _principal_key, "verification-mail"),
        ],
        "chat": [
            Guard(settings.rate_limit_chat_messages, _principal_key, "chat-post",
                  methods=("POST",)),
        ],
    }


def init_rate_limits(app: Flask, settings: Settings) -> Limiter | None:
    """One limiter per app (tests build several apps in one process)."""
    if not settings.rate_limits_on:
        return None
    tier_limits = {
        Tier.ANONYMOUS: settings.rate_limit_anonymous,
        Tier.AUTHENTICATED: settings.rate_limit_authenticated,
        Tier.PREMIUM: settings.rate_limit_premium,
    }
    timeout_s = max(1, math.ceil(settings.readiness_timeout_s))
    limiter = Limiter(
        _principal_key,
        application_limits=[ApplicationLimit(
            lambda: tier_limits[principal().tier], key_function=_principal_key, scope="api",
            error_message=TOO_MANY,
        )],
        storage_uri=settings.redis_url,
        # A dead Redis must cost a request milliseconds, not the client library's default.
        storage_options={"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s},
        strategy=settings.rate_limit_strategy,
        key_prefix=KEY_PREFIX,
        headers_enabled=True,
        retry_after="delta-seconds",
        swallow_errors=True,
        in_memory_fallback_enabled=True,
    )
    limiter.init_app(app)
    # Probes are polled by load balancers and must never be refused. The card processor
    # delivers webhooks in bursts from a few addresses: its signature, not the anonymous per-IP
    # budget, guards that endpoint (and a 429 would only delay money).
    # nginx-rtmp's callbacks come from the ingest's few addresses and carry their secret.
    # The watch page and its static files hold nothing and cost nothing; the API calls the
    # page makes are counted as any other (a page load is four requests, many creators may
    # share one NAT address).
    limiter.request_filter(lambda: request.blueprint in ("health", "webhooks",
                                                         "rtmp_callbacks", "watch"))
    _apply_guards(app, limiter, guards(settings))
    app.extensions[EXTENSION_KEY] = limiter
    return limiter


def _apply_guards(app: Flask, limiter: Limiter, by_name: dict[str, list[Guard]]) -> None:
    for endpoint, view in list(app.view_functions.items()):
        names: tuple[str, ...] = getattr(getattr(view, "view_class", None),
                                         "rate_limit_guards", ())
        wrapped: Any = view
        for name in names:
            for guard in by_name[name]:
                wrapped = limiter.limit(
                    guard.limit, key_func=guard.key, scope=guard.scope,
                    deduct_when=guard.deduct_when, override_defaults=False,
                    methods=list(guard.methods) if guard.methods else None,
                    error_message=TOO_MANY,
                )(wrapped)
        app.view_functions[endpoint] = wrapped
