"""Stored events -> client events for one requester (adds transaction ids,
``redacted_because`` and bundled relations; spec: Client-Server API 9.1, 9.2.2
"Transaction identifiers" and "Aggregations of child events")."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.client_format import client_event
from messenger.identity import Requester
from messenger.relations import bundled_aggregations
from messenger.storage import events as store
from messenger.storage.events import StoredEvent
from messenger.storage.tables import TxnRow


async def render_events(session: AsyncSession, requester: Requester | None,
                        events: Sequence[StoredEvent], *,
                        include_room_id: bool = True,
                        bundles: Mapping[str, dict[str, Any]] | None = None,
                        ) -> list[dict[str, Any]]:
    """``bundles``: the bundled aggregations, when the caller computed them for
    several calls at once (``messenger.relations.bundled_aggregations`` takes the
    events of many rooms in one query); otherwise one query here."""
    now_ms = int(time.time() * 1000)
    txn_ids: dict[str, str] = {}
    own = [e.event_id for e in events if requester is not None and e.sender == requester.user_id]
    if own and requester is not None:
        rows = await session.execute(select(TxnRow.event_id, TxnRow.txn_id).where(
            TxnRow.account_id == requester.account_id,
            TxnRow.device_id == requester.device_id, TxnRow.event_id.in_(own)))
        txn_ids = {event_id: txn_id for event_id, txn_id in rows}
    redactions = await store.get_events(session, [e.redacted_by for e in events
                                                  if e.redacted_by is not None])
    if bundles is None:
        bundles = await bundled_aggregations(
            session, requester.user_id if requester is not None else None, events,
            now_ms=now_ms)
    out = []
    for event in events:
        because = None
        if event.redacted_by in redactions:
            because = client_event(redactions[event.redacted_by].pdu, now_ms=now_ms)
        out.append(client_event(event.pdu, now_ms=now_ms, include_room_id=include_room_id,
                                transaction_id=txn_ids.get(event.event_id),
                                redacted_because=because,
                                relations=bundles.get(event.event_id)))
    return out
