"""Order transitions: accept, start, complete, cancel, dispute, resolve, expire.

Each one: locks the order row, asks the state machine whether this actor may do this now,
changes the order, stamps the time, writes the history row and the outbox event, and flushes.
Tasks and HTTP handlers call these same functions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus
from core.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from core.geo import great_circle_m
from db.models import Order, OrderApplication, User
from db.queries import orders as order_queries
from db.queries import payments as payment_queries
from domain import applications, stream_sessions
from domain.events import record_order_event
from domain.order_states import Action, Actor, check_transition
from domain.orders import OrderRules, actor_for
from domain.payments.escrow import EscrowState
from domain.stream_sessions import StreamRules


@dataclass(frozen=True)
class KnownLocation:
    latitude: float
    longitude: float
    recorded_at: datetime


def _load_for(session: Session, order_id: uuid.UUID, user: User | None) -> tuple[Order, Actor]:
    order = order_queries.find_by_id(session, order_id, for_update=True)
    if order is None:
        raise NotFound("Order not found.")
    if user is None:
        return order, Actor.SYSTEM
    actor = actor_for(user, order)
    if actor is None:
        raise NotFound("Order not found.")
    return order, actor


def _transition(session: Session, order: Order, action: Action, actor: Actor,
                actor_id: uuid.UUID | None, *, reason: str | None = None,
                data: dict[str, object] | None = None) -> Order:
    transition = check_transition(action, order.status, actor)
    before = order.status
    order.status = transition.target
    session.flush()
    record_order_event(session, order, transition.event, actor=actor, actor_id=actor_id,
                       from_status=before.value, reason=reason, data=data)
    return order


def accept(session: Session, order_id: uuid.UUID, application_id: uuid.UUID,
           creator: User | None, now: datetime) -> Order:
    """Accept one application: it is accepted, the other pending ones rejected, the provider
    assigned and the agreed amount fixed. ``creator=None`` is the dispatcher accepting for the
    creator (auto-dispatch)."""
    order, actor = _load_for(session, order_id, creator)
    check_transition(Action.ACCEPT, order.status, actor)
    application = applications.find_for_order(session, order, application_id)
    if application is None:
        raise NotFound("Application not found.")
    if application.status is not ApplicationStatus.PENDING:
        raise Conflict(f"That application is {application.status.value}.",
                       code="APPLICATION_NOT_PENDING",
                       details={"status": application.status.value})
    application.status = ApplicationStatus.ACCEPTED
    session.execute(
        update(OrderApplication)
        .where(OrderApplication.order_id == order.id, OrderApplication.id != application.id,
               OrderApplication.status == ApplicationStatus.PENDING)
        .values(status=ApplicationStatus.REJECTED)
        .execution_options(synchronize_session="fetch")
    )
    order.provider_id = application.provider_id
    order.accepted_at = now
    order.agreed_amount_minor = application.proposed_amount_minor or order.base_amount_minor
    _transition(session, order, Action.ACCEPT, actor, creator.id if creator else None,
                data={"applicationId": str(application.id)})
    # The provider's stream key and the creator's playback address (docs/streaming.md).
    stream_sessions.open_session(session, order, now)
    return order


def lapse_acceptance(session: Session, order: Order, now: datetime, reason: str) -> Order:
    """Undo an acceptance whose payment never got authorised (3-D Secure not completed): the
    order is pending again with no provider, the accepted application is pending again (the
    creator may accept it once more, say with another card), the stream key is revoked.
    Rivals rejected by the acceptance stay rejected; matching invites anew. The caller holds
    the order's row lock and has already released the payment."""
    accepted = session.scalars(select(OrderApplication).where(
        OrderApplication.order_id == order.id,
        OrderApplication.status == ApplicationStatus.ACCEPTED)).all()
    for application in accepted:
        application.status = ApplicationStatus.PENDING
    provider_id = order.provider_id
    order.provider_id = None
    order.accepted_at = None
    order.agreed_amount_minor = None
    stream_sessions.revoke(session, order.id, now)
    return _transition(session, order, Action.LAPSE_ACCEPTANCE, Actor.SYSTEM, None,
                       reason=reason,
                       data={"providerId": str(provider_id) if provider_id else None})


def start(session: Session, order_id: uuid.UUID, provider: User,
          location: KnownLocation | None, now: datetime, max_location_age: timedelta) -> Order:
    """Go live: only the assigned provider, only from inside the order's service radius, and
    not while the creator's card still waits for 3-D Secure (no money is held yet)."""
    order, actor = _load_for(session, order_id, provider)
    check_transition(Action.START, order.status, actor)
    escrow = payment_queries.find_escrow_by_order(session, order.id)
    if escrow is not None and escrow.state == EscrowState.AWAITING_AUTHENTICATION:
        raise Conflict("The creator has not finished authenticating the payment yet.",
                       code="PAYMENT_AUTHENTICATION_PENDING")
    if location is None or now - location.recorded_at > max_location_age:
        raise Unprocessable("Share your current location before starting the stream.",
                            code="LOCATION_UNKNOWN")
    distance = great_circle_m(order.latitude, order.longitude,
                              location.latitude, location.longitude)
    if distance > order.service_radius:
        # The distance is the provider's own information; the creator sees none of it here.
        raise Unprocessable(
            "You are outside the order's service radius.", code="OUTSIDE_GEOFENCE",
            details={"distanceMeters": round(distance), "serviceRadius": order.service_radius},
        )
    order.started_at = now
    return _transition(session, order, Action.START, actor, provider.id)


def complete(session: Session, order_id: uuid.UUID, provider: User | None,
             now: datetime, *, streams: StreamRules) -> Order:
    """Finish the order: only once its stream ran for the minimum (the proof of stream,
    ``stream_sessions.ran``), which also ends the stream session."""
    order, actor = _load_for(session, order_id, provider)
    check_transition(Action.COMPLETE, order.status, actor)
    if streams.proof_required and not stream_sessions.ran(session, order.id, streams, now):
        raise Conflict(
            f"The stream has not run for {streams.min_seconds} seconds yet: publish it "
            "first (GET /orders/{id}/stream has the ingest URL and key).",
            code="STREAM_NOT_RUN", details={"minSeconds": streams.min_seconds})
    stream_sessions.end(session, order.id, now)
    order.completed_at = now
    return _transition(session, order, Action.COMPLETE, actor, provider.id if provider else None)


def cancel(session: Session, order_id: uuid.UUID, user: User, reason: str,
           now: datetime) -> Order:
    order, actor = _load_for(session, order_id, user)
    check_transition(Action.CANCEL, order.status, actor)
    order.cancelled_at = now
    order.cancellation_reason = reason
    stream_sessions.revoke(session, order.id, now)
    return _transition(session, order, Action.CANCEL, actor, user.id, reason=reason)


def expire(session: Session, order_id: uuid.UUID, now: datetime) -> Order | None:
    """System expiry of a pending order. Returns None (and does nothing) when the order is gone
    or no longer pending: a beat tick that runs twice is harmless."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    if order is None or order.status is not OrderStatus.PENDING:
        return None
    order.cancelled_at = now
    order.cancellation_reason = "expired"
    session.execute(
        update(OrderApplication)
        .where(OrderApplication.order_id == order.id,
               OrderApplication.status == ApplicationStatus.PENDING)
        .values(status=ApplicationStatus.REJECTED)
        .execution_options(synchronize_session="fetch")
    )
    return _transition(session, order, Action.EXPIRE, Actor.SYSTEM, None, reason="expired")


def dispute(session: Session, order_id: uuid.UUID, creator: User, reason: str, now: datetime,
            rules: OrderRules) -> Order:
    order, actor = _load_for(session, order_id, creator)
    check_transition(Action.DISPUTE, order.status, actor)
    window = timedelta(hours=rules.dispute_window_hours)
    if order.completed_at is None or now - order.completed_at > window:
        raise Conflict(f"Disputes must be raised within {rules.dispute_window_hours:g} hours of "
                       "completion.", code="DISPUTE_WINDOW_CLOSED")
    order.disputed_at = now
    order.dispute_reason = reason
    return _transition(session, order, Action.DISPUTE, actor, creator.id, reason=reason)


def resolve(session: Session, order_id: uuid.UUID, admin: User | None, outcome: str, note: str,
            now: datetime) -> Order:
    """Admin decision on a dispute: ``release`` pays the provider, ``refund`` cancels.
    ``admin=None`` is the system applying the default rule (``domain.overdue``)."""
    actions = {"release": Action.RESOLVE_RELEASE, "refund": Action.RESOLVE_REFUND}
    if outcome not in actions:
        raise ValidationFailed("outcome must be release or refund.",
                               details={"outcome": ["must be release or refund"]})
    order, actor = _load_for(session, order_id, admin)
    check_transition(actions[outcome], order.status, actor)
    if outcome == "refund":
        order.cancelled_at = now
        order.cancellation_reason = f"dispute refunded: {note}"
        stream_sessions.revoke(session, order.id, now)
    return _transition(session, order, actions[outcome], actor, admin.id if admin else None,
                       reason=note, data={"outcome": outcome})


NO_SHOW_REASON = "no_show"


def no_show(session: Session, order_id: uuid.UUID, due_at: datetime,
            now: datetime) -> Order | None:
    """The assigned provider never started: cancel (reason ``no_show``; the hold is released
    by the cancellation's follow-up). The caller has checked the order is due, under the lock
    taken here again: returns None when it is no longer accepted (a second run)."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    if order is None or order.status is not OrderStatus.ACCEPTED:
        return None
    provider_id = order.provider_id
    order.cancelled_at = now
    order.cancellation_reason = NO_SHOW_REASON
    stream_sessions.revoke(session, order.id, now)
    return _transition(session, order, Action.NO_SHOW, Actor.SYSTEM, None,
                       reason=NO_SHOW_REASON,
                       data={"providerId": str(provider_id), "dueAt": due_at.isoformat()})


def reopen(session: Session, order: Order, creator: User, now: datetime) -> Order:
    """Put an order whose provider did not show up back up for matching (the caller holds
    the row lock and has checked the money is released): pending again, unassigned, the
    no-show's application rejected and the others (rejected by that acceptance) pending
    again; ``order:reopened`` re-runs matching, which skips the no-show provider."""
    actor = actor_for(creator, order)
    if actor is None:
        raise NotFound("Order not found.")
    check_transition(Action.REOPEN, order.status, actor)
    if order.cancellation_reason != NO_SHOW_REASON:
        raise Conflict("Only an order whose provider did not show up can be re-opened.",
                       code="NOT_REOPENABLE",
                       details={"cancellationReason": order.cancellation_reason})
    no_show_provider = order.provider_id
    session.execute(
        update(OrderApplication)
        .where(OrderApplication.order_id == order.id,
               OrderApplication.provider_id != no_show_provider,
               OrderApplication.status == ApplicationStatus.REJECTED)
        .values(status=ApplicationStatus.PENDING)
        .execution_options(synchronize_session="fetch"))
    session.execute(
        update(OrderApplication)
        .where(OrderApplication.order_id == order.id,
               OrderApplication.provider_id == no_show_provider)
        .values(status=ApplicationStatus.REJECTED)
        .execution_options(synchronize_session="fetch"))
    order.provider_id = None
    order.accepted_at = None
    order.agreed_amount_minor = None
    order.cancelled_at = None
    order.cancellation_reason = None
    if order.scheduled_for is not None and order.scheduled_for < now:
        # Its time has passed: as soon as possible now (expiry counts from here).
        order.scheduled_for = now
    return _transition(session, order, Action.REOPEN, actor, creator.id,
                       data={"noShowProviderId": str(no_show_provider)})
