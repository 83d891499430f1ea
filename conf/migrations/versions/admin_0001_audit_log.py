"""admin: the audit log (who did what, when, from where; issue 17)

Revision ID: admin_0001
Revises: 0001
Create Date: 2026-12-06 22:20:00.000000

A branch of its own (label ``admin``) from the directory root.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'admin_0001'
down_revision = '0001'
branch_labels = ('admin',)
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('client_address', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True,
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
