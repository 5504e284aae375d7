"""peer event ids: each event a peer reports is stored once

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

A peer that did not get the broker's answer sends the same events again, with
the same ids; the unique index makes the database refuse a second copy, also
when two retries race. Existing events keep NULL (the index ignores NULLs), so
the trail and its hashes are unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('peer_event_id', sa.String(length=64), nullable=True))
        batch_op.create_index('ux_audit_events_peer_event', ['session_id', 'actor', 'peer_event_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ux_audit_events_peer_event')
        batch_op.drop_column('peer_event_id')
