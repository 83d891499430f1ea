"""webmail: the search index's texts case-folded (rebuilt lazily)

Revision ID: webmail_0001
Revises: mail_0002_webmail
Create Date: 2026-12-06 22:15:00.000000

``mailserver.store.search`` now stores the texts of ``message_search``
case-folded and compares them with a plain ``LIKE`` on both backends.  The
rows written before hold the original case, so they are dropped: the store
rebuilds them when a mailbox is next shown or searched (``index_mailbox``
indexes every message without a row).  The tables and indexes stay.
"""

from __future__ import annotations

from alembic import op

revision = 'webmail_0001'
down_revision = 'mail_0002_webmail'
branch_labels = ('webmail',)
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # External-content FTS5 table: its own command empties it (sqlite.org/fts5.html, "delete-all").
        op.execute("INSERT INTO message_search_fts(message_search_fts) VALUES ('delete-all')")
    op.execute('DELETE FROM message_search')


def downgrade() -> None:
    # Folded texts are found by the old code too (ILIKE and FTS5 fold case): nothing to undo.
    pass
