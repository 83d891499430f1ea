"""Signing events and checking other servers' signatures and hashes (Server-Server
API, "Signing events" and "Checks performed on receipt of a PDU", steps 2 and 3).

The origin server signs the *redacted* event, so a redaction never breaks the
signature; the content hash covers everything else.  On receipt: a missing or
invalid signature of the sender's server refuses the event; a content hash that
does not match means someone changed the content on the way, and the event is
kept only in its redacted form.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from federation.matrix.canonical_json import CanonicalJsonError
from federation.matrix.signed_json import (
    SigningKey,
    signature_of,
    signed_bytes,
    verify_signed_bytes,
)
from messenger.events.hashing import content_hash, unpadded_urlsafe_base64, wire_form
from messenger.events.identifiers import InvalidIdentifier, UserId
from messenger.events.redaction import redact
from messenger.events.room_versions import RoomVersion

# (server name, key id, origin_server_ts) -> that key's public key (unpadded base64);
# raises KeyError when no valid key can be had.
KeyLookup = Callable[[str, str, int], Awaitable[str]]


class EventSignatureError(ValueError):
    """A PDU whose required signatures are missing or do not verify."""


@dataclass(frozen=True)
class EventSigner:
    """Signs the events this server creates."""

    server_name: str
    key: SigningKey

    def sign(self, pdu: Mapping[str, Any], version: RoomVersion) -> dict[str, Any]:
        """``pdu`` (already hashed) with this server's signature over its redacted form."""
        redacted = redact(wire_form(pdu), version)
        signature = self.key.sign_json(redacted, self.server_name)[
            "signatures"][self.server_name][self.key.key_id]
        out = dict(pdu)
        signatures = {k: dict(v) for k, v in (pdu.get("signatures") or {}).items()}
        signatures.setdefault(self.server_name, {})[self.key.key_id] = signature
        out["signatures"] = signatures
        return out


def required_signers(pdu: Mapping[str, Any]) -> set[str]:
    """The servers whose signatures a PDU must carry (rooms v10/v11): the sender's, and
    for a restricted join the server of the user who authorised it."""
    try:
        servers = {UserId.parse(str(pdu.get("sender", ""))).server}
    except InvalidIdentifier:
        raise EventSignatureError("sender is not a user id") from None
    content = pdu.get("content")
    if (pdu.get("type") == "m.room.member" and isinstance(content, Mapping)
            and content.get("membership") == "join"
            and isinstance(content.get("join_authorised_via_users_server"), str)):
        try:
            servers.add(UserId.parse(content["join_authorised_via_users_server"]).server)
        except InvalidIdentifier:
            raise EventSignatureError("join_authorised_via_users_server is not a user id") \
                from None
    return servers


async def check_received_pdu(pdu: Mapping[str, Any], version: RoomVersion,
                             key_of: KeyLookup) -> dict[str, Any]:
    """The PDU to keep: as received, or redacted when its content hash is wrong.

    Raises ``EventSignatureError`` when a required server's signature is missing or
    invalid for every key it names.
    """
    return (await check_received(pdu, version, key_of))[0]


async def check_received(pdu: Mapping[str, Any], version: RoomVersion,
                         key_of: KeyLookup) -> tuple[dict[str, Any], str]:
    """``check_received_pdu`` and the event id of the PDU (room version 4+ format):
    the signatures cover the redacted event without ``signatures`` and
    ``unsigned``, the very bytes of its reference hash, made once for both."""
    redacted = redact(wire_form(pdu), version)
    payload: bytes | None = None
    signatures = pdu.get("signatures")
    if not isinstance(signatures, Mapping):
        raise EventSignatureError("event is not signed")
    ts = pdu.get("origin_server_ts")
    ts = ts if isinstance(ts, int) and not isinstance(ts, bool) else 0
    for server in required_signers(pdu):
        by_server = signatures.get(server)
        key_ids = [k for k in by_server if k.startswith("ed25519:")] \
            if isinstance(by_server, Mapping) else []
        if not key_ids:
            raise EventSignatureError(f"event is not signed by {server}")
        for key_id in key_ids:
            try:
                public = await key_of(server, key_id, ts)
            except KeyError:
                continue
            signature = signature_of(redacted, server, key_id)
            if signature is None:
                continue
            if payload is None:
                try:
                    payload = signed_bytes(redacted)
                except (ValueError, CanonicalJsonError):
                    continue
            if verify_signed_bytes(payload, signature, public):
                break
        else:
            raise EventSignatureError(f"no valid signature of {server}")
    assert payload is not None  # a signature verified over it
    event_id = "$" + unpadded_urlsafe_base64(hashlib.sha256(payload).digest())
    hashes = pdu.get("hashes")
    expected = hashes.get("sha256") if isinstance(hashes, Mapping) else None
    if expected != content_hash(pdu):
        kept = redact(pdu, version)
        return kept, event_id
    return dict(pdu), event_id
