"""Payments: the spec's payment transactions, escrow, processor customers and saved cards,
payout accounts, the double-entry ledger, processed webhook events and reconciliation runs.

Amounts are integer minor units of the row's currency; ledger amounts are signed (see
``domain.payments.ledger``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.enums import (
    PaymentStatus,
)
from db.models.base import Base, TimestampMixin, bigint_pk, enum_type
from db.types import JSONType, UTCDateTime, utcnow


class PaymentTransaction(TimestampMixin, Base):
    __tablename__ = "payment_transactions"
    __table_args__ = (
        # The fee split must add up to the cent: enforced by the database, not only by code.
        CheckConstraint(
            "gross_amount_minor = platform_fee_minor + processing_fee_minor + net_amount_minor",
            name="ck_payments_split_balances",
        ),
        CheckConstraint(
            "gross_amount_minor >= 0 AND platform_fee_minor >= 0 "
            "AND processing_fee_minor >= 0 AND net_amount_minor >= 0",
            name="ck_payments_non_negative",
        ),
        Index("idx_payments_order", "order_id"),
        Index("idx_payments_payer", "payer_id"),
        Index("idx_payments_payee", "payee_id"),
        Index("idx_payments_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("live_stream_orders.id")
    )
    payer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    payee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    gross_amount_minor: Mapped[int] = mapped_column(BigInteger)
    platform_fee_minor: Mapped[int] = mapped_column(BigInteger)
    processing_fee_minor: Mapped[int] = mapped_column(BigInteger)
    net_amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(
        enum_type(PaymentStatus, "payment_status_enum"), default=PaymentStatus.PENDING
    )
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PaymentEscrow(TimestampMixin, Base):
    """One per accepted order: where its money is, and what the processor holds for it."""

    __tablename__ = "payment_escrows"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="ck_escrows_amount_positive"),
        CheckConstraint(
            "authorized_minor >= 0 AND captured_minor >= 0 AND refunded_minor >= 0 "
            "AND refund_due_minor >= 0 AND refunded_minor <= captured_minor",
            name="ck_escrows_amounts",
        ),
        Index("idx_escrows_state", "state"),
        Index("idx_escrows_authorize_at", "state", "authorize_at"),
        Index("idx_escrows_hold_expiry", "state", "hold_expires_at"),
        Index("idx_escrows_settle_after", "state", "settle_after"),
        Index("idx_escrows_payout", "payee_id", "payout_status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="CASCADE"), unique=True)
    transaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payment_transactions.id", ondelete="CASCADE"), unique=True)
    payer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    payee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # what the creator agreed to pay
    authorized_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    captured_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # Decided (cancellation policy, dispute resolution) but not yet returned to the creator.
    refund_due_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_count: Mapped[int] = mapped_column(Integer, default=0)
    gateway: Mapped[str] = mapped_column(String(16))
    customer_ref: Mapped[str | None] = mapped_column(String(255))
    payment_method_ref: Mapped[str | None] = mapped_column(String(255))
    intent_ref: Mapped[str | None] = mapped_column(String(255), unique=True)
    hold_generation: Mapped[int] = mapped_column(Integer, default=0)
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    authorize_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settle_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    transfer_ref: Mapped[str | None] = mapped_column(String(255))
    # Where the provider's money is after the transfer (domain.payments.payout_status):
    # pending | in_transit | paid | failed, and the processor's bank payout carrying it.
    payout_status: Mapped[str | None] = mapped_column(String(16))
    payout_ref: Mapped[str | None] = mapped_column(String(255))
    payout_status_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why a human should look (declined renewal, lapsed hold, chargeback...); None when fine.
    flag: Mapped[str | None] = mapped_column(String(64))
    flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    # Every write also checks the version: a task that lost a race fails instead of
    # overwriting (the row lock makes this rare; the version makes it impossible).
    __mapper_args__ = {"version_id_col": version}


class PaymentCustomer(Base):
    """The processor's customer object of a user (cards are saved on it)."""

    __tablename__ = "payment_customers"
    __table_args__ = (UniqueConstraint("user_id", "gateway", name="uq_payment_customers_user"),)

    id: Mapped[int] = bigint_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    gateway: Mapped[str] = mapped_column(String(16))
    customer_ref: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SavedPaymentMethod(Base):
    """A card the creator saved (its processor id and display details; never card data)."""

    __tablename__ = "payment_methods"
    __table_args__ = (
        UniqueConstraint("user_id", "gateway", "method_ref", name="uq_payment_methods_user_ref"),
        Index("idx_payment_methods_user", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    gateway: Mapped[str] = mapped_column(String(16))
    method_ref: Mapped[str] = mapped_column(String(255))
    brand: Mapped[str | None] = mapped_column(String(32))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PayoutAccount(Base):
    """A provider's connected account (Stripe Connect) that settlements transfer to."""

    __tablename__ = "payout_accounts"
    __table_args__ = (UniqueConstraint("user_id", "gateway", name="uq_payout_accounts_user"),)

    id: Mapped[int] = bigint_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    gateway: Mapped[str] = mapped_column(String(16))
    account_ref: Mapped[str] = mapped_column(String(255))
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The provider finished the processor's onboarding form (Connect ``details_submitted``).
    details_submitted: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LedgerTransaction(Base):
    """One balanced movement of money. ``key`` makes posting idempotent: a step posted twice
    (a task run again after a crash) finds its first posting instead of doubling it."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (Index("idx_ledger_transactions_order", "order_id"),)

    id: Mapped[int] = bigint_pk()
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="SET NULL"))
    currency: Mapped[str] = mapped_column(String(3))
    processor_ref: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """One leg of a ledger transaction: a signed amount on an account (positive = into it)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount_minor <> 0", name="ck_ledger_entries_nonzero"),
        Index("idx_ledger_entries_account", "account", "currency"),
        Index("idx_ledger_entries_transaction", "transaction_id"),
    )

    id: Mapped[int] = bigint_pk()
    transaction_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="CASCADE"))
    account: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcessedWebhookEvent(Base):
    """A processor event already handled: its id is the deduplication key."""

    __tablename__ = "processed_webhook_events"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(128))
    object_ref: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconciliationRun(Base):
    """One pass of the reconciliation job and the drift it found (empty list: none)."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = bigint_pk()
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    checked: Mapped[int] = mapped_column(Integer, default=0)
    drift: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
