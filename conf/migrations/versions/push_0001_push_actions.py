"""messenger push: the notifications push rules gave each user (unread counts)

Revision ID: push_0001
Revises: matrix_0007
Create Date: 2026-12-06 22:30:00.000000

A branch of its own (label ``pushcounts``) so the room-graph migrations of the
messenger branch and this one do not compete for a number.  Table model:
``messenger.storage.push_tables``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'push_0001'
down_revision = 'matrix_0007'
branch_labels = ('pushcounts',)
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_push_actions',
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('stream_ordering', sa.BigInteger(), nullable=False),
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('thread_id', sa.String(length=255), nullable=False),
    sa.Column('highlight', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'stream_ordering')
    )
    op.create_index('ix_matrix_push_actions_room', 'matrix_push_actions',
                    ['user_id', 'room_id', 'stream_ordering'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_matrix_push_actions_room', table_name='matrix_push_actions')
    op.drop_table('matrix_push_actions')
