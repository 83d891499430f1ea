"""bridge: mails posted into group rooms (issue 18, mail -> room)

One row per (room, Message-ID) the mail bridge posted, so that a mail delivered
again is not posted twice.  A branch of its own (``bridge``) after the
messenger's room DAG revision.

Revision ID: bridge_0001
Revises: matrix_0008
Create Date: 2026-12-06 23:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'bridge_0001'
down_revision = 'matrix_0008'
branch_labels = ('bridge',)
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_mail_bridged',
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('message_key', sa.String(length=64), nullable=False),
    sa.Column('bridged_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['room_id'], ['matrix_rooms.room_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('room_id', 'message_key')
    )


def downgrade() -> None:
    op.drop_table('matrix_mail_bridged')
