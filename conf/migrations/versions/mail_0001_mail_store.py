"""mail store: mailboxes, messages, blobs, expunged UIDs, outbound queue

Revision ID: mail_0001
Revises: 0001
Create Date: 2026-11-23 14:00:45.138867
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'mail_0001'
down_revision = '0001'
branch_labels = ('mailserver',)
depends_on = None


def upgrade() -> None:
    op.create_table('message_blobs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('mail_accounts',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('used_bytes', sa.BigInteger(), nullable=False),
    sa.Column('last_uidvalidity', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('mailboxes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=1000), nullable=False),
    sa.Column('special_use', sa.String(length=16), nullable=True),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('uidnext', sa.BigInteger(), nullable=False),
    sa.Column('highestmodseq', sa.BigInteger(), nullable=False),
    sa.Column('subscribed', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'name', name='mailbox_name_unique'),
    sqlite_autoincrement=True
    )
    op.create_table('outbound_queue',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mail_from', sa.String(length=320), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('blob_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.CheckConstraint("state IN ('queued','delivering','sent','bounced')", name='outbound_state_ok'),
    sa.ForeignKeyConstraint(['blob_id'], ['message_blobs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('outbound_queue', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbound_queue_blob_id'), ['blob_id'], unique=False)

    op.create_table('expunged',
    sa.Column('mailbox_id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.BigInteger(), nullable=False),
    sa.Column('modseq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mailbox_id', 'uid')
    )
    with op.batch_alter_table('expunged', schema=None) as batch_op:
        batch_op.create_index('ix_expunged_mailbox_modseq', ['mailbox_id', 'modseq'], unique=False)

    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox_id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.BigInteger(), nullable=False),
    sa.Column('blob_id', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('internal_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('system_flags', sa.Integer(), nullable=False),
    sa.Column('keywords', sa.Text(), nullable=False),
    sa.Column('modseq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['blob_id'], ['message_blobs.id'], ),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mailbox_id', 'uid', name='message_uid_unique')
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_blob_id'), ['blob_id'], unique=False)
        batch_op.create_index('ix_messages_mailbox_modseq', ['mailbox_id', 'modseq'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_mailbox_modseq')
        batch_op.drop_index(batch_op.f('ix_messages_blob_id'))

    op.drop_table('messages')
    with op.batch_alter_table('expunged', schema=None) as batch_op:
        batch_op.drop_index('ix_expunged_mailbox_modseq')

    op.drop_table('expunged')
    with op.batch_alter_table('outbound_queue', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbound_queue_blob_id'))
        batch_op.drop_index('ix_outbound_due')

    op.drop_table('outbound_queue')
    op.drop_table('mailboxes')
    op.drop_table('mail_accounts')
    op.drop_table('message_blobs')
