"""Events of rooms with members on other servers into the federation outbox
(Server-Server API "Transactions"): queued in the writer's own transaction, so
an event and its delivery commit together, and the sender is woken after the
commit (``federation.matrix.sender``: per destination, in order, with retries
and catch-up after an outage)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from federation.matrix.outbox import Outbox
from messenger.rooms.receiving import pdu_for_wire
from messenger.storage.events import StoredEvent


class OutboxQueue:
    """``messenger.rooms.writer.PduOutbox`` over the federation outbox."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    async def add(self, session: AsyncSession, destinations: frozenset[str],
                  event: StoredEvent) -> None:
        Outbox.add_in(session, destinations, pdus=[pdu_for_wire(event.pdu)])

    def wake(self) -> None:
        self._wake()
