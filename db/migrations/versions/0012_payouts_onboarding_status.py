"""Payout onboarding and payout status (issue 17, docs/payments.md).

Revision ID: 0012_payouts
Revises: 0011_tokens
Create Date: 2026-12-02

``payout_accounts.details_submitted``: the provider finished the processor's onboarding form
(accounts registered before onboarding existed were pasted, finished ones: true).
``payment_escrows.payout_*``: where a settled order's money is on its way to the provider's bank.
"""

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision = "0012_payouts"
down_revision = "0011_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payout_accounts", sa.Column("details_submitted", sa.Boolean(),
                                               nullable=False, server_default=sa.true()))
    op.add_column("payment_escrows", sa.Column("payout_status", sa.String(16), nullable=True))
    op.add_column("payment_escrows", sa.Column("payout_ref", sa.String(255), nullable=True))
    op.add_column("payment_escrows", sa.Column("payout_status_at", UTCDateTime(), nullable=True))
    op.create_index("idx_escrows_payout", "payment_escrows", ["payee_id", "payout_status"])
    # Orders settled before this revision: their transfer was made, the bank leg is unknown.
    op.execute("UPDATE payment_escrows SET payout_status = 'pending' "
               "WHERE transfer_ref IS NOT NULL")


def downgrade() -> None:
    op.drop_index("idx_escrows_payout", table_name="payment_escrows")
    op.drop_column("payment_escrows", "payout_status_at")
    op.drop_column("payment_escrows", "payout_ref")
    op.drop_column("payment_escrows", "payout_status")
    op.drop_column("payout_accounts", "details_submitted")
