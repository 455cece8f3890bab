"""Matching's data layer on PostgreSQL and SQLite: idempotent inserts, history purge, the
schema of migration 0004 matching the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus
from db.models import Base, LocationSample, Notification, OrderMatch
from db.queries import matching as q
from tests.factories import OrderFactory, UserFactory

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
MATCHING_TABLES = {"order_matches", "order_assignments", "order_dispatches",
                   "order_geofence_states", "provider_location_samples", "notifications"}


def _match(order_id: uuid.UUID, provider_id: uuid.UUID, rank: int = 1) -> dict[str, object]:
    return {"id": uuid.uuid4(), "order_id": order_id, "provider_id": provider_id,
            "source": "order_created", "status": "invited", "rank": rank, "score": 0.5,
            "distance_m": 100.0, "breakdown": {"distance": 0.3}, "index_version": 1,
            "created_at": NOW, "updated_at": NOW}


def _mentions_matching_table(diff: object) -> bool:
    """Whether an autogenerate diff (a tuple, or a list of them for column changes) concerns
    one of migration 0004's tables."""
    if isinstance(diff, str):
        return diff in MATCHING_TABLES
    if isinstance(diff, list | tuple):
        return any(_mentions_matching_table(part) for part in diff)
    table = getattr(diff, "table", None)
    return getattr(diff, "name", None) in MATCHING_TABLES or (
        table is not None and getattr(table, "name", None) in MATCHING_TABLES)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::sqlalchemy.exc.SAWarning")
def test_migration_0004_matches_the_models(any_session: Session) -> None:
    context = MigrationContext.configure(any_session.connection(),
                                         opts={"compare_type": False})
    diffs = [d for d in compare_metadata(context, Base.metadata) if _mentions_matching_table(d)]
    assert diffs == []


def test_matches_and_notifications_are_inserted_once(any_session: Session) -> None:
    order, provider = OrderFactory(), UserFactory(provider=True, verified=True)
    first = _match(order.id, provider.id)
    assert q.insert_ignoring_duplicates(any_session, OrderMatch, [first],
                                        ("order_id", "provider_id")) == [first["id"]]
    again = _match(order.id, provider.id)
    assert q.insert_ignoring_duplicates(any_session, OrderMatch, [again],
                                        ("order_id", "provider_id")) == []
    assert any_session.scalar(select(func.count()).select_from(OrderMatch)) == 1
    note = {"id": uuid.uuid4(), "recipient_id": provider.id, "order_id": order.id,
            "match_id": first["id"], "kind": "order_invitation", "event": "order:created",
            "event_id": f"order_invitation:{order.id}", "payload": {"a": 1}, "created_at": NOW}
    assert len(q.insert_ignoring_duplicates(any_session, Notification, [note],
                                            ("recipient_id", "event_id"))) == 1
    assert q.insert_ignoring_duplicates(any_session, Notification, [note | {"id": uuid.uuid4()}],
                                        ("recipient_id", "event_id")) == []


def test_history_is_purged_in_batches_oldest_first(any_session: Session) -> None:
    provider = UserFactory(provider=True)
    for days in (40, 35, 31, 2):
        any_session.add(LocationSample(provider_id=provider.id, latitude=1.0, longitude=2.0,
                                       accuracy_m=None, recorded_at=NOW - timedelta(days=days)))
    any_session.flush()
    cutoff = NOW - timedelta(days=30)
    assert q.purge_location_history(any_session, cutoff, 2) == 2
    assert q.purge_location_history(any_session, cutoff, 2) == 1
    assert q.purge_location_history(any_session, cutoff, 2) == 0
    left = q.find_location_history(any_session, provider.id, 10)
    assert [s.recorded_at for s in left] == [NOW - timedelta(days=2)]


def test_pending_orders_in_a_region_across_the_antimeridian(any_session: Session) -> None:
    east = OrderFactory(latitude=-18.0, longitude=179.99)
    west = OrderFactory(latitude=-18.0, longitude=-179.99)
    OrderFactory(latitude=-18.0, longitude=170.0)
    OrderFactory(latitude=-18.0, longitude=179.99, status=OrderStatus.CANCELLED)
    found = {o.id for o in q.find_pending_orders(any_session, (-18.0, 180.0, 20_000))}
    assert found == {east.id, west.id}
    assert len(q.find_pending_orders(any_session)) >= 3


def test_track_record(any_session: Session) -> None:
    from db.models import OrderApplication

    provider = UserFactory(provider=True, verified=True)
    assert q.track_record(any_session, provider.id) == (None, None)
    for status in (ApplicationStatus.ACCEPTED, ApplicationStatus.REJECTED,
                   ApplicationStatus.REJECTED, ApplicationStatus.WITHDRAWN):
        any_session.add(OrderApplication(order_id=OrderFactory().id, provider_id=provider.id,
                                         status=status))
    OrderFactory(provider_id=provider.id, status=OrderStatus.COMPLETED)
    OrderFactory(provider_id=provider.id, status=OrderStatus.CANCELLED)
    OrderFactory(provider_id=provider.id, status=OrderStatus.ACTIVE)  # not finished yet
    any_session.flush()
    acceptance, completion = q.track_record(any_session, provider.id)
    assert acceptance is not None and abs(acceptance - 1 / 3) < 1e-9
    assert completion == 0.5
