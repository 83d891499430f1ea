"""federation: the Matrix server-server transaction queue and received transactions

Revision ID: fedq_0001
Revises: 0001
Create Date: 2026-12-06 20:20:00.000000

The federation package's own branch (label ``federation``), starting at the
directory root like every package's branch.  Table models:
``federation.schema``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'fedq_0001'
down_revision = '0001'
branch_labels = ('federation',)
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_federation_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('destination', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=3), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_matrix_federation_outbox_destination', 'matrix_federation_outbox',
                    ['destination', 'id'], unique=False)
    op.create_table('matrix_federation_destinations',
    sa.Column('destination', sa.String(length=255), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('destination')
    )
    op.create_table('matrix_federation_received_txns',
    sa.Column('origin', sa.String(length=255), nullable=False),
    sa.Column('txn_id', sa.String(length=255), nullable=False),
    sa.Column('response', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('origin', 'txn_id')
    )


def downgrade() -> None:
    op.drop_table('matrix_federation_received_txns')
    op.drop_index('ix_matrix_federation_outbox_destination',
                  table_name='matrix_federation_outbox')
    op.drop_table('matrix_federation_outbox')
    op.drop_table('matrix_federation_destinations')
