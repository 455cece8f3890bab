"""Real concurrency on real PostgreSQL: parallel creates, racing accepts, racing retries."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from core.enums import ApplicationStatus
from db.models import Order, OrderApplication, User
from tests.api.orders_helpers import order_body
from tests.auth_helpers import auth_headers


def _post(app: Flask, path: str, user: User, body: Any,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    with app.test_client() as client:
        response = client.post(f"/api/v1{path}", json=body,
                               headers=auth_headers(user, app) | (headers or {}))
        return response.status_code, response.json


def _count(app: Flask, stmt: Any) -> int:
    with app.extensions["taplive"].db.transaction() as session:
        return int(session.scalar(stmt) or 0)


def test_ten_concurrent_creates_make_ten_orders(live_app: Flask,
                                                live_users: dict[str, User]) -> None:
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(
            lambda i: _post(live_app, "/orders", live_users["creator"],
                            order_body(title=f"Concurrent {i}")), range(10)))
    assert [status for status, _ in results] == [201] * 10
    assert _count(live_app, select(func.count(Order.id))) == 10


def test_two_simultaneous_accepts_one_wins(live_app: Flask,
                                           live_users: dict[str, User]) -> None:
    creator = live_users["creator"]
    status, body = _post(live_app, "/orders", creator, order_body())
    order_id = body["data"]["order"]["id"]
    app_ids = []
    for name in ("provider", "rival"):
        status, body = _post(live_app, f"/orders/{order_id}/applications", live_users[name], {})
        assert status == 201, body
        app_ids.append(body["data"]["application"]["id"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(
            lambda aid: _post(live_app, f"/orders/{order_id}/accept", creator,
                              {"applicationId": aid}), app_ids))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409], results
    loser = next(body for status, body in results if status == 409)
    assert loser["error"]["code"] in ("INVALID_STATE_TRANSITION", "CONCURRENT_UPDATE")
    accepted = _count(live_app, select(func.count(OrderApplication.id)).where(
        OrderApplication.order_id == order_id,
        OrderApplication.status == ApplicationStatus.ACCEPTED))
    assert accepted == 1


def test_racing_retries_with_one_key_create_one_order(live_app: Flask,
                                                      live_users: dict[str, User]) -> None:
    headers = {"Idempotency-Key": "race-1"}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(
            lambda _: _post(live_app, "/orders", live_users["creator"], order_body(), headers),
            range(4)))
    assert {status for status, _ in results} == {201}
    assert len({body["data"]["order"]["id"] for _, body in results}) == 1
    assert _count(live_app, select(func.count(Order.id))) == 1


def test_racing_refreshes_with_one_token_never_both_win(live_app: Flask,
                                                        live_users: dict[str, User]) -> None:
    """Rotation under the family row's lock: of eight simultaneous exchanges of one refresh
    token exactly one gets a new pair (the first to lock the row finds its token current); the
    rest are reuse, so the family ends (no grace)."""
    from tests.factories import PASSWORD

    with live_app.test_client() as client:
        login = client.post("/api/v1/auth/login", json={"email": live_users["creator"].email,
                                                        "password": PASSWORD})
    refresh = login.json["data"]["refreshToken"]

    def exchange(_: int) -> tuple[int, Any]:
        with live_app.test_client() as client:
            response = client.post("/api/v1/auth/refresh",
                                   headers={"Authorization": f"Bearer {refresh}"})
            return response.status_code, response.json

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(exchange, range(8)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [401] * 7, results
    # The race was reuse: even the winner's new refresh token is dead.
    for status, body in results:
        if status == 200:
            with live_app.test_client() as client:
                again = client.post("/api/v1/auth/refresh", headers={
                    "Authorization": f"Bearer {body['data']['refreshToken']}"})
            assert again.status_code == 401
