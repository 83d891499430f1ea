"""Content hashes, reference hashes and event ids (spec: Server-Server API 27.1
"Calculating the content hash", "Calculating the reference hash", and Room
Version 4+ "Event IDs").

An event id is ``$`` + URL-safe unpadded base64 of the reference hash; the
reference hash is sha256 over the canonical JSON of the *redacted* event
without ``signatures`` and ``unsigned``, so redacting an event never changes
its id and adding our signature later (federation) does not either.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from messenger.events.canonical import canonical_json
from messenger.events.identifiers import is_hashed_room_id
from messenger.events.redaction import redact
from messenger.events.room_versions import RoomVersion


def unpadded_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def unpadded_urlsafe_base64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def is_hashed_room_create(event: Mapping[str, Any]) -> bool:
    """The create event of a room version 12 room (its room id is its hash)."""
    return event.get("type") == "m.room.create" and event.get("state_key") == "" \
        and is_hashed_room_id(event.get("room_id"))


def wire_form(event: Mapping[str, Any]) -> dict[str, Any]:
    """The PDU as it is hashed, signed and sent: in memory we carry ``event_id``
    alongside (never part of a v4+ PDU), and a v12 create event its ``room_id``
    (which it must not have: MSC4291, the room id *is* its hash)."""
    drop = ("event_id", "room_id") if is_hashed_room_create(event) else ("event_id",)
    return {k: v for k, v in event.items() if k not in drop}


def content_hash(event: Mapping[str, Any]) -> str:
    """The sha256 content hash (unpadded standard base64) of a PDU."""
    stripped = {k: v for k, v in wire_form(event).items()
                if k not in ("unsigned", "signatures", "hashes")}
    return unpadded_base64(hashlib.sha256(canonical_json(stripped)).digest())


def reference_hash(event: Mapping[str, Any], version: RoomVersion) -> bytes:
    redacted = redact(wire_form(event), version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return hashlib.sha256(canonical_json(redacted)).digest()


def event_id_for(event: Mapping[str, Any], version: RoomVersion) -> str:
    """The event id of ``event`` (room version 4+ format)."""
    return "$" + unpadded_urlsafe_base64(reference_hash(event, version))


def add_hashes(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``event`` with ``hashes.sha256`` set from its content."""
    out = dict(event)
    out["hashes"] = {"sha256": content_hash(event)}
    return out
