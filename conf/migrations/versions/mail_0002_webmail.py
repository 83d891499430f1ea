"""webmail: account settings (signature, vacation, forwarding), vacation replies,
and the search index of message texts

Revision ID: mail_0002_webmail
Revises: mail_0001
Create Date: 2026-12-06 19:30:00.000000

The search index is keyed by blob (bodies are content-addressed, so one row
serves every copy of a message and never goes stale).  Substring search is
served by trigram indexes: an FTS5 ``trigram`` table on SQLite (external
content: the text is stored once, in ``message_search``), ``pg_trgm`` GIN
indexes on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'mail_0002_webmail'
down_revision = 'mail_0001'
branch_labels = None
depends_on = None

_TEXT_COLUMNS = ('sender', 'recipients', 'subject', 'body')


def upgrade() -> None:
    op.create_table('mail_settings',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.Column('vacation_enabled', sa.Boolean(), nullable=False),
    sa.Column('vacation_subject', sa.String(length=200), nullable=False),
    sa.Column('vacation_body', sa.Text(), nullable=False),
    sa.Column('vacation_days', sa.Integer(), nullable=False),
    sa.Column('vacation_until', sa.Date(), nullable=True),
    sa.Column('forward_to', sa.String(length=320), nullable=True),
    sa.Column('forward_keep', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('vacation_replies',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'sender')
    )
    op.create_table('message_search',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('blob_id', sa.String(length=64), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sender', sa.Text(), nullable=False),
    sa.Column('recipients', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('blob_id', name='message_search_blob_unique'),
    sqlite_autoincrement=True,
    )
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("CREATE VIRTUAL TABLE message_search_fts USING fts5("
                   "sender, recipients, subject, body, content='message_search', "
                   "content_rowid='id', tokenize='trigram')")
    else:
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
        for column in _TEXT_COLUMNS:
            op.execute(f'CREATE INDEX ix_message_search_{column} ON message_search '
                       f'USING gin ({column} gin_trgm_ops)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('DROP TABLE message_search_fts')
    op.drop_table('message_search')
    op.drop_table('vacation_replies')
    op.drop_table('mail_settings')
