"""Who is calling, network-wise: the client address used by per-IP rate limits and the audit log.

Behind a reverse proxy every request comes from the proxy, so with ``TRUSTED_PROXY_COUNT=n`` the
n right-most ``X-Forwarded-For`` hops are trusted (werkzeug's ProxyFix). Trusting more hops than
there are proxies would let any client pick its own address, so the default is 0.
"""

from __future__ import annotations

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from core.config import Settings
from domain.audit import client_ip_var


def client_ip() -> str:
    return request.remote_addr or "unknown"


def _bind() -> None:
    g.client_ip_token = client_ip_var.set(client_ip()[:45])  # the audit column holds IPv6


def _unbind(_exc: BaseException | None) -> None:
    token = g.pop("client_ip_token", None)
    if token is not None:
        client_ip_var.reset(token)


def init_client_context(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxy_count:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxy_count, x_proto=settings.trusted_proxy_count
        )
    app.before_request(_bind)
    app.teardown_request(_unbind)
