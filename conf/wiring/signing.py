"""The school's Matrix signing key and event signer, apart from ``conf.wiring.matrix``
so that the admin use cases of the command line (export, erasure) load the room
service without the whole client and federation API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conf.commands.school import KEYS_DIR
from federation.keys import SchoolKeyPaths
from federation.matrix.signed_json import SigningKey
from messenger.events.signing import EventSigner, KeyLookup

if TYPE_CHECKING:
    from conf.app import School
    from federation.matrix.keyring import KeyRing


def signing_key(school: School) -> SigningKey | None:
    """The school's Matrix signing key (``schulhof init`` made it beside the DKIM keys);
    None when the file is missing (a school set up by hand without keys)."""
    path = SchoolKeyPaths.in_dir(school.settings.base_dir / KEYS_DIR).matrix_signing
    return SigningKey.from_pem(path.read_bytes()) if path.exists() else None


def event_signer(school: School) -> EventSigner | None:
    """Signs every event the school's server creates (Server-Server API "Signing events")."""
    key = signing_key(school)
    return None if key is None else EventSigner(school.settings.school.domain.lower(), key)


def event_key_lookup(server_name: str, key: SigningKey, keyring: KeyRing) -> KeyLookup:
    """Public keys for checking event signatures: our own key, others' from the keyring."""
    # Imported here: the keyring brings the federation client (aiohttp, DNS), which a
    # command that only signs (an export's room service) does not need.
    from federation.matrix.keyring import KeyNotFound

    async def key_of(server: str, key_id: str, ts: int) -> str:
        if server == server_name:
            if key_id != key.key_id:
                raise KeyError(key_id)
            return key.public_key_base64
        try:
            return await keyring.verify_key(server, key_id)
        except KeyNotFound:
            raise KeyError(key_id) from None

    return key_of
