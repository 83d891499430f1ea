"""Events of rooms with members on other servers into the federation outbox
(Server-Server API "Transactions"): queued in the writer's own transaction, so
an event and its delivery commit together, and the sender is woken after the
commit (``federation.matrix.sender``: per destination, in order, with retries
and catch-up after an outage)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from federation.matrix.outbox import Outbox
from messenger.events.identifiers import server_of
from messenger.rooms.receiving import pdu_for_wire
from messenger.storage.events import StoredEvent
from messenger.storage.tables import MembershipRow


class OutboxQueue:
    """``messenger.rooms.writer.PduOutbox`` over the federation outbox."""

    def __init__(self, wake: Callable[[frozenset[str]], None]) -> None:
        self._wake = wake
        self._queued: set[str] = set()  # destinations queued for since the last wake

    async def add(self, session: AsyncSession, destinations: frozenset[str],
                  event: StoredEvent) -> None:
        Outbox.add_in(session, destinations, pdus=[pdu_for_wire(event.pdu)])
        self._queued |= destinations

    def wake(self) -> None:
        """After the writer's commit: the sender is woken only when something was
        queued (an event of a room without members elsewhere queues nothing, and
        each wake is a read of the outbox's schedule).  The writer adds under its
        write lock and wakes right after releasing it, with no await between, so
        no other transaction's add falls between a commit and its wake."""
        if self._queued:
            queued, self._queued = frozenset(self._queued), set()
            self._wake(queued)


async def servers_sharing_rooms(db: Database, server_name: str) -> set[str]:
    """The other servers with joined members in rooms that a user of ``server_name``
    has joined: those that queue events for us while we are down."""
    ours = (select(MembershipRow.room_id)
            .where(MembershipRow.membership == "join",
                   MembershipRow.user_id.endswith(f":{server_name}", autoescape=True)))
    async with db.read() as session:
        members = await session.scalars(
            select(MembershipRow.user_id).distinct()
            .where(MembershipRow.membership == "join", MembershipRow.room_id.in_(ours)))
        return {server_of(u) for u in members} - {server_name}
