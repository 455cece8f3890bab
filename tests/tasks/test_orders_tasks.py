"""Order expiry: pending orders past their time end as cancelled with reason ``expired``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from freezegun import freeze_time
from sqlalchemy import select

from core.enums import OrderStatus
from db.models import Order, OrderEvent, User
from tests import factories

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_expiry_cancels_stale_orders_once(live_app: Flask, live_users: dict[str, User]) -> None:
    database = live_app.extensions["taplive"].db
    creator_id = live_users["creator"].id
    with database.transaction() as session:
        factories.bind(session)
        try:
            with freeze_time(NOW - timedelta(hours=25)):
                stale = factories.OrderFactory(creator_id=creator_id)
            with freeze_time(NOW - timedelta(hours=2)):
                missed = factories.OrderFactory(creator_id=creator_id,
                                                scheduled_for=NOW - timedelta(hours=1))
                fresh = factories.OrderFactory(creator_id=creator_id)
                upcoming = factories.OrderFactory(creator_id=creator_id,
                                                  scheduled_for=NOW + timedelta(hours=1))
        finally:
            factories.bind(None)
        ids = {o.id for o in (stale, missed)}, {o.id for o in (fresh, upcoming)}
    expire_orders = live_app.extensions["celery"].tasks["maintenance.expire_orders"]
    with freeze_time(NOW):
        assert expire_orders.apply().get() == 2
        assert expire_orders.apply().get() == 0  # a second tick changes nothing
    with database.transaction() as session:
        for order_id in ids[0]:
            order = session.get(Order, order_id)
            assert order is not None and order.status is OrderStatus.CANCELLED
            assert order.cancellation_reason == "expired"
        for order_id in ids[1]:
            assert session.get(Order, order_id).status is OrderStatus.PENDING  # type: ignore[union-attr]
        events = session.scalars(select(OrderEvent.event).where(
            OrderEvent.event == "order:expired")).all()
        assert len(events) == 2


def test_expired_idempotency_keys_are_purged_once(live_app: Flask) -> None:
    from db.models import IdempotencyRecord

    database = live_app.extensions["taplive"].db
    with database.transaction() as session:
        for key, expires in (("old", NOW - timedelta(seconds=1)),
                             ("live", NOW + timedelta(hours=1))):
            session.add(IdempotencyRecord(scope="user:x", key=key, request_hash="h",
                                          status_code=201, response_body={}, created_at=NOW,
                                          expires_at=expires))
    purge = live_app.extensions["celery"].tasks["maintenance.purge_idempotency_keys"]
    with freeze_time(NOW):
        assert purge.apply().get() == 1
        assert purge.apply().get() == 0
    with database.transaction() as session:
        assert session.scalars(select(IdempotencyRecord.key)).all() == ["live"]


def test_published_outbox_rows_are_purged_after_their_age_once(live_app: Flask) -> None:
    from db.models import OutboxMessage

    database = live_app.extensions["taplive"].db
    days = live_app.extensions["taplive"].settings.outbox_retention_days
    with database.transaction() as session:
        for topic, created, published in (
                ("old-published", NOW - timedelta(days=days + 2), NOW - timedelta(days=days + 1)),
                ("recent-published", NOW - timedelta(days=1), NOW - timedelta(days=1)),
                ("old-unpublished", NOW - timedelta(days=days + 2), None)):
            session.add(OutboxMessage(topic=topic, aggregate_id="x", payload={},
                                      created_at=created, published_at=published))
    purge = live_app.extensions["celery"].tasks["maintenance.purge_outbox"]
    with freeze_time(NOW):
        assert purge.apply().get() == 1
        assert purge.apply().get() == 0
    with database.transaction() as session:
        assert sorted(session.scalars(select(OutboxMessage.topic).where(
            OutboxMessage.aggregate_id == "x"))) == ["old-unpublished", "recent-published"]


def test_old_notifications_are_purged_once(live_app: Flask,
                                           live_users: dict[str, User]) -> None:
    import uuid

    from db.models import Notification

    database = live_app.extensions["taplive"].db
    settings = live_app.extensions["taplive"].settings
    read_age = timedelta(days=settings.notification_read_retention_days)
    any_age = timedelta(days=settings.notification_retention_days)
    recipient = live_users["creator"].id
    cases = {  # event -> (created, read)
        "read-old": (NOW - read_age - timedelta(days=1), NOW - read_age),
        "read-recent": (NOW - timedelta(days=1), NOW),
        "unread-old": (NOW - read_age - timedelta(days=1), None),
        "unread-ancient": (NOW - any_age - timedelta(days=1), None),
    }
    with database.transaction() as session:
        for event, (created, read) in cases.items():
            session.add(Notification(id=uuid.uuid4(), recipient_id=recipient, kind="k",
                                     event=event, event_id=event, payload={},
                                     created_at=created, read_at=read, pushed_at=created))
    purge = live_app.extensions["celery"].tasks["maintenance.purge_notifications"]
    with freeze_time(NOW):
        assert purge.apply().get() == 2
        assert purge.apply().get() == 0
    with database.transaction() as session:
        assert sorted(session.scalars(select(Notification.event).where(
            Notification.recipient_id == recipient))) == ["read-recent", "unread-old"]
