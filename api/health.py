"""Liveness and readiness probes (outside /api/v1, as load balancers expect)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from marshmallow import fields

from api.services import services
from api.smorest import Blueprint, Schema

blp = Blueprint("health", __name__, description="Liveness and readiness probes")


class HealthSchema(Schema):
    status = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, Any]:
        """Liveness: the process answers. Touches no dependency."""
        return {"status": "ok", "checks": {}}


def _broker_check(broker_url: str, redis_url: str, redis_state: str, timeout_s: float) -> str:
    """The Celery broker: without it no task this process sends would run (payments, matching).
    The same Redis as the app's: its answer stands. Another broker: one connection, within the
    readiness budget (kombu, whatever the transport)."""
    if broker_url == redis_url:
        return redis_state
    from kombu import Connection

    try:
        with Connection(broker_url, connect_timeout=timeout_s,
                        transport_options={"socket_timeout": timeout_s}) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout_s)
        return "ok"
    except Exception as exc:  # any failure means "not ready", whatever its type
        return f"unavailable: {type(exc).__name__}"


@blp.route("/ready")
class Ready(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, description="A dependency is unreachable")
    def get(self) -> dict[str, Any] | Response:
        """Readiness: the database, Redis and the task broker all answer."""
        from api.errors import error_response

        svc = services()
        checks: dict[str, str] = {}
        try:
            svc.db.ping()
            checks["database"] = "ok"
        except Exception as exc:  # any failure means "not ready", whatever its type
            checks["database"] = f"unavailable: {type(exc).__name__}"
        try:
            svc.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unavailable: {type(exc).__name__}"
        checks["broker"] = _broker_check(svc.settings.broker_url, svc.settings.redis_url,
                                         checks["redis"], svc.settings.readiness_timeout_s)
        if all(v == "ok" for v in checks.values()):
            return {"status": "ready", "checks": checks}
        return error_response(503, "SERVICE_UNAVAILABLE", "A dependency is unreachable.", checks)
