"""session usage: what the peers of each session stored, counted against its quotas

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09

Four counters on each session, kept in the transaction that stores a segment or
a batch of reported events, so a quota is one conditional UPDATE rather than a
sum over the session's rows. Sessions from before count what they already hold.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COUNTERS = ("recording_bytes", "recording_segments", "peer_events", "peer_event_bytes")


def upgrade() -> None:
    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        for name in COUNTERS:
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))
    # The length of the stored JSON text; PostgreSQL has no length() of json, only of its text.
    data_text = "CAST(e.data AS TEXT)" if op.get_bind().dialect.name == "postgresql" else "e.data"
    op.execute(
        "UPDATE support_sessions SET"
        " recording_bytes = (SELECT coalesce(sum(size), 0) FROM recording_segments s WHERE s.session_id = support_sessions.id),"
        " recording_segments = (SELECT count(*) FROM recording_segments s WHERE s.session_id = support_sessions.id),"
        " peer_events = (SELECT count(*) FROM audit_events e"
        "  WHERE e.session_id = support_sessions.id AND e.peer_event_id IS NOT NULL),"
        f" peer_event_bytes = (SELECT coalesce(sum(length({data_text})), 0) FROM audit_events e"
        "  WHERE e.session_id = support_sessions.id AND e.peer_event_id IS NOT NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        for name in reversed(COUNTERS):
            batch_op.drop_column(name)
