"""``create_order`` writes the order, its history row and its outbox event: in one statement on
PostgreSQL, three INSERTs on SQLite (``db.backends``). Both write, and return, the same thing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.context import request_id_var
from core.errors import Unprocessable
from db.models import OperatingArea, Order, OrderEvent, OutboxMessage
from domain import orders
from domain.projections import order_view
from tests.factories import UserFactory

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _draft(**overrides: object) -> orders.OrderDraft:
    fields: dict[str, object] = dict(
        title="Harbour fireworks", description="From the pier", latitude=40.70,
        longitude=-74.01, address="Pier 17", base_amount_minor=2500, currency="USD",
        service_radius=500, scheduled_for=NOW + timedelta(hours=5),
        requirements={"camera": "4k"}, tags=["night", "fireworks"])
    fields.update(overrides)
    return orders.OrderDraft(**fields)  # type: ignore[arg-type]


def test_writes_the_order_its_history_and_its_event(any_session: Session) -> None:
    creator = UserFactory()
    token = request_id_var.set("req-create-1")
    try:
        created = orders.create_order(any_session, creator.id, _draft(), orders.OrderRules(),
                                      NOW)
    finally:
        request_id_var.reset(token)
    any_session.expire_all()
    stored = any_session.get(Order, created.id)
    assert stored is not None
    assert order_view(created) == order_view(stored)
    assert stored.created_at == stored.updated_at == NOW and stored.version == 1

    [history] = any_session.scalars(select(OrderEvent)).all()
    assert (history.order_id, history.event, history.from_status, history.to_status,
            history.actor_id, history.actor_role, history.request_id, history.created_at) == (
        stored.id, "order:created", None, "pending", creator.id, "creator", "req-create-1", NOW)
    [message] = any_session.scalars(select(OutboxMessage)).all()
    assert (message.topic, message.aggregate_id, message.request_id, message.published_at,
            message.attempts) == ("order:created", str(stored.id), "req-create-1", None, 0)
    # Routing facts at the top; the order as the API shows it, minus its free text and street
    # address (``description``, ``location.address``), under "order".
    shown = order_view(stored)
    assert message.payload == {
        "orderId": str(stored.id), "status": "pending", "creatorId": str(creator.id),
        "providerId": None, "version": 1, "event": "order:created", "actor": "creator",
        "order": {k: v for k, v in shown.items()
                  if k not in ("description", "cancellationReason")}
        | {"location": {"latitude": 40.70, "longitude": -74.01}}}
    assert any_session.info.get("outbox_pending") is True


def test_outside_every_area_writes_nothing(any_session: Session) -> None:
    ring = [[-74.03, 40.68], [-73.90, 40.68], [-73.90, 40.88], [-74.03, 40.88], [-74.03, 40.68]]
    any_session.add(OperatingArea(name="NYC", geojson={"type": "Polygon",
                                                       "coordinates": [ring]}))
    any_session.flush()
    creator = UserFactory()
    with pytest.raises(Unprocessable):
        orders.create_order(any_session, creator.id, _draft(latitude=48.85, longitude=2.35),
                            orders.OrderRules(), NOW)
    for model in (Order, OrderEvent, OutboxMessage):
        assert any_session.scalars(select(model)).all() == []
    inside = orders.create_order(any_session, creator.id, _draft(), orders.OrderRules(), NOW)
    assert any_session.get(Order, inside.id) is not None


def test_the_create_statement_fits_psycopgs_statement_cache(db_session: Session) -> None:
    """psycopg converts a statement's named parameters once and caches it, but only for
    statements up to 4 kB; a longer create statement was re-parsed on every request."""
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH
    from sqlalchemy import event

    statements: list[str] = []
    engine = db_session.get_bind().engine

    def capture(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    try:
        orders.create_order(db_session, UserFactory().id, _draft(), orders.OrderRules(), NOW)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [create] = [s for s in statements if "new_order" in s]
    assert len(create) <= MAX_CACHED_STATEMENT_LENGTH
