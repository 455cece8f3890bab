"""Provider applications to pending orders."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus
from core.errors import Conflict, NotFound, ValidationFailed
from db.models import Order, OrderApplication, User
from db.pagination import CursorCodec, Page, paginate
from domain.events import emit
from domain.money import MoneyError, check_chargeable, to_minor
from domain.order_states import Actor
from domain.orders import actor_for, load_visible

Amount = str | int | float | Decimal


def apply(session: Session, order_id: uuid.UUID, provider: User, *, message: str | None,
          proposed_amount: Amount | None, estimated_arrival: datetime | None,
          now: datetime) -> OrderApplication:
    """One application per provider per order, only while the order is pending.

    ``proposed_amount`` is the client's decimal, judged in the order's currency."""
    order = load_visible(session, order_id, provider, may_apply=True)
    proposed_amount_minor = None
    if proposed_amount is not None:
        try:
            proposed_amount_minor = check_chargeable(to_minor(proposed_amount, order.currency),
                                                     order.currency)
        except MoneyError as exc:
            raise ValidationFailed(str(exc), details={"proposedAmount": [str(exc)]}) from exc
    if order.creator_id == provider.id:
        raise Conflict("You cannot apply to your own order.", code="OWN_ORDER")
    if order.status is not OrderStatus.PENDING:
        raise Conflict("Only pending orders take applications.",
                       code="INVALID_STATE_TRANSITION", details={"status": order.status.value})
    if estimated_arrival is not None and estimated_arrival <= now:
        raise ValidationFailed("estimatedArrival must be in the future.",
                               details={"estimatedArrival": ["must be in the future"]})
    application = OrderApplication(
        order_id=order.id, provider_id=provider.id, application_message=message,
        proposed_amount_minor=proposed_amount_minor, estimated_arrival=estimated_arrival,
        status=ApplicationStatus.PENDING,
    )
    try:
        # A savepoint: a duplicate must not poison the rest of the unit of work.
        with session.begin_nested():
            session.add(application)
    except IntegrityError as exc:
        raise Conflict("You have already applied to this order.",
                       code="ALREADY_APPLIED") from exc
    emit(session, "application:created", str(order.id), {
        "event": "application:created", "orderId": str(order.id),
        "applicationId": str(application.id), "providerId": str(provider.id),
        "creatorId": str(order.creator_id),
    })
    return application


def page_for(session: Session, order_id: uuid.UUID, user: User, codec: CursorCodec, *,
             may_apply: bool, limit: int, cursor: str | None) -> Page[OrderApplication]:
    """The creator (and admins) see every application; a provider only their own. Newest
    first, cursor pagination as ``GET /orders``."""
    order = load_visible(session, order_id, user, may_apply=may_apply)
    stmt = select(OrderApplication).where(OrderApplication.order_id == order.id)
    if actor_for(user, order) not in (Actor.CREATOR, Actor.ADMIN):
        stmt = stmt.where(OrderApplication.provider_id == user.id)
    return paginate(session, stmt, created_col=OrderApplication.created_at,
                    id_col=OrderApplication.id, codec=codec, limit=limit, cursor=cursor)


def withdraw(session: Session, order_id: uuid.UUID, application_id: uuid.UUID,
             provider: User) -> OrderApplication:
    application = session.scalars(
        select(OrderApplication).where(
            OrderApplication.id == application_id,
            OrderApplication.order_id == order_id,
            OrderApplication.provider_id == provider.id,
        ).with_for_update()
    ).one_or_none()
    if application is None:
        raise NotFound("Application not found.")
    if application.status is not ApplicationStatus.PENDING:
        raise Conflict(f"An application that is {application.status.value} cannot be withdrawn.",
                       code="INVALID_STATE_TRANSITION",
                       details={"status": application.status.value})
    application.status = ApplicationStatus.WITHDRAWN
    session.flush()
    emit(session, "application:withdrawn", str(order_id), {
        "event": "application:withdrawn", "orderId": str(order_id),
        "applicationId": str(application.id), "providerId": str(provider.id),
    })
    return application


def find_for_order(session: Session, order: Order,
                   application_id: uuid.UUID) -> OrderApplication | None:
    return session.scalars(select(OrderApplication).where(
        OrderApplication.id == application_id, OrderApplication.order_id == order.id,
    ).with_for_update()).one_or_none()
