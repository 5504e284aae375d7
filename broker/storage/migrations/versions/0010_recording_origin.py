"""recording origin: when the host started recording each session

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Sessions recorded before keep no origin (NULL): their segments keep their
offsets and play as before; a host that resumes one continues after its end.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recording_origin_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        batch_op.drop_column("recording_origin_ms")
