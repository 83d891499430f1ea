"""messenger: cross-signing keys and signatures, server-side key backup

Cross-signing keys (master, self-signing, user-signing) per account and the
signatures uploaded later on device and cross-signing keys; key backup
versions and the encrypted Megolm session keys stored in them.

Revision ID: matrix_0003
Revises: matrix_0002
Create Date: 2026-11-23 17:01:52.530728
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'matrix_0003'
down_revision = 'matrix_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_cross_signing_keys',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('usage', sa.String(length=16), nullable=False),
    sa.Column('public_key', sa.String(length=64), nullable=False),
    sa.Column('json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'usage')
    )
    op.create_table('matrix_cross_signing_signatures',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('target_key_id', sa.String(length=255), nullable=False),
    sa.Column('signer_user_id', sa.String(length=255), nullable=False),
    sa.Column('signer_key_id', sa.String(length=255), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'target_key_id', 'signer_user_id', 'signer_key_id')
    )
    op.create_table('matrix_key_backup_versions',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('algorithm', sa.String(length=255), nullable=False),
    sa.Column('auth_data', sa.Text(), nullable=False),
    sa.Column('etag', sa.BigInteger(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'version')
    )
    op.create_table('matrix_key_backup_sessions',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('session_id', sa.String(length=255), nullable=False),
    sa.Column('first_message_index', sa.BigInteger(), nullable=False),
    sa.Column('forwarded_count', sa.BigInteger(), nullable=False),
    sa.Column('is_verified', sa.Boolean(), nullable=False),
    sa.Column('session_data', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['account_id', 'version'], ['matrix_key_backup_versions.account_id', 'matrix_key_backup_versions.version'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'version', 'room_id', 'session_id')
    )


def downgrade() -> None:
    op.drop_table('matrix_key_backup_sessions')
    op.drop_table('matrix_key_backup_versions')
    op.drop_table('matrix_cross_signing_signatures')
    op.drop_table('matrix_cross_signing_keys')
