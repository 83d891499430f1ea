"""messenger: rooms, events, state, devices, tokens, account data (Matrix client API)

Revision ID: matrix_0001
Revises: 0001
Create Date: 2026-11-23 14:02:42.609342
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'matrix_0001'
down_revision = '0001'
branch_labels = ('messenger',)
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_rooms',
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('room_version', sa.String(length=32), nullable=False),
    sa.Column('creator', sa.String(length=255), nullable=False),
    sa.Column('is_public', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('room_id')
    )
    op.create_table('matrix_account_data',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=255), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('stream_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'room_id', 'type')
    )
    with op.batch_alter_table('matrix_account_data', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_matrix_account_data_stream_id'), ['stream_id'], unique=False)

    op.create_table('matrix_devices',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=255), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=True),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_seen_ip', sa.String(length=64), nullable=True),
    sa.Column('keys_json', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'device_id')
    )
    op.create_table('matrix_events',
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('stream_ordering', sa.BigInteger(), nullable=False),
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=255), nullable=False),
    sa.Column('state_key', sa.String(length=255), nullable=True),
    sa.Column('sender', sa.String(length=255), nullable=False),
    sa.Column('depth', sa.BigInteger(), nullable=False),
    sa.Column('origin_server_ts', sa.BigInteger(), nullable=False),
    sa.Column('json', sa.Text(), nullable=False),
    sa.Column('redacted', sa.Boolean(), nullable=False),
    sa.Column('redacted_by', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['room_id'], ['matrix_rooms.room_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id'),
    sa.UniqueConstraint('stream_ordering')
    )
    with op.batch_alter_table('matrix_events', schema=None) as batch_op:
        batch_op.create_index('ix_matrix_events_room_state', ['room_id', 'type', 'state_key', 'stream_ordering'], unique=False)
        batch_op.create_index('ix_matrix_events_room_stream', ['room_id', 'stream_ordering'], unique=False)

    op.create_table('matrix_filters',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('filter_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'filter_id')
    )
    op.create_table('matrix_receipts',
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('receipt_type', sa.String(length=64), nullable=False),
    sa.Column('thread_id', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['room_id'], ['matrix_rooms.room_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('room_id', 'user_id', 'receipt_type', 'thread_id')
    )
    op.create_table('matrix_room_aliases',
    sa.Column('alias', sa.String(length=255), nullable=False),
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('creator', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['room_id'], ['matrix_rooms.room_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('alias')
    )
    with op.batch_alter_table('matrix_room_aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_matrix_room_aliases_room_id'), ['room_id'], unique=False)

    op.create_table('matrix_room_memberships',
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('membership', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('stream_ordering', sa.BigInteger(), nullable=False),
    sa.Column('forgotten', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['room_id'], ['matrix_rooms.room_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('room_id', 'user_id')
    )
    with op.batch_alter_table('matrix_room_memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_matrix_room_memberships_user_id'), ['user_id'], unique=False)

    op.create_table('matrix_access_tokens',
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id', 'device_id'], ['matrix_devices.account_id', 'matrix_devices.device_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_sha256')
    )
    with op.batch_alter_table('matrix_access_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_matrix_access_tokens_account_id'), ['account_id'], unique=False)

    op.create_table('matrix_one_time_keys',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=255), nullable=False),
    sa.Column('key_id', sa.String(length=255), nullable=False),
    sa.Column('json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['account_id', 'device_id'], ['matrix_devices.account_id', 'matrix_devices.device_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'device_id', 'key_id')
    )
    op.create_table('matrix_room_state',
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=255), nullable=False),
    sa.Column('state_key', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['matrix_events.event_id'], ),
    sa.ForeignKeyConstraint(['room_id'], ['matrix_rooms.room_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('room_id', 'type', 'state_key')
    )
    op.create_table('matrix_txn_ids',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=255), nullable=False),
    sa.Column('txn_id', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['account_id', 'device_id'], ['matrix_devices.account_id', 'matrix_devices.device_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'device_id', 'txn_id')
    )
    with op.batch_alter_table('matrix_txn_ids', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_matrix_txn_ids_event_id'), ['event_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('matrix_txn_ids', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matrix_txn_ids_event_id'))

    op.drop_table('matrix_txn_ids')
    op.drop_table('matrix_room_state')
    op.drop_table('matrix_one_time_keys')
    with op.batch_alter_table('matrix_access_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matrix_access_tokens_account_id'))

    op.drop_table('matrix_access_tokens')
    with op.batch_alter_table('matrix_room_memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matrix_room_memberships_user_id'))

    op.drop_table('matrix_room_memberships')
    with op.batch_alter_table('matrix_room_aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matrix_room_aliases_room_id'))

    op.drop_table('matrix_room_aliases')
    op.drop_table('matrix_receipts')
    op.drop_table('matrix_filters')
    with op.batch_alter_table('matrix_events', schema=None) as batch_op:
        batch_op.drop_index('ix_matrix_events_room_stream')
        batch_op.drop_index('ix_matrix_events_room_state')

    op.drop_table('matrix_events')
    op.drop_table('matrix_devices')
    with op.batch_alter_table('matrix_account_data', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matrix_account_data_stream_id'))

    op.drop_table('matrix_account_data')
    op.drop_table('matrix_rooms')
