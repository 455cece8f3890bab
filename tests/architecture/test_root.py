"""The composition root on its own, as a worker process has it: no Flask app anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from freezegun import freeze_time

from core.enums import OrderStatus
from db.models import Order
from domain.order_cache import order_version_key
from services import Services, build_services
from tests import factories
from tests.conftest import make_settings, redis_db, truncate_all
from workers.celery_factory import make_celery

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def root(pg_url: str) -> Iterator[Services]:
    url = redis_db(11)
    redis.Redis.from_url(url).flushdb()
    services = build_services(make_settings(pg_url, redis_url=url))
    yield services
    truncate_all(services.db)
    services.close()


def test_a_task_commit_drops_the_cached_reads_of_what_it_changed(root: Services) -> None:
    # Before the root, only a process that built the Flask app had the read-cache hook: a
    # worker expiring an order would have left its cached GET /orders/{id} stale.
    with root.db.transaction() as session:
        factories.bind(session)
        try:
            with freeze_time(NOW - timedelta(hours=25)):
                order_id = factories.OrderFactory().id
        finally:
            factories.bind(None)
    key = order_version_key(order_id)
    assert root.redis.get(key) is None
    celery = make_celery(root)
    with freeze_time(NOW):
        assert celery.tasks["maintenance.expire_orders"].apply().get() == 1
    assert root.redis.get(key) is not None  # the version was bumped after the task's commit
    with root.db.transaction() as session:
        order = session.get(Order, order_id)
        assert order is not None and order.status is OrderStatus.CANCELLED


def test_tasks_reach_the_root_of_their_own_app(root: Services, pg_url: str) -> None:
    other = build_services(make_settings(pg_url, redis_url=redis_db(11)))
    try:
        mine, theirs = make_celery(root), make_celery(other)
        assert mine.tasks["maintenance.heartbeat"].services is root
        assert theirs.tasks["maintenance.heartbeat"].services is other
    finally:
        other.close()
