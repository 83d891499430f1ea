"""Matrix identifiers (spec: Appendices, "Identifier Grammar").

User ids are ``@localpart:server``; our local parts are the directory's
logins, which already use a subset of the allowed alphabet.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from typing import TypeGuard

_USER_LOCALPART = re.compile(r"^[a-z0-9._=\-/+]+$")
_SERVER_NAME = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(:[0-9]{1,5})?$")
MAX_ID_LENGTH = 255


class InvalidIdentifier(ValueError):
    pass


@dataclass(frozen=True)
class UserId:
    localpart: str
    server: str

    def __str__(self) -> str:
        return f"@{self.localpart}:{self.server}"

    @classmethod
    def parse(cls, text: str) -> UserId:
        if len(text) > MAX_ID_LENGTH or not text.startswith("@") or ":" not in text:
            raise InvalidIdentifier(f"not a user id: {text!r}")
        localpart, _, server = text[1:].partition(":")
        if not _USER_LOCALPART.match(localpart) or not _SERVER_NAME.match(server):
            raise InvalidIdentifier(f"not a user id: {text!r}")
        return cls(localpart, server)


def is_user_id(text: object) -> TypeGuard[str]:
    if not isinstance(text, str):
        return False
    try:
        UserId.parse(text)
    except InvalidIdentifier:
        return False
    return True


def is_historical_user_id(text: object) -> TypeGuard[str]:
    """A user id as the spec's historical grammar allows it (any non-empty localpart
    without ``:``; spec Appendices "Historical User IDs"), as other servers accept."""
    if not isinstance(text, str) or len(text.encode("utf-8")) > MAX_ID_LENGTH \
            or not text.startswith("@"):
        return False
    localpart, colon, server = text[1:].partition(":")
    return bool(localpart and colon) and _SERVER_NAME.match(server) is not None


def server_of(identifier: str) -> str:
    """The server name part of a user, room, alias id (after the first colon)."""
    return identifier.partition(":")[2]


def new_room_id(server: str) -> str:
    alphabet = string.ascii_letters
    return "!" + "".join(secrets.choice(alphabet) for _ in range(18)) + ":" + server


def new_device_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(10))


def parse_room_alias(text: str) -> tuple[str, str]:
    """``#local:server`` -> (local, server)."""
    if len(text) > MAX_ID_LENGTH or not text.startswith("#") or ":" not in text:
        raise InvalidIdentifier(f"not a room alias: {text!r}")
    local, _, server = text[1:].partition(":")
    if not local or not _SERVER_NAME.match(server) or any(c in local for c in ":# \0"):
        raise InvalidIdentifier(f"not a room alias: {text!r}")
    return local, server


def is_server_name(text: object) -> TypeGuard[str]:
    """A server name (spec: Appendices "Server Name"): host or IP literal, optional port."""
    return isinstance(text, str) and len(text) <= MAX_ID_LENGTH \
        and _SERVER_NAME.match(text) is not None


_HASHED_ROOM_ID = re.compile(r"![A-Za-z0-9_\-]{43}")


def is_hashed_room_id(text: object) -> bool:
    """A room id of room version 12 (MSC4291): ``!`` and the create event's reference
    hash (sha256, URL-safe unpadded base64), no server name."""
    return isinstance(text, str) and _HASHED_ROOM_ID.fullmatch(text) is not None


def is_room_id(text: object) -> bool:
    """A room id of any version we speak: ``!opaque:server`` or, from v12, a hash."""
    return isinstance(text, str) and len(text) <= MAX_ID_LENGTH and text.startswith("!") \
        and (":" in text or is_hashed_room_id(text))


def create_event_id_of(room_id: str) -> str | None:
    """The create event's id named by a v12 room id; None for older room ids."""
    return "$" + room_id[1:] if is_hashed_room_id(room_id) else None


def room_id_of_create(event_id: str) -> str:
    """The v12 room id of the room whose create event is ``event_id``."""
    return "!" + event_id[1:]
