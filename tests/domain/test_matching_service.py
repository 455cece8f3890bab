"""Matching commands on PostgreSQL + Redis: who gets invited to a new order, and the batch
re-match (optimal, reported, idempotent)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import Notification, Order, OrderAssignment, OrderMatch, OutboxMessage, User
from domain import matching_service, notifications
from domain.matching_service import MatchingRules
from domain.presence_store import PresenceRegistry, ProviderLocation
from domain.projections import public_order_view
from domain.provider_index import ProviderIndexHolder
from matching import ProviderIndex
from tests.factories import OrderFactory, UserFactory

LONDON = (51.5074, -0.1278)
RULES = MatchingRules(max_invitations=3, offline_after_s=120, offer_ttl_s=60)


def now() -> datetime:
    return datetime.now(UTC)


def go_online(registry: PresenceRegistry, user: User, lat: float, lon: float, *,
              max_travel: float | None = None, seen_ago_s: float = 0.0,
              acceptance: float | None = None) -> None:
    seen = (now() - timedelta(seconds=seen_ago_s)).timestamp()
    registry.go_online(user.id, {"online": True, "maxTravelM": max_travel, "verified": True,
                                 "acceptanceRate": acceptance, "completionRate": None},
                       ProviderLocation(lat, lon, 5.0, now()), seen)


def north(metres: float) -> tuple[float, float]:
    """A point ``metres`` due north of LONDON."""
    return LONDON[0] + metres / 111_195.0, LONDON[1]


def index_of(registry: PresenceRegistry) -> ProviderIndex:
    return ProviderIndexHolder(registry, max_staleness_s=0, max_changes=1000,
                               offline_after_s=10_000).get()


@pytest.fixture
def registry(redis_client: redis.Redis) -> PresenceRegistry:
    return PresenceRegistry(redis_client)


def _order(**kw: object) -> Order:
    return OrderFactory(latitude=LONDON[0], longitude=LONDON[1], service_radius=1000, **kw)


def _topics(session: Session) -> list[str]:
    return list(session.scalars(select(OutboxMessage.topic).order_by(OutboxMessage.id)))


def test_new_order_invites_the_best_live_eligible_providers(
        db_session: Session, registry: PresenceRegistry) -> None:
    order = _order()
    near, mid, far = (UserFactory(provider=True, verified=True) for _ in range(3))
    go_online(registry, near, *north(100))
    go_online(registry, mid, *north(300))
    go_online(registry, far, *north(900))
    excluded = {
        "unverified": UserFactory(provider=True),
        "out of range": UserFactory(provider=True, verified=True),
        "short max travel": UserFactory(provider=True, verified=True),
        "silent": UserFactory(provider=True, verified=True),
        "busy": UserFactory(provider=True, verified=True),
    }
    go_online(registry, excluded["unverified"], *north(50))
    go_online(registry, excluded["out of range"], *north(1500))
    go_online(registry, excluded["short max travel"], *north(200), max_travel=150)
    go_online(registry, excluded["silent"], *north(60), seen_ago_s=600)
    go_online(registry, excluded["busy"], *north(70))
    OrderFactory(provider_id=excluded["busy"].id, status=OrderStatus.ACTIVE)
    creator_provider = UserFactory(both=True, verified=True)
    go_online(registry, creator_provider, *north(10))
    own = _order(creator_id=creator_provider.id)

    # The creator's provider account, 10 m away, is a fine candidate for somebody else's order.
    creator_first = MatchingRules(max_invitations=4)
    result = matching_service.match_order(db_session, order.id, index_of(registry), registry,
                                          now(), creator_first)
    assert result is not None
    assert [r.provider_id for r in result.invited] == [
        str(creator_provider.id), str(near.id), str(mid.id), str(far.id)]
    rows = db_session.scalars(select(OrderMatch).where(OrderMatch.order_id == order.id)
                              .order_by(OrderMatch.rank)).all()
    assert [(m.provider_id, m.rank, m.status, m.source) for m in rows[1:]] == [
        (near.id, 2, "invited", "order_created"), (mid.id, 3, "invited", "order_created"),
        (far.id, 4, "invited", "order_created")]
    assert abs(rows[1].distance_m - 100) < 1 and rows[0].breakdown is not None
    assert rows[0].score == pytest.approx(sum(rows[0].breakdown.values()), abs=1e-5)
    assert _topics(db_session).count("order:matched") == 1
    # ... but never for their own order.
    own_result = matching_service.match_order(db_session, own.id, index_of(registry), registry,
                                              now(), RULES)
    assert own_result is not None
    assert str(creator_provider.id) not in {r.provider_id for r in own_result.invited}


def test_match_order_is_idempotent_and_ignores_gone_or_taken_orders(
        db_session: Session, registry: PresenceRegistry) -> None:
    order = _order()
    go_online(registry, UserFactory(provider=True, verified=True), *north(100))
    index = index_of(registry)
    assert len(matching_service.match_order(db_session, order.id, index, registry, now(),
                                            RULES).invited) == 1  # type: ignore[union-attr]
    again = matching_service.match_order(db_session, order.id, index, registry, now(), RULES)
    assert again is not None and again.already_matched and again.invited == []
    assert len(db_session.scalars(select(OrderMatch)).all()) == 1
    assert _topics(db_session).count("order:matched") == 1
    assert matching_service.match_order(db_session, uuid.uuid4(), index, registry, now(),
                                        RULES) is None
    taken = _order(status=OrderStatus.ACCEPTED)
    assert matching_service.match_order(db_session, taken.id, index, registry, now(),
                                        RULES) is None


def test_a_stale_index_never_invites_someone_who_left(
        db_session: Session, registry: PresenceRegistry) -> None:
    order = _order()
    stays, leaves, moves = (UserFactory(provider=True, verified=True) for _ in range(3))
    for user in (stays, leaves, moves):
        go_online(registry, user, *north(200))
    index = index_of(registry)  # built while all three were near
    registry.go_offline(leaves.id)
    registry.locate(moves.id, ProviderLocation(48.85, 2.35, None, now()), now().timestamp())
    result = matching_service.match_order(db_session, order.id, index, registry, now(), RULES)
    assert result is not None and [r.provider_id for r in result.invited] == [str(stays.id)]


def test_notifications_are_recorded_once_per_invited_provider(
        db_session: Session, registry: PresenceRegistry) -> None:
    order = _order()
    providers = [UserFactory(provider=True, verified=True) for _ in range(2)]
    for i, user in enumerate(providers):
        go_online(registry, user, *north(100 + i))
    matching_service.match_order(db_session, order.id, index_of(registry), registry, now(),
                                 RULES)
    written = notifications.notify_invited(db_session, order.id, now())
    assert len(written) == 2
    assert notifications.notify_invited(db_session, order.id, now()) == []
    records = db_session.scalars(select(Notification)).all()
    assert {r.id for r in records} == {w.id for w in written}
    # The rows returned are not read back: they must be exactly what was stored.
    stored = {r.id: notifications.wire(r) for r in records}
    assert {w.id: notifications.wire(w) for w in written} == stored
    assert {r.recipient_id for r in records} == {p.id for p in providers}
    assert all(r.kind == "order_invitation" and r.event == "order:created"
               and r.payload["event"] == "order:created" and r.pushed_at is None
               for r in records)
    # One fact per provider: the id a client de-duplicates on is the invitation's.
    assert {r.event_id for r in records} == {f"order_invitation:{order.id}"}
    # The order as the provider would see it through the API, without personal data.
    assert all(r.payload["order"] == public_order_view(order) for r in records)
    assert notifications.notify_invited(db_session, uuid.uuid4(), now()) == []


def _rematch(session: Session, registry: PresenceRegistry, **kw: object
             ) -> matching_service.RematchReport:
    return matching_service.rematch(session, index_of(registry), registry, now(), RULES,
                                    **kw)  # type: ignore[arg-type]


def test_rematch_assigns_optimally_reports_and_is_idempotent(
        db_session: Session, registry: PresenceRegistry) -> None:
    # Greedy gives the shared provider to the nearer order and strands the other one; the
    # optimal assignment matches both.
    a = _order()
    b = OrderFactory(latitude=north(600)[0], longitude=LONDON[1], service_radius=500)
    shared, only_a = (UserFactory(provider=True, verified=True) for _ in range(2))
    go_online(registry, shared, *north(400))  # 400 m from a, 200 m from b
    go_online(registry, only_a, *north(-500))  # 500 m from a only
    phases: list[str] = []
    first = _rematch(db_session, registry, progress=lambda phase, *_: phases.append(phase))
    assert phases == ["load", "candidates", "solve", "write"]
    assert (first.orders, first.providers, first.matched) == (2, 2, 2)
    assert (first.new, first.changed, first.unchanged, first.dropped) == (2, 0, 0, 0)
    assert first.invitations == 2
    assert first.mean_distance_m == pytest.approx(350, abs=1)
    assert set(first.timings_s) == {"load", "candidates", "solve", "write"}
    assigned = {x.order_id: x.provider_id for x in db_session.scalars(select(OrderAssignment))}
    assert assigned == {a.id: only_a.id, b.id: shared.id}
    rows = db_session.scalars(select(OrderMatch)).all()
    assert {(m.order_id, m.provider_id, m.source) for m in rows} == {
        (a.id, only_a.id, "rematch"), (b.id, shared.id, "rematch")}
    matched_events = _topics(db_session).count("order:matched")

    second = _rematch(db_session, registry)
    assert (second.unchanged, second.changed, second.new, second.dropped) == (2, 0, 0, 0)
    assert second.invitations == 0
    assert len(db_session.scalars(select(OrderMatch)).all()) == 2
    assert _topics(db_session).count("order:matched") == matched_events

    registry.go_offline(only_a.id)
    third = _rematch(db_session, registry)
    assert (third.matched, third.unchanged, third.dropped, third.changed) == (1, 1, 1, 0)
    assert {x.order_id for x in db_session.scalars(select(OrderAssignment))} == {b.id}


def test_rematch_dry_run_and_region(db_session: Session, registry: PresenceRegistry) -> None:
    _order()
    OrderFactory(latitude=48.85, longitude=2.35, service_radius=1000)
    go_online(registry, UserFactory(provider=True, verified=True), *north(100))
    dry = _rematch(db_session, registry, dry_run=True)
    assert dry.dry_run and dry.matched == 1 and dry.new == 1
    assert db_session.scalars(select(OrderAssignment)).all() == []
    assert db_session.scalars(select(OrderMatch)).all() == []
    paris = _rematch(db_session, registry, region=(48.85, 2.35, 10_000.0))
    assert (paris.orders, paris.providers, paris.matched) == (1, 0, 0)


def test_rematch_never_reassigns_a_refusal(db_session: Session,
                                           registry: PresenceRegistry) -> None:
    order = _order()
    provider = UserFactory(provider=True, verified=True)
    go_online(registry, provider, *north(100))
    matching_service.match_order(db_session, order.id, index_of(registry), registry, now(),
                                 RULES)
    match = db_session.scalars(select(OrderMatch)).one()
    match.status = "declined"
    db_session.flush()
    report = _rematch(db_session, registry)
    assert report.matched == 0 and report.invitations == 0
