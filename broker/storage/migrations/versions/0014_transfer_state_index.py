"""An index of the transfers' states.

Every sweep (each second by default) looks for the transfers still running, to cancel
those whose session is over; without this index each look read every transfer ever
made, so the sweep's cost grew with the broker's history. With it the look reads the
few running transfers only.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_transfers_state"), "transfers", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_transfers_state"), table_name="transfers")
