"""Directory changes told across a school's processes (issue 15's broadcast).

An account suspended, a pupil removed from a class, an alias changed through
one ``serve`` worker must reach the directory caches of the others at once
(issue 18: a user who left a group gets nothing more).  Every change this
process's ``DirectoryChanges`` sees goes over the ``Broadcast`` as an empty
hint; a received hint makes the listeners here forget what they cached.
When hints may have been lost (the broadcast reconnected), the catch-up
forgets everything too: the next lookup reads the database.
"""

from __future__ import annotations

from directory.broadcast import Broadcast
from directory.changes import DirectoryChanges

CHANNEL = "schulhof_directory"
PAYLOAD = "changed"


class DirectoryRelay:
    """Connects one ``DirectoryChanges`` to a ``Broadcast`` (both directions)."""

    def __init__(self, changes: DirectoryChanges, broadcast: Broadcast) -> None:
        self._changes = changes
        self._broadcast = broadcast
        self.received = 0
        changes.relay = self._send
        broadcast.listen(CHANNEL, self._receive)
        broadcast.on_reconnect(self.catch_up)

    def _send(self) -> None:
        self._broadcast.send(CHANNEL, PAYLOAD)

    def _receive(self, _payload: str) -> None:
        self.received += 1
        self._changes.changed_elsewhere()

    async def catch_up(self) -> None:
        self._changes.changed_elsewhere()
