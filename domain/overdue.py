"""No order left hanging (issue 17): the rules and commands of the beat jobs that end what
nobody ends. docs/orders.md ("Automatic steps") has the diagram and the timers.

* **No-show**: an accepted order not started by its time plus ``grace`` is cancelled (reason
  ``no_show``) and the miss is recorded against the provider, which lowers their completion
  rate in matching. The creator may re-open it (``reopen``).
* **Overdue active**: an order live for over ``active_max`` is completed when its stream ran
  (or by time, with the stream proof off), otherwise escalated to admins.
* **Overdue dispute**: escalated to admins after ``dispute_escalate``, resolved by the default
  rule after ``dispute_resolve``: released to the provider when the stream ran, refunded
  otherwise.

Every command locks the order, re-checks its state and the clock, and is a no-op when there
is nothing (left) to do, so a job that runs twice or dies at any line does each step once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core.config import Settings
from core.enums import OrderStatus
from core.errors import Conflict, NotFound
from db.models import Order, User
from db.queries import orders as order_queries
from db.queries import overdue as queries
from db.queries import payments as payment_queries
from domain import order_actions, stream_sessions
from domain.events import record_order_event
from domain.order_states import Actor
from domain.payments import capture
from domain.payments.escrow import EscrowState
from domain.payments.records import REUSABLE
from domain.stream_sessions import StreamRules

ORDER_ESCALATED = "order:escalated"
ACTIVE_OVERDUE = "active_overdue"
DISPUTE_OVERDUE = "dispute_overdue"


@dataclass(frozen=True)
class OverdueRules:
    no_show_window: timedelta  # unscheduled orders: how long after acceptance to start
    no_show_grace: timedelta
    active_max: timedelta
    dispute_escalate: timedelta
    dispute_resolve: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> OverdueRules:
        return cls(no_show_window=timedelta(minutes=settings.order_no_show_window_minutes),
                   no_show_grace=timedelta(minutes=settings.order_no_show_grace_minutes),
                   active_max=timedelta(hours=settings.order_active_max_hours),
                   dispute_escalate=timedelta(days=settings.dispute_escalate_after_days),
                   dispute_resolve=timedelta(days=settings.dispute_auto_resolve_after_days))


def start_due(order: Order, rules: OverdueRules) -> datetime | None:
    """When an accepted order counts as a no-show: its scheduled time (or, unscheduled or
    accepted after that time, acceptance + the window), plus the grace."""
    if order.accepted_at is None:
        return None
    start_by = order.accepted_at + rules.no_show_window
    if order.scheduled_for is not None and order.scheduled_for >= order.accepted_at:
        start_by = order.scheduled_for
    return start_by + rules.no_show_grace


def cancel_no_show(session: Session, order_id: uuid.UUID, rules: OverdueRules,
                   now: datetime) -> Order | None:
    order = order_queries.find_by_id(session, order_id, for_update=True)
    if order is None or order.status is not OrderStatus.ACCEPTED:
        return None
    due = start_due(order, rules)
    if due is None or now < due:
        return None
    escrow = payment_queries.find_escrow_by_order(session, order_id)
    if escrow is not None and escrow.state == EscrowState.AWAITING_AUTHENTICATION.value:
        # The provider may not start before the creator's 3-D Secure: not their miss (the
        # authentication's own timeout lapses the acceptance).
        return None
    queries.record_no_show(session, order, due, now)
    return order_actions.no_show(session, order_id, due, now)


def reopen(session: Session, order_id: uuid.UUID, creator: User, now: datetime) -> Order:
    """The creator puts a no-show order back up for matching. Its hold must have been
    released first (the cancellation's follow-up, seconds after it): until then 409
    ``PAYMENT_RELEASE_PENDING``, and the client retries."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    if order is None:
        raise NotFound("Order not found.")
    escrow = payment_queries.find_escrow_by_order(session, order_id, for_update=True)
    pending = escrow is not None and (escrow.state not in REUSABLE or escrow.captured_minor)
    # Only the creator of a cancelled order learns about its money; anyone else gets the
    # state machine's answer.
    if pending and order.creator_id == creator.id and order.status is OrderStatus.CANCELLED:
        assert escrow is not None
        raise Conflict("The hold of the cancelled order is still being released; try again "
                           "in a few seconds.", code="PAYMENT_RELEASE_PENDING",
                           details={"state": escrow.state})
    order_actions.reopen(session, order, creator, now)
    queries.forget_matching(session, order.id)
    return order


def _escalate(session: Session, order: Order, why: str, now: datetime) -> None:
    order.escalated_at = now
    order.escalation = why
    session.flush()
    record_order_event(session, order, ORDER_ESCALATED, actor=Actor.SYSTEM, actor_id=None,
                       from_status=order.status.value, reason=why, data={"escalation": why})


def settle_overdue_active(session: Session, order_id: uuid.UUID, rules: OverdueRules,
                          streams: StreamRules, now: datetime) -> str:
    """``completed``, ``escalated`` or ``nothing``."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    if (order is None or order.status is not OrderStatus.ACTIVE or order.started_at is None
            or now - order.started_at < rules.active_max or order.escalation == ACTIVE_OVERDUE):
        return "nothing"
    if not streams.proof_required or stream_sessions.ran(session, order.id, streams, now):
        order_actions.complete(session, order.id, None, now, streams=streams)
        return "completed"
    _escalate(session, order, ACTIVE_OVERDUE, now)
    return "escalated"


def settle_overdue_dispute(session: Session, order_id: uuid.UUID, rules: OverdueRules,
                           streams: StreamRules, now: datetime) -> str:
    """``resolved:release``, ``resolved:refund``, ``escalated`` or ``nothing``."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    if order is None or order.status is not OrderStatus.DISPUTED or order.disputed_at is None:
        return "nothing"
    age = now - order.disputed_at
    if age >= rules.dispute_resolve:
        # The documented default rule: the stream is the evidence.
        outcome = "release" if stream_sessions.ran(session, order.id, streams, now) else "refund"
        capture.resolve_dispute(session, order.id, None, outcome,
                                f"default rule after {rules.dispute_resolve.days} days", None,
                                now)
        return f"resolved:{outcome}"
    if age >= rules.dispute_escalate and order.escalation != DISPUTE_OVERDUE:
        _escalate(session, order, DISPUTE_OVERDUE, now)
        return "escalated"
    return "nothing"
