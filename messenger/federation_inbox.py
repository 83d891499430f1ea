"""What the school does with PDUs and EDUs other servers send it
(Server-Server API "Transactions").

``RoomsInbox`` hands each PDU to the rooms (``messenger.rooms.receiving``:
checked, authorised, stored or rejected, in the order received); the answer
names each PDU's error, if it had one.  EDUs go to
``messenger.federation_edus`` (``FederationContext.edus``).
``UnknownRoomsInbox`` is for a listener without rooms (tools, tests): PDUs of
rooms this server is not in are ignored, as the spec allows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from federation.matrix.received import PendingRecord
from messenger.rooms.receiving import RemoteEvents

log = logging.getLogger("schulhof.messenger.federation")


class UnknownRoomsInbox:
    async def receive(self, origin: str, pdus: list[Mapping[str, Any]],
                      edus: list[Mapping[str, Any]], record: PendingRecord | None = None
                      ) -> dict[str, dict[str, Any]]:
        log.debug("event=federation_txn_ignored origin=%s pdus=%d edus=%d",
                  origin, len(pdus), len(edus))
        return {}


class RoomsInbox:
    def __init__(self, events: RemoteEvents) -> None:
        self._events = events

    async def receive(self, origin: str, pdus: list[Mapping[str, Any]],
                      edus: list[Mapping[str, Any]], record: PendingRecord | None = None
                      ) -> dict[str, dict[str, Any]]:
        try:
            results = await self._events.receive_all(origin, pdus, record)
        except Exception:  # never a 500 for the transaction: the sender would retry forever
            log.exception("event=federation_txn_failed origin=%s", origin)
            results = {}
        return results
