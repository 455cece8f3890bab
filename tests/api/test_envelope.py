"""Every response, errors included, is the spec's envelope; validation failures are 400."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask.views import MethodView
from werkzeug.exceptions import TooManyRequests

from api import create_app
from api.smorest import Blueprint, Schema
from core import errors
from tests.conftest import make_settings


class EchoSchema(Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=20))
    count = ma.fields.Integer(required=True, validate=ma.validate.Range(min=0))


def _probe_blueprint() -> Blueprint:
    """A blueprint that raises each domain error, so the one mapping is exercised end to end."""
    blp = Blueprint("probe", __name__)
    raisers: dict[str, Exception] = {
        "401": errors.AuthenticationFailed("Sign in first."),
        "403": errors.PermissionDenied("Not yours."),
        "409": errors.Conflict("Already there."),
        "422": errors.Unprocessable("Same key, other body."),
        "429": TooManyRequests("Slow down.", retry_after=30),
        "500": RuntimeError("boom: secret internals"),
    }

    @blp.route("/probe/<code>")
    class Probe(MethodView):
        @blp.response(200)
        def get(self, code: str) -> dict[str, Any]:
            raise raisers[code]

    @blp.route("/echo")
    class Echo(MethodView):
        @blp.arguments(EchoSchema)
        @blp.response(201, EchoSchema)
        def post(self, body: dict[str, Any]) -> dict[str, Any]:
            return body

    return blp


@pytest.fixture(scope="module")
def probe_app(pg_url: str) -> Flask:
    app = create_app(make_settings(pg_url, max_content_length=2048))
    app.register_blueprint(_probe_blueprint(), url_prefix="/api/v1/test")
    return app


@pytest.fixture
def probe(probe_app: Flask) -> FlaskClient:
    return probe_app.test_client()


def assert_envelope(body: dict[str, Any], *, success: bool) -> None:
    assert set(body) == {"success", "data", "error", "meta"}
    assert body["success"] is success
    assert set(body["meta"]) == {"timestamp", "requestId", "version"}
    assert body["meta"]["version"] == "v1" and body["meta"]["timestamp"].endswith("Z")
    if not success:
        assert body["data"] is None
        assert set(body["error"]) == {"code", "message", "details"}


def test_success_is_wrapped(probe: FlaskClient) -> None:
    response = probe.post("/api/v1/test/echo", json={"name": "harbour", "count": 2})
    assert response.status_code == 201
    assert_envelope(response.json, success=True)
    assert response.json["data"] == {"name": "harbour", "count": 2}
    assert response.json["error"] is None


@pytest.mark.parametrize(("body", "fields"), [
    ({}, {"name", "count"}),
    ({"name": "", "count": -1}, {"name", "count"}),
    ({"name": "x", "count": "many"}, {"count"}),
    ({"name": "x", "count": 1, "extra": True}, {"extra"}),
])
def test_validation_error_is_400_with_field_details(probe: FlaskClient, body: dict[str, Any],
                                                    fields: set[str]) -> None:
    response = probe.post("/api/v1/test/echo", json=body)
    assert response.status_code == 400
    assert_envelope(response.json, success=False)
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert set(response.json["error"]["details"]) == fields


def test_malformed_json_is_400(probe: FlaskClient) -> None:
    response = probe.post("/api/v1/test/echo", data="{not json",
                          content_type="application/json")
    assert response.status_code == 400
    assert_envelope(response.json, success=False)


@pytest.mark.parametrize(("code", "error_code"), [
    ("401", "UNAUTHORIZED"), ("403", "FORBIDDEN"), ("409", "CONFLICT"),
    ("422", "UNPROCESSABLE_ENTITY"), ("429", "RATE_LIMITED"), ("500", "INTERNAL_ERROR"),
])
def test_domain_errors_map_to_status(probe: FlaskClient, code: str, error_code: str) -> None:
    response = probe.get(f"/api/v1/test/probe/{code}")
    assert response.status_code == int(code)
    assert_envelope(response.json, success=False)
    assert response.json["error"]["code"] == error_code
    assert "secret internals" not in response.get_data(as_text=True)
    if code == "429":
        assert response.headers["Retry-After"] == "30"


def test_404_405_413_415(probe: FlaskClient) -> None:
    cases = [
        (probe.get("/api/v1/no-such-thing"), 404, "NOT_FOUND"),
        (probe.delete("/health"), 405, "METHOD_NOT_ALLOWED"),
        (probe.post("/api/v1/test/echo", json={"name": "x" * 5000, "count": 1}), 413,
         "PAYLOAD_TOO_LARGE"),
        (probe.post("/api/v1/test/echo", data="name=x", content_type="text/plain"), 415,
         "UNSUPPORTED_MEDIA_TYPE"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.json
        assert_envelope(response.json, success=False)
        assert response.json["error"]["code"] == code
    assert "GET" in cases[1][0].headers["Allow"]


def test_openapi_documents_the_envelope(probe: FlaskClient) -> None:
    spec = probe.get("/api/v1/openapi.json").json
    assert "/health" in spec["paths"]
    assert "HealthEnvelope" in spec["components"]["schemas"]
    assert probe.get("/api/v1/docs").status_code == 200
