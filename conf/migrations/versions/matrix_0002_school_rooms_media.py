"""messenger: group rooms, media, to-device, device lists, receipt stream

School rooms kept in sync with directory groups, uploaded media (bytes on
disk, content-addressed), to-device messages and device-list changes for
E2EE, and a stream position on receipts for /sync ephemeral events.

Revision ID: matrix_0002
Revises: matrix_0001
Create Date: 2026-11-23 14:21:37.885072
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'matrix_0002'
down_revision = 'matrix_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_device_list_changes',
    sa.Column('stream_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('stream_id')
    )
    with op.batch_alter_table('matrix_device_list_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_matrix_device_list_changes_user_id'), ['user_id'], unique=False)

    op.create_table('matrix_group_rooms',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['room_id'], ['matrix_rooms.room_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id'),
    sa.UniqueConstraint('room_id')
    )
    op.create_table('matrix_media',
    sa.Column('media_id', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('upload_name', sa.String(length=255), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('media_id')
    )
    with op.batch_alter_table('matrix_media', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_matrix_media_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_matrix_media_sha256'), ['sha256'], unique=False)

    op.create_table('matrix_to_device',
    sa.Column('stream_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=255), nullable=False),
    sa.Column('sender', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=255), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['account_id', 'device_id'], ['matrix_devices.account_id', 'matrix_devices.device_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('stream_id')
    )
    with op.batch_alter_table('matrix_to_device', schema=None) as batch_op:
        batch_op.create_index('ix_matrix_to_device_target', ['account_id', 'device_id', 'stream_id'], unique=False)

    with op.batch_alter_table('matrix_receipts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stream_id', sa.BigInteger(), nullable=False,
                                      server_default='0'))
        batch_op.create_index(batch_op.f('ix_matrix_receipts_stream_id'), ['stream_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('matrix_receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matrix_receipts_stream_id'))
        batch_op.drop_column('stream_id')

    with op.batch_alter_table('matrix_to_device', schema=None) as batch_op:
        batch_op.drop_index('ix_matrix_to_device_target')

    op.drop_table('matrix_to_device')
    with op.batch_alter_table('matrix_media', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matrix_media_sha256'))
        batch_op.drop_index(batch_op.f('ix_matrix_media_account_id'))

    op.drop_table('matrix_media')
    op.drop_table('matrix_group_rooms')
    with op.batch_alter_table('matrix_device_list_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matrix_device_list_changes_user_id'))

    op.drop_table('matrix_device_list_changes')
