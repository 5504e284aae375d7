"""helpdesk workflow: ticket lifecycle, SLA, comments, surveys, help requests, webhooks

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Existing tickets keep their status (``open``) and get no SLA timers: their
targets were never promised. The admin role gains ``reports.read`` and
``integrations.manage``; default SLA targets are created per priority.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# Frozen here on purpose: a migration must not change when the code's defaults do.
DEFAULT_SLA_TARGETS = [
    # priority, first response minutes, resolution minutes
    ("urgent", 15, 4 * 60),
    ("high", 60, 8 * 60),
    ("normal", 4 * 60, 3 * 24 * 60),
    ("low", 8 * 60, 5 * 24 * 60),
]
NEW_ADMIN_PERMISSIONS = ["reports.read", "integrations.manage"]


def upgrade() -> None:
    op.create_table('inbound_sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('secret_wrapped', sa.String(length=400), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('system')
    )
    sla_targets = op.create_table('sla_targets',
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('first_response_minutes', sa.Integer(), nullable=False),
    sa.Column('resolution_minutes', sa.Integer(), nullable=False),
    sa.Column('business_hours', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('priority')
    )
    op.create_table('webhook_endpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('secret_wrapped', sa.String(length=400), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_endpoint_id'), ['endpoint_id'], unique=False)

    op.create_table('ticket_comments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('author', sa.String(length=128), nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ticket_comments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_comments_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('help_requests',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('machine_name', sa.String(length=253), nullable=False),
    sa.Column('os', sa.String(length=128), nullable=False),
    sa.Column('user_name', sa.String(length=256), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('picked_at', sa.DateTime(), nullable=True),
    sa.Column('picked_by_id', sa.Integer(), nullable=True),
    sa.Column('session_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['picked_by_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['session_id'], ['support_sessions.id'], ),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('help_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_help_requests_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_help_requests_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('session_surveys',
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['support_sessions.id'], ),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('session_id')
    )
    with op.batch_alter_table('session_surveys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_session_surveys_ticket_id'), ['ticket_id'], unique=False)

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('category', sa.String(length=64), nullable=False, server_default=""))
        batch_op.add_column(sa.Column('created_via', sa.String(length=16), nullable=False,
                                      server_default="console"))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('assignee_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('assignee_team_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('external_system', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('external_key', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('first_response_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('reopen_count', sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column('sla', sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column('sla_breached', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('sla_due_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('sla_warn_at', sa.DateTime(), nullable=True))
        batch_op.alter_column('created_by_id',
               existing_type=sa.INTEGER(),
               nullable=True)
        batch_op.create_index(batch_op.f('ix_tickets_assignee_id'), ['assignee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_assignee_team_id'), ['assignee_team_id'], unique=False)
        batch_op.create_index('ix_tickets_created_at', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_sla_breached'), ['sla_breached'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_sla_due_at'), ['sla_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_sla_warn_at'), ['sla_warn_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_status'), ['status'], unique=False)
        batch_op.create_index('ux_tickets_external', ['external_system', 'external_key'], unique=True)
        batch_op.create_foreign_key('fk_tickets_assignee_id_users', 'users', ['assignee_id'], ['id'])
        batch_op.create_foreign_key('fk_tickets_assignee_team_id_teams', 'teams', ['assignee_team_id'], ['id'])

    op.bulk_insert(sla_targets, [
        {"priority": p, "first_response_minutes": f, "resolution_minutes": r, "business_hours": False}
        for p, f, r in DEFAULT_SLA_TARGETS
    ])
    _change_admin_permissions(add=NEW_ADMIN_PERMISSIONS)


def _change_admin_permissions(*, add: list[str] = [], remove: list[str] = []) -> None:
    bind = op.get_bind()
    row = bind.execute(sa.text("SELECT id, permissions FROM roles WHERE name = 'admin'")).fetchone()
    if row is None:
        return
    current = json.loads(row.permissions) if isinstance(row.permissions, str) else list(row.permissions)
    changed = [p for p in current if p not in remove] + [p for p in add if p not in current]
    bind.execute(sa.text("UPDATE roles SET permissions = :p WHERE id = :i"),
                 {"p": json.dumps(changed), "i": row.id})


def downgrade() -> None:
    _change_admin_permissions(remove=NEW_ADMIN_PERMISSIONS)
    # 0006 needs a creator on every ticket: those opened by a host or an inbound
    # webhook are credited to the first account.
    op.execute("UPDATE tickets SET created_by_id = (SELECT MIN(id) FROM users) WHERE created_by_id IS NULL")
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_constraint('fk_tickets_assignee_team_id_teams', type_='foreignkey')
        batch_op.drop_constraint('fk_tickets_assignee_id_users', type_='foreignkey')
        batch_op.drop_index('ux_tickets_external')
        batch_op.drop_index(batch_op.f('ix_tickets_status'))
        batch_op.drop_index(batch_op.f('ix_tickets_sla_warn_at'))
        batch_op.drop_index(batch_op.f('ix_tickets_sla_due_at'))
        batch_op.drop_index(batch_op.f('ix_tickets_sla_breached'))
        batch_op.drop_index('ix_tickets_created_at')
        batch_op.drop_index(batch_op.f('ix_tickets_assignee_team_id'))
        batch_op.drop_index(batch_op.f('ix_tickets_assignee_id'))
        batch_op.alter_column('created_by_id',
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column('sla_warn_at')
        batch_op.drop_column('sla_due_at')
        batch_op.drop_column('sla_breached')
        batch_op.drop_column('sla')
        batch_op.drop_column('reopen_count')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('resolved_at')
        batch_op.drop_column('first_response_at')
        batch_op.drop_column('external_key')
        batch_op.drop_column('external_system')
        batch_op.drop_column('assignee_team_id')
        batch_op.drop_column('assignee_id')
        batch_op.drop_column('updated_at')
        batch_op.drop_column('created_via')
        batch_op.drop_column('category')

    with op.batch_alter_table('session_surveys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_session_surveys_ticket_id'))

    op.drop_table('session_surveys')
    with op.batch_alter_table('help_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_help_requests_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_help_requests_state'))

    op.drop_table('help_requests')
    with op.batch_alter_table('ticket_comments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_comments_ticket_id'))

    op.drop_table('ticket_comments')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_endpoint_id'))
        batch_op.drop_index('ix_webhook_deliveries_due')

    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_endpoints')
    op.drop_table('sla_targets')
    op.drop_table('inbound_sources')

