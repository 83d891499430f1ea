"""messenger: the event stream position at a media upload (who may download it)

Revision ID: matrix_0007
Revises: matrix_0006
Create Date: 2026-12-06 20:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'matrix_0007'
down_revision = 'matrix_0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('matrix_media', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stream_position', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('matrix_media', schema=None) as batch_op:
        batch_op.drop_column('stream_position')
