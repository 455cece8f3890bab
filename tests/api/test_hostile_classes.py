"""The hand-made hostile classes (issue 14): each is answered in the JSON envelope with a clear
4xx, or stored and echoed literally as data, never a 500, and nothing is written by a refusal.
The decision for each class is in docs/reliability.md ("Hand-made hostile classes")."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.config import PROJECT_ROOT, Settings
from db.models import Order
from db.pagination import CursorCodec
from tests import factories
from tests.api.orders_helpers import call, order_body
from tests.auth_helpers import auth_headers


def _refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.content_type == "application/json"
    body = response.json
    assert body["success"] is False and body["data"] is None, body
    assert body["error"]["code"] == code, body


def _orders(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Order)) or 0)


# --------------------------------------------------------------------------- oversized body


def test_an_oversized_body_is_a_413_in_the_envelope(client: FlaskClient, app: Flask,
                                                    db_session: Session) -> None:
    creator = factories.UserFactory()
    limit = app.config["MAX_CONTENT_LENGTH"]
    huge = order_body(description="x" * (limit + 1))
    _refused(call(client, "POST", "/orders", creator, huge), 413, "PAYLOAD_TOO_LARGE")
    assert _orders(db_session) == 0


def test_the_proxy_allows_the_same_body_size_as_the_app() -> None:
    """deploy/nginx's client_max_body_size matches MAX_CONTENT_LENGTH's default, so a body
    between the two is refused by one of them consistently (the app's 413 is the envelope)."""
    conf = (PROJECT_ROOT / "deploy" / "nginx" / "taplive.conf").read_text()
    sizes = set(re.findall(r"client_max_body_size\s+(\d+)([km]?);", conf))
    factor = {"": 1, "k": 1024, "m": 1024 * 1024}
    assert {int(n) * factor[unit] for n, unit in sizes} == {
        Settings.model_fields["max_content_length"].default}


# ----------------------------------------------------------------------- wrong content type


@pytest.mark.parametrize(("data", "content_type"), [
    ('{"title": "x"}', "text/plain"),
    ("title=x&baseAmount=5", "application/x-www-form-urlencoded"),
    ({"title": "x"}, "multipart/form-data"),
    ('{"title": "x"}', None),
])
def test_a_body_that_is_not_json_is_a_415(client: FlaskClient, db_session: Session,
                                          data: Any, content_type: str | None) -> None:
    creator = factories.UserFactory()
    headers = auth_headers(creator)
    kwargs: dict[str, Any] = {"data": data, "headers": headers}
    if content_type is not None:
        kwargs["content_type"] = content_type
    for method, path in (("POST", "/orders"), ("PATCH", "/users/me"),
                         ("POST", "/providers/me/payout-account/onboarding")):
        response = client.open(f"/api/v1{path}", method=method, **kwargs)
        _refused(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert _orders(db_session) == 0


# -------------------------------------------------------------------------- forged cursors


def _first_page_cursor(client: FlaskClient, user: Any, path: str) -> str:
    response = call(client, "GET", f"{path}{'&' if '?' in path else '?'}limit=1", user)
    assert response.status_code == 200, response.json
    cursor = response.json["data"]["pagination"]["nextCursor"]
    assert cursor
    return str(cursor)


def test_forged_cursors_are_refused(client: FlaskClient, app: Flask,
                                    db_session: Session) -> None:
    creator = factories.UserFactory()
    for _ in range(2):
        assert call(client, "POST", "/orders", creator, order_body()).status_code == 201
    provider = factories.UserFactory(provider=True, verified=True)
    real = _first_page_cursor(client, creator, "/orders?role=creator")
    ours = CursorCodec(app.extensions["taplive"].settings.secret_key)
    # Genuinely signed, but for the nearby search (sorted by distance, not time).
    distance = ours.encode_distance(12.5, uuid.uuid4())
    payload, signature = real.split(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    foreign = CursorCodec("not-our-secret").encode(*ours.decode(real))
    forged = {
        "not base64": "%%%!!!",
        "valid shape, bad signature": "eyJhIjoxfQ.c2lnbmF0dXJl",
        "tampered payload": f"{flipped}.{signature}",
        "signed with another secret": foreign,
        "a distance cursor on a time-ordered list": distance,
        "over-long": "A" * 5000 + ".B",
    }
    for label, cursor in forged.items():
        response = call(client, "GET", "/orders", creator, query_string={"cursor": cursor})
        assert response.status_code == 400, label
        assert response.json["error"]["code"] in ("INVALID_CURSOR", "VALIDATION_ERROR"), label
    # ... and a time cursor where a distance one belongs.
    response = call(client, "GET", "/orders/nearby", provider, query_string={
        "latitude": 40.7128, "longitude": -74.006, "cursor": real})
    _refused(response, 400, "INVALID_CURSOR")


def test_another_users_cursor_shows_only_the_callers_rows(client: FlaskClient,
                                                          db_session: Session) -> None:
    """Cursors are not scoped to a user: one is only a (time, id) boundary, and the list's
    query still filters by the caller, so a borrowed cursor pages the caller's own rows."""
    alice, bob = factories.UserFactory(), factories.UserFactory()
    for _ in range(2):
        assert call(client, "POST", "/orders", alice, order_body()).status_code == 201
    mine = call(client, "POST", "/orders", bob, order_body(title="bob's")).json["data"]
    cursor = _first_page_cursor(client, alice, "/orders?role=creator")
    response = call(client, "GET", "/orders", bob,
                    query_string={"cursor": cursor, "role": "creator"})
    assert response.status_code == 200, response.json
    ids = {item["id"] for item in response.json["data"]["items"]}
    assert ids <= {mine["order"]["id"]}


# ---------------------------------------------------------------------------- huge limits


@pytest.mark.parametrize("limit", [str(10**9), "-1", "0", "abc", "1e3", "1.5", "101",
                                   str(2**64)])
def test_a_limit_outside_1_to_100_is_refused(client: FlaskClient, db_session: Session,
                                             limit: str) -> None:
    creator = factories.UserFactory()
    response = call(client, "GET", "/orders", creator, query_string={"limit": limit})
    _refused(response, 400, "VALIDATION_ERROR")
    assert "limit" in response.json["error"]["details"]


# ------------------------------------------------------------------------ injection strings


@pytest.mark.parametrize("evil", ["' OR 1=1 --", '"; DROP TABLE orders; --',
                                  "<script>alert(1)</script>", "100% _done_ \\",
                                  "\u202eevil\u202c", "../../etc/passwd"])
def test_hostile_text_is_stored_and_returned_as_data(client: FlaskClient,
                                                     db_session: Session, evil: str) -> None:
    creator = factories.UserFactory()
    created = call(client, "POST", "/orders", creator,
                   order_body(title=evil, description=evil, requirements={evil: evil}))
    assert created.status_code == 201, created.json
    order_id = created.json["data"]["order"]["id"]
    got = call(client, "GET", f"/orders/{order_id}", creator)
    assert got.status_code == 200
    assert got.content_type == "application/json"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    order = got.json["data"]["order"]
    assert order["title"] == evil and order["description"] == evil
    assert order["requirements"] == {evil: evil}
    assert _orders(db_session) == 1  # the table is there, with just this row


def test_every_api_answer_forbids_content_sniffing(client: FlaskClient,
                                                   db_session: Session) -> None:
    """An error that echoes input (a validation message naming a field) is JSON too, and the
    browser is told not to guess otherwise."""
    for response in (client.get("/api/v1/orders/<script>"),
                     client.post("/api/v1/auth/login", json={"<b>": 1}),
                     client.get("/health")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.content_type == "application/json"


def test_like_wildcards_in_the_tag_filter_match_nothing_else(client: FlaskClient,
                                                             db_session: Session) -> None:
    """The API has no free-text search; the one text filter (``tag``) compares whole tags, so
    ``_`` is a literal character and ``%`` is refused by the tag rule."""
    creator = factories.UserFactory()
    assert call(client, "POST", "/orders", creator,
                order_body(tags=["abc"])).status_code == 201
    listed = call(client, "GET", "/orders", creator, query_string={"tag": "a_c"})
    assert listed.status_code == 200 and listed.json["data"]["items"] == []
    _refused(call(client, "GET", "/orders", creator, query_string={"tag": "%"}), 400,
             "VALIDATION_ERROR")


@pytest.mark.parametrize("path", ["/orders/..%2F..%2Fetc%2Fpasswd", "/orders/%E2%80%AE",
                                  "/orders/' OR 1=1 --", "/orders/%00",
                                  "/orders/\u0661\u0662\u0663",
                                  "/orders/00000000-0000-0000-0000-00000000000\u0661"])
def test_hostile_path_ids_are_a_404(client: FlaskClient, db_session: Session,
                                    path: str) -> None:
    creator = factories.UserFactory()
    _refused(call(client, "GET", path, creator), 404, "NOT_FOUND")


@pytest.mark.parametrize("value", ["abc\n", "abc\r\nSet-Cookie: a=b", "abc\rx"])
def test_crlf_in_the_request_id_is_not_echoed(client: FlaskClient, value: str) -> None:
    # Set in the WSGI environ directly: an HTTP server would refuse the line break itself.
    response = client.get("/health", environ_overrides={"HTTP_X_REQUEST_ID": value})
    assert response.status_code == 200
    echoed = response.headers["X-Request-ID"]
    assert "\n" not in echoed and "\r" not in echoed and len(echoed) == 32
    assert "Set-Cookie" not in response.headers
