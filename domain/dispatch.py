"""Auto-dispatch: the best candidate gets an exclusive offer with an expiry; a decline or an
expiry moves the offer to the next candidate; an accept accepts the order for the creator.

Also the vocabulary of invitations (``MatchStatus``). Every command locks the rows it changes
and flushes; the caller's unit of work commits, and the ``dispatch:offered`` outbox event it
writes starts the countdown (``matching.expire_offer``) and the offer notification after
commit, so no offer can be lost between commit and enqueue.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus
from core.errors import Conflict, NotFound
from db.models import Order, OrderApplication, OrderDispatch, OrderMatch, User
from db.queries import matching as match_queries
from db.queries import orders as order_queries
from domain import applications, order_actions
from domain.events import emit
from domain.orders import load_as_creator

DISPATCH_OFFERED = "dispatch:offered"
INVITATION_DECLINED = "invitation:declined"


class MatchStatus(StrEnum):
    INVITED = "invited"  # told about the order; may apply (or is queued for an offer)
    OFFERED = "offered"  # holds the exclusive auto-dispatch offer until offer_expires_at
    DECLINED = "declined"
    EXPIRED = "expired"  # let the offer lapse
    ACCEPTED = "accepted"
    CLOSED = "closed"  # the order was taken by someone else


class DispatchStatus(StrEnum):
    OFFERING = "offering"
    EXHAUSTED = "exhausted"  # nobody left to offer to; a re-match may add candidates
    ACCEPTED = "accepted"
    STOPPED = "stopped"  # switched off by the creator


def wants_auto_dispatch(order: Order) -> bool:
    """Auto-dispatch is an order option: ``requirements.autoDispatch = true`` at creation (the
    order schema is not ours to change), or ``PUT /orders/{id}/dispatch`` later."""
    return bool((order.requirements or {}).get("autoDispatch") is True)


@dataclass(frozen=True)
class ExpiryOutcome:
    state: str  # "gone" | "settled" | "not_due" | "expired"
    remaining_s: float = 0.0
    next_match_id: uuid.UUID | None = None


def start(session: Session, order: Order, now: datetime, ttl: timedelta) -> OrderMatch | None:
    """Begin dispatching a pending order (no-op if it already is)."""
    dispatch = match_queries.find_dispatch(session, order.id, for_update=True)
    if dispatch is None:
        dispatch = OrderDispatch(order_id=order.id, status=DispatchStatus.OFFERING.value,
                                 offers_made=0)
        session.add(dispatch)
        session.flush()
    elif dispatch.status not in (DispatchStatus.STOPPED, DispatchStatus.EXHAUSTED):
        return None
    dispatch.status = DispatchStatus.OFFERING.value
    return offer_next(session, dispatch, now, ttl)


def offer_next(session: Session, dispatch: OrderDispatch, now: datetime,
               ttl: timedelta) -> OrderMatch | None:
    """Offer the order to the best-ranked invited provider not yet asked (and not busy on
    another order). None, and the dispatch is exhausted, when nobody is left."""
    busy = match_queries.busy_provider_ids(session)
    match = match_queries.next_offer_candidate(session, dispatch.order_id, busy)
    if match is None:
        dispatch.status, dispatch.current_match_id = DispatchStatus.EXHAUSTED.value, None
        session.flush()
        return None
    match.status = MatchStatus.OFFERED.value
    match.offer_expires_at = now + ttl
    dispatch.status = DispatchStatus.OFFERING.value
    dispatch.current_match_id = match.id
    dispatch.offers_made += 1
    session.flush()
    emit(session, DISPATCH_OFFERED, str(match.id), {
        "event": DISPATCH_OFFERED, "orderId": str(match.order_id), "matchId": str(match.id),
        "providerId": str(match.provider_id), "expiresAt": match.offer_expires_at.isoformat(),
    })
    return match


def set_enabled(session: Session, order_id: uuid.UUID, creator: User, enabled: bool,
                now: datetime, ttl: timedelta) -> OrderDispatch | None:
    """The creator switches auto-dispatch on or off for their pending order."""
    order = load_as_creator(session, order_id, creator)
    if order.status is not OrderStatus.PENDING:
        raise Conflict("Only a pending order can be dispatched.",
                       code="INVALID_STATE_TRANSITION", details={"status": order.status.value})
    if enabled:
        start(session, order, now, ttl)
        return match_queries.find_dispatch(session, order.id)
    dispatch = match_queries.find_dispatch(session, order.id, for_update=True)
    if dispatch is None:
        return None
    if dispatch.current_match_id is not None:
        current = match_queries.find_match(session, dispatch.current_match_id, for_update=True)
        if current is not None and current.status == MatchStatus.OFFERED:
            # The offer is withdrawn; the provider keeps an ordinary invitation.
            current.status, current.offer_expires_at = MatchStatus.INVITED.value, None
    dispatch.status, dispatch.current_match_id = DispatchStatus.STOPPED.value, None
    session.flush()
    return dispatch


def expire_offer(session: Session, match_id: uuid.UUID, now: datetime,
                 ttl: timedelta) -> ExpiryOutcome:
    """The countdown: an offer past its expiry lapses and the next candidate gets one. Safe to
    run early (reports the time left), late or twice (a settled offer is left alone)."""
    match = match_queries.find_match(session, match_id, for_update=True)
    if match is None:
        return ExpiryOutcome("gone")
    if match.status != MatchStatus.OFFERED or match.offer_expires_at is None:
        return ExpiryOutcome("settled")
    if match.offer_expires_at > now:
        return ExpiryOutcome("not_due", (match.offer_expires_at - now).total_seconds())
    match.status, match.responded_at = MatchStatus.EXPIRED.value, now
    following = _move_on(session, match, now, ttl)
    return ExpiryOutcome("expired", next_match_id=following.id if following else None)


def decline(session: Session, match_id: uuid.UUID, provider: User, now: datetime,
            ttl: timedelta) -> OrderMatch:
    """The provider declines an invitation or their offer (the offer then moves on)."""
    match = _load_own(session, match_id, provider)
    if match.status not in (MatchStatus.INVITED, MatchStatus.OFFERED):
        raise Conflict(f"This invitation is {match.status}.", code="INVITATION_NOT_OPEN",
                       details={"status": match.status})
    was_offer = match.status == MatchStatus.OFFERED
    match.status, match.responded_at = MatchStatus.DECLINED.value, now
    session.flush()
    emit(session, INVITATION_DECLINED, str(match.order_id), {
        "event": INVITATION_DECLINED, "orderId": str(match.order_id),
        "providerId": str(provider.id), "wasOffer": was_offer,
    })
    if was_offer:
        _move_on(session, match, now, ttl)
    return match


def accept_offer(session: Session, match_id: uuid.UUID, provider: User,
                 now: datetime) -> Order:
    """The provider takes their offer: their application (created if needed) is accepted as
    if by the creator (``order_actions.accept(..., creator=None)``)."""
    match = _load_own(session, match_id, provider)
    if match.status != MatchStatus.OFFERED or match.offer_expires_at is None:
        raise Conflict("There is no open offer to accept.", code="OFFER_NOT_OPEN",
                       details={"status": match.status})
    if match.offer_expires_at <= now:
        raise Conflict("The offer has expired.", code="OFFER_EXPIRED")
    application = session.scalars(select(OrderApplication).where(
        OrderApplication.order_id == match.order_id,
        OrderApplication.provider_id == provider.id).with_for_update()).one_or_none()
    if application is None:
        application = applications.apply(session, match.order_id, provider, message=None,
                                         proposed_amount=None, estimated_arrival=None, now=now)
    elif application.status is not ApplicationStatus.PENDING:
        raise Conflict(f"Your application is {application.status.value}.",
                       code="APPLICATION_NOT_PENDING")
    order = order_actions.accept(session, match.order_id, application.id, None, now)
    match.status, match.responded_at = MatchStatus.ACCEPTED.value, now
    dispatch = match_queries.find_dispatch(session, match.order_id, for_update=True)
    if dispatch is not None:
        dispatch.status, dispatch.current_match_id = DispatchStatus.ACCEPTED.value, None
    match_queries.close_open_matches(session, match.order_id, now)
    session.flush()
    return order


def _load_own(session: Session, match_id: uuid.UUID, provider: User) -> OrderMatch:
    match = match_queries.find_match(session, match_id, for_update=True)
    if match is None or match.provider_id != provider.id:
        raise NotFound("Invitation not found.")
    return match


def _move_on(session: Session, match: OrderMatch, now: datetime,
             ttl: timedelta) -> OrderMatch | None:
    """After ``match``'s offer ended: offer the next candidate if the order still waits."""
    dispatch = match_queries.find_dispatch(session, match.order_id, for_update=True)
    if dispatch is None or dispatch.current_match_id != match.id:
        return None
    order = order_queries.find_by_id(session, match.order_id)
    if order is None or order.status is not OrderStatus.PENDING:
        dispatch.status, dispatch.current_match_id = DispatchStatus.STOPPED.value, None
        session.flush()
        return None
    return offer_next(session, dispatch, now, ttl)
