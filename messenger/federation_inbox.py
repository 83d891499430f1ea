"""What the school does with PDUs and EDUs other servers send it.

Rooms across servers (joins over federation, the event DAG) are not built yet,
so no remote room is known here: PDUs of rooms this server is not in are
ignored, as the spec allows (Server-Server API, "Transactions": a server only
processes events of rooms it is in), and EDUs are dropped.  Counted in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("schulhof.messenger.federation")


class UnknownRoomsInbox:
    async def receive(self, origin: str, pdus: list[Mapping[str, Any]],
                      edus: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        log.debug("event=federation_txn_ignored origin=%s pdus=%d edus=%d",
                  origin, len(pdus), len(edus))
        return {}
