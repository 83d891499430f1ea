"""Server keys (Matrix Server-Server API, "Retrieving server keys"):
``GET /_matrix/key/v2/server`` publishes a server's verify keys, self-signed;
a fetched response is trusted only if it names the server asked for and every
listed key signed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federation.matrix.signed_json import (
    ED25519_PUBLIC_KEY_BYTES,
    SigningKey,
    decode_base64,
    verify_signature,
)

# Room versions 5+: a key response counts for at most a week, whatever it says.
MAX_VALIDITY_MS = 7 * 24 * 3600 * 1000


class InvalidServerKeys(ValueError):
    """A key response that is malformed, for another server, or not self-signed."""


@dataclass(frozen=True)
class VerifyKey:
    server_name: str
    key_id: str
    public_key: str  # unpadded base64
    valid_until_ts: int  # ms; for an old key, the time it expired


def publish_keys(key: SigningKey, server_name: str, now_ms: int,
                 valid_for_ms: int) -> dict[str, Any]:
    """The signed body of our ``GET /_matrix/key/v2/server``."""
    body = {"server_name": server_name, "valid_until_ts": now_ms + valid_for_ms,
            "verify_keys": {key.key_id: {"key": key.public_key_base64}},
            "old_verify_keys": {}}
    return key.sign_json(body, server_name)


def _valid_public_key(text: object) -> bool:
    try:
        return isinstance(text, str) and len(decode_base64(text)) == ED25519_PUBLIC_KEY_BYTES
    except ValueError:
        return False


def parse_server_keys(body: object, server_name: str, now_ms: int) -> list[VerifyKey]:
    """The verify keys of ``server_name`` in a key response, checked as the spec says:
    the response names ``server_name`` and carries a signature by each current key."""
    if not isinstance(body, Mapping) or body.get("server_name") != server_name:
        raise InvalidServerKeys("key response for another server")
    valid_until = body.get("valid_until_ts")
    if not isinstance(valid_until, int) or isinstance(valid_until, bool):
        raise InvalidServerKeys("valid_until_ts missing")
    valid_until = min(valid_until, now_ms + MAX_VALIDITY_MS)
    verify_keys = body.get("verify_keys")
    if not isinstance(verify_keys, Mapping) or not verify_keys:
        raise InvalidServerKeys("no verify_keys")
    keys: list[VerifyKey] = []
    for key_id, entry in verify_keys.items():
        public = entry.get("key") if isinstance(entry, Mapping) else None
        if not key_id.startswith("ed25519:") or not _valid_public_key(public):
            continue  # other algorithms: not ours to use
        assert isinstance(public, str)
        if not verify_signature(body, server_name, key_id, public):
            raise InvalidServerKeys(f"key response not signed by {key_id}")
        keys.append(VerifyKey(server_name, key_id, public, valid_until))
    old_keys = body.get("old_verify_keys")
    if isinstance(old_keys, Mapping):
        for key_id, entry in old_keys.items():
            if not isinstance(entry, Mapping):
                continue
            public, expired = entry.get("key"), entry.get("expired_ts")
            if (key_id.startswith("ed25519:") and _valid_public_key(public)
                    and isinstance(expired, int) and not isinstance(expired, bool)):
                assert isinstance(public, str)
                keys.append(VerifyKey(server_name, key_id, public, expired))
    if not keys:
        raise InvalidServerKeys("no usable ed25519 key")
    return keys
