"""Shared helpers for the orders API tests."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from db.models import User
from tests.auth_helpers import auth_headers


def order_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Harbour fireworks",
        "description": "Stream the fireworks from the pier",
        "location": {"latitude": 40.7128, "longitude": -74.0060, "address": "Pier 17"},
        "serviceRadius": 500,
        "baseAmount": "25.00",
        "currency": "USD",
        "tags": ["fireworks"],
    }
    body.update(overrides)
    return body


def call(client: FlaskClient, method: str, path: str, user: User | None = None,
         json: Any = None, headers: dict[str, str] | None = None, **kwargs: Any) -> TestResponse:
    all_headers = dict(auth_headers(user) if user is not None else {})
    all_headers.update(headers or {})
    return client.open(f"/api/v1{path}", method=method, json=json, headers=all_headers,
                       **kwargs)


def create_order(client: FlaskClient, creator: User, **overrides: Any) -> dict[str, Any]:
    response = call(client, "POST", "/orders", creator, order_body(**overrides))
    assert response.status_code == 201, response.json
    order: dict[str, Any] = response.json["data"]["order"]
    return order


def accepted_order(client: FlaskClient, creator: User, provider: User) -> dict[str, Any]:
    """An order of ``creator`` taken by ``provider`` through the API (apply, then accept)."""
    order = create_order(client, creator)
    applied = call(client, "POST", f"/orders/{order['id']}/applications", provider, {})
    assert applied.status_code == 201, applied.json
    accepted = call(client, "POST", f"/orders/{order['id']}/accept", creator,
                    {"applicationId": applied.json["data"]["application"]["id"]})
    assert accepted.status_code == 200, accepted.json
    result: dict[str, Any] = accepted.json["data"]["order"]
    return result


def committed_users(app: Flask, **kinds: dict[str, Any]) -> dict[str, User]:
    """Users made by the factories (``name=dict(provider=True, ...)``) and committed on
    ``app``'s database, returned detached, for tests whose requests run on other connections."""
    from tests import factories

    database = app.extensions["taplive"].db
    with database.transaction() as session:
        factories.bind(session)
        try:
            ids = {name: factories.UserFactory(**traits).id for name, traits in kinds.items()}
        finally:
            factories.bind(None)
    with database.transaction() as session:
        found = {name: session.get(User, uid) for name, uid in ids.items()}
        return {name: user for name, user in found.items() if user is not None}
