"""signed heads: one signed head per audit chain, and every session's chain recorded in the broker chain

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

The broker now signs a chain's head in the transaction that seals events into
it, so it keeps one signed head per chain (``audit_heads``) instead of a list of
checkpoints: each chain keeps its newest checkpoint, whose signature stays valid
(the signed payload did not change). A broker stopped cleanly had signed every
chain to its end.

Sessions' chains are committed into the broker chain from now on
(``chain.opened``, and ``chain.closed`` when a session ends), so that deleting a
session whole is detected. For the sessions already there this migration writes
those commitments as new, unsealed broker events; the broker seals and signs
them when it starts.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# Frozen here on purpose: a migration must not change when the code's names do.
CHAIN_OPENED = "chain.opened"
CHAIN_CLOSED = "chain.closed"
SESSION_END_KINDS = ("session.ended", "session.expired")


def upgrade() -> None:
    op.create_table('audit_heads',
    sa.Column('chain', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('head_hash', sa.String(length=64), nullable=False),
    sa.Column('signed_at', sa.String(length=40), nullable=False),
    sa.Column('signature', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('chain')
    )
    connection = op.get_bind()
    newest = sa.text(
        "SELECT c.chain, c.seq, c.head_hash, c.signed_at, c.signature FROM audit_checkpoints c "
        "WHERE c.id = (SELECT d.id FROM audit_checkpoints d WHERE d.chain = c.chain ORDER BY d.seq DESC, d.id DESC LIMIT 1)"
    )
    heads = sa.table('audit_heads', sa.column('chain'), sa.column('seq'), sa.column('head_hash'),
                     sa.column('signed_at'), sa.column('signature'))
    rows = [dict(r._mapping) for r in connection.execute(newest)]
    if rows:
        op.bulk_insert(heads, rows)
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_checkpoints_chain'))
    op.drop_table('audit_checkpoints')
    _commit_existing_sessions(connection)


def _commit_existing_sessions(connection: sa.Connection) -> None:
    events = sa.table('audit_events', sa.column('at', sa.DateTime()), sa.column('kind'), sa.column('actor'),
                      sa.column('source'), sa.column('session_id'), sa.column('ticket_id'), sa.column('data', sa.JSON()))
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    chains = connection.execute(sa.text(
        "SELECT chain, MAX(chain_seq) FROM audit_events WHERE hash IS NOT NULL AND chain <> 'broker' "
        "GROUP BY chain ORDER BY MIN(id)"
    )).all()
    rows = []
    for chain, last in chains:
        first = connection.execute(sa.text("SELECT hash FROM audit_events WHERE chain = :c AND chain_seq = 1"),
                                   {"c": chain}).scalar()
        if first is None:
            continue  # a chain already broken: verification names it; nothing true to commit
        rows.append({"at": now, "kind": CHAIN_OPENED, "actor": "broker", "source": None, "session_id": None,
                     "ticket_id": None, "data": {"chain": chain, "first_hash": first}})
        ended = connection.execute(sa.text(
            "SELECT 1 FROM audit_events WHERE chain = :c AND kind IN ('session.ended', 'session.expired') LIMIT 1"),
            {"c": chain}).scalar()
        head = connection.execute(sa.text("SELECT hash FROM audit_events WHERE chain = :c AND chain_seq = :s"),
                                  {"c": chain, "s": last}).scalar()
        if ended and head is not None:
            rows.append({"at": now, "kind": CHAIN_CLOSED, "actor": "broker", "source": None, "session_id": None,
                         "ticket_id": None, "data": {"chain": chain, "seq": last, "head": head}})
    if rows:
        op.bulk_insert(events, rows)


def downgrade() -> None:
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chain', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('head_hash', sa.String(length=64), nullable=False),
    sa.Column('signed_at', sa.String(length=40), nullable=False),
    sa.Column('signature', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_checkpoints_chain'), ['chain'], unique=False)
    op.execute("INSERT INTO audit_checkpoints (chain, seq, head_hash, signed_at, signature) "
               "SELECT chain, seq, head_hash, signed_at, signature FROM audit_heads")
    op.drop_table('audit_heads')
