"""grant changes: one counter row bumped by every write that can change a live session's grant

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10

The broker's grant watcher reads this one row about once a second instead of
asking the database about every connected session (``broker.sessions.grant_watch``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "grant_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "count": 0}])


def downgrade() -> None:
    op.drop_table("grant_changes")
