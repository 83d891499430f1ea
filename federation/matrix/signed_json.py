"""Signing JSON (Matrix spec, Appendices "Signing JSON") with ed25519 keys.

A signature covers the canonical JSON of the object without its
``signatures`` and ``unsigned`` members and is stored as
``signatures[entity][key_id]`` in unpadded base64.  The same rules sign server
keys, federation requests (X-Matrix), events and users' device keys.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from federation.matrix.canonical_json import CanonicalJsonError, canonical_json

ED25519_PUBLIC_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64


def unpadded_base64(data: bytes) -> str:
    """Standard base64 without ``=`` padding (spec Appendices "Unpadded Base64")."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def decode_base64(text: str) -> bytes:
    """Unpadded (or padded) standard base64, as Matrix writes keys and signatures; only
    the one encoding of the bytes, so a key has one key id."""
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if unpadded_base64(data) != text.rstrip("="):
        raise ValueError("not the canonical base64 of its bytes")
    return data


def signed_bytes(signed: Mapping[str, Any]) -> bytes:
    """What a signature covers: canonical JSON without ``signatures`` and ``unsigned``."""
    return canonical_json({k: v for k, v in signed.items() if k not in ("signatures", "unsigned")})


def signature_of(signed: Mapping[str, Any], signer: str, key_id: str) -> str | None:
    signatures = signed.get("signatures")
    by_signer = signatures.get(signer) if isinstance(signatures, Mapping) else None
    value = by_signer.get(key_id) if isinstance(by_signer, Mapping) else None
    return value if isinstance(value, str) else None


def verify_signature(signed: Mapping[str, Any], signer: str, key_id: str,
                     public_key: str) -> bool:
    """Whether ``signed`` carries a valid ed25519 signature of ``signer``'s ``key_id``
    made with ``public_key`` (unpadded base64)."""
    signature = signature_of(signed, signer, key_id)
    if signature is None:
        return False
    try:
        payload = signed_bytes(signed)
    except (ValueError, CanonicalJsonError):
        return False
    return verify_signed_bytes(payload, signature, public_key)


def verify_signed_bytes(payload: bytes, signature: str, public_key: str) -> bool:
    """``verify_signature`` for a caller that has ``signed_bytes`` already (a received
    event's are also what its reference hash covers).

    Verified with libsodium (PyNaCl), as Synapse's signedjson does: half the CPU of
    OpenSSL's ed25519 verify (every received event is verified, and every request),
    and it refuses what RFC 8032 leaves open (small-order keys, non-canonical
    encodings) like the servers we talk to."""
    try:
        key = decode_base64(public_key)
        raw_signature = decode_base64(signature)
    except ValueError:
        return False
    if len(key) != ED25519_PUBLIC_KEY_BYTES or len(raw_signature) != ED25519_SIGNATURE_BYTES:
        return False
    try:
        nacl.bindings.crypto_sign_open(raw_signature + payload, key)
    except (ValueError, nacl.exceptions.CryptoError):
        return False
    return True


@dataclass(frozen=True)
class SigningKey:
    """A server's ed25519 signing key with its id (``ed25519:<version>``)."""

    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        """The key from ``schulhof init``'s PEM file; its version is derived from the
        public key, so every server that knows the key agrees on its id."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the Matrix signing key must be an ed25519 key")
        return cls(key_id=key_id_for(key.public_key()), private_key=key)

    @classmethod
    def from_seed(cls, seed: bytes, version: str) -> SigningKey:
        return cls(key_id=f"ed25519:{version}",
                   private_key=Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def public_key_base64(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return unpadded_base64(raw)

    def sign_bytes(self, data: bytes) -> str:
        return unpadded_base64(self.private_key.sign(data))

    def sign_json(self, obj: Mapping[str, Any], entity: str) -> dict[str, Any]:
        """A copy of ``obj`` with this key's signature for ``entity`` added beside any
        signatures it already carries (spec Appendices "Signing JSON")."""
        signed = copy.deepcopy(dict(obj))
        signature = self.sign_bytes(signed_bytes(signed))
        signatures = signed.setdefault("signatures", {})
        signatures.setdefault(entity, {})[self.key_id] = signature
        return signed


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """``ed25519:`` and a short version made of the key's own bytes ([A-Za-z0-9_] only,
    as key ids must be)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    version = base64.b32encode(raw).decode("ascii").rstrip("=").lower()[:8]
    return f"ed25519:s{version}"
