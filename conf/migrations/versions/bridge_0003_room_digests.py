"""bridge: room announcements mailed as digests (issue 18.2)

``matrix_digest_recipients``: per account, whether they want digests (their own
setting), up to which message time they were considered and when the last one
went out (one digest per person per period).

Revision ID: bridge_0003
Revises: bridge_0002
Create Date: 2026-12-07 01:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'bridge_0003'
down_revision = 'bridge_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_digest_recipients',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('up_to_ms', sa.BigInteger(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id')
    )


def downgrade() -> None:
    op.drop_table('matrix_digest_recipients')
