"""/health never touches dependencies; /ready turns 503 when the database, Redis or the task
broker is down."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from api import create_app
from tests.conftest import make_settings

DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:1/nowhere"


def test_health_and_ready_when_all_is_up(client: FlaskClient) -> None:
    assert client.get("/health").json["data"]["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json["data"]["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}


@pytest.mark.parametrize(("database", "redis_url", "broker_url", "down"), [
    (None, DEAD_REDIS, None, {"redis", "broker"}),  # the broker is the app's Redis by default
    (DEAD_POSTGRES, None, None, {"database"}),
    (DEAD_POSTGRES, DEAD_REDIS, None, {"database", "redis", "broker"}),
    (None, None, DEAD_REDIS, {"broker"}),  # a broker of its own, down: not ready either
])
def test_ready_is_503_when_a_dependency_is_down(pg_url: str, database: str | None,
                                                redis_url: str | None, broker_url: str | None,
                                                down: set[str]) -> None:
    overrides: dict[str, object] = {"readiness_timeout_s": 0.5}
    if redis_url:
        overrides["redis_url"] = redis_url
    if broker_url:
        overrides["celery_broker_url"] = broker_url
    app = create_app(make_settings(database or pg_url, **overrides))
    client = app.test_client()
    assert client.get("/health").status_code == 200  # liveness is unaffected
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json
    assert body["success"] is False and body["error"]["code"] == "SERVICE_UNAVAILABLE"
    failing = {k for k, v in body["error"]["details"].items() if v != "ok"}
    assert failing == down
    app.extensions["taplive"].db.engine.dispose()
