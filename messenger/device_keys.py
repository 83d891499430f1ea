"""Checks on the keys a device publishes with POST /keys/upload (spec: Client-Server
API 11.12.5 "Key management API", definitions DeviceKeys and KeyObject;
Appendices "Signing JSON").

Other users' clients trust what /keys/query hands out, so a device may only
publish its own identity: ``device_keys`` must name the uploading user and
device, list its ed25519 key as ``ed25519:<device_id>`` and carry that key's
signature over itself.  Signed one-time and fallback keys (``signed_*``
algorithms) must be signed by the same device key: the one uploaded in the
same request, or the one already stored.  Anything else is ``InvalidKeys``,
which the HTTP edge answers with 400 M_INVALID_PARAM.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from messenger.cross_signing import ED25519_PUBLIC_KEY_BYTES, decode_base64, verify_signature
from messenger.events.canonical import CanonicalJsonError, check_canonical_value

MAX_KEY_ID_BYTES = 255  # the storage column (and any sane client) is that wide
MAX_KEYS_PER_UPLOAD = 1_000


class InvalidKeys(ValueError):
    """Uploaded keys that are not the requester's device's own, or not signed by it."""


def _device_key_id(device_id: str) -> str:
    return f"ed25519:{device_id}"


def check_device_keys(value: Any, user_id: str, device_id: str) -> str:
    """Check a DeviceKeys object uploaded by ``user_id``'s ``device_id``; returns the
    device's ed25519 public key."""
    if not isinstance(value, Mapping):
        raise InvalidKeys("device_keys must be an object")
    try:
        check_canonical_value(value)
    except CanonicalJsonError as exc:
        raise InvalidKeys(f"device_keys cannot be signed: {exc}") from None
    if value.get("user_id") != user_id:
        raise InvalidKeys(f"device_keys.user_id must be {user_id}, the uploading user")
    if value.get("device_id") != device_id:
        raise InvalidKeys(f"device_keys.device_id must be {device_id}, the uploading device")
    algorithms = value.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise InvalidKeys("device_keys.algorithms must be a list of strings")
    keys = value.get("keys")
    if not isinstance(keys, Mapping) or not all(isinstance(k, str) for k in keys.values()):
        raise InvalidKeys("device_keys.keys must map key ids to strings")
    for key_id in keys:
        if key_id.partition(":")[2] != device_id:
            raise InvalidKeys(f"device key {key_id!r} is not named <algorithm>:{device_id}")
    public_key = keys.get(_device_key_id(device_id))
    if public_key is None or not _is_ed25519_key(public_key):
        raise InvalidKeys(f"device_keys.keys must hold the ed25519:{device_id} key")
    if not verify_signature(value, user_id, _device_key_id(device_id), public_key):
        raise InvalidKeys("device_keys must be signed by the device's own ed25519 key")
    return public_key


def check_one_time_keys(value: Any, what: str, user_id: str, device_id: str,
                        device_key: str | None) -> Mapping[str, Any]:
    """Check one-time or fallback keys (``what`` names them in errors): key ids
    ``<algorithm>:<id>``; objects of a ``signed_`` algorithm signed by ``device_key``."""
    if not isinstance(value, Mapping):
        raise InvalidKeys(f"{what} must be an object")
    if len(value) > MAX_KEYS_PER_UPLOAD:
        raise InvalidKeys(f"at most {MAX_KEYS_PER_UPLOAD} {what} at once")
    for key_id, key in value.items():
        algorithm, colon, name = key_id.partition(":")
        if not (algorithm and colon and name) or len(key_id.encode()) > MAX_KEY_ID_BYTES:
            raise InvalidKeys(f"{what} ids must be <algorithm>:<key id>, got {key_id[:60]!r}")
        if not algorithm.startswith("signed_"):
            if not isinstance(key, str | Mapping):
                raise InvalidKeys(f"{what} {key_id} must be a string or a key object")
            continue
        if not isinstance(key, Mapping) or not isinstance(key.get("key"), str):
            raise InvalidKeys(f"{what} {key_id} must be a key object with a key")
        if device_key is None:
            raise InvalidKeys(f"signed {what} need the device's keys: upload device_keys first")
        if not verify_signature(key, user_id, _device_key_id(device_id), device_key):
            raise InvalidKeys(f"{what} {key_id} is not signed by the device's ed25519 key")
    return value


def stored_device_key(stored: Mapping[str, Any] | None, device_id: str) -> str | None:
    """The ed25519 key in a device's stored DeviceKeys, if it has published any."""
    keys = stored.get("keys") if isinstance(stored, Mapping) else None
    key = keys.get(_device_key_id(device_id)) if isinstance(keys, Mapping) else None
    return key if isinstance(key, str) else None


def _is_ed25519_key(text: str) -> bool:
    try:
        return len(decode_base64(text)) == ED25519_PUBLIC_KEY_BYTES
    except ValueError:
        return False
