"""Cross-signing (spec: Client-Server API "Cross-signing", POST /keys/device_signing/upload
and POST /keys/signatures/upload; Appendices "Signing JSON").

Each user may publish three ed25519 keys: a master key, and a self-signing and a
user-signing key signed by it.  The self-signing key signs the user's devices,
the user-signing key other users' master keys, and devices may sign the master
key.  The server checks every signature before it stores it and hands the keys
out through /keys/query; signatures made by a user-signing key are shown only
to the user who made them.  Any change is a device-list change (/sync).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from directory.db import Database
from federation.matrix.signed_json import (
    decode_base64,
    verify_signature,
)
from messenger.e2ee import DeviceMessaging
from messenger.events.canonical import CanonicalJsonError, check_canonical_value
from messenger.identity import Requester
from messenger.sessions import Sessions
from messenger.storage import cross_signing as store
from messenger.storage import device_messages, user_data

# Request field -> the key's usage (and the storage key).
UPLOAD_FIELDS = {"master_key": "master", "self_signing_key": "self_signing",
                 "user_signing_key": "user_signing"}
ED25519_PUBLIC_KEY_BYTES = 32


class CrossSigningError(Exception):
    """A key or signature the server refuses; the API turns each kind into an errcode."""


class InvalidKey(CrossSigningError):
    """Malformed key object, or a signed object that is not the stored key."""


class InvalidSignature(CrossSigningError):
    """A signature that is missing or does not verify."""


class MissingMasterKey(CrossSigningError):
    """A self-signing or user-signing key without a master key to check it with."""


class KeyIdInUse(CrossSigningError):
    """A cross-signing public key equal to one of the user's device ids."""


class UnknownKey(CrossSigningError):
    """The key to be signed (or the key to check a signature with) does not exist."""


@dataclass(frozen=True)
class CrossSigningKey:
    usage: str
    public_key: str  # unpadded base64
    content: Mapping[str, Any]  # the object as uploaded

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.public_key}"


def parse_cross_signing_key(value: object, user_id: str, usage: str) -> CrossSigningKey:
    """A CrossSigningKey object (spec definitions/cross_signing_key) of ``user_id`` for
    ``usage``; raises ``InvalidKey``."""
    if not isinstance(value, Mapping):
        raise InvalidKey(f"the {usage} key must be an object")
    try:
        check_canonical_value(value)
    except CanonicalJsonError as exc:
        raise InvalidKey(f"the {usage} key cannot be signed: {exc}") from None
    if value.get("user_id") != user_id:
        raise InvalidKey(f"the {usage} key must belong to {user_id}")
    usages = value.get("usage")
    if not isinstance(usages, list) or usage not in usages or not all(
            isinstance(u, str) for u in usages):
        raise InvalidKey(f"the {usage} key must list {usage!r} in usage")
    keys = value.get("keys")
    if not isinstance(keys, Mapping) or len(keys) != 1:
        raise InvalidKey(f"the {usage} key must have exactly one public key")
    ((key_id, public_key),) = keys.items()
    algorithm, _, name = key_id.partition(":")
    if algorithm != "ed25519" or name != public_key or not isinstance(public_key, str):
        raise InvalidKey(f"the {usage} key must be ed25519:<public key>")
    try:
        if len(decode_base64(public_key)) != ED25519_PUBLIC_KEY_BYTES:
            raise ValueError("wrong length")
    except ValueError:
        raise InvalidKey(f"the {usage} public key is not a base64 ed25519 key") from None
    signatures = value.get("signatures", {})
    if not isinstance(signatures, Mapping) or not all(
            isinstance(s, Mapping) and all(isinstance(v, str) for v in s.values())
            for s in signatures.values()):
        raise InvalidKey(f"the {usage} key's signatures must map users to key ids to strings")
    return CrossSigningKey(usage, public_key, value)


def _unsigned_part(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in ("signatures", "unsigned")}


def with_signatures(value: Mapping[str, Any],
                    extra: list[store.Signature]) -> dict[str, Any]:
    """A copy of a key object with the later uploaded signatures merged in."""
    out = dict(value)
    present = value.get("signatures")
    merged = {user: dict(sigs) for user, sigs in present.items() if isinstance(sigs, Mapping)
              } if isinstance(present, Mapping) else {}
    for signer, key_id, signature in extra:
        merged.setdefault(signer, {})[key_id] = signature
    if merged:
        out["signatures"] = merged
    return out


@dataclass(frozen=True)
class PublishedKeys:
    """One user's keys as another user (or the owner) sees them in /keys/query."""

    devices: dict[str, dict[str, Any]]
    master: dict[str, Any] | None
    self_signing: dict[str, Any] | None
    user_signing: dict[str, Any] | None  # only when the viewer is the owner


async def published_keys(session: Any, viewer: str, owner: str,
                         account_id: int) -> PublishedKeys:
    """Device and cross-signing keys of ``owner`` with the signatures ``viewer`` may see:
    the owner's own and the viewer's (spec: user-signing signatures are private)."""
    devices = await user_data.devices_with_keys(session, account_id)
    keys = await store.get_keys(session, account_id)
    extra = await store.signatures_on(session, account_id, {owner, viewer})

    def merged(key: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if key is None:
            return None
        public_key = next(iter(key["keys"].values()))
        return with_signatures(key, extra.get(public_key, []))

    return PublishedKeys(
        devices={d: with_signatures(k, extra.get(d, [])) for d, k in devices.items()},
        master=merged(keys.get("master")), self_signing=merged(keys.get("self_signing")),
        user_signing=merged(keys.get("user_signing")) if viewer == owner else None)


@dataclass(frozen=True)
class _Keyring:
    """What the server holds of one user's keys, to check signatures against."""

    user_id: str
    account_id: int
    cross_signing: dict[str, CrossSigningKey]
    devices: dict[str, dict[str, Any]]


# A checked signature, ready to store: (owner account, target key id, signatures).
_Accepted = tuple[int, str, list[store.Signature]]


class CrossSigning:
    """Uploads of cross-signing keys and of signatures, for one server instance."""

    def __init__(self, db: Database, sessions: Sessions, e2ee: DeviceMessaging) -> None:
        self._db = db
        self._sessions = sessions  # user-interactive auth, as for deleting devices
        self._e2ee = e2ee  # local accounts and the device-list stream
        self._lock = asyncio.Lock()  # one upload decides "first key, no UIA" at a time

    async def _keyring(self, session: Any, user_id: str, account_id: int) -> _Keyring:
        stored = await store.get_keys(session, account_id)
        return _Keyring(user_id, account_id,
                        {usage: parse_cross_signing_key(key, user_id, usage)
                         for usage, key in stored.items()},
                        await user_data.devices_with_keys(session, account_id))

    async def upload_keys(self, who: Requester, keys: Mapping[str, Any], auth: object,
                          client_ip: str) -> None:
        """POST /keys/device_signing/upload.  User-interactive auth is asked for unless
        the user has no master key yet or the request holds no new key (spec v1.11,
        MSC3967)."""
        parsed = {usage: parse_cross_signing_key(keys[field], who.user_id, usage)
                  for field, usage in UPLOAD_FIELDS.items() if keys.get(field) is not None}
        async with self._lock:
            async with self._db.read() as session:
                mine = await self._keyring(session, who.user_id, who.account_id)
                device_ids = set(await device_messages.device_ids(session, who.account_id))
            master = parsed.get("master") or mine.cross_signing.get("master")
            for usage in ("self_signing", "user_signing"):
                key = parsed.get(usage)
                if key is None:
                    continue
                if master is None:
                    raise MissingMasterKey(f"the {usage} key needs a master key")
                if not verify_signature(key.content, who.user_id, master.key_id,
                                        master.public_key):
                    raise InvalidSignature(f"the {usage} key is not signed by the master key")
            for key in parsed.values():
                if key.public_key in device_ids:
                    raise KeyIdInUse(f"the {key.usage} public key is one of your device ids")
            new = {usage: key for usage, key in parsed.items()
                   if usage not in mine.cross_signing
                   or mine.cross_signing[usage].content != key.content}
            if not new:
                return  # a repeated upload: nothing to authorise or store
            if "master" in mine.cross_signing:
                await self._sessions.check_user_interactive_auth(who, auth, client_ip)
            async with self._db.write() as session:
                for usage, key in new.items():
                    replaced = await store.put_key(session, who.account_id, usage,
                                                   key.public_key, key.content)
                    if replaced is not None:
                        await store.delete_signatures_on(session, who.account_id, replaced)
        await self._e2ee.device_list_changed(who.user_id)

    async def upload_signatures(self, who: Requester,
                                signed: Mapping[str, Mapping[str, Any]],
                                ) -> dict[str, dict[str, CrossSigningError]]:
        """POST /keys/signatures/upload: store the signatures that verify; the others
        come back as failures per user and key id."""
        failures: dict[str, dict[str, CrossSigningError]] = {}
        accepted: list[_Accepted] = []
        changed: set[str] = set()
        async with self._db.read() as session:
            mine = await self._keyring(session, who.user_id, who.account_id)
            for user_id, objects in signed.items():
                theirs = mine if user_id == who.user_id else await self._other(session, user_id)
                for key_id, value in objects.items():
                    try:
                        if not isinstance(value, Mapping):
                            raise InvalidKey("a signed key must be an object")
                        if theirs is None:
                            raise UnknownKey(f"{user_id} has no keys here")
                        accepted.append(_check_signatures(mine, theirs, key_id, value))
                        changed.add(user_id)
                    except CrossSigningError as exc:
                        failures.setdefault(user_id, {})[key_id] = exc
        if accepted:
            async with self._db.write() as session:
                for account_id, target_key_id, signatures in accepted:
                    await store.add_signatures(session, account_id, target_key_id, signatures)
        for user_id in sorted(changed):
            await self._e2ee.device_list_changed(user_id)
        return failures

    async def _other(self, session: Any, user_id: str) -> _Keyring | None:
        account_id = await self._e2ee.local_account_id(user_id)
        if account_id is None:
            return None  # remote users' keys: needs federation
        return await self._keyring(session, user_id, account_id)


def _check_signatures(mine: _Keyring, theirs: _Keyring, key_id: str,
                      value: Mapping[str, Any]) -> _Accepted:
    """The valid new signatures in ``value`` on ``theirs``'s key ``key_id``, signed by
    ``mine``: own devices by the self-signing key, the own master key by own
    devices, another user's master key by the user-signing key."""
    master = theirs.cross_signing.get("master")
    stored: Mapping[str, Any]
    signers: list[tuple[str, str | None]]  # (key id, public key; None: a device without one)
    if mine is theirs and key_id in mine.devices:
        stored, signer = mine.devices[key_id], mine.cross_signing.get("self_signing")
        signers = [] if signer is None else [(signer.key_id, signer.public_key)]
    elif master is not None and key_id == master.public_key:
        stored = master.content
        if mine is theirs:  # the master key signed by the user's devices
            signers = [(f"ed25519:{d}", _device_signing_key(k, d))
                       for d, k in mine.devices.items()]
        else:
            signer = mine.cross_signing.get("user_signing")
            signers = [] if signer is None else [(signer.key_id, signer.public_key)]
    else:
        raise UnknownKey(f"no key {key_id} of {theirs.user_id} to sign")
    if not signers:
        raise UnknownKey("you have no key that may sign this key")
    if _unsigned_part(value) != _unsigned_part(stored):
        raise InvalidKey("the signed object is not the stored key")
    good: list[store.Signature] = []
    for signer_key_id, public_key in signers:
        if isinstance(public_key, str) and verify_signature(value, mine.user_id, signer_key_id,
                                                            public_key):
            good.append((mine.user_id, signer_key_id,
                         value["signatures"][mine.user_id][signer_key_id]))
    if not good:
        raise InvalidSignature("no valid signature by a key that may sign this key")
    return theirs.account_id, key_id, good


def _device_signing_key(device_keys: Mapping[str, Any], device_id: str) -> str | None:
    keys = device_keys.get("keys")
    key = keys.get(f"ed25519:{device_id}") if isinstance(keys, Mapping) else None
    return key if isinstance(key, str) else None
