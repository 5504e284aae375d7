"""roles, teams, account state and TOTP

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Replaces ``users.is_admin`` with roles: the built-in admin, technician and
auditor roles are created, admins get the admin role and everyone else the
technician role, which is what they could do before.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# Frozen here on purpose: a migration must not change when the code's defaults do.
BUILTIN_ROLES = {
    "admin": ("Everything, including accounts, roles and policies", [
        "session.start", "tickets.read", "tickets.write", "tickets.assign", "recordings.view", "audit.read",
        "audit.export", "users.manage", "roles.manage", "policies.manage",
        "view", "control", "clipboard", "chat", "files.send", "files.receive",
    ]),
    "technician": ("Works tickets and runs support sessions", [
        "session.start", "tickets.read", "tickets.write", "view", "control", "clipboard", "chat",
        "files.send", "files.receive",
    ]),
    "auditor": ("Reads the audit trail, plays recordings and exports bundles", [
        "tickets.read", "recordings.view", "audit.read", "audit.export",
    ]),
}


def upgrade() -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    roles = op.create_table('roles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('builtin', sa.Boolean(), nullable=False),
    sa.Column('permissions', sa.JSON(), nullable=False),
    sa.Column('require_totp', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('teams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('policy', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('user_roles',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'role_id')
    )
    op.create_table('team_members',
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('team_id', 'user_id')
    )
    op.create_table('recovery_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('recovery_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_codes_user_id'), ['user_id'], unique=False)

    op.bulk_insert(roles, [
        {"name": name, "description": description, "builtin": True, "permissions": permissions,
         "require_totp": False, "created_at": now}
        for name, (description, permissions) in BUILTIN_ROLES.items()
    ])
    bind = op.get_bind()
    role_ids = dict(bind.execute(sa.text("SELECT name, id FROM roles")).fetchall())
    for user_id, is_admin in bind.execute(sa.text("SELECT id, is_admin FROM users")).fetchall():
        bind.execute(sa.text("INSERT INTO user_roles (user_id, role_id) VALUES (:u, :r)"),
                     {"u": user_id, "r": role_ids["admin" if is_admin else "technician"]})

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('password_changed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('failed_logins', sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_enabled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
        batch_op.drop_column('is_admin')


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_admin', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE users SET is_admin = TRUE WHERE id IN (SELECT user_id FROM user_roles JOIN roles "
        "ON roles.id = user_roles.role_id WHERE roles.name = 'admin')"
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_enabled_at')
        batch_op.drop_column('totp_secret')
        batch_op.drop_column('locked_until')
        batch_op.drop_column('failed_logins')
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('disabled_at')
    with op.batch_alter_table('recovery_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_codes_user_id'))
    op.drop_table('recovery_codes')
    op.drop_table('team_members')
    op.drop_table('user_roles')
    op.drop_table('teams')
    op.drop_table('roles')
