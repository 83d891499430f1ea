"""messenger: HTTP pushers (push notifications through a push gateway)

One row per (account, app_id, pushkey): the device's pushkey, the gateway's URL
inside ``data`` and the labels the client gave it.

Revision ID: matrix_0004
Revises: matrix_0003
Create Date: 2026-11-23 17:58:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'matrix_0004'
down_revision = 'matrix_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_pushers',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('pushkey', sa.String(length=512), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('app_display_name', sa.String(length=255), nullable=False),
    sa.Column('device_display_name', sa.String(length=255), nullable=False),
    sa.Column('profile_tag', sa.String(length=255), nullable=True),
    sa.Column('lang', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('pushkey_ts', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'app_id', 'pushkey')
    )
    with op.batch_alter_table('matrix_pushers', schema=None) as batch_op:
        batch_op.create_index('ix_matrix_pushers_app_pushkey', ['app_id', 'pushkey'], unique=False)
        batch_op.create_index(batch_op.f('ix_matrix_pushers_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('matrix_pushers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matrix_pushers_user_id'))
        batch_op.drop_index('ix_matrix_pushers_app_pushkey')
    op.drop_table('matrix_pushers')
