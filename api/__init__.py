"""The Flask application factory. It only wires: config, extensions, an explicit blueprint list."""

from __future__ import annotations

from flask import Flask

from api.auth import init_auth
from api.declared_limits import DeclaredLimits, declare_base_rules, json_value_component
from api.errors import register_error_handlers
from api.json_provider import OrjsonProvider
from api.metrics import register_metrics
from api.no_sessions import NoSessions
from api.request_hooks import register_request_hooks
from api.smorest import Api, Blueprint
from api.unit_of_work import register_unit_of_work
from core.config import Settings, load_settings
from core.logging import configure_logging
from services import Services, build_services
from workers.celery_factory import make_celery


def _blueprints() -> list[tuple[Blueprint, str]]:
    """(blueprint, url_prefix) in registration order; the one list of what the API serves."""
    from api import health
    from api.blueprints import (
        admin_users,
        analytics,
        applications,
        auth,
        matches,
        messages,
        notifications,
        order_actions,
        orders,
        payments,
        payouts,
        providers,
        recovery,
        streams,
        users,
        webhooks,
    )

    return [
        (health.blp, ""),
        (auth.blp, "/api/v1/auth"),
        (recovery.blp, "/api/v1/auth"),
        (users.blp, "/api/v1/users"),
        (admin_users.blp, "/api/v1/admin/users"),
        (orders.blp, "/api/v1/orders"),
        (applications.blp, "/api/v1/orders"),
        (messages.blp, "/api/v1/orders"),
        (order_actions.blp, "/api/v1"),
        (providers.blp, "/api/v1/providers"),
        (matches.blp, "/api/v1"),
        (payments.blp, "/api/v1"),
        (payouts.blp, "/api/v1"),
        (webhooks.blp, "/api/v1/webhooks"),
        (analytics.blp, "/api/v1"),
        (notifications.blp, "/api/v1/notifications"),
        (streams.blp, "/api/v1"),
    ]


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Flask:
    """The WSGI app over a composition root: the one given (a process that already built its
    root), else one built from ``settings`` (else from the environment)."""
    if services is None:
        services = build_services(settings or load_settings())
    settings = services.settings
    configure_logging(settings.service_name, settings.log_level, settings.log_format)

    app = Flask("taplive")
    app.json = OrjsonProvider(app)
    # A stateless API: no cookie session to open (and sign) on every request.
    app.session_interface = NoSessions()
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        API_TITLE="TapLive API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        # /api/v1/docs and /api/v1/redoc are api.docs (served from this origin, no CDN): the
        # pages flask-smorest would add (OPENAPI_SWAGGER_UI_PATH / OPENAPI_REDOC_PATH) stay off.
    )
    app.extensions["taplive"] = services

    api = Api(app, spec_kwargs={"extra_plugins": [DeclaredLimits()]})
    # What the base schema refuses everywhere, stated everywhere (api/declared_limits.py).
    api.ma_plugin.converter.add_attribute_function(declare_base_rules)
    api.spec.components.schema("JsonValue", json_value_component())
    for blueprint, prefix in _blueprints():
        api.register_blueprint(blueprint, url_prefix=prefix)
    from api.blueprints.streams import callbacks

    app.register_blueprint(callbacks, url_prefix="/internal/rtmp")
    # The creator's watch page: HTML and its static files, outside the JSON API.
    from api.watch import watch

    app.register_blueprint(watch)
    # The API's documentation pages (Swagger UI, Redoc), with their assets, on this origin.
    from api.docs import docs

    app.register_blueprint(docs)
    register_error_handlers(app)
    register_request_hooks(app)
    init_auth(app, api, settings)
    register_unit_of_work(app)
    register_metrics(app)
    # The API sends tasks (the outbox kick) through the same Celery app the workers run.
    app.extensions["celery"] = make_celery(services)
    return app
