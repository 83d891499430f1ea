"""messenger: other servers' media fetched over federation (cache rows)

Revision ID: fedmedia_0001
Revises: 0001
Create Date: 2026-12-06 22:35:00.000000

A branch of its own (``fedmedia``): the table stands alone, so the messenger's
numbered revisions and this one never compete for a number.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'fedmedia_0001'
down_revision = '0001'
branch_labels = ('fedmedia',)
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_remote_media',
    sa.Column('server_name', sa.String(length=255), nullable=False),
    sa.Column('media_id', sa.String(length=255), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('upload_name', sa.String(length=255), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('server_name', 'media_id')
    )
    op.create_index('ix_matrix_remote_media_sha256', 'matrix_remote_media', ['sha256'])


def downgrade() -> None:
    op.drop_index('ix_matrix_remote_media_sha256', table_name='matrix_remote_media')
    op.drop_table('matrix_remote_media')
