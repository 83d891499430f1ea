"""webmail: senders whose remote images a reader always wants to see

Revision ID: webmail_0002
Revises: webmail_0001
Create Date: 2026-12-06 22:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'webmail_0002'
down_revision = 'webmail_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webmail_image_senders',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'sender')
    )


def downgrade() -> None:
    op.drop_table('webmail_image_senders')
