"""session consent

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("consent_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("consent_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        batch_op.drop_column("consent_at")
        batch_op.drop_column("consent_source")
        batch_op.drop_column("consent")
