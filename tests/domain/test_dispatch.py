"""Auto-dispatch: exclusive offers in rank order, moving on at decline or expiry, and an
accepted offer accepting the order as if by its creator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus
from core.errors import Conflict, NotFound
from db.models import (
    Notification,
    Order,
    OrderApplication,
    OrderDispatch,
    OrderEvent,
    OrderMatch,
    OutboxMessage,
    User,
)
from domain import dispatch, notifications
from tests.factories import OrderFactory, UserFactory

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TTL = timedelta(seconds=60)


def _invited(session: Session, order: Order, providers: list[User]) -> list[OrderMatch]:
    matches = [OrderMatch(order_id=order.id, provider_id=p.id, source="order_created",
                          status="invited", rank=i + 1, score=0.9 - i / 10,
                          distance_m=100.0 * (i + 1), breakdown={}, index_version=1)
               for i, p in enumerate(providers)]
    session.add_all(matches)
    session.flush()
    return matches


@pytest.fixture
def setup(db_session: Session) -> tuple[Order, list[User], list[OrderMatch]]:
    order = OrderFactory(requirements={"autoDispatch": True})
    providers = [UserFactory(provider=True, verified=True) for _ in range(3)]
    return order, providers, _invited(db_session, order, providers)


def _status(session: Session, match: OrderMatch) -> str:
    session.refresh(match)
    return match.status


def test_offers_go_down_the_ranking_on_decline_and_expiry(
        db_session: Session, setup: tuple[Order, list[User], list[OrderMatch]]) -> None:
    order, providers, (first, second, third) = setup
    assert dispatch.wants_auto_dispatch(order)
    offer = dispatch.start(db_session, order, NOW, TTL)
    assert offer is not None and offer.id == first.id and offer.offer_expires_at == NOW + TTL
    assert dispatch.start(db_session, order, NOW, TTL) is None  # already dispatching
    events = db_session.scalars(select(OutboxMessage).where(
        OutboxMessage.topic == dispatch.DISPATCH_OFFERED)).all()
    assert [e.aggregate_id for e in events] == [str(first.id)]

    dispatch.decline(db_session, first.id, providers[0], NOW, TTL)
    assert _status(db_session, first) == "declined" and _status(db_session, second) == "offered"

    early = dispatch.expire_offer(db_session, second.id, NOW + timedelta(seconds=10), TTL)
    assert early.state == "not_due" and early.remaining_s == pytest.approx(50)
    due = dispatch.expire_offer(db_session, second.id, NOW + TTL, TTL)
    assert due.state == "expired" and due.next_match_id == third.id
    assert dispatch.expire_offer(db_session, second.id, NOW + TTL, TTL).state == "settled"
    assert dispatch.expire_offer(db_session, uuid.uuid4(), NOW, TTL).state == "gone"

    dispatch.expire_offer(db_session, third.id, NOW + 3 * TTL, TTL)
    state = db_session.get(OrderDispatch, order.id)
    assert state is not None
    db_session.refresh(state)
    assert state.status == "exhausted" and state.current_match_id is None
    assert state.offers_made == 3


def test_accepting_the_offer_accepts_the_order_for_the_creator(
        db_session: Session, setup: tuple[Order, list[User], list[OrderMatch]]) -> None:
    order, providers, (first, second, _third) = setup
    dispatch.start(db_session, order, NOW, TTL)
    with pytest.raises(NotFound):  # only the offered provider may take it
        dispatch.accept_offer(db_session, first.id, providers[1], NOW)
    with pytest.raises(Conflict) as not_open:
        dispatch.accept_offer(db_session, second.id, providers[1], NOW)
    assert not_open.value.code == "OFFER_NOT_OPEN"
    with pytest.raises(Conflict) as late:
        dispatch.accept_offer(db_session, first.id, providers[0], NOW + TTL)
    assert late.value.code == "OFFER_EXPIRED"

    accepted = dispatch.accept_offer(db_session, first.id, providers[0], NOW)
    assert accepted.status is OrderStatus.ACCEPTED and accepted.provider_id == providers[0].id
    application = db_session.scalars(select(OrderApplication).where(
        OrderApplication.order_id == order.id)).one()
    assert application.status is ApplicationStatus.ACCEPTED
    history = db_session.scalars(select(OrderEvent).where(
        OrderEvent.order_id == order.id, OrderEvent.event == "order:accepted")).one()
    assert history.actor_role == "system" and history.actor_id is None
    assert [_status(db_session, m) for m in (first, second)] == ["accepted", "closed"]
    state = db_session.get(OrderDispatch, order.id)
    assert state is not None and state.status == "accepted"
    # A late countdown for the accepted offer changes nothing.
    assert dispatch.expire_offer(db_session, first.id, NOW + TTL, TTL).state == "settled"


def test_an_existing_pending_application_is_the_one_accepted(
        db_session: Session, setup: tuple[Order, list[User], list[OrderMatch]]) -> None:
    order, providers, (first, *_rest) = setup
    application = OrderApplication(order_id=order.id, provider_id=providers[0].id,
                                   proposed_amount_minor=3000,
                                   status=ApplicationStatus.PENDING)
    db_session.add(application)
    db_session.flush()
    dispatch.start(db_session, order, NOW, TTL)
    accepted = dispatch.accept_offer(db_session, first.id, providers[0], NOW)
    assert accepted.agreed_amount_minor == 3000


def test_busy_providers_are_skipped_and_the_creator_can_switch_it_off(
        db_session: Session, setup: tuple[Order, list[User], list[OrderMatch]]) -> None:
    order, providers, (first, second, _third) = setup
    OrderFactory(provider_id=providers[0].id, status=OrderStatus.ACTIVE)
    creator = db_session.get(User, order.creator_id)
    assert creator is not None
    state = dispatch.set_enabled(db_session, order.id, creator, True, NOW, TTL)
    assert state is not None and state.current_match_id == second.id
    assert _status(db_session, first) == "invited"
    stopped = dispatch.set_enabled(db_session, order.id, creator, False, NOW, TTL)
    assert stopped is not None and stopped.status == "stopped"
    assert _status(db_session, second) == "invited"  # the offer is withdrawn, not declined
    stranger = UserFactory()
    with pytest.raises(NotFound):
        dispatch.set_enabled(db_session, order.id, stranger, True, NOW, TTL)


def test_declining_twice_or_someone_elses_invitation(
        db_session: Session, setup: tuple[Order, list[User], list[OrderMatch]]) -> None:
    _order, providers, (first, *_rest) = setup
    with pytest.raises(NotFound):
        dispatch.decline(db_session, first.id, providers[1], NOW, TTL)
    dispatch.decline(db_session, first.id, providers[0], NOW, TTL)
    with pytest.raises(Conflict) as again:
        dispatch.decline(db_session, first.id, providers[0], NOW, TTL)
    assert again.value.code == "INVITATION_NOT_OPEN"


def test_the_offer_is_notified_once_however_often_its_follow_up_runs(
        db_session: Session, setup: tuple[Order, list[User], list[OrderMatch]]) -> None:
    """``notifications.notify_offer`` is a follow-up of ``dispatch:offered``: the commit's
    direct send and a drain may both deliver it (tasks/events.py, the fast path)."""
    order, providers, (first, second, _third) = setup
    dispatch.start(db_session, order, NOW, TTL)
    assert len(notifications.notify_offer(db_session, first.id, NOW)) == 1
    assert notifications.notify_offer(db_session, first.id, NOW) == []
    assert notifications.notify_offer(db_session, second.id, NOW) == []  # not offered
    records = db_session.scalars(select(Notification).where(
        Notification.order_id == order.id)).all()
    assert [(r.recipient_id, r.kind) for r in records] == [
        (providers[0].id, notifications.DISPATCH_OFFER)]
