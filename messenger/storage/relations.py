"""Queries on event relations (spec: Client-Server API "Forming relationships between
events", "Threading", "Event replacements", "Event annotations and reactions")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from messenger.storage.tables import EventRow, RelationRow

ID_BYTES = 255


@dataclass(frozen=True)
class Relation:
    """What ``content["m.relates_to"]`` says: the relation type, the event it points
    at and, for an annotation (a reaction), its key."""

    rel_type: str
    relates_to: str
    key: str | None = None


def relation_of(content: Any) -> Relation | None:
    """The relation an event's content declares, or None (no ``rel_type``: a plain
    reply, ``m.in_reply_to``, is not a relation the server aggregates)."""
    if not isinstance(content, Mapping):
        return None
    relates = content.get("m.relates_to")
    if not isinstance(relates, Mapping):
        return None
    rel_type, target = relates.get("rel_type"), relates.get("event_id")
    if not (isinstance(rel_type, str) and isinstance(target, str) and rel_type
            and target.startswith("$") and len(rel_type.encode()) <= ID_BYTES
            and len(target.encode()) <= ID_BYTES):
        return None
    key = relates.get("key") if rel_type == "m.annotation" else None
    if not isinstance(key, str) or len(key.encode()) > ID_BYTES:
        key = None
    return Relation(rel_type, target, key)


def add_relation(session: AsyncSession, pdu: Mapping[str, Any], event_id: str,
                 stream_ordering: int) -> None:
    """Index the event if it relates to another (part of inserting it)."""
    if "state_key" in pdu:
        return  # state events do not take part in aggregations
    relation = relation_of(pdu.get("content"))
    if relation is None:
        return
    session.add(RelationRow(event_id=event_id, room_id=pdu["room_id"],
                            relates_to=relation.relates_to, rel_type=relation.rel_type,
                            event_type=pdu["type"], sender=pdu["sender"],
                            aggregation_key=relation.key, stream_ordering=stream_ordering))


async def forget_relation(session: AsyncSession, event_id: str) -> None:
    """The event was redacted: its ``m.relates_to`` is gone, and so is the relation."""
    await session.execute(delete(RelationRow).where(RelationRow.event_id == event_id))


@dataclass(frozen=True)
class RelatedPage:
    event_ids: list[str]
    next_position: int | None  # the stream position to go on from, if there is more


async def related(session: AsyncSession, room_id: str, targets: list[str], *, upto: int,
                  rel_type: str | None, event_type: str | None, after: int | None,
                  before: int | None, limit: int, newest_first: bool) -> RelatedPage:
    """Events relating to any of ``targets`` with positions in (after, before), <= upto."""
    query = select(RelationRow.event_id, RelationRow.stream_ordering).where(
        RelationRow.relates_to.in_(targets), RelationRow.room_id == room_id,
        RelationRow.stream_ordering <= upto)
    if rel_type is not None:
        query = query.where(RelationRow.rel_type == rel_type)
    if event_type is not None:
        query = query.where(RelationRow.event_type == event_type)
    if after is not None:
        query = query.where(RelationRow.stream_ordering > after)
    if before is not None:
        query = query.where(RelationRow.stream_ordering < before)
    order = RelationRow.stream_ordering.desc() if newest_first else \
        RelationRow.stream_ordering.asc()
    rows = list(await session.execute(query.order_by(order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return RelatedPage([r.event_id for r in rows], rows[-1].stream_ordering if more else None)


@dataclass(frozen=True)
class ThreadRow:
    root_id: str
    latest_position: int


async def threads(session: AsyncSession, room_id: str, *, upto: int, before: int | None,
                  limit: int, participant: str | None) -> list[ThreadRow]:
    """Thread roots of the room, the most recently active first; with ``participant``
    only threads that user started or replied in."""
    latest = func.max(RelationRow.stream_ordering)
    query = (select(RelationRow.relates_to, latest.label("latest"))
             .where(RelationRow.room_id == room_id, RelationRow.rel_type == "m.thread",
                    RelationRow.stream_ordering <= upto)
             .group_by(RelationRow.relates_to))
    if before is not None:
        query = query.having(latest < before)
    if participant is not None:
        replied = select(RelationRow.relates_to).where(
            RelationRow.room_id == room_id, RelationRow.rel_type == "m.thread",
            RelationRow.sender == participant)
        started = select(EventRow.event_id).where(EventRow.room_id == room_id,
                                                  EventRow.sender == participant)
        query = query.where(or_(RelationRow.relates_to.in_(replied),
                                RelationRow.relates_to.in_(started)))
    rows = await session.execute(query.order_by(latest.desc(), RelationRow.relates_to)
                                 .limit(limit))
    return [ThreadRow(r.relates_to, r.latest) for r in rows]


@dataclass(frozen=True)
class RelationFact:
    event_id: str
    relates_to: str
    rel_type: str
    event_type: str
    sender: str
    key: str | None
    stream_ordering: int


async def relations_to(session: AsyncSession, targets: Iterable[str],
                       rel_types: Iterable[str] | None,
                       upto: Mapping[str, int] | None = None) -> list[RelationFact]:
    """Every relation (of the given types, None: any) to any of ``targets``, oldest
    first; ``upto`` caps the position per room (what a former member may see)."""
    ids = list(set(targets))
    if not ids:
        return []
    query = select(RelationRow).where(RelationRow.relates_to.in_(ids))
    if rel_types is not None:
        query = query.where(RelationRow.rel_type.in_(list(rel_types)))
    rows = await session.scalars(query.order_by(RelationRow.stream_ordering))
    out = []
    for r in rows:
        if upto is not None and r.room_id in upto and r.stream_ordering > upto[r.room_id]:
            continue
        out.append(RelationFact(r.event_id, r.relates_to, r.rel_type, r.event_type, r.sender,
                                r.aggregation_key, r.stream_ordering))
    return out


async def has_annotation(session: AsyncSession, target: str, sender: str, event_type: str,
                         key: str) -> bool:
    """Whether ``sender`` already annotated ``target`` with this type and key."""
    found = await session.scalar(select(RelationRow.event_id).where(
        RelationRow.relates_to == target, RelationRow.rel_type == "m.annotation",
        RelationRow.sender == sender, RelationRow.event_type == event_type,
        RelationRow.aggregation_key == key).limit(1))
    return found is not None
