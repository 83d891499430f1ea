"""``Broadcast`` over PostgreSQL LISTEN/NOTIFY (asyncpg), for several workers or hosts.

One dedicated connection per process (not from the SQLAlchemy pool: a
listening connection must stay open) both LISTENs and NOTIFYs.  PostgreSQL
delivers a notification to every listening session of the database, including
the sender's: messages whose sender is this connection's backend are dropped.
A NOTIFY sent inside no transaction is delivered at once; callers send after
their own commit, so a receiver that reads the database sees the change.

When the connection is lost, notifications sent meanwhile are gone: after
reconnecting, every ``on_reconnect`` catch-up runs (each listener re-reads the
database).  Messages queued here while the connection was down are sent once
it is back (a wake-up late, not lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from directory.broadcast import MAX_PAYLOAD, CatchUp, Receiver

log = logging.getLogger("schulhof.broadcast")

MAX_QUEUED = 10_000  # unsent messages kept while the database is away (oldest dropped)
HEALTH_SECONDS = 5.0  # an idle connection is checked this often (a silent loss)
RECONNECT_SECONDS = 0.5
APPLICATION_NAME = "schulhof-broadcast"  # in pg_stat_activity


def connect_arguments(database_url: str) -> dict[str, Any]:
    """asyncpg's ``connect`` arguments for a SQLAlchemy ``postgresql+asyncpg`` URL."""
    url = make_url(database_url)
    args: dict[str, Any] = {"host": url.host or "localhost", "port": url.port or 5432,
                            "user": url.username, "password": url.password,
                            "database": url.database,
                            "server_settings": {"application_name": APPLICATION_NAME}}
    if "ssl" not in url.query and "sslmode" not in url.query \
            and (url.host or "") in {"localhost", "127.0.0.1", "::1", ""}:
        args["ssl"] = False  # as directory.db: no TLS round trip on loopback
    return args


class PostgresBroadcast:
    """The ``directory.broadcast.Broadcast`` of a school on PostgreSQL."""

    shared = True

    def __init__(self, database_url: str) -> None:
        self._connect_args = connect_arguments(database_url)
        self._receivers: dict[str, list[Receiver]] = {}
        self._catch_ups: list[CatchUp] = []
        self._outbox: deque[tuple[str, str]] = deque(maxlen=MAX_QUEUED)
        self._wake = asyncio.Event()
        self._connection: Any = None
        self._server_pid: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._stopping = False
        self.reconnects = 0  # for tests and the log

    # --- the Broadcast protocol ---------------------------------------------------------
    def send(self, channel: str, payload: str) -> None:
        if len(payload.encode()) > MAX_PAYLOAD:
            raise ValueError(f"broadcast payload of {len(payload)} characters is too long")
        self._outbox.append((channel, payload))
        self._wake.set()

    def listen(self, channel: str, receive: Receiver) -> None:
        self._receivers.setdefault(channel, []).append(receive)

    def on_reconnect(self, catch_up: CatchUp) -> None:
        self._catch_ups.append(catch_up)

    # --- running ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and listen (raises if the database is not reachable at start)."""
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="pg-broadcast")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._lost.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(**self._connect_args)
        self._lost = asyncio.Event()
        connection.add_termination_listener(lambda _conn: self._lost.set())
        for channel in self._receivers:
            await connection.add_listener(channel, self._dispatch)
        self._connection = connection
        self._server_pid = connection.get_server_pid()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2.0)

    def _dispatch(self, _connection: Any, pid: int, channel: str, payload: str) -> None:
        if pid == self._server_pid:
            return  # our own message
        for receive in self._receivers.get(channel, ()):
            try:
                receive(payload)
            except Exception:  # one listener's bug must not stop the others
                log.exception("event=broadcast_receiver_failed channel=%s", channel)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._send_until_lost()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("event=broadcast_connection_lost error=%s", type(exc).__name__)
            if self._stopping:
                return
            await self._close()
            await self._reconnect()

    async def _reconnect(self) -> None:
        while not self._stopping:
            await asyncio.sleep(RECONNECT_SECONDS)
            try:
                await self._connect()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("event=broadcast_reconnect_failed error=%s", type(exc).__name__)
                continue
            self.reconnects += 1
            log.info("event=broadcast_reconnected catch_ups=%d", len(self._catch_ups))
            for catch_up in self._catch_ups:
                try:
                    await catch_up()
                except Exception:
                    log.exception("event=broadcast_catch_up_failed")
            return

    async def _send_until_lost(self) -> None:
        while not self._stopping:
            if not self._outbox:
                self._wake.clear()
                lost = asyncio.ensure_future(self._lost.wait())
                woken = asyncio.ensure_future(self._wake.wait())
                done, pending = await asyncio.wait({lost, woken}, timeout=HEALTH_SECONDS,
                                                   return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                if self._lost.is_set():
                    raise OSError("the listening connection was closed")
                if not done:  # quiet for a while: is the connection still there?
                    await self._connection.fetchval("SELECT 1", timeout=HEALTH_SECONDS)
                    continue
            batch = list(self._outbox)
            await self._connection.executemany("SELECT pg_notify($1, $2)", batch,
                                               timeout=10)
            for _ in batch:  # sent: only now leave the queue
                self._outbox.popleft()
