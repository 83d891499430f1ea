"""webmail: conversations (the thread root of each indexed message)

Revision ID: webmail_0003
Revises: webmail_0002
Create Date: 2026-12-06 23:05:00.000000

``message_search.thread_root``: the msg-id a message's conversation starts
with (first of References, else In-Reply-To, else its own Message-ID; RFC
5322 3.6.4), indexed for the message page's "Unterhaltung".  Rows indexed
before have none, so they are dropped and rebuilt lazily, as in webmail_0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'webmail_0003'
down_revision = 'webmail_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("INSERT INTO message_search_fts(message_search_fts) VALUES ('delete-all')")
    op.execute('DELETE FROM message_search')
    op.add_column('message_search', sa.Column('thread_root', sa.Text(), nullable=False,
                                              server_default=''))
    op.create_index('ix_message_search_thread_root', 'message_search', ['thread_root'])


def downgrade() -> None:
    op.drop_index('ix_message_search_thread_root', table_name='message_search')
    with op.batch_alter_table('message_search') as batch:
        batch.drop_column('thread_root')
