"""Accounts: premium flag, token generation, erasure and verification columns; audit_events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

New NOT NULL user columns carry a server default so existing rows migrate in place. Usernames
become unique case-insensitively (an expression index, which PostgreSQL and SQLite both have), so
"Alice" and "alice" can never be two people. (SQLite cannot reflect expression indexes: a later
batch_alter_table("users") there must re-create uq_users_username_lower after the batch.)
"""

import sqlalchemy as sa
from alembic import op

from db.types import JSONType, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

USER_COLUMNS = (
    "is_premium", "token_generation", "erased_at", "verification_reason", "verification_decided_at",
)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("is_premium", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("token_generation", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("erased_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("verification_reason", sa.String(500), nullable=True))
        batch.add_column(sa.Column("verification_decided_at", UTCDateTime(), nullable=True))
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("subject_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("ip_address", sa.String(45), nullable=True),
        sa.Column("details", JSONType, nullable=True),
    )
    op.create_index("idx_audit_actor", "audit_events", ["actor_id", "occurred_at"])
    op.create_index("idx_audit_subject", "audit_events", ["subject_id", "occurred_at"])
    op.create_index("idx_audit_event", "audit_events", ["event", "occurred_at"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_index("uq_users_username_lower", table_name="users")
    with op.batch_alter_table("users") as batch:
        for column in reversed(USER_COLUMNS):
            batch.drop_column(column)
