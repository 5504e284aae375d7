"""An index of the audit events not sealed yet.

The sealer looks for them every second and whenever a session ends; without this index
each look walked the whole table (``hash IS NULL`` in id order), so sealing cost grew with
everything ever recorded. A partial index holds only the few pending rows.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UNSEALED = sa.text("hash IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_audit_events_unsealed", "audit_events", ["id"], unique=False,
        sqlite_where=UNSEALED, postgresql_where=UNSEALED,
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_unsealed", table_name="audit_events")
