"""bridge: per-group bridge settings (issue 18)

``matrix_bridge_groups``: whether a group's mail is posted into its room (NULL:
the default of its kind, on for class and course groups) and whether its room's
announcements are mailed to the parents of pupil members.

Revision ID: bridge_0002
Revises: bridge_0001
Create Date: 2026-12-07 01:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'bridge_0002'
down_revision = 'bridge_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_bridge_groups',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('mail_to_room', sa.Boolean(), nullable=True),
    sa.Column('parents_digest', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id')
    )


def downgrade() -> None:
    op.drop_table('matrix_bridge_groups')
