"""Telling a school's other processes that something happened here (issue 15).

Several ``serve`` workers (and hosts) share one PostgreSQL database.  What one
process keeps in memory and the others must hear about -- a mailbox changed
(IMAP IDLE), a room got an event (/sync), a login failed (throttling) -- goes
through a ``Broadcast``: short text messages on named channels, best effort.

A broadcast only *wakes* and *hints*: the database stays the truth.  Every
listener has a catch-up path (``on_reconnect``) that re-reads what it watches
when notifications may have been missed, so a lost message costs latency,
never a lost mail or chat message.

Two implementations, chosen in ``conf``: :class:`LocalBroadcast` for one
process (nobody else to tell: every call is a no-op), and
``directory.pg_broadcast.PostgresBroadcast`` (LISTEN/NOTIFY).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

#: PostgreSQL's NOTIFY payload limit is 8000 bytes; stay well below it.
MAX_PAYLOAD = 7000

Receiver = Callable[[str], None]
CatchUp = Callable[[], Awaitable[None]]


class Broadcast(Protocol):
    """Best-effort messages to the school's other processes (never to this one)."""

    @property
    def shared(self) -> bool:
        """True when other processes may be listening (several workers)."""

    def send(self, channel: str, payload: str) -> None:
        """Queue ``payload`` (at most ``MAX_PAYLOAD`` bytes) for the others; never blocks.
        Call it after the commit it tells about."""

    def listen(self, channel: str, receive: Receiver) -> None:
        """Call ``receive(payload)`` for every message another process sends on ``channel``."""

    def on_reconnect(self, catch_up: CatchUp) -> None:
        """``catch_up()`` runs whenever messages may have been missed (the listening
        connection was lost and is back): the listener re-reads the database."""

    async def start(self) -> None:
        """Begin listening (after every ``listen``); raises if that is impossible."""

    async def stop(self) -> None:
        """Stop listening; unsent messages are dropped."""


class LocalBroadcast:
    """One process: there is nobody else to tell."""

    shared = False

    def send(self, channel: str, payload: str) -> None:
        pass

    def listen(self, channel: str, receive: Receiver) -> None:
        pass

    def on_reconnect(self, catch_up: CatchUp) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass
