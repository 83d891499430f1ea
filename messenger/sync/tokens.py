"""Sync and pagination tokens (opaque to clients; spec 8.1 /sync ``since``, 10.8 /messages).

``s<events>_<account data>`` is a /sync position; ``t<events>`` a position in a
room's timeline (between the event with that stream ordering and the next).
/messages accepts both, as the spec requires for ``prev_batch``/``next_batch``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SYNC = re.compile(r"^s(\d{1,18})_(\d{1,18})$")
_ROOM = re.compile(r"^t(\d{1,18})$")


class InvalidToken(ValueError):
    pass


@dataclass(frozen=True)
class SyncToken:
    events: int
    account_data: int

    def __str__(self) -> str:
        return f"s{self.events}_{self.account_data}"

    @classmethod
    def parse(cls, text: str) -> SyncToken:
        match = _SYNC.match(text)
        if not match:
            raise InvalidToken(f"invalid sync token {text!r}")
        return cls(int(match[1]), int(match[2]))


def room_token(position: int) -> str:
    return f"t{max(0, position)}"


def parse_position(text: str) -> int:
    """The event stream position of a sync or room token."""
    if match := _ROOM.match(text):
        return int(match[1])
    return SyncToken.parse(text).events
