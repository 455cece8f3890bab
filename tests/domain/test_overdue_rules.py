"""The timers of ``domain.overdue`` (issue 17), and their candidate queries on both databases
(standalone mode runs the same beat jobs on SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import Order
from db.queries import overdue as queries
from domain.overdue import OverdueRules, start_due
from tests.factories import OrderFactory, UserFactory

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
RULES = OverdueRules(no_show_window=timedelta(minutes=60), no_show_grace=timedelta(minutes=15),
                     active_max=timedelta(hours=6), dispute_escalate=timedelta(days=3),
                     dispute_resolve=timedelta(days=14))


def _order(accepted_at: datetime, scheduled_for: datetime | None) -> Order:
    return Order(accepted_at=accepted_at, scheduled_for=scheduled_for)


def test_start_due() -> None:
    grace = RULES.no_show_grace
    # Unscheduled: acceptance + window + grace.
    assert start_due(_order(NOW, None), RULES) == NOW + timedelta(minutes=75)
    # Scheduled ahead of the acceptance: its time + grace, however far.
    later = NOW + timedelta(days=2)
    assert start_due(_order(NOW, later), RULES) == later + grace
    soon = NOW + timedelta(minutes=5)
    assert start_due(_order(NOW, soon), RULES) == soon + grace
    # Accepted after its time had passed: as if unscheduled.
    assert start_due(_order(NOW, NOW - timedelta(minutes=10)), RULES) == NOW + timedelta(
        minutes=75)
    assert start_due(Order(accepted_at=None), RULES) is None


def test_candidate_queries(any_session: Session) -> None:
    creator, provider = UserFactory(), UserFactory(provider=True, verified=True)

    def accepted(accepted_ago: timedelta, scheduled_in: timedelta | None) -> Order:
        return OrderFactory(creator_id=creator.id, provider_id=provider.id,
                            status=OrderStatus.ACCEPTED, accepted_at=NOW - accepted_ago,
                            scheduled_for=NOW + scheduled_in if scheduled_in is not None
                            else None)

    due = [accepted(timedelta(minutes=76), None),
           accepted(timedelta(hours=3), -timedelta(minutes=16)),
           accepted(timedelta(minutes=76), -timedelta(hours=2))]  # accepted after its time
    not_due = [accepted(timedelta(minutes=74), None),
               accepted(timedelta(hours=3), -timedelta(minutes=14)),
               accepted(timedelta(hours=3), timedelta(hours=1))]
    any_session.flush()
    found = set(queries.find_no_show_candidates(any_session, NOW, RULES.no_show_window,
                                                RULES.no_show_grace, 100))
    assert found == {o.id for o in due}
    assert not found & {o.id for o in not_due}

    live = OrderFactory(creator_id=creator.id, provider_id=provider.id,
                        status=OrderStatus.ACTIVE, started_at=NOW - timedelta(hours=7))
    escalated = OrderFactory(creator_id=creator.id, provider_id=provider.id,
                             status=OrderStatus.ACTIVE, started_at=NOW - timedelta(hours=7),
                             escalation="active_overdue")
    OrderFactory(creator_id=creator.id, provider_id=provider.id, status=OrderStatus.ACTIVE,
                 started_at=NOW - timedelta(hours=5))
    any_session.flush()
    assert queries.find_overdue_active(any_session, NOW, RULES.active_max, 100) == [live.id]
    del escalated

    fresh = OrderFactory(creator_id=creator.id, status=OrderStatus.DISPUTED,
                         disputed_at=NOW - timedelta(days=1))
    to_escalate = OrderFactory(creator_id=creator.id, status=OrderStatus.DISPUTED,
                               disputed_at=NOW - timedelta(days=4))
    escalated_once = OrderFactory(creator_id=creator.id, status=OrderStatus.DISPUTED,
                                  disputed_at=NOW - timedelta(days=5),
                                  escalation="dispute_overdue")
    to_resolve = OrderFactory(creator_id=creator.id, status=OrderStatus.DISPUTED,
                              disputed_at=NOW - timedelta(days=15),
                              escalation="dispute_overdue")
    any_session.flush()
    found = set(queries.find_overdue_disputes(any_session, NOW, RULES.dispute_escalate,
                                              RULES.dispute_resolve, 100))
    assert found == {to_escalate.id, to_resolve.id}
    assert not found & {fresh.id, escalated_once.id}
