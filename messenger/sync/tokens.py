"""Sync and pagination tokens (opaque to clients; spec 8.1 /sync ``since``, 10.8 /messages).

``s<events>_<account data>_<to-device>_<device lists>_<receipts>_<typing>`` is a
/sync position (one number per stream; the first slice's two-number form is
still read, the other streams then start at 0); ``t<events>`` a position in a
room's timeline (between the event with that stream ordering and the next).
/messages accepts both, as the spec requires for ``prev_batch``/``next_batch``.
The typing number counts in-memory changes of this server process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

_SYNC = re.compile(r"^s(\d{1,18})_(\d{1,18})(?:_(\d{1,18})_(\d{1,18})_(\d{1,18})_(\d{1,18}))?$")
_ROOM = re.compile(r"^t(-?\d{1,19})$")
LOWEST_POSITION_MAGNITUDE = 2 ** 62  # positions lie within +-this (a BIGINT column)


class InvalidToken(ValueError):
    pass


@dataclass(frozen=True)
class SyncToken:
    events: int
    account_data: int
    to_device: int = 0
    device_lists: int = 0
    receipts: int = 0
    typing: int = 0

    def __str__(self) -> str:
        return "s" + "_".join(str(getattr(self, f.name)) for f in fields(self))

    @classmethod
    def parse(cls, text: str) -> SyncToken:
        match = _SYNC.match(text)
        if not match:
            raise InvalidToken(f"invalid sync token {text!r}")
        return cls(*(int(g) if g is not None else 0 for g in match.groups()))

    def ahead_of(self, now: SyncToken) -> bool:
        """True if any stream is past ``now``: a token of a reset database."""
        return (self.events > now.events or self.account_data > now.account_data
                or self.to_device > now.to_device or self.device_lists > now.device_lists
                or self.receipts > now.receipts)


def room_token(position: int) -> str:
    # Backfilled history lies at zero and below (messenger.rooms.backfill).
    return f"t{max(position, -LOWEST_POSITION_MAGNITUDE)}"


def parse_position(text: str) -> int:
    """The event stream position of a sync or room token."""
    if match := _ROOM.match(text):
        position = int(match[1])
        if abs(position) > LOWEST_POSITION_MAGNITUDE:
            raise InvalidToken("position out of range")
        return position
    return SyncToken.parse(text).events
