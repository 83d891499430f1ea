"""bridge: mail threads in rooms (issue 18.3)

``matrix_mail_bridged`` gains the event a mail became, the root of the room thread it
belongs to and the Message-ID itself, so that a mail replying to a bridged mail
(In-Reply-To/References, RFC 5322 3.6.4) is posted into that mail's thread.

Revision ID: bridge_0004
Revises: bridge_0003
Create Date: 2026-12-07 01:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'bridge_0004'
down_revision = 'bridge_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('matrix_mail_bridged') as batch:
        batch.add_column(sa.Column('event_id', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('thread_root', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('message_id', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('matrix_mail_bridged') as batch:
        batch.drop_column('message_id')
        batch.drop_column('thread_root')
        batch.drop_column('event_id')
