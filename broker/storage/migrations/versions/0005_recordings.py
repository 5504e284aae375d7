"""recordings

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('recording_segments',
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('offset_ms', sa.BigInteger(), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('stored_sha256', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['support_sessions.id'], ),
    sa.PrimaryKeyConstraint('session_id', 'index')
    )
    op.create_table('session_keys',
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('wrapped', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['support_sessions.id'], ),
    sa.PrimaryKeyConstraint('session_id')
    )



def downgrade() -> None:

    op.drop_table('session_keys')
    op.drop_table('recording_segments')

