"""Orders that hang (issue 17, ``domain/overdue.py``): no-shows, orders live too long, disputes
nobody resolves. Each beat task runs twice (the second run must change nothing), on
PostgreSQL, with time moved by freezegun; the money follows through the same commands the
follow-up tasks run, and every currency's ledger still sums to zero."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import (
    Order,
    OrderEvent,
    OutboxMessage,
    PaymentTransaction,
    ProviderNoShow,
    StreamSession,
    User,
)
from db.queries import matching as match_queries
from db.queries import payments as payment_queries
from domain import overdue
from domain.payments import capture, holds
from domain.realtime import OutboxEvent, route
from domain.stream_sessions import StreamRules
from matching import Candidates, ProviderSignals, rank
from services import Payments
from tasks.events import FOLLOW_UPS
from tests.api.orders_helpers import call
from tests.payments.conftest import (
    accept,
    accepted,
    application_statuses,
    deliver,
    escrow_of,
    offer,
)


def _task(app: Flask, name: str):  # type: ignore[no-untyped-def]
    return app.extensions["celery"].tasks[name]


def _order(session: Session, order_id: str | uuid.UUID) -> Order:
    session.expire_all()
    order = session.get(Order, uuid.UUID(str(order_id)))
    assert order is not None
    return order


def _outbox(session: Session, order_id: uuid.UUID, topic: str) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).where(
        OutboxMessage.aggregate_id == str(order_id), OutboxMessage.topic == topic)))


def _recipients(session: Session, row: OutboxMessage) -> set[uuid.UUID]:
    event = OutboxEvent(row.id, row.topic, row.aggregate_id, row.payload, row.created_at)
    return {d.recipient_id for d in route(session, event).deliveries}


def _ledger_sums_to_zero(session: Session) -> None:
    sums: dict[str, int] = defaultdict(int)
    for _account, currency, balance in payment_queries.ledger_balances(session):
        sums[currency] += balance
    assert all(total == 0 for total in sums.values()), sums


def _stream_ran(session: Session, order_id: uuid.UUID, seconds: int = 600) -> None:
    stream = session.scalars(select(StreamSession).where(
        StreamSession.order_id == order_id)).one()
    stream.started_at = datetime.now(UTC) - timedelta(hours=1)
    stream.published_seconds = seconds
    session.commit()


# ------------------------------------------------------------------------------- no-show
def test_a_no_show_is_cancelled_released_counted_and_reopened(
        app: Flask, client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    accepted_at = _order(db_session, oid).accepted_at
    assert accepted_at is not None
    no_shows = _task(app, "maintenance.cancel_no_shows")
    window = timedelta(minutes=60 + 15)  # ORDER_NO_SHOW_WINDOW_MINUTES + GRACE (defaults)
    with freeze_time(accepted_at + window - timedelta(minutes=1)):
        assert no_shows.apply().get() == 0  # not due yet
    assert _order(db_session, oid).status is OrderStatus.ACCEPTED
    later = accepted_at + window + timedelta(minutes=1)
    with freeze_time(later):
        assert no_shows.apply().get() == 1
        assert no_shows.apply().get() == 0  # a second tick changes nothing
    cancelled = _order(db_session, oid)
    assert (cancelled.status, cancelled.cancellation_reason) == (OrderStatus.CANCELLED,
                                                                  "no_show")
    rows = db_session.scalars(select(ProviderNoShow).where(ProviderNoShow.order_id == oid)).all()
    assert [r.provider_id for r in rows] == [people["provider"].id]
    # Never matched to this order again, by the batch re-match either.
    assert (oid, people["provider"].id) in match_queries.refused_pairs(db_session, [oid])
    # The creator (and the provider) are told, through the outbox and the routing table.
    [event] = _outbox(db_session, oid, "order:cancelled")
    assert event.payload["reason"] == "no_show"
    assert people["creator"].id in _recipients(db_session, event)
    assert FOLLOW_UPS["order:cancelled"] == ("payments.release",)

    # Re-opening waits for the hold to be released (the cancellation's follow-up).
    response = call(client, "POST", f"/orders/{oid}/reopen", people["creator"])
    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "PAYMENT_RELEASE_PENDING"
    for _ in range(2):  # the release follow-up, redelivered
        holds.release(db_session, pay.gateway, pay.config, oid, datetime.now(UTC))
        db_session.commit()
    assert escrow_of(db_session, oid).state == "released"
    assert len([op for op in pay.gateway.operations()  # type: ignore[attr-defined]
                if op["op"] == "cancel"]) == 1

    # Only the creator may re-open; the provider learns nothing more than the state machine.
    assert call(client, "POST", f"/orders/{oid}/reopen",
                people["stranger"]).status_code == 404
    assert call(client, "POST", f"/orders/{oid}/reopen",
                people["provider"]).status_code == 403
    response = call(client, "POST", f"/orders/{oid}/reopen", people["creator"])
    assert response.status_code == 200, response.json
    reopened = response.json["data"]["order"]
    assert reopened["status"] == "pending" and reopened["providerId"] is None
    assert FOLLOW_UPS["order:reopened"] == ("matching.match_order",)
    assert len(_outbox(db_session, oid, "order:reopened")) == 1
    # A second re-open is refused by the state machine.
    assert call(client, "POST", f"/orders/{oid}/reopen",
                people["creator"]).status_code == 409
    # The rival's application (rejected by the first acceptance) is pending again; the
    # no-show's is rejected, so that provider cannot be accepted again.
    assert application_statuses(db_session, str(oid)) == ["pending", "rejected"]
    rival_app = call(client, "GET", f"/orders/{oid}/applications", people["creator"]
                     ).json["data"]["items"]
    rival_id = next(a["id"] for a in rival_app if a["status"] == "pending")
    response = accept(client, people, str(oid), rival_id)
    assert response.status_code == 200, response.json
    escrow = escrow_of(db_session, oid)
    assert (escrow.state, escrow.payee_id, escrow.hold_generation) == (
        "authorized", people["rival"].id, 2)
    [txn] = db_session.scalars(select(PaymentTransaction).where(
        PaymentTransaction.order_id == oid)).all()  # one escrow, one transaction, reused
    assert txn.payee_id == people["rival"].id
    _ledger_sums_to_zero(db_session)

    # The no-show lowers the provider's completion rate, so their ranking.
    assert match_queries.track_record(db_session, people["provider"].id)[1] == 0.0
    signals = ProviderSignals.from_arrays(2, verified=[1, 1], completion_rate=[0.0, np.nan])
    ranked = rank(Candidates(np.arange(2), np.array(["noshow", "new"], dtype=object),
                             np.array([500.0, 500.0])), signals)
    assert [r.provider_id for r in ranked] == ["new", "noshow"]


def test_a_scheduled_order_waits_for_its_time(
        app: Flask, client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    at = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    order = accepted(client, people, scheduledFor=at.isoformat())
    no_shows = _task(app, "maintenance.cancel_no_shows")
    with freeze_time(at + timedelta(minutes=14)):  # acceptance + window long passed
        assert no_shows.apply().get() == 0
    with freeze_time(at + timedelta(minutes=16)):
        assert no_shows.apply().get() == 1
        assert no_shows.apply().get() == 0
    assert _order(db_session, order["id"]).cancellation_reason == "no_show"


def test_only_a_no_show_can_be_reopened(client: FlaskClient, people: dict[str, User],
                                         pay: Payments, db_session: Session) -> None:
    order = accepted(client, people)
    assert call(client, "POST", f"/orders/{order['id']}/cancel", people["creator"],
                {"reason": "changed my mind"}).status_code == 200
    holds.release(db_session, pay.gateway, pay.config, uuid.UUID(order["id"]),
                  datetime.now(UTC))
    db_session.commit()
    response = call(client, "POST", f"/orders/{order['id']}/reopen", people["creator"])
    assert response.status_code == 409
    assert response.json["error"]["code"] == "NOT_REOPENABLE"


# ------------------------------------------------------------------------ overdue active
def _make_active(session: Session, order_id: str, started_ago: timedelta) -> uuid.UUID:
    order = _order(session, order_id)
    order.status = OrderStatus.ACTIVE
    order.started_at = datetime.now(UTC) - started_ago
    session.commit()
    return order.id


def test_an_overdue_active_order_is_completed_by_time_when_no_proof_is_required(
        app: Flask, client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    old = _make_active(db_session, accepted(client, people)["id"], timedelta(hours=7))
    task = _task(app, "maintenance.settle_overdue_active")
    assert app.extensions["taplive"].settings.stream_proof_required_to_complete is False
    assert task.apply().get() == {"completed": 1}
    assert task.apply().get() == {}
    assert _order(db_session, old).status is OrderStatus.COMPLETED
    assert len(_outbox(db_session, old, "order:completed")) == 1  # -> payments.capture


def test_an_overdue_active_order_is_completed_if_it_streamed_else_escalated(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    ran = _make_active(db_session, accepted(client, people)["id"], timedelta(hours=7))
    _stream_ran(db_session, ran)
    people["provider"], people["rival"] = people["rival"], people["provider"]
    silent = _make_active(db_session, accepted(client, people)["id"], timedelta(hours=7))
    rules = overdue.OverdueRules.from_settings(
        client.application.extensions["taplive"].settings)
    streams = StreamRules("s" * 32, "rtmp://x", "http://x", True, 60, 30)
    now = datetime.now(UTC)
    outcomes = []
    for _ in range(2):
        for oid in (ran, silent):
            outcomes.append(overdue.settle_overdue_active(db_session, oid, rules, streams, now))
            db_session.commit()
    assert outcomes == ["completed", "escalated", "nothing", "nothing"]
    assert _order(db_session, ran).status is OrderStatus.COMPLETED
    escalated = _order(db_session, silent)
    assert (escalated.status, escalated.escalation) == (OrderStatus.ACTIVE, "active_overdue")
    [event] = _outbox(db_session, silent, "order:escalated")
    assert _recipients(db_session, event) == {people["admin"].id}


# ------------------------------------------------------------------------ overdue disputes
def _disputed(client: FlaskClient, people: dict[str, User], pay: Payments,
              session: Session) -> uuid.UUID:
    oid = uuid.UUID(accepted(client, people, proposed="30.00")["id"])
    deliver(session, oid, ago=timedelta(hours=1))
    capture.capture(session, pay.gateway, pay.config, oid, datetime.now(UTC))
    session.commit()
    response = call(client, "POST", f"/orders/{oid}/dispute", people["creator"],
                    {"reason": "nothing was shown"})
    assert response.status_code == 200, response.json
    return oid


def test_an_old_dispute_is_escalated_then_resolved_by_the_default_rule(
        app: Flask, client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    silent = _disputed(client, people, pay, db_session)
    people["provider"], people["rival"] = people["rival"], people["provider"]
    streamed = _disputed(client, people, pay, db_session)
    _stream_ran(db_session, streamed)
    disputed_at = _order(db_session, silent).disputed_at
    assert disputed_at is not None
    task = _task(app, "maintenance.settle_overdue_disputes")
    with freeze_time(disputed_at + timedelta(days=2)):
        assert task.apply().get() == {}
    with freeze_time(disputed_at + timedelta(days=4)):
        assert task.apply().get() == {"escalated": 2}
        assert task.apply().get() == {}
    [event] = _outbox(db_session, silent, "order:escalated")
    assert _recipients(db_session, event) == {people["admin"].id}
    with freeze_time(disputed_at + timedelta(days=15)):
        assert task.apply().get() == {"resolved:refund": 1, "resolved:release": 1}
        assert task.apply().get() == {}
    assert _order(db_session, silent).status is OrderStatus.CANCELLED
    assert _order(db_session, streamed).status is OrderStatus.COMPLETED
    history = db_session.scalars(select(OrderEvent).where(
        OrderEvent.order_id == silent, OrderEvent.event == "order:resolved")).one()
    assert history.actor_role == "system" and history.actor_id is None
    # The refund resolution's follow-up (payments.apply_resolution), redelivered.
    for _ in range(2):
        capture.apply_resolution(db_session, pay.gateway, pay.config, silent,
                                 datetime.now(UTC))
        db_session.commit()
    escrow = escrow_of(db_session, silent)
    assert (escrow.state, escrow.refunded_minor) == ("refunded", 3000)
    _ledger_sums_to_zero(db_session)


def test_an_order_awaiting_the_creators_3ds_is_not_the_providers_no_show(
        app: Flask, client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order, app_id = offer(client, people)
    waiting = accept(client, people, order["id"], app_id, "pm_card_authenticationRequired")
    assert waiting.status_code == 202, waiting.json
    assert escrow_of(db_session, order["id"]).state == "awaiting_authentication"
    accepted_at = _order(db_session, order["id"]).accepted_at
    assert accepted_at is not None
    with freeze_time(accepted_at + timedelta(hours=2)):
        assert _task(app, "maintenance.cancel_no_shows").apply().get() == 0
    assert _order(db_session, order["id"]).status is OrderStatus.ACCEPTED
