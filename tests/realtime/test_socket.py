"""The real-time server as a client sees it: a real server process, real python-socketio
clients over WebSocket, a real Celery worker emitting, PostgreSQL and Redis underneath."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import socketio
from celery import Celery
from flask import Flask

from db.models import User
from tests import conftest as root
from tests.api.orders_helpers import order_body
from tests.auth_helpers import access_token
from tests.factories import PASSWORD
from tests.realtime.conftest import Recorder, api

NYC = (40.7128, -74.0060)
Clients = Callable[[], Recorder]


@pytest.fixture(autouse=True)
def _committed(live_app: Flask) -> Iterator[None]:
    yield  # live_app truncates what each test committed


def _refusal(make: Clients, **auth: Any) -> dict[str, Any]:
    client = make()
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(**auth)
    assert isinstance(client.connect_error, dict), client.connect_error
    data: dict[str, Any] = client.connect_error["data"]
    assert data["message"] == client.connect_error["message"]
    return data


def _online(app: Flask, user: User, metres_north: float = 100) -> None:
    api(app, "PUT", "/providers/me/availability", user, {"online": True})
    api(app, "PUT", "/providers/me/location", user,
        {"latitude": NYC[0] + metres_north / 111_195.0, "longitude": NYC[1]})


def _accepted_order(app: Flask, creator: User, provider: User) -> str:
    order_id = str(api(app, "POST", "/orders", creator, order_body())["order"]["id"])
    application = api(app, "POST", f"/orders/{order_id}/applications", provider, {})
    api(app, "POST", f"/orders/{order_id}/accept", creator,
        {"applicationId": application["application"]["id"]})
    return order_id


# ---------------------------------------------------------------------------------- connect
def test_a_connection_without_a_valid_token_is_refused(
        clients: Clients, live_app: Flask, live_users: dict[str, User]) -> None:
    assert _refusal(clients)["code"] == "UNAUTHORIZED"
    assert _refusal(clients, token="not-a-jwt")["code"] == "TOKEN_INVALID"
    expired = jwt.encode({"sub": str(live_users["creator"].id), "type": "access",
                          "jti": uuid.uuid4().hex, "role": "creator", "gen": 0,
                          "exp": datetime.now(UTC) - timedelta(minutes=1)},
                         root.TEST_SECRET + "-jwt", algorithm="HS256")
    assert _refusal(clients, token=expired)["code"] == "TOKEN_EXPIRED"
    token = access_token(live_users["creator"], live_app)
    with live_app.test_client() as http:
        assert http.post("/api/v1/auth/logout",
                         headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert _refusal(clients, token=token)["code"] == "TOKEN_REVOKED"
    # A refresh token is not an access token.
    refresh = live_app.extensions["taplive"].token_issuer.issue(live_users["creator"],
                                                                "refresh")
    assert _refusal(clients, token=refresh)["code"] == "TOKEN_INVALID"


def test_a_valid_token_connects(clients: Clients, live_app: Flask,
                                live_users: dict[str, User]) -> None:
    client = clients().connect(access_token(live_users["creator"], live_app))
    assert client.client.connected


def test_order_rooms_admit_participants_only(clients: Clients, live_app: Flask,
                                             live_users: dict[str, User]) -> None:
    order_id = _accepted_order(live_app, live_users["creator"], live_users["provider"])
    for name in ("creator", "provider"):
        client = clients().connect(access_token(live_users[name], live_app))
        assert client.call("join", {"orderId": order_id}) == {
            "ok": True, "room": f"order:{order_id}"}
    for name in ("rival", "admin"):
        client = clients().connect(access_token(live_users[name], live_app))
        refused = client.call("join", {"orderId": order_id})
        assert refused["ok"] is False and refused["error"]["code"] == "FORBIDDEN"
    client = clients().connect(access_token(live_users["rival"], live_app))
    for bad in (None, {}, {"orderId": "nope"}, {"orderId": 7}, "x", {"orderId": str(uuid.uuid4())}):
        answer = client.call("join", bad)
        assert answer["ok"] is False
        assert answer["error"]["code"] in ("VALIDATION_ERROR", "FORBIDDEN")


def test_an_invited_provider_joins_the_invitation_room_and_learns_the_order_is_taken(
        clients: Clients, live_app: Flask, live_users: dict[str, User],
        live_worker: Celery) -> None:
    _online(live_app, live_users["rival"], 300)
    order_id = str(api(live_app, "POST", "/orders", live_users["creator"],
                       order_body())["order"]["id"])
    rival = clients().connect(access_token(live_users["rival"], live_app))
    invitation = rival.wait_for("order:created", lambda a: a[0]["orderId"] == order_id)
    assert invitation[0]["payload"]["order"]["id"] == order_id
    assert rival.call("join", {"orderId": order_id}) == {
        "ok": True, "room": f"order:{order_id}:invited"}
    application = api(live_app, "POST", f"/orders/{order_id}/applications",
                      live_users["provider"], {})
    api(live_app, "POST", f"/orders/{order_id}/accept", live_users["creator"],
        {"applicationId": application["application"]["id"]})
    taken = rival.wait_for("order:accepted", lambda a: a[0]["orderId"] == order_id)
    assert taken[0]["payload"]["status"] == "accepted"
    assert "location" not in json.dumps(taken[0]["payload"].get("data", {}))


# ----------------------------------------------------------------------------------- events
def test_an_api_call_reaches_the_socket_through_a_real_worker(
        clients: Clients, live_app: Flask, live_users: dict[str, User],
        live_worker: Celery) -> None:
    creator = clients().connect(access_token(live_users["creator"], live_app))
    provider = clients().connect(access_token(live_users["provider"], live_app))
    _online(live_app, live_users["provider"])
    order_id = str(api(live_app, "POST", "/orders", live_users["creator"],
                       order_body())["order"]["id"])
    # The invitation: the spec's order:created, with the REST projection of the order.
    invitation, offset = provider.wait_for("order:created",
                                           lambda a: a[0]["orderId"] == order_id)
    rest = api(live_app, "GET", f"/orders/{order_id}", live_users["provider"])["order"]
    assert invitation["payload"]["order"]["id"] == rest["id"]
    assert {k: invitation["payload"]["order"][k] for k in ("title", "status", "baseAmount")} \
        == {k: rest[k] for k in ("title", "status", "baseAmount")}
    assert invitation["id"] and invitation["at"] and isinstance(offset, str)
    assert invitation["notificationId"]
    # The creator's own sessions hear of the order and of its matching.
    creator.wait_for("order:created", lambda a: a[0]["orderId"] == order_id)
    matched = creator.wait_for("order:matched", lambda a: a[0]["orderId"] == order_id)
    assert matched[0]["payload"]["invited"] == 1
    # An application reaches the creator; its acceptance reaches the provider.
    application = api(live_app, "POST", f"/orders/{order_id}/applications",
                      live_users["provider"], {})
    creator.wait_for("application:created", lambda a: a[0]["orderId"] == order_id)
    api(live_app, "POST", f"/orders/{order_id}/accept", live_users["creator"],
        {"applicationId": application["application"]["id"]})
    accepted = provider.wait_for("order:accepted", lambda a: a[0]["orderId"] == order_id)
    assert accepted[0]["payload"]["order"]["providerId"] == str(live_users["provider"].id)
    # Every pushed event is also a stored notification the client can list.
    listed = api(live_app, "GET", "/notifications?limit=100", live_users["provider"])
    assert {n["id"] for n in listed["items"]} >= {invitation["id"], accepted[0]["id"]}


def test_a_revoked_tokens_socket_is_cut_within_a_second(
        clients: Clients, live_app: Flask, live_users: dict[str, User]) -> None:
    token = access_token(live_users["creator"], live_app)
    other = clients().connect(access_token(live_users["provider"], live_app))
    client = clients().connect(token)
    with live_app.test_client() as http:
        assert http.post("/api/v1/auth/logout",
                         headers={"Authorization": f"Bearer {token}"}).status_code == 200
    started = time.monotonic()
    ended = client.wait_for("session:ended", timeout=3)
    assert ended[0]["code"] == "TOKEN_REVOKED"
    deadline = time.monotonic() + 3
    while client.client.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not client.client.connected and time.monotonic() - started < 1.0
    assert other.client.connected  # somebody else's socket stays


def test_logout_all_cuts_every_socket_of_the_account(
        clients: Clients, live_app: Flask, live_users: dict[str, User]) -> None:
    sockets = [clients().connect(access_token(live_users["provider"], live_app))
               for _ in range(2)]
    api(live_app, "POST", "/auth/logout-all", live_users["provider"])
    for client in sockets:
        assert client.wait_for("session:ended", timeout=3)[0]["code"] == "TOKEN_REVOKED"


def test_a_reused_refresh_token_cuts_the_sockets_of_that_sign_in_only(
        clients: Clients, live_app: Flask, live_users: dict[str, User]) -> None:
    email = live_users["creator"].email
    with live_app.test_client() as http:
        def login() -> dict[str, str]:
            response = http.post("/api/v1/auth/login",
                                 json={"email": email, "password": PASSWORD})
            assert response.status_code == 200, response.json
            tokens: dict[str, str] = response.json["data"]
            return tokens

        def refresh(token: str) -> int:
            return http.post("/api/v1/auth/refresh",
                             headers={"Authorization": f"Bearer {token}"}).status_code

        stolen, elsewhere = login(), login()
        client = clients().connect(stolen["accessToken"])
        bystander = clients().connect(elsewhere["accessToken"])
        assert refresh(stolen["refreshToken"]) == 200
        assert refresh(stolen["refreshToken"]) == 401  # reuse: the family is revoked
    assert client.wait_for("session:ended", timeout=3)[0]["code"] == "TOKEN_REVOKED"
    time.sleep(live_app.extensions["taplive"].settings.realtime_revocation_check_s * 2)
    assert bystander.client.connected  # the same account's other sign-in keeps its socket


# --------------------------------------------------------------------------------- recovery
def test_a_client_that_reconnects_receives_what_it_missed(
        clients: Clients, live_app: Flask, live_users: dict[str, User],
        live_worker: Celery) -> None:
    creator = live_users["creator"]
    first = clients().connect(access_token(creator, live_app))
    order_id = str(api(live_app, "POST", "/orders", creator, order_body())["order"]["id"])
    _, offset = first.wait_for("order:created", lambda a: a[0]["orderId"] == order_id)
    first.close()
    # Missed while away: two applications.
    missed = set()
    for name in ("provider", "rival"):
        missed.add(api(live_app, "POST", f"/orders/{order_id}/applications", live_users[name],
                       {})["application"]["id"])
    api_wait = time.monotonic() + 10
    while time.monotonic() < api_wait and len([
            n for n in api(live_app, "GET", "/notifications?limit=50", creator)["items"]
            if n["event"] == "application:created"]) < 2:
        time.sleep(0.05)
    again = clients().connect(access_token(creator, live_app), offset=offset)
    again.wait_for("application:created", lambda _: len(again.named("application:created")) >= 2)
    replayed = {args[0]["payload"]["applicationId"] for args in again.named("application:created")}
    assert replayed == missed
    # Nothing before the offset comes again, and nothing is told to catch up.
    assert not [a for a in again.named("order:created") if a[0]["orderId"] == order_id]
    assert again.named("sync:required") == []


def test_an_offset_older_than_the_window_is_told_to_catch_up(
        clients: Clients, live_app: Flask, live_users: dict[str, User]) -> None:
    old = f"{int((time.time() - 3600) * 1000)}-0"
    client = clients().connect(access_token(live_users["creator"], live_app), offset=old)
    told = client.wait_for("sync:required")
    assert told[0]["notifications"] == "/api/v1/notifications"
    garbage = clients().connect(access_token(live_users["creator"], live_app), offset="x" * 70)
    assert garbage.wait_for("sync:required")


# --------------------------------------------------------------------------------- location
def test_a_providers_position_over_the_socket_reaches_the_order_room(
        clients: Clients, live_app: Flask, live_users: dict[str, User],
        live_worker: Celery) -> None:
    order_id = _accepted_order(live_app, live_users["creator"], live_users["provider"])
    creator = clients().connect(access_token(live_users["creator"], live_app))
    assert creator.call("join", {"orderId": order_id})["ok"] is True
    outsider = clients().connect(access_token(live_users["rival"], live_app))
    provider = clients().connect(access_token(live_users["provider"], live_app))
    ack = provider.call("location:update", {"latitude": NYC[0], "longitude": NYC[1],
                                            "accuracy": 5})
    assert ack["ok"] is True and ack["stored"] is True
    update = creator.wait_for("location:updated", lambda a: a[0]["orderId"] == order_id)
    assert (update[0]["latitude"], update[0]["longitude"]) == NYC
    assert update[0]["providerId"] == str(live_users["provider"].id)
    # The geofence (the same rule as REST): the first fix inside is an entry.
    creator.wait_for("location:geofence_entered", lambda a: a[0]["orderId"] == order_id)
    # Stored where REST reads it.
    mine = api(live_app, "GET", "/providers/me/availability", live_users["provider"])
    assert mine["location"]["latitude"] == NYC[0]
    time.sleep(0.3)
    assert outsider.named("location:updated") == []


def test_a_finished_orders_room_is_closed(
        clients: Clients, live_app: Flask, live_users: dict[str, User],
        live_worker: Celery) -> None:
    order_id = _accepted_order(live_app, live_users["creator"], live_users["provider"])
    creator = clients().connect(access_token(live_users["creator"], live_app))
    assert creator.call("join", {"orderId": order_id})["ok"] is True
    notifier = live_app.extensions["taplive"].notifier
    notifier.emit("probe", {"n": 1}, room=f"order:{order_id}")
    creator.wait_for("probe")
    api(live_app, "POST", f"/orders/{order_id}/cancel", live_users["creator"],
        {"reason": "changed my mind"})
    creator.wait_for("order:cancelled", lambda a: a[0]["orderId"] == order_id)
    time.sleep(0.3)
    notifier.emit("probe", {"n": 2}, room=f"order:{order_id}")
    time.sleep(0.5)
    assert [a[0]["n"] for a in creator.named("probe")] == [1]
    # Its own room still works: the socket was only taken out of the order's.
    notifier.emit("probe", {"n": 3}, room=f"user:{live_users['creator'].id}")
    creator.wait_for("probe", lambda a: a[0]["n"] == 3)


@pytest.mark.parametrize("body, field", [
    ({"latitude": 91, "longitude": 0}, "latitude"),
    ({"latitude": 0}, "longitude"),
    ({"latitude": "x", "longitude": 0}, "latitude"),
    ({"latitude": 0, "longitude": 0, "accuracy": -1}, "accuracy"),
    ({"latitude": 0, "longitude": 0, "extra": 1}, "extra"),
    ({"latitude": 0, "longitude": 0, "recordedAt": "2999-01-01T00:00:00+00:00"}, "recordedAt"),
])
def test_bad_positions_over_the_socket_get_the_rest_answer(
        clients: Clients, live_app: Flask, live_users: dict[str, User],
        body: dict[str, Any], field: str) -> None:
    provider = clients().connect(access_token(live_users["provider"], live_app))
    answer = provider.call("location:update", body)
    assert answer["ok"] is False and answer["error"]["code"] == "VALIDATION_ERROR"
    assert field in answer["error"]["details"]


def test_only_providers_report_positions_and_not_too_often(
        clients: Clients, live_app: Flask, live_users: dict[str, User]) -> None:
    creator = clients().connect(access_token(live_users["creator"], live_app))
    assert creator.call("location:update", {"latitude": 0, "longitude": 0})["error"][
        "code"] == "FORBIDDEN"
    provider = clients().connect(access_token(live_users["provider"], live_app))
    answers = [provider.call("location:update", {"latitude": 0, "longitude": 0})
               for _ in range(8)]
    assert [a["ok"] for a in answers].count(True) == 5
    assert answers[-1]["error"]["code"] == "RATE_LIMITED"


# ------------------------------------------------------------------------------------- chat
def test_a_chat_message_reaches_both_parties_sockets(
        clients: Clients, live_app: Flask, live_users: dict[str, User],
        live_worker: Celery) -> None:
    order_id = _accepted_order(live_app, live_users["creator"], live_users["provider"])
    sender = clients().connect(access_token(live_users["creator"], live_app))
    receiver = clients().connect(access_token(live_users["provider"], live_app))
    outsider = clients().connect(access_token(live_users["rival"], live_app))
    posted = api(live_app, "POST", f"/orders/{order_id}/messages", live_users["creator"],
                 {"body": "I am at the north gate"})["message"]
    received = receiver.wait_for("message:received", lambda a: a[0]["orderId"] == order_id)
    assert received[0]["payload"]["message"] == posted
    sent = sender.wait_for("message:sent", lambda a: a[0]["orderId"] == order_id)
    assert sent[0]["payload"]["message"]["id"] == posted["id"]
    assert receiver.named("message:sent") == [] and sender.named("message:received") == []
    time.sleep(0.2)
    assert not [e for e, _ in outsider.events if e.startswith("message:")]
    # A stranger cannot post (the order is hidden from them, as everywhere in the API).
    answer = api(live_app, "POST", f"/orders/{order_id}/messages", live_users["rival"],
                 {"body": "hi"}, expect=404)
    assert answer["error"]["code"] == "NOT_FOUND"
