"""outbound delivery: remember when the delay warning DSN was sent

Revision ID: outq_0001
Revises: 0001
Depends on: mail_0001
Create Date: 2026-11-23 14:20:00.000000

A branch of its own (label ``outbound``) that starts at the directory root
like every package's branch and *depends on* ``mail_0001`` (it alters the
mail store's ``outbound_queue``).  Hanging it below ``mail_0001`` instead
would make ``mail_0001`` a branch point, and ``mailserver@head`` ambiguous
as soon as the mail store adds its next revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'outq_0001'
down_revision = '0001'
branch_labels = ('outbound',)
depends_on = 'mail_0001'


def upgrade() -> None:
    # RFC 3464 "delayed" DSN: sent at most once per queued recipient.
    with op.batch_alter_table('outbound_queue', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delay_warned_at', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbound_queue', schema=None) as batch_op:
        batch_op.drop_column('delay_warned_at')
