"""Batched dispatch (issue 16 part 2) on real PostgreSQL and Redis, with committed transactions
on separate connections: one pass matches every due order with the invitations one-at-a-time
matching makes; concurrent passes split the due orders by row lock and never invite twice; a
pass that dies leaves its orders to the next one."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Order, OrderMatch, OutboxMessage, User
from domain import matching_service
from domain.matching_service import PassResult
from domain.presence_store import PresenceRegistry
from tests import factories
from tests.domain.test_matching_service import LONDON, RULES, go_online, index_of, north, now

# (metres north of LONDON, radius): overlapping circles, so the orders share providers.
SPOTS = [(0, 1000), (300, 600), (-200, 1500), (800, 400)]


@pytest.fixture
def database(live_app: Flask) -> Any:
    return live_app.extensions["taplive"].db


@pytest.fixture
def registry(redis_client: redis.Redis, database: Any) -> PresenceRegistry:
    """Eight verified providers online 100..1500 m north and south of LONDON."""
    registry = PresenceRegistry(redis_client)
    with database.transaction() as session:
        factories.bind(session)
        try:
            providers = [factories.UserFactory(provider=True, verified=True) for _ in range(8)]
        finally:
            factories.bind(None)
    for i, user in enumerate(providers):
        metres = (100 + 200 * i) * (1 if i % 2 else -1)
        go_online(registry, user, *north(metres), acceptance=0.5 + i / 20)
    return registry


def _orders(database: Any, creator_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    with database.transaction() as session:
        factories.bind(session)
        try:
            creator = (session.get(User, creator_id) if creator_id
                       else factories.UserFactory())
            orders = [factories.OrderFactory(creator=creator, latitude=north(m)[0],
                                             longitude=LONDON[1], service_radius=r)
                      for m, r in SPOTS]
        finally:
            factories.bind(None)
        return [o.id for o in orders]


def _invitations(database: Any, order_id: uuid.UUID) -> list[tuple[uuid.UUID, int, float]]:
    with database.transaction() as session:
        return [(m.provider_id, m.rank, m.distance_m) for m in session.scalars(
            select(OrderMatch).where(OrderMatch.order_id == order_id).order_by(OrderMatch.rank))]


def _matched_events(database: Any, order_id: uuid.UUID) -> int:
    with database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.topic == "order:matched",
            OutboxMessage.aggregate_id == str(order_id))) or 0)


@pytest.fixture
def sessions(database: Any) -> Iterator[list[Session]]:
    """Two sessions on their own connections: two workers' passes."""
    opened = [Session(bind=database.engine, expire_on_commit=False) for _ in range(2)]
    yield opened
    for session in opened:
        session.close()


def _pass(session: Session, order_id: uuid.UUID, registry: PresenceRegistry,
          *, wait: bool = False) -> PassResult:
    return matching_service.match_due(session, order_id, index_of(registry), registry, now(),
                                      RULES, wait=wait)


def test_one_pass_matches_every_due_order_as_one_at_a_time_matching_would(
        database: Any, registry: PresenceRegistry) -> None:
    index = index_of(registry)
    alone = _orders(database)
    for order_id in alone:  # the path before batching: each order on its own
        with database.transaction() as session:
            result = matching_service.match_order(session, order_id, index, registry, now(),
                                                  RULES)
            assert result is not None and result.invited
    with database.transaction() as session:
        creator = session.get(Order, alone[0]).creator_id  # type: ignore[union-attr]
    together = _orders(database, creator)  # the same orders again, due together
    with database.transaction() as session:
        done = matching_service.match_due(session, together[-1], index, registry, now(), RULES)
    assert done.own_claimed and len(done.results) == len(SPOTS)  # one pass for all of them
    assert done.invited == sum(len(_invitations(database, o)) for o in alone)
    for before, after in zip(alone, together, strict=True):
        assert [(p, r) for p, r, _ in _invitations(database, after)] == [
            (p, r) for p, r, _ in _invitations(database, before)]
        assert _matched_events(database, after) == 1
    # Every order's own task now finds it matched and does nothing.
    with database.transaction() as session:
        again = matching_service.match_due(session, together[0], index, registry, now(), RULES)
    assert again.invited == 0 and [r.already_matched for r in again.results] == [True]


def test_concurrent_passes_never_take_the_same_order(
        database: Any, registry: PresenceRegistry, sessions: list[Session]) -> None:
    first, second = sessions
    orders = _orders(database)
    held = _pass(first, orders[0], registry)  # not committed yet: it holds the row locks
    assert held.own_claimed and len(held.results) == len(SPOTS)
    # A second pass at the same time, for another of those orders: every one is held, so it
    # takes nothing and does not wait for the first.
    skipped = _pass(second, orders[2], registry)
    assert not skipped.own_claimed and skipped.results == []
    second.commit()
    first.commit()
    # The order's own task then waits for the lock and finds its order matched.
    late = _pass(second, orders[2], registry, wait=True)
    second.commit()
    assert late.own_claimed and late.invited == 0
    for order_id in orders:
        assert _matched_events(database, order_id) == 1
        assert len({p for p, _, _ in _invitations(database, order_id)}) == len(
            _invitations(database, order_id)) > 0


def test_a_pass_that_dies_mid_way_leaves_its_orders_to_the_next(
        database: Any, registry: PresenceRegistry, sessions: list[Session]) -> None:
    dying, survivor = sessions
    orders = _orders(database)
    assert len(_pass(dying, orders[0], registry).results) == len(SPOTS)  # invited, uncommitted
    # The task of another order in that batch arrives: the order is held, so it waits.
    outcome: dict[str, PassResult] = {}
    waiter = threading.Thread(target=lambda: outcome.setdefault(
        "pass", _pass(survivor, orders[1], registry, wait=True)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "the own order's pass did not wait for the lock"
    # The worker dies: its connection drops without a commit or rollback; PostgreSQL aborts
    # the transaction and releases its locks.
    dying.connection().invalidate()
    waiter.join(10)
    assert not waiter.is_alive()
    survivor.commit()
    assert outcome["pass"].own_claimed and len(outcome["pass"].results) == len(SPOTS)
    for order_id in orders:
        assert _invitations(database, order_id) and _matched_events(database, order_id) == 1
