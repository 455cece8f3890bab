"""A person's rows across the tables that hold them: what the GDPR export reads and erasure
deletes or pseudonymises (the rules, table by table, are ``domain.privacy``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Numeric, Select, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from db.models import (
    GeofenceState,
    IdempotencyRecord,
    LocationSample,
    Notification,
    Order,
    OrderAssignment,
    OrderMatch,
    OutboxMessage,
    PaymentCustomer,
    PaymentEscrow,
    PayoutAccount,
    ProviderNoShow,
    RefreshTokenFamily,
    SavedPaymentMethod,
    StreamSegment,
    StreamSession,
)


def _their_orders(user_id: uuid.UUID) -> Select[uuid.UUID]:
    return select(Order.id).where(or_(Order.creator_id == user_id, Order.provider_id == user_id))


# ---------------------------------------------------------------------------------- export


def escrows_of(session: Session, user_id: uuid.UUID) -> list[PaymentEscrow]:
    return list(session.scalars(select(PaymentEscrow).where(
        or_(PaymentEscrow.payer_id == user_id, PaymentEscrow.payee_id == user_id)
    ).order_by(PaymentEscrow.created_at, PaymentEscrow.id)))


def payment_customers_of(session: Session, user_id: uuid.UUID) -> list[PaymentCustomer]:
    return list(session.scalars(select(PaymentCustomer).where(
        PaymentCustomer.user_id == user_id).order_by(PaymentCustomer.id)))


def payment_methods_of(session: Session, user_id: uuid.UUID) -> list[SavedPaymentMethod]:
    return list(session.scalars(select(SavedPaymentMethod).where(
        SavedPaymentMethod.user_id == user_id
    ).order_by(SavedPaymentMethod.created_at, SavedPaymentMethod.id)))


def payout_accounts_of(session: Session, user_id: uuid.UUID) -> list[PayoutAccount]:
    return list(session.scalars(select(PayoutAccount).where(
        PayoutAccount.user_id == user_id).order_by(PayoutAccount.id)))


def location_history_of(session: Session, user_id: uuid.UUID) -> list[LocationSample]:
    return list(session.scalars(select(LocationSample).where(
        LocationSample.provider_id == user_id
    ).order_by(LocationSample.recorded_at, LocationSample.id)))


def geofence_states_of(session: Session, user_id: uuid.UUID) -> list[GeofenceState]:
    return list(session.scalars(select(GeofenceState).where(
        GeofenceState.provider_id == user_id).order_by(GeofenceState.changed_at)))


def notifications_of(session: Session, user_id: uuid.UUID) -> list[Notification]:
    return list(session.scalars(select(Notification).where(
        Notification.recipient_id == user_id
    ).order_by(Notification.created_at, Notification.id)))


def matches_of(session: Session, user_id: uuid.UUID) -> list[OrderMatch]:
    """The invitations (and auto-dispatch offers) the provider received."""
    return list(session.scalars(select(OrderMatch).where(
        OrderMatch.provider_id == user_id).order_by(OrderMatch.created_at, OrderMatch.id)))


def assignments_of(session: Session, user_id: uuid.UUID) -> list[OrderAssignment]:
    return list(session.scalars(select(OrderAssignment).where(
        OrderAssignment.provider_id == user_id).order_by(OrderAssignment.assigned_at)))


def stream_sessions_of(session: Session, user_id: uuid.UUID) -> list[StreamSession]:
    """The stream sessions of the orders the user took part in (published or watched)."""
    return list(session.scalars(select(StreamSession).where(
        or_(StreamSession.provider_id == user_id,
            StreamSession.order_id.in_(_their_orders(user_id)))
    ).order_by(StreamSession.created_at, StreamSession.id)))


def stream_segments_of(session: Session, session_ids: Iterable[uuid.UUID]
                       ) -> list[StreamSegment]:
    ids = list(session_ids)
    if not ids:
        return []
    return list(session.scalars(select(StreamSegment).where(
        StreamSegment.session_id.in_(ids)
    ).order_by(StreamSegment.started_at, StreamSegment.id)))


def no_shows_of(session: Session, user_id: uuid.UUID) -> list[ProviderNoShow]:
    return list(session.scalars(select(ProviderNoShow).where(
        ProviderNoShow.provider_id == user_id).order_by(ProviderNoShow.recorded_at)))


def refresh_families_of(session: Session, user_id: uuid.UUID) -> list[RefreshTokenFamily]:
    return list(session.scalars(select(RefreshTokenFamily).where(
        RefreshTokenFamily.user_id == user_id).order_by(RefreshTokenFamily.created_at)))


def idempotency_records_of(session: Session, user_id: uuid.UUID) -> list[IdempotencyRecord]:
    """The remembered first responses of the user's retried POSTs (scope: their id)."""
    return list(session.scalars(select(IdempotencyRecord).where(
        IdempotencyRecord.scope == str(user_id)).order_by(IdempotencyRecord.created_at)))


# --------------------------------------------------------------------------------- erasure


def unsettled_payments(session: Session, user_id: uuid.UUID, open_states: Iterable[str]) -> int:
    """Escrows of the user (either side) still moving money: in one of ``open_states``, or
    with a refund decided but not yet returned. Erasure waits for them: settling needs the
    payee's payout account, refunding the payer's processor customer."""
    count = session.scalar(select(func.count()).select_from(PaymentEscrow).where(
        or_(PaymentEscrow.payer_id == user_id, PaymentEscrow.payee_id == user_id),
        or_(PaymentEscrow.state.in_(list(open_states)), PaymentEscrow.refund_due_minor > 0),
    ))
    return int(count or 0)


def open_offers(session: Session, user_id: uuid.UUID) -> int:
    """Auto-dispatch offers the provider holds right now. Erasure waits for them (deleting the
    offer would leave the creator's dispatch waiting for an answer that never comes): the
    provider declines, or the offer lapses within its minute or so."""
    count = session.scalar(select(func.count()).select_from(OrderMatch).where(
        OrderMatch.provider_id == user_id, OrderMatch.status == "offered"))
    return int(count or 0)


def delete_owned(session: Session, user_id: uuid.UUID) -> dict[str, int]:
    """Delete the rows that are the user's alone and that no money record needs; returns the
    count per table. Matches go before notifications would cascade from them anyway."""
    statements = {
        "payment_methods": delete(SavedPaymentMethod).where(
            SavedPaymentMethod.user_id == user_id),
        "payment_customers": delete(PaymentCustomer).where(PaymentCustomer.user_id == user_id),
        "payout_accounts": delete(PayoutAccount).where(PayoutAccount.user_id == user_id),
        "provider_location_samples": delete(LocationSample).where(
            LocationSample.provider_id == user_id),
        "order_geofence_states": delete(GeofenceState).where(
            GeofenceState.provider_id == user_id),
        "notifications": delete(Notification).where(Notification.recipient_id == user_id),
        "order_assignments": delete(OrderAssignment).where(
            OrderAssignment.provider_id == user_id),
        "order_matches": delete(OrderMatch).where(OrderMatch.provider_id == user_id),
        "idempotency_keys": delete(IdempotencyRecord).where(
            IdempotencyRecord.scope == str(user_id)),
        "refresh_token_families": delete(RefreshTokenFamily).where(
            RefreshTokenFamily.user_id == user_id),
        "provider_no_shows": delete(ProviderNoShow).where(
            ProviderNoShow.provider_id == user_id),
    }
    counts: dict[str, int] = {}
    for table, statement in statements.items():
        result = session.execute(statement.execution_options(synchronize_session=False))
        counts[table] = int(getattr(result, "rowcount", 0) or 0)
    return counts


#: Decimal places an erased creator's order location keeps: 0.1 degree is about 11 km, the
#: town rather than the address.
ERASED_LOCATION_DECIMALS = 1


def pseudonymise_orders(session: Session, user_id: uuid.UUID) -> None:
    """What the creator wrote on their orders and where they were goes; the order stays (the
    counterparty's record, and the payments point at it) with its amounts and dates."""
    session.execute(
        update(Order)
        .where(Order.creator_id == user_id)
        .values(title="[erased]", requirements=None, tags=None,
                # Numeric: PostgreSQL rounds to decimal places only a numeric.
                latitude=func.round(cast(Order.latitude, Numeric), ERASED_LOCATION_DECIMALS),
                longitude=func.round(cast(Order.longitude, Numeric), ERASED_LOCATION_DECIMALS),
                version=Order.version + 1)
        .execution_options(synchronize_session=False)
    )


def forget_processor_refs(session: Session, user_id: uuid.UUID) -> None:
    """The payer's processor customer and card references on their (finished) escrows: the
    money record keeps the intent and the amounts, not the way the person paid."""
    session.execute(
        update(PaymentEscrow)
        .where(PaymentEscrow.payer_id == user_id)
        .values(customer_ref=None, payment_method_ref=None, version=PaymentEscrow.version + 1)
        .execution_options(synchronize_session=False)
    )


def created_orders(session: Session, user_id: uuid.UUID) -> list[Order]:
    """The user's orders as stored now (after erasure's UPDATEs, not as the session held them)."""
    return list(session.scalars(select(Order).where(Order.creator_id == user_id)
                                .execution_options(populate_existing=True)))


def copies_of_orders(session: Session, order_ids: Iterable[uuid.UUID]
                     ) -> list[OutboxMessage | Notification]:
    """The outbox events and the notifications (anyone's) about these orders: their payloads
    carry copies of the order's public view."""
    ids = list(order_ids)
    if not ids:
        return []
    events = session.scalars(select(OutboxMessage).where(
        OutboxMessage.aggregate_id.in_([str(order_id) for order_id in ids])))
    notifications = session.scalars(select(Notification).where(Notification.order_id.in_(ids)))
    return [*events, *notifications]
