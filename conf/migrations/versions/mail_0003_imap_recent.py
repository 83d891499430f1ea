"""IMAP \\Recent marker per mailbox and subscriptions of deleted mailboxes

Revision ID: mail_0003_imap_recent
Revises: mail_0002_webmail
Create Date: 2026-12-06 20:00:00.000000

``mailboxes.recent_uid``: the first UID no IMAP4rev1 session has claimed as
\\Recent (RFC 3501 2.3.2); messages stored before this migration count as
seen by some session already.  ``mail_subscriptions``: subscribed names whose
mailbox was deleted (RFC 3501 6.3.6, LSUB ``\\Noselect`` 6.3.9, LIST-EXTENDED
``\\NonExistent`` RFC 5258 3).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'mail_0003_imap_recent'
down_revision = 'mail_0002_webmail'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('mailboxes', sa.Column('recent_uid', sa.BigInteger(), nullable=False,
                                         server_default='1'))
    op.execute('UPDATE mailboxes SET recent_uid = uidnext')
    op.create_table('mail_subscriptions',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=1000), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'name')
    )


def downgrade() -> None:
    op.drop_table('mail_subscriptions')
    with op.batch_alter_table('mailboxes') as batch:
        batch.drop_column('recent_uid')
