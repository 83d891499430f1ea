"""Sliding sync connections and their positions (MSC4186 "Connections", session state).

A connection is (account, device, ``conn_id``).  Each ``pos`` handed out names
a snapshot of what the client was sent: the stream positions (a ``SyncToken``)
and, per room, up to where its timeline went out and with which config.  The
client sends back the last ``pos`` it processed; the server keeps that one and
the ones issued after it, so a retried request (the response got lost) or two
concurrent requests with the same ``pos`` both work, and drops older ones.

Positions live in this process only: after a restart, or when a connection was
dropped to bound memory, the client gets ``M_UNKNOWN_POS`` and starts the
connection afresh, as the MSC prescribes.  ``pos`` carries an epoch random per
process, so a position from before a restart is never mistaken for a new one.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from messenger.sync.sliding_request import ExtensionConfig, ListConfig, RoomConfig
from messenger.sync.tokens import SyncToken

MAX_CONNECTIONS = 200_000  # all users together; the least recently used goes first
MAX_CONNECTIONS_PER_DEVICE = 16
MAX_POSITIONS = 4  # per connection: the acknowledged one and a few issued after it

_POS = re.compile(r"^([0-9a-f]{8})\.([0-9]{1,18})$")


class UnknownPosition(Exception):
    """The ``pos`` is not (or no longer) known: M_UNKNOWN_POS, start afresh."""


@dataclass(frozen=True, slots=True)
class SentRoom:
    """What a connection's client holds of one room."""

    position: int  # events stream position up to which its timeline was sent
    membership: str
    config: RoomConfig
    lazy_members: frozenset[str] = frozenset()  # member events sent for $LAZY
    counts: tuple[int, int] = (0, 0)  # notification and highlight count last sent


@dataclass(frozen=True, slots=True)
class Snapshot:
    token: SyncToken
    rooms: dict[str, SentRoom]  # never mutated once stored: shared between snapshots
    list_rooms: dict[str, tuple[tuple[str, ...], ...]]  # list -> room ids per range
    list_counts: dict[str, int]
    # The connection's sticky parameters it was made with (``Connection.config``,
    # the same object while they do not change).
    config: Config | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """A connection's sticky parameters after a request (compared by value)."""

    lists: dict[str, ListConfig] = field(default_factory=dict)
    extensions: dict[str, ExtensionConfig] = field(default_factory=dict)
    subscriptions: dict[str, RoomConfig] = field(default_factory=dict)


NO_CONFIG = Config()


@dataclass(eq=False, slots=True)
class Connection:
    snapshots: OrderedDict[int, Snapshot] = field(default_factory=OrderedDict)
    config: Config = NO_CONFIG

    @property
    def lists(self) -> dict[str, ListConfig]:
        return self.config.lists

    @property
    def extensions(self) -> dict[str, ExtensionConfig]:
        return self.config.extensions

    @property
    def subscriptions(self) -> dict[str, RoomConfig]:
        return self.config.subscriptions

    def newest(self) -> Snapshot | None:
        """The snapshot handed out last (None: none yet)."""
        return next(reversed(self.snapshots.values()), None)


class Connections:
    """All sliding sync connections of this server process (no module state)."""

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(4)
        self._serial = 0
        self._connections: OrderedDict[tuple[int, str, str], Connection] = OrderedDict()
        self._per_device: dict[tuple[int, str], int] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def resolve(self, account_id: int, device_id: str, conn_id: str,
                pos: str | None) -> tuple[Connection, Snapshot | None]:
        """The connection and the snapshot ``pos`` names (None: a new connection)."""
        key = (account_id, device_id, conn_id)
        if pos is None:
            self._drop(key)  # MSC4186: a request without pos resets the connection
            return self._add(key), None
        match = _POS.match(pos)
        if match is None:
            raise UnknownPosition("malformed pos: start a new connection (no pos)")
        connection = self._connections.get(key)
        if match[1] != self.epoch or connection is None:
            raise UnknownPosition("unknown pos (the connection expired or the server "
                                  "restarted): start a new connection (no pos)")
        serial = int(match[2])
        snapshot = connection.snapshots.get(serial)
        if snapshot is None:
            raise UnknownPosition("pos is no longer known: start a new connection (no pos)")
        # The client acknowledged ``serial``: older snapshots are never needed again.
        for old in [s for s in connection.snapshots if s < serial]:
            del connection.snapshots[old]
        self._connections.move_to_end(key)
        return connection, snapshot

    def store(self, connection: Connection, snapshot: Snapshot) -> str:
        self._serial += 1
        connection.snapshots[self._serial] = snapshot
        while len(connection.snapshots) > MAX_POSITIONS:
            connection.snapshots.popitem(last=False)
        return self.pos(self._serial)

    def pos(self, serial: int) -> str:
        return f"{self.epoch}.{serial}"

    def serial_of(self, connection: Connection, snapshot: Snapshot) -> int | None:
        for serial, known in connection.snapshots.items():
            if known is snapshot:
                return serial
        return None

    def _add(self, key: tuple[int, str, str]) -> Connection:
        device = key[:2]
        if self._per_device.get(device, 0) >= MAX_CONNECTIONS_PER_DEVICE:
            # A client inventing conn_ids: its oldest connection goes.
            oldest = next(k for k in self._connections if k[:2] == device)
            self._drop(oldest)
        while len(self._connections) >= MAX_CONNECTIONS:
            self._drop(next(iter(self._connections)))
        connection = self._connections[key] = Connection()
        self._per_device[device] = self._per_device.get(device, 0) + 1
        return connection

    def _drop(self, key: tuple[int, str, str]) -> None:
        if self._connections.pop(key, None) is not None:
            device = key[:2]
            self._per_device[device] -= 1
            if not self._per_device[device]:
                del self._per_device[device]

    def forget_device(self, account_id: int, device_id: str) -> None:
        """The device logged out or in again: its connections end."""
        for key in [k for k in self._connections if k[:2] == (account_id, device_id)]:
            self._drop(key)
