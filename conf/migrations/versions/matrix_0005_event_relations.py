"""messenger: event relations (threads, edits, reactions, references)

One row per event whose content has ``m.relates_to`` with a ``rel_type``;
existing events are indexed here from their stored JSON.

Revision ID: matrix_0005
Revises: matrix_0004
Create Date: 2026-12-06 19:40:00.000000
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = 'matrix_0005'
down_revision = 'matrix_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('matrix_event_relations',
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('room_id', sa.String(length=255), nullable=False),
    sa.Column('relates_to', sa.String(length=255), nullable=False),
    sa.Column('rel_type', sa.String(length=255), nullable=False),
    sa.Column('event_type', sa.String(length=255), nullable=False),
    sa.Column('sender', sa.String(length=255), nullable=False),
    sa.Column('aggregation_key', sa.String(length=255), nullable=True),
    sa.Column('stream_ordering', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['matrix_events.event_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id')
    )
    with op.batch_alter_table('matrix_event_relations', schema=None) as batch_op:
        batch_op.create_index('ix_matrix_event_relations_room',
                              ['room_id', 'rel_type', 'stream_ordering'], unique=False)
        batch_op.create_index('ix_matrix_event_relations_target',
                              ['relates_to', 'rel_type', 'stream_ordering'], unique=False)
    _index_existing_events()


def _relation(content: object) -> tuple[str, str, str | None] | None:
    """(rel_type, target, annotation key) as messenger.storage.relations reads it
    at the time of this migration (kept here: a migration must not change later)."""
    if not isinstance(content, dict):
        return None
    relates = content.get('m.relates_to')
    if not isinstance(relates, dict):
        return None
    rel_type, target = relates.get('rel_type'), relates.get('event_id')
    if not (isinstance(rel_type, str) and isinstance(target, str) and rel_type
            and target.startswith('$') and len(rel_type.encode()) <= 255
            and len(target.encode()) <= 255):
        return None
    key = relates.get('key') if rel_type == 'm.annotation' else None
    if not isinstance(key, str) or len(key.encode()) > 255:
        key = None
    return rel_type, target, key


def _index_existing_events() -> None:
    bind = op.get_bind()
    events = sa.table('matrix_events', sa.column('event_id'), sa.column('room_id'),
                      sa.column('type'), sa.column('sender'), sa.column('stream_ordering'),
                      sa.column('json'), sa.column('redacted'))
    relations = sa.table('matrix_event_relations', *(sa.column(c) for c in (
        'event_id', 'room_id', 'relates_to', 'rel_type', 'event_type', 'sender',
        'aggregation_key', 'stream_ordering')))
    rows = bind.execute(sa.select(events).where(events.c.json.like('%m.relates_to%'),
                                                events.c.redacted.is_(False)))
    found = []
    for row in rows:
        relation = _relation(json.loads(row.json).get('content'))
        if relation is not None:
            found.append({'event_id': row.event_id, 'room_id': row.room_id,
                          'relates_to': relation[1], 'rel_type': relation[0],
                          'event_type': row.type, 'sender': row.sender,
                          'aggregation_key': relation[2],
                          'stream_ordering': row.stream_ordering})
    if found:
        op.bulk_insert(relations, found)


def downgrade() -> None:
    with op.batch_alter_table('matrix_event_relations', schema=None) as batch_op:
        batch_op.drop_index('ix_matrix_event_relations_target')
        batch_op.drop_index('ix_matrix_event_relations_room')
    op.drop_table('matrix_event_relations')
