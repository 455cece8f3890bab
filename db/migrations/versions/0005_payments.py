"""Payments: escrows, saved payment methods, processor customers, payout accounts, the
double-entry ledger, processed webhook events, reconciliation runs.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-25

Only new tables (nothing existing changes), so it runs beside the matching branch (0004) and
the two heads are merged later. Works on PostgreSQL and SQLite alike.
"""

import sqlalchemy as sa
from alembic import op

from db.types import JSONType, UTCDateTime

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def _bigint_pk() -> sa.Column:
    # SQLite only auto-increments INTEGER PRIMARY KEY.
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                     primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "payment_escrows",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("order_id", sa.Uuid(),
                  sa.ForeignKey("live_stream_orders.id", ondelete="CASCADE"), nullable=False,
                  unique=True),
        sa.Column("transaction_id", sa.Uuid(),
                  sa.ForeignKey("payment_transactions.id", ondelete="CASCADE"), nullable=False,
                  unique=True),
        sa.Column("payer_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("payee_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("authorized_minor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("captured_minor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("refund_due_minor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("refund_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("gateway", sa.String(16), nullable=False),
        sa.Column("customer_ref", sa.String(255), nullable=True),
        sa.Column("payment_method_ref", sa.String(255), nullable=True),
        sa.Column("intent_ref", sa.String(255), nullable=True, unique=True),
        sa.Column("hold_generation", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("hold_expires_at", UTCDateTime(), nullable=True),
        sa.Column("authorize_at", UTCDateTime(), nullable=True),
        sa.Column("settle_after", UTCDateTime(), nullable=True),
        sa.Column("transfer_ref", sa.String(255), nullable=True),
        sa.Column("flag", sa.String(64), nullable=True),
        sa.Column("flagged_at", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name="ck_escrows_amount_positive"),
        sa.CheckConstraint(
            "authorized_minor >= 0 AND captured_minor >= 0 AND refunded_minor >= 0 "
            "AND refund_due_minor >= 0 AND refunded_minor <= captured_minor",
            name="ck_escrows_amounts",
        ),
    )
    op.create_index("idx_escrows_state", "payment_escrows", ["state"])
    op.create_index("idx_escrows_authorize_at", "payment_escrows", ["state", "authorize_at"])
    op.create_index("idx_escrows_hold_expiry", "payment_escrows", ["state", "hold_expires_at"])
    op.create_index("idx_escrows_settle_after", "payment_escrows", ["state", "settle_after"])

    op.create_table(
        "payment_customers",
        _bigint_pk(),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("gateway", sa.String(16), nullable=False),
        sa.Column("customer_ref", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "gateway", name="uq_payment_customers_user"),
    )

    op.create_table(
        "payment_methods",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("gateway", sa.String(16), nullable=False),
        sa.Column("method_ref", sa.String(255), nullable=False),
        sa.Column("brand", sa.String(32), nullable=True),
        sa.Column("last4", sa.String(4), nullable=True),
        sa.Column("exp_month", sa.Integer(), nullable=True),
        sa.Column("exp_year", sa.Integer(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "gateway", "method_ref",
                            name="uq_payment_methods_user_ref"),
    )
    op.create_index("idx_payment_methods_user", "payment_methods", ["user_id", "created_at"])

    op.create_table(
        "payout_accounts",
        _bigint_pk(),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("gateway", sa.String(16), nullable=False),
        sa.Column("account_ref", sa.String(255), nullable=False),
        sa.Column("payouts_enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "gateway", name="uq_payout_accounts_user"),
    )

    op.create_table(
        "ledger_transactions",
        _bigint_pk(),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("order_id", sa.Uuid(),
                  sa.ForeignKey("live_stream_orders.id", ondelete="SET NULL"), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("processor_ref", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("idx_ledger_transactions_order", "ledger_transactions", ["order_id"])

    op.create_table(
        "ledger_entries",
        _bigint_pk(),
        sa.Column("transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("ledger_transactions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("amount_minor <> 0", name="ck_ledger_entries_nonzero"),
    )
    op.create_index("idx_ledger_entries_account", "ledger_entries", ["account", "currency"])
    op.create_index("idx_ledger_entries_transaction", "ledger_entries", ["transaction_id"])

    op.create_table(
        "processed_webhook_events",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("object_ref", sa.String(255), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )

    op.create_table(
        "reconciliation_runs",
        _bigint_pk(),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("checked", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("drift", JSONType, nullable=False),
    )


def downgrade() -> None:
    for table in ("reconciliation_runs", "processed_webhook_events", "ledger_entries",
                  "ledger_transactions", "payout_accounts", "payment_methods",
                  "payment_customers", "payment_escrows"):
        op.drop_table(table)
