"""Responses are encoded by orjson, with the same values Flask's default encoder gives."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask.testing import FlaskClient

from api.json_provider import OrjsonProvider


@dataclass
class Point:
    latitude: float
    longitude: float


def test_same_values_as_flasks_default(app: Flask) -> None:
    payload = {
        "when": datetime(2026, 11, 25, 9, 30, tzinfo=UTC),
        "amount": Decimal("25.50"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "where": Point(51.5, -0.12),
        "name": "Zoë ☕",
        "nested": [{"k": 1}, None, True, 2.5],
        3: "int key",
    }
    with app.app_context():
        ours = OrjsonProvider(app)
        stock = DefaultJSONProvider(app)
        stock.sort_keys = False
        assert json.loads(ours.dumps(payload)) == json.loads(stock.dumps(payload))
        response = ours.response(payload)
    assert response.mimetype == "application/json"
    assert response.get_data().endswith(b"\n")
    body = json.loads(response.get_data())
    assert body["when"] == "Wed, 25 Nov 2026 09:30:00 GMT"
    assert body["name"] == "Zoë ☕" and body["amount"] == "25.50"


def test_nan_is_written_as_null_not_as_invalid_json(app: Flask) -> None:
    with app.app_context():
        text = OrjsonProvider(app).dumps({"x": math.nan})
    assert json.loads(text) == {"x": None}


def test_the_app_answers_through_it(app: Flask, client: FlaskClient) -> None:
    assert isinstance(app.json, OrjsonProvider)
    response = client.get("/health")
    assert response.json["data"] == {"status": "ok", "checks": {}}
