"""messenger: the room DAG across servers (forward extremities, state groups, outliers)

Existing rooms have linear histories: each room's one forward extremity is its
latest event.

Revision ID: matrix_0008
Revises: matrix_0007
Create Date: 2026-12-06 22:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'matrix_0008'
down_revision = 'matrix_0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_forward_extremities',
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['room_id'], ['matrix_rooms.room_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('room_id', 'event_id')
    )
    op.create_table('matrix_state_groups',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('prev_group', sa.BigInteger(), nullable=True),
    sa.Column('steps', sa.Integer(), nullable=False),
    sa.Column('delta', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['room_id'], ['matrix_rooms.room_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('matrix_state_groups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_matrix_state_groups_room_id'), ['room_id'],
                              unique=False)
    op.create_table('matrix_outlier_events',
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('json', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    with op.batch_alter_table('matrix_outlier_events', schema=None) as batch_op:
        batch_op.create_index('ix_matrix_outlier_events_room', ['room_id'], unique=False)
    with op.batch_alter_table('matrix_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state_group', sa.BigInteger(), nullable=True))
    op.execute(
        "INSERT INTO matrix_forward_extremities (room_id, event_id) "
        "SELECT e.room_id, e.event_id FROM matrix_events e "
        "JOIN (SELECT room_id, MAX(stream_ordering) AS pos FROM matrix_events "
        "GROUP BY room_id) latest ON latest.room_id = e.room_id "
        "AND latest.pos = e.stream_ordering")


def downgrade() -> None:
    with op.batch_alter_table('matrix_events', schema=None) as batch_op:
        batch_op.drop_column('state_group')
    with op.batch_alter_table('matrix_outlier_events', schema=None) as batch_op:
        batch_op.drop_index('ix_matrix_outlier_events_room')
    op.drop_table('matrix_outlier_events')
    with op.batch_alter_table('matrix_state_groups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_matrix_state_groups_room_id'))
    op.drop_table('matrix_state_groups')
    op.drop_table('matrix_forward_extremities')
