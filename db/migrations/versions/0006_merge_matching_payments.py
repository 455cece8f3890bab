"""Merge the matching (0004) and payments (0005) branches, both grown from 0003.

Revision ID: 0006
Revises: 0004, 0005
Create Date: 2026-11-25
"""

revision = "0006"
down_revision = ("0004", "0005")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
