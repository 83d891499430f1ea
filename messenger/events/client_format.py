"""Events as clients see them (spec: Client-Server API 9.1 "Room Event Format",
ClientEvent; 9.4.1 "Stripped state").

The PDU's federation fields (hashes, signatures, auth/prev events, depth) are
dropped; ``unsigned`` carries what only this server knows: the age, the
client's transaction id for its own events, the redaction that hit it and the
bundled aggregations of its relations (spec "Aggregations of child events").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CLIENT_KEYS = ("content", "event_id", "origin_server_ts", "room_id", "sender", "state_key",
               "type")


def client_event(pdu: Mapping[str, Any], *, now_ms: int, include_room_id: bool = True,
                 transaction_id: str | None = None,
                 redacted_because: Mapping[str, Any] | None = None,
                 relations: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out = {k: pdu[k] for k in CLIENT_KEYS if k in pdu}
    if not include_room_id:
        out.pop("room_id", None)
    if pdu.get("type") == "m.room.redaction":
        # v11 moved "redacts" into content; clients still read the top-level key.
        redacts = pdu.get("redacts") or (pdu.get("content") or {}).get("redacts")
        if isinstance(redacts, str):
            out["redacts"] = redacts
            out["content"] = {**out.get("content", {}), "redacts": redacts}
    unsigned: dict[str, Any] = {"age": max(0, now_ms - int(pdu.get("origin_server_ts", 0)))}
    if transaction_id is not None:
        unsigned["transaction_id"] = transaction_id
    if redacted_because is not None:
        unsigned["redacted_because"] = dict(redacted_because)
    if relations:  # bundled aggregations (messenger.relations)
        unsigned["m.relations"] = dict(relations)
    out["unsigned"] = unsigned
    return out


def stripped_state(pdu: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": pdu["type"], "state_key": pdu.get("state_key", ""),
            "content": pdu.get("content", {}), "sender": pdu["sender"]}
