"""messenger: reports of events and rooms to the school's admins

Revision ID: matrix_0006
Revises: matrix_0005
Create Date: 2026-12-06 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'matrix_0006'
down_revision = 'matrix_0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_reports',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=True),
    sa.Column('reporter', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('matrix_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_matrix_reports_room_id'), ['room_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('matrix_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matrix_reports_room_id'))
    op.drop_table('matrix_reports')
