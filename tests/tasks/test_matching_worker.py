"""The matching chain on a real Celery worker, Redis and PostgreSQL: POST /orders -> outbox ->
matching.match_order -> stored invitations -> notifications.notify_invited -> notification
records; offline providers drop out; the batch re-match is idempotent; auto-dispatch moves on
when an offer expires."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from flask import Flask
from sqlalchemy import func, select

from db.models import Notification, OrderAssignment, OrderMatch, OutboxMessage, User
from tests.api.orders_helpers import order_body
from tests.auth_helpers import auth_headers
from tests.waiting import poll as _wait

NYC = (40.7128, -74.0060)


def _api(app: Flask, method: str, path: str, user: User, body: Any = None) -> Any:
    with app.test_client() as client:
        response = client.open(f"/api/v1{path}", method=method, json=body,
                               headers=auth_headers(user, app))
    assert response.status_code < 300, response.json
    return response.json["data"]


def _online(app: Flask, user: User, metres_north: float) -> None:
    _api(app, "PUT", "/providers/me/availability", user, {"online": True})
    _api(app, "PUT", "/providers/me/location", user,
         {"latitude": NYC[0] + metres_north / 111_195.0, "longitude": NYC[1]})


def _post_order(app: Flask, creator: User, **overrides: Any) -> str:
    return str(_api(app, "POST", "/orders", creator, order_body(**overrides))["order"]["id"])


def _rows(app: Flask, model: Any, **where: Any) -> list[Any]:
    with app.extensions["taplive"].db.transaction() as session:
        stmt = select(model).filter_by(**where)
        return list(session.scalars(stmt))


def test_api_call_to_stored_invitations_and_notifications(
        live_app: Flask, live_users: dict[str, User], live_worker: Celery) -> None:
    _online(live_app, live_users["provider"], 100)
    _online(live_app, live_users["rival"], 300)
    order_id = _post_order(live_app, live_users["creator"])
    notes = _wait(lambda: len(_rows(live_app, Notification, order_id=order_id,
                                    kind="order_invitation")) == 2 and
                  _rows(live_app, Notification, order_id=order_id, kind="order_invitation"))
    assert notes, "the chain never produced the notifications"
    matches = sorted(_rows(live_app, OrderMatch, order_id=order_id), key=lambda m: m.rank)
    assert [(m.provider_id, m.rank, m.source) for m in matches] == [
        (live_users["provider"].id, 1, "order_created"), (live_users["rival"].id, 2,
                                                          "order_created")]
    assert {n.recipient_id for n in notes} == {live_users["provider"].id, live_users["rival"].id}
    assert all(n.payload["event"] == "order:created" for n in notes)
    # Pushed right after the notify task's commit (to the providers' sockets).
    assert _wait(lambda: all(n.pushed_at for n in _rows(live_app, Notification,
                                                         order_id=order_id)))
    # The creator was told too: the order exists, and it was matched.
    assert _wait(lambda: {n.event for n in _rows(live_app, Notification, order_id=order_id,
                                                 recipient_id=live_users["creator"].id)}
                 == {"order:created", "order:matched"})
    # Every outbox row was published by the relay, the chain's follow-ups included.
    assert _wait(lambda: all(r.published_at for r in _rows(live_app, OutboxMessage)))


def test_a_provider_going_offline_disappears_from_new_matches(
        live_app: Flask, live_users: dict[str, User], live_worker: Celery) -> None:
    _online(live_app, live_users["provider"], 100)
    _online(live_app, live_users["rival"], 300)
    first = _post_order(live_app, live_users["creator"])
    assert _wait(lambda: len(_rows(live_app, OrderMatch, order_id=first)) == 2)
    _api(live_app, "PUT", "/providers/me/availability", live_users["provider"],
         {"online": False})
    second = _post_order(live_app, live_users["creator"])
    assert _wait(lambda: _rows(live_app, Notification, order_id=second))
    assert [m.provider_id for m in _rows(live_app, OrderMatch, order_id=second)] == [
        live_users["rival"].id]


def test_the_batch_rematch_is_idempotent(live_app: Flask, live_users: dict[str, User],
                                         live_worker: Celery) -> None:
    first = _post_order(live_app, live_users["creator"])  # nobody online yet: no matches
    second = _post_order(live_app, live_users["creator"],
                         location={"latitude": NYC[0] + 0.009, "longitude": NYC[1]})
    assert _wait(lambda: all(r.published_at for r in _rows(live_app, OutboxMessage)))
    time.sleep(0.3)  # let the (empty) match tasks finish
    assert _rows(live_app, OrderMatch) == []
    _online(live_app, live_users["provider"], 100)
    _online(live_app, live_users["rival"], 900)

    def run() -> dict[str, Any]:
        result = live_worker.send_task("matching.rematch_all", ignore_result=False)
        report: dict[str, Any] = result.get(timeout=30)
        return report

    report = run()
    assert (report["orders"], report["providers"], report["matched"]) == (2, 2, 2)
    assert (report["new"], report["invitations"]) == (2, 2)
    assigned = {a.order_id: a.provider_id for a in _rows(live_app, OrderAssignment)}
    assert {str(k): v for k, v in assigned.items()} == {
        first: live_users["provider"].id, second: live_users["rival"].id}
    assert _wait(lambda: len(_rows(live_app, Notification, kind="order_invitation")) == 2)
    outbox = len(_rows(live_app, OutboxMessage))

    again = run()
    assert (again["unchanged"], again["changed"], again["new"], again["dropped"]) == (2, 0, 0, 0)
    assert again["invitations"] == 0
    assert {a.order_id: a.provider_id for a in _rows(live_app, OrderAssignment)} == assigned
    assert len(_rows(live_app, OrderMatch)) == 2
    assert len(_rows(live_app, Notification, kind="order_invitation")) == 2
    assert len(_rows(live_app, OutboxMessage)) == outbox


def test_auto_dispatch_offer_moves_on_when_it_expires(
        live_app: Flask, live_users: dict[str, User], live_worker: Celery) -> None:
    live_app.extensions["taplive"].settings.matching_offer_ttl_s = 1
    _online(live_app, live_users["provider"], 100)
    _online(live_app, live_users["rival"], 300)
    order_id = _post_order(live_app, live_users["creator"],
                           requirements={"autoDispatch": True})

    def statuses() -> dict[Any, str]:
        return {m.provider_id: m.status for m in _rows(live_app, OrderMatch, order_id=order_id)}

    assert _wait(lambda: statuses().get(live_users["provider"].id) == "offered")
    # Nobody answers: the countdown task lapses the offer and offers the next candidate.
    assert _wait(lambda: statuses() == {live_users["provider"].id: "expired",
                                        live_users["rival"].id: "offered"}, timeout=15)
    offer = next(m for m in _rows(live_app, OrderMatch, order_id=order_id)
                 if m.provider_id == live_users["rival"].id)
    assert _wait(lambda: _rows(live_app, Notification, match_id=offer.id, kind="dispatch_offer"))
    order = _api(live_app, "POST", f"/providers/me/invitations/{offer.id}/accept",
                 live_users["rival"])["order"]
    assert order["status"] == "accepted" and order["providerId"] == str(live_users["rival"].id)
    time.sleep(1.5)  # the rival's countdown fires after acceptance and must change nothing
    assert statuses()[live_users["rival"].id] == "accepted"
    with live_app.extensions["taplive"].db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(OrderMatch).where(
            OrderMatch.status == "offered")) == 0
