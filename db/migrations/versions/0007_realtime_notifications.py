"""Notifications for every event a person should learn about (issue 12, docs/realtime.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

A notification now records one pushed event for one recipient: ``event`` (its name),
``event_id`` (the fact's id, shared by every recipient and replay of it: a client
de-duplicates on it) and ``pushed_at`` (NULL until the push went out; a sweep pushes what a
crash left behind). Once per (recipient, event_id) replaces once per (recipient, order, kind):
existing rows get ``kind:order`` as their event id, which is what the old key meant.
"""

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("event", sa.String(64), nullable=True))
        batch.add_column(sa.Column("event_id", sa.String(96), nullable=True))
        batch.add_column(sa.Column("pushed_at", UTCDateTime(), nullable=True))
    notifications = sa.table("notifications", sa.column("id", sa.Uuid()),
                             sa.column("order_id", sa.Uuid()), sa.column("kind", sa.String()),
                             sa.column("event", sa.String()), sa.column("event_id", sa.String()),
                             sa.column("created_at", UTCDateTime()),
                             sa.column("pushed_at", UTCDateTime()))
    # Rows written before: their payload named the event; they were published by the outbox.
    op.execute(notifications.update().values(
        event=sa.case((notifications.c.kind == "dispatch_offer", "dispatch:offered"),
                      else_="order:created"),
        event_id=notifications.c.kind + ":" + sa.cast(
            sa.func.coalesce(notifications.c.order_id, notifications.c.id), sa.String),
        pushed_at=notifications.c.created_at))
    with op.batch_alter_table("notifications") as batch:
        batch.alter_column("event", existing_type=sa.String(64), nullable=False)
        batch.alter_column("event_id", existing_type=sa.String(96), nullable=False)
        batch.drop_constraint("uq_notifications_once", type_="unique")
        batch.create_unique_constraint("uq_notifications_event_once",
                                       ["recipient_id", "event_id"])
    # The push sweep's scan: only rows still waiting, so the index stays tiny.
    op.create_index("idx_notifications_unpushed", "notifications", ["created_at"],
                    postgresql_where=sa.text("pushed_at IS NULL"),
                    sqlite_where=sa.text("pushed_at IS NULL"))


def downgrade() -> None:
    op.drop_index("idx_notifications_unpushed", table_name="notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("uq_notifications_event_once", type_="unique")
        batch.create_unique_constraint("uq_notifications_once",
                                       ["recipient_id", "order_id", "kind"])
        batch.drop_column("pushed_at")
        batch.drop_column("event_id")
        batch.drop_column("event")
