"""Ed25519 keys and signed JSON made the way a Matrix client makes them (spec
Appendices "Signing JSON"), written apart from the server's code on purpose."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def unpadded(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def canonical(value: dict[str, Any]) -> bytes:
    stripped = {k: v for k, v in value.items() if k not in ("signatures", "unsigned")}
    return json.dumps(stripped, ensure_ascii=False, separators=(",", ":"),
                      sort_keys=True).encode("utf-8")


class SigningKey:
    def __init__(self) -> None:
        self._private = Ed25519PrivateKey.generate()
        raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public = unpadded(raw)

    def sign(self, value: dict[str, Any], user_id: str, key_id: str | None = None,
             ) -> dict[str, Any]:
        """A copy of ``value`` with this key's signature added (key id ed25519:<public>)."""
        signed = copy.deepcopy(value)
        signature = unpadded(self._private.sign(canonical(value)))
        signed.setdefault("signatures", {}).setdefault(user_id, {})[
            key_id or f"ed25519:{self.public}"] = signature
        return signed


def verifies(value: dict[str, Any], user_id: str, key_id: str, public: str) -> bool:
    """Whether ``value`` carries a valid signature by ``public`` under ``key_id``."""
    signature = value.get("signatures", {}).get(user_id, {}).get(key_id)
    if signature is None:
        return False
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public + "=" * (-len(public) % 4)))
    try:
        key.verify(base64.b64decode(signature + "=" * (-len(signature) % 4)), canonical(value))
    except Exception:
        return False
    return True


def cross_signing_key(user_id: str, usage: str, key: SigningKey) -> dict[str, Any]:
    return {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{key.public}": key.public}}


def device_keys(user_id: str, device_id: str, key: SigningKey) -> dict[str, Any]:
    """A device's identity keys, self-signed as /keys/upload wants them."""
    return key.sign({
        "user_id": user_id, "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"ed25519:{device_id}": key.public,
                 f"curve25519:{device_id}": unpadded(b"c" * 32)}},
        user_id, f"ed25519:{device_id}")
