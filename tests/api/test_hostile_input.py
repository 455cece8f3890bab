"""Hostile strings and shapes get a clear 400 in the envelope, and nothing is written
(issue 14: control characters PostgreSQL refuses in text, pathologically deep JSON, numbers far
beyond any range). Checked in one place: the base schema's pre-load walk and the JSON parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Order
from tests import factories
from tests.api.orders_helpers import call, order_body
from tests.auth_helpers import auth_headers


def _refused(response: Any, code: str = "VALIDATION_ERROR") -> None:
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    body = response.json
    assert body["success"] is False and body["error"]["code"] == code, body


@pytest.mark.parametrize("evil", ["fire\x00works", "a\x01b", "\x7f", "line\x1bbreak"])
def test_control_characters_in_a_string_are_refused(client: FlaskClient, db_session: Session,
                                                    evil: str) -> None:
    creator = factories.UserFactory()
    _refused(call(client, "POST", "/orders", creator, order_body(title=evil)))
    _refused(call(client, "POST", "/orders", creator, order_body(tags=[evil])))
    assert db_session.scalar(select(func.count()).select_from(Order)) == 0


def test_tabs_and_newlines_stay_allowed(client: FlaskClient, db_session: Session) -> None:
    creator = factories.UserFactory()
    created = call(client, "POST", "/orders", creator,
                   order_body(description="first line\nsecond\tline\r\n"))
    assert created.status_code == 201, created.json


def test_a_nul_in_a_login_field_is_a_400_not_a_500(client: FlaskClient,
                                                   db_session: Session) -> None:
    # Reachable without logging in.
    _refused(client.post("/api/v1/auth/login",
                         json={"email": "a\x00@example.com", "password": "x" * 12}))


def test_pathologically_deep_json_is_refused(client: FlaskClient, db_session: Session) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post("/api/v1/auth/login", data=deep,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.json["success"] is False


@pytest.mark.parametrize("number", ["1" + "0" * 400, "-1" + "0" * 30, "1e400", "-1e999"])
def test_numbers_beyond_any_range_are_refused(client: FlaskClient, db_session: Session,
                                              number: str) -> None:
    creator = factories.UserFactory()
    headers = {**auth_headers(creator), "Content-Type": "application/json"}
    body = json.dumps(order_body(serviceRadius=0)).replace('"serviceRadius": 0',
                                                           f'"serviceRadius": {number}')
    _refused(client.post("/api/v1/orders", data=body, headers=headers))
    body = json.dumps(order_body()).replace('"latitude": 40.7128', f'"latitude": {number}')
    _refused(client.post("/api/v1/orders", data=body, headers=headers))
    assert db_session.scalar(select(func.count()).select_from(Order)) == 0
