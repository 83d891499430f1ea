"""outbound delivery: the MTA-STS policy cache

Revision ID: outq_0002
Revises: outq_0001
Create Date: 2026-11-24 10:00:00.000000

One row per recipient domain (RFC 8461 5.1): the policy file as fetched,
the ``_mta-sts`` TXT id it belongs to and when it expires.  Table model:
``mailserver.outbound.sts_store.mta_sts_policies``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'outq_0002'
down_revision = 'outq_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mta_sts_policies',
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('policy_id', sa.String(length=32), nullable=False),
    sa.Column('policy', sa.Text(), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('domain')
    )


def downgrade() -> None:
    op.drop_table('mta_sts_policies')
