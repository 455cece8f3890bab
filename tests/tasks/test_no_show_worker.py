"""A provider no-show end to end on a real worker, Redis broker and PostgreSQL (issue 17): the
beat task, sent through the broker, cancels the order; the cancellation's follow-up releases
the card hold on the worker; the creator is notified through the outbox relay; the creator
re-opens the order, and its re-matching on the worker invites another provider, never
the one who did not show up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from flask import Flask
from sqlalchemy import select, update

from core.enums import OrderStatus
from db.models import (
    Notification,
    Order,
    OrderEvent,
    OrderMatch,
    PaymentEscrow,
    ProviderNoShow,
    User,
)
from tests.api.orders_helpers import call, order_body
from tests.waiting import poll as _wait

NYC = (40.7128, -74.0060)


def _api(app: Flask, method: str, path: str, user: User, body: Any = None) -> Any:
    with app.test_client() as client:
        return call(client, method, path, user, body)


def test_a_no_show_on_a_real_worker(live_app: Flask, live_worker: Celery,
                                    live_users: dict[str, User]) -> None:
    creator, provider = live_users["creator"], live_users["provider"]
    database = live_app.extensions["taplive"].db
    # Both providers are online next to the order (from the start: the worker's matching
    # index is refreshed at most every MATCHING_INDEX_MAX_STALENESS_S).
    for who in (provider, live_users["rival"]):
        assert _api(live_app, "PUT", "/providers/me/availability", who,
                    {"online": True}).status_code == 200
        assert _api(live_app, "PUT", "/providers/me/location", who,
                    {"latitude": NYC[0] + 0.001, "longitude": NYC[1]}).status_code == 200
    order = _api(live_app, "POST", "/orders", creator, order_body()).json["data"]["order"]
    oid = uuid.UUID(order["id"])
    bid = _api(live_app, "POST", f"/orders/{oid}/applications", provider, {})
    assert bid.status_code == 201, bid.json
    accepted = _api(live_app, "POST", f"/orders/{oid}/accept", creator,
                    {"applicationId": bid.json["data"]["application"]["id"],
                     "paymentMethodId": "pm_card_visa"})
    assert accepted.status_code == 200, accepted.json

    def escrow_state() -> str | None:
        with database.transaction() as session:
            return session.scalar(select(PaymentEscrow.state).where(
                PaymentEscrow.order_id == oid))

    assert _wait(lambda: escrow_state() == "authorized")
    # The provider never starts: acceptance two hours ago, well past window + grace.
    with database.transaction() as session:
        session.execute(update(Order).where(Order.id == oid).values(
            accepted_at=datetime.now(UTC) - timedelta(hours=2)))
    for _ in range(2):  # the beat tick, twice, through the broker
        live_worker.send_task("maintenance.cancel_no_shows")

    def released() -> bool:
        return escrow_state() == "released"

    assert _wait(released), escrow_state()

    def told() -> list[Any]:
        with database.transaction() as session:
            return list(session.scalars(select(Notification.payload).where(
                Notification.recipient_id == creator.id,
                Notification.event == "order:cancelled")))

    [payload] = _wait(told)
    assert payload["reason"] == "no_show"
    with database.transaction() as session:
        assert session.scalar(select(Order.status).where(Order.id == oid)) \
            is OrderStatus.CANCELLED
        assert len(session.scalars(select(ProviderNoShow).where(
            ProviderNoShow.order_id == oid)).all()) == 1
        assert len(session.scalars(select(OrderEvent).where(
            OrderEvent.order_id == oid, OrderEvent.event == "order:cancelled")).all()) == 1

    reopened = _api(live_app, "POST", f"/orders/{oid}/reopen", creator)
    assert reopened.status_code == 200, reopened.json
    assert reopened.json["data"]["order"]["status"] == "pending"

    def invited() -> list[uuid.UUID]:  # matching ran again on the worker
        with database.transaction() as session:
            return list(session.scalars(select(OrderMatch.provider_id).where(
                OrderMatch.order_id == oid)))

    # The rival is invited; the provider who did not show up is not.
    assert _wait(invited) == [live_users["rival"].id]
