"""The analytics aggregates agree on PostgreSQL and SQLite (where the median is taken in
Python rather than by ``percentile_cont``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.queries import analytics as queries
from tests.factories import OrderFactory, UserFactory


def test_fill_rate_and_median_time_to_accept(any_session: Session) -> None:
    now = datetime.now(UTC)
    provider = UserFactory(provider=True, verified=True)
    for created_ago_h, to_accept_s in ((5, 60), (4, 90), (3, 600), (2, 30), (1, None)):
        created = now - timedelta(hours=created_ago_h)
        OrderFactory(created_at=created, provider_id=provider.id if to_accept_s else None,
                     status=OrderStatus.ACCEPTED if to_accept_s else OrderStatus.PENDING,
                     accepted_at=created + timedelta(seconds=to_accept_s)
                     if to_accept_s else None)
    window = (now - timedelta(days=1), now)
    assert queries.count_posted_and_accepted(any_session, window) == (5, 4)
    # Even count: the mean of the middle two (60, 90), as percentile_cont interpolates.
    assert queries.median_seconds_to_accept(any_session, window) == 75.0
    assert queries.median_seconds_to_accept(
        any_session, (now - timedelta(hours=3, minutes=30), now),
        provider_id=provider.id) == 315.0
    assert queries.median_seconds_to_accept(any_session, (now - timedelta(days=9),
                                                          now - timedelta(days=8))) is None
    assert queries.latest_change_of_user(any_session, provider.id) is not None
