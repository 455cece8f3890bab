"""Order commands: create, edit, delete, and who may see an order.

Commands flush, never commit: the caller's unit of work (the request, or a task's
``Database.transaction()``) commits, so an order, its history row, its outbox event and an
idempotency record land together or not at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Row
from sqlalchemy.orm import Session

from core.enums import OrderStatus, UserRole
from core.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from db.models import Order, User
from db.queries import areas as area_queries
from db.queries import orders as order_queries
from domain.events import (
    emit,
    note_order_view_changed,
    note_outbox_written,
    order_event_values,
    order_snapshot,
    record_order_event,
)
from domain.money import MoneyError, check_chargeable, to_minor
from domain.order_states import Actor


@dataclass(frozen=True)
class OrderRules:
    """Configurable limits (from settings) that the schema cannot know."""

    min_radius_m: int = 50
    max_radius_m: int = 50_000
    max_schedule_ahead_days: int = 365
    dispute_window_hours: float = 72


@dataclass(frozen=True)
class OrderDraft:
    title: str
    latitude: float
    longitude: float
    base_amount_minor: int
    currency: str
    service_radius: int = 1000
    description: str | None = None
    address: str | None = None
    scheduled_for: datetime | None = None
    requirements: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)


# ``base_amount`` is the client's decimal; it is converted in the (possibly new) currency.
EDITABLE_FIELDS = frozenset({
    "title", "description", "latitude", "longitude", "location_address", "service_radius",
    "base_amount", "currency", "scheduled_for", "requirements", "tags",
})


def _check_rules(rules: OrderRules, *, service_radius: int, scheduled_for: datetime | None,
                 now: datetime) -> None:
    if not rules.min_radius_m <= service_radius <= rules.max_radius_m:
        raise ValidationFailed(
            f"serviceRadius must be between {rules.min_radius_m} and {rules.max_radius_m} m.",
            details={"serviceRadius": [f"must be between {rules.min_radius_m} and "
                                       f"{rules.max_radius_m}"]},
        )
    if scheduled_for is not None:
        if scheduled_for <= now:
            raise ValidationFailed("scheduledFor must be in the future.",
                                   details={"scheduledFor": ["must be in the future"]})
        if (scheduled_for - now).days > rules.max_schedule_ahead_days:
            raise ValidationFailed(
                f"scheduledFor must be within {rules.max_schedule_ahead_days} days.",
                details={"scheduledFor": ["too far ahead"]})


def _outside_areas() -> Unprocessable:
    return Unprocessable(
        "This location is outside every area TapLive operates in.",
        code="OUTSIDE_OPERATING_AREA",
        details={"location": ["outside the operating areas"]},
    )


def _check_area(session: Session, latitude: float, longitude: float) -> None:
    if not area_queries.point_is_served(session, latitude, longitude):
        raise _outside_areas()


def _check_chargeable(minor: int, currency: str, field_name: str) -> None:
    """A 400 now rather than a processor refusal at acceptance (three-decimal currencies)."""
    try:
        check_chargeable(minor, currency)
    except MoneyError as exc:
        raise ValidationFailed(exc.message, code=exc.code,
                               details={field_name: [exc.message]}) from exc


def create_order(session: Session, creator_id: uuid.UUID, draft: OrderDraft, rules: OrderRules,
                 now: datetime) -> Row[Any]:
    """A new pending order of ``creator_id`` (an id, not the account row: the caller's role
    was checked by whoever calls this, and loading the row would cost a round trip), with its
    history row and ``order:created`` outbox event.

    The area check and the three rows are written by ``insert_served_order`` (one statement
    on PostgreSQL: this is the API's busiest write, and the ORM's unit of work plus three
    round trips were most of its time). Returns the order's row (every column, under the
    ``Order`` attributes' names), on either database."""
    _check_rules(rules, service_radius=draft.service_radius,
                 scheduled_for=draft.scheduled_for, now=now)
    _check_chargeable(draft.base_amount_minor, draft.currency, "baseAmount")
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "title": draft.title, "description": draft.description,
        "creator_id": creator_id, "provider_id": None, "latitude": draft.latitude,
        "longitude": draft.longitude, "location_address": draft.address,
        "service_radius": draft.service_radius, "base_amount_minor": draft.base_amount_minor,
        "currency": draft.currency, "status": OrderStatus.PENDING,
        "scheduled_for": draft.scheduled_for, "requirements": draft.requirements,
        "tags": draft.tags, "version": 1, "created_at": now, "updated_at": now,
    }
    order = Order(**values)  # transient, never added: the event rows are built from it
    history, message = order_event_values(order, "order:created", actor=Actor.CREATOR,
                                          actor_id=creator_id, now=now)
    created = order_queries.insert_served_order(session, values, history, message)
    if created is None:
        raise _outside_areas()
    note_order_view_changed(session, message["payload"])
    note_outbox_written(session, created.outbox_id, message)
    return created.order


class Party(Protocol):
    """Who asks (an account row, or the token's ``Caller``)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def role(self) -> UserRole: ...


class Parties(Protocol):
    """What decides who sees an order (an ``Order``, or ``OrderParties`` from a cached view)."""

    @property
    def creator_id(self) -> uuid.UUID: ...

    @property
    def provider_id(self) -> uuid.UUID | None: ...

    @property
    def status(self) -> OrderStatus: ...


@dataclass(frozen=True)
class OrderParties:
    creator_id: uuid.UUID
    provider_id: uuid.UUID | None
    status: OrderStatus


def actor_for(user: Party, order: Parties) -> Actor | None:
    """The user's part in this order, if any (admins act as admin on any order)."""
    if order.creator_id == user.id:
        return Actor.CREATOR
    if order.provider_id is not None and order.provider_id == user.id:
        return Actor.PROVIDER
    if user.role is UserRole.ADMIN:
        return Actor.ADMIN
    return None


def can_view(user: Party, order: Parties, *, may_apply: bool) -> bool:
    """Participants and admins see an order; providers also see pending ones they could take."""
    return actor_for(user, order) is not None or (
        may_apply and order.status is OrderStatus.PENDING
    )


def load_visible(session: Session, order_id: uuid.UUID, user: User, *, may_apply: bool,
                 lock: bool = False) -> Order:
    """The order, or 404 for anyone who may not see it (existence is not revealed)."""
    order = order_queries.find_by_id(session, order_id, for_update=lock)
    if order is None or not can_view(user, order, may_apply=may_apply):
        raise NotFound("Order not found.")
    return order


def load_as_creator(session: Session, order_id: uuid.UUID, user: User) -> Order:
    order = order_queries.find_by_id(session, order_id, for_update=True)
    if order is None or order.creator_id != user.id:
        raise NotFound("Order not found.")
    return order


def update_order(session: Session, order_id: uuid.UUID, creator: User, changes: dict[str, Any],
                 rules: OrderRules, now: datetime) -> Order:
    """Edit an order while it is pending (only its creator may)."""
    order = load_as_creator(session, order_id, creator)
    if order.status is not OrderStatus.PENDING:
        raise Conflict("Only a pending order can be edited.", code="INVALID_STATE_TRANSITION",
                       details={"status": order.status.value})
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValidationFailed("Unknown fields.", details={f: ["not editable"] for f in unknown})
    _check_rules(rules, now=now,
                 service_radius=changes.get("service_radius", order.service_radius),
                 # An unchanged schedule is not re-judged against "now".
                 scheduled_for=changes.get("scheduled_for"))
    _check_area(session, changes.get("latitude", order.latitude),
                changes.get("longitude", order.longitude))
    if "base_amount" in changes:
        currency = changes.get("currency", order.currency)
        try:
            changes["base_amount_minor"] = to_minor(changes.pop("base_amount"), currency)
        except MoneyError as exc:
            raise ValidationFailed(str(exc), details={"baseAmount": [str(exc)]}) from exc
        _check_chargeable(changes["base_amount_minor"], currency, "baseAmount")
    for name, value in changes.items():
        setattr(order, name, value)
    session.flush()
    record_order_event(session, order, "order:updated", actor=Actor.CREATOR, actor_id=creator.id,
                       data={"fields": sorted(changes)})
    return order


def delete_order(session: Session, order_id: uuid.UUID, creator: User) -> None:
    """Delete a pending order that was never accepted (afterwards it is history: cancel it)."""
    order = load_as_creator(session, order_id, creator)
    if order.status is not OrderStatus.PENDING or order.accepted_at is not None:
        raise Conflict("Only a pending, never-accepted order can be deleted; cancel it instead.",
                       code="INVALID_STATE_TRANSITION", details={"status": order.status.value})
    emit(session, "order:deleted", str(order.id),
         order_snapshot(order) | {"event": "order:deleted", "actor": Actor.CREATOR.value})
    session.delete(order)
    session.flush()
