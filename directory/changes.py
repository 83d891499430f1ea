"""Telling a process's directory caches that the directory changed.

``Directory`` calls :meth:`DirectoryChanges.changed` after every committed
write (accounts, status, groups, memberships, aliases, parent links, an
import); whoever keeps directory answers in memory (the MX's lookup cache,
mailserver.smtp.routing) subscribes and forgets them.  No detail is passed:
directory changes are rare next to lookups, so "forget everything" is
simple and always right.

Other ``serve`` workers hear of it through ``directory.directory_relay`` (the
school's ``Broadcast``).  A change made by a process outside that broadcast
(the admin command line, on SQLite anything but ``serve``) is not heard: the
caches' own expiry bounds how long it stays unseen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("schulhof.directory")

Listener = Callable[[], None]


class DirectoryChanges:
    """Listeners called (synchronously) after each committed directory change."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        #: Set by the relay: tells the school's other processes (after local listeners).
        self.relay: Listener | None = None
        self.count = 0  # changes seen here (own and relayed), for tests

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener()`` after every change; returns the unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
        return unsubscribe

    def changed(self) -> None:
        """This process committed a change: tell the listeners here and the others."""
        self.changed_elsewhere()
        if self.relay is not None:
            self.relay()

    def changed_elsewhere(self) -> None:
        """Another process changed the directory (or we may have missed it): listeners here."""
        self.count += 1
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # one cache's bug must not fail the write that committed
                log.exception("event=directory_listener_failed")
