"""Sieve scripts per account (RFC 5228, managed over RFC 5804)

Revision ID: sieve_0001
Revises: mail_0001
Create Date: 2026-12-06 22:30:00.000000

A branch of its own (``sieve``) after the mail store's first revision, so the
mail store's later revisions and this one never compete for a number.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'sieve_0001'
down_revision = 'mail_0001'
branch_labels = ('sieve',)
depends_on = None


def upgrade() -> None:
    op.create_table('sieve_scripts',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('script', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'name')
    )


def downgrade() -> None:
    op.drop_table('sieve_scripts')
