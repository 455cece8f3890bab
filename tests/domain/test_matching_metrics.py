"""The engine's metrics appear after the work that feeds them: match latency and candidates
per order after ``match_order``, the assignment size after a batch re-match."""

from __future__ import annotations

import pytest
import redis
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session

from domain import matching_service
from domain.presence_store import PresenceRegistry
from tests.domain.test_matching_service import (
    RULES,
    _order,
    go_online,
    index_of,
    north,
    now,
)
from tests.factories import UserFactory


@pytest.fixture
def registry(redis_client: redis.Redis) -> PresenceRegistry:
    return PresenceRegistry(redis_client)


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_match_order_observes_latency_and_candidates(
        db_session: Session, registry: PresenceRegistry) -> None:
    order = _order()
    for metres in (100, 200, 300):
        go_online(registry, UserFactory(provider=True, verified=True), *north(metres))
    count = _value("taplive_match_latency_seconds_count")
    three_or_fewer = _value("taplive_match_candidates_bucket", le="5.0")
    two_or_fewer = _value("taplive_match_candidates_bucket", le="2.0")
    matching_service.match_order(db_session, order.id, index_of(registry), registry, now(),
                                 RULES)
    assert _value("taplive_match_latency_seconds_count") == count + 1
    # Three providers in range: counted in the <=5 bucket, not in <=2.
    assert _value("taplive_match_candidates_bucket", le="5.0") == three_or_fewer + 1
    assert _value("taplive_match_candidates_bucket", le="2.0") == two_or_fewer


def test_rematch_observes_the_assignment_size(
        db_session: Session, registry: PresenceRegistry) -> None:
    _order()
    _order()
    for metres in (100, 200):
        go_online(registry, UserFactory(provider=True, verified=True), *north(metres))
    runs = _value("taplive_rematch_assignment_size_count")
    total = _value("taplive_rematch_assignment_size_sum")
    index = index_of(registry)
    matching_service.rematch(db_session, index, registry, now(), RULES, dry_run=True)
    assert _value("taplive_rematch_assignment_size_count") == runs  # a dry run is no outcome
    matching_service.rematch(db_session, index, registry, now(), RULES)
    assert _value("taplive_rematch_assignment_size_count") == runs + 1
    assert _value("taplive_rematch_assignment_size_sum") == total + 2
