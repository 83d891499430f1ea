"""Push notifications to phones through their push gateway (spec: Client-Server API
"Push Notifications", Push Gateway API ``POST /_matrix/push/v1/notify``).

The gateway belongs to a third party (the app's vendor, then Apple or Google):
it always gets the ``event_id_only`` shape - event id, room id, an unread count
and the device - never content, sender or room names, whatever the pusher asked
for.  The phone fetches the event itself.  Sending runs in the background from a
bounded queue, so a slow or dead gateway never delays a client's send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from directory.db import Database
from messenger.storage import pushers as store
from messenger.storage.events import StoredEvent
from messenger.storage.push_actions import Notified
from messenger.storage.pushers import Pusher

log = logging.getLogger("schulhof.messenger")

# Without a count (a tool or test that wires no ``badge``), 1 tells the app "there is
# something", which is what it shows a badge for.
UNREAD_COUNT = 1
STOP_GRACE_SECONDS = 1.0
# Who has a pusher is read again after this long: another process (a second
# server on the database) may have added one.  This process's own changes
# apply at once (``PusherOwners.changed``).
PUSHER_OWNERS_SECONDS = 10.0


def notification(event: StoredEvent, pusher: Pusher,
                 unread: int = UNREAD_COUNT) -> dict[str, Any]:
    """The ``event_id_only`` body for one device; ``unread``: the app's badge."""
    return {"notification": {
        "event_id": event.event_id, "room_id": event.room_id,
        "counts": {"unread": unread}, "prio": "high",
        "devices": [{"app_id": pusher.app_id, "pushkey": pusher.pushkey,
                     "pushkey_ts": pusher.pushkey_ts,
                     "data": store.pusher_data_for_gateway(pusher.data)}]}}


class PusherOwners:
    """The users with at least one pusher, held in memory: most members of a room
    have none, and a message must not cost the push sender queries for them (a
    message in a class room notifies every other member)."""

    def __init__(self, db: Database, *, seconds: float = PUSHER_OWNERS_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._seconds = seconds
        self._clock = clock
        self._owners: frozenset[str] | None = None
        self._until = 0.0
        self._generation = 0  # moved by ``changed``: a load under way may be stale

    def changed(self) -> None:
        """A pusher was added or removed here: read the owners again."""
        self._owners = None
        self._generation += 1

    async def among(self, users: Iterable[str]) -> list[str]:
        """Those of ``users`` who have a pusher."""
        owners = self._owners
        if owners is None or self._clock() >= self._until:
            generation = self._generation
            async with self._db.read() as session:
                owners = await store.users_with_pushers(session)
            if generation == self._generation:
                self._owners, self._until = owners, self._clock() + self._seconds
        return [u for u in users if u in owners]


class _GatewayUnavailable(Exception):
    """A 5xx answer: worth another try."""


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    """The gateway's answer; a 200 with a body that is not JSON still counts as delivered."""
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


class PushSender:
    """Told about every newly stored event and whom the push rules notify of it
    (``events_committed``, from messenger.unread's one evaluation); pushes to those
    users' pushers from a few background workers."""

    def __init__(self, db: Database, *, timeout: float = 5.0, queue_size: int = 1000,
                 workers: int = 4, retries: int = 3, backoff: float = 0.5,
                 badge: Callable[[str], Awaitable[int]] | None = None,
                 quiet: Callable[[list[str]], Awaitable[set[str]]] | None = None) -> None:
        self.db = db
        self.owners = PusherOwners(db)
        # Who is in their quiet hours now (messenger.quiet_hours): no push for them.
        self._quiet = quiet
        # The app's badge for a user (messenger.unread: rooms with unread notifications).
        self._badge = badge
        self._timeout = timeout
        self._queue: asyncio.Queue[tuple[StoredEvent, list[str]]] = asyncio.Queue(queue_size)
        self._worker_count = workers
        self._retries = retries
        self._backoff = backoff
        self._workers: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None

    def events_committed(self, events: Iterable[StoredEvent],
                         notified: Mapping[str, Iterable[Notified]]) -> None:
        """Called after each commit with event id -> whom it notifies: must not block."""
        if self._http is None:
            return  # not started (tools, tests without a server): nobody to push
        for event in events:
            users = sorted({n.user_id for n in notified.get(event.event_id, ())})
            if not users:
                continue
            try:
                self._queue.put_nowait((event, users))
            except asyncio.QueueFull:
                log.warning("event=push_dropped reason=queue_full id=%s", event.event_id)

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._worker_count)]

    async def stop(self) -> None:
        """Drops what is still queued: a push is a hint, the phone syncs anyway.

        A moment's grace first, so a worker is not cancelled inside its database
        read (that would strand the connection)."""
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), STOP_GRACE_SECONDS)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        if self._http is not None:
            await self._http.close()
            self._http = None
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()

    async def drained(self) -> None:
        """Returns once every event queued so far is pushed or given up on (tests)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            event, users = await self._queue.get()
            try:
                await self.push_event(event, users)
            except Exception:  # the database may be away for a moment: skip this one
                log.exception("event=push_failed id=%s", event.event_id)
            finally:
                self._queue.task_done()

    async def push_event(self, event: StoredEvent, users: list[str]) -> None:
        users = await self.owners.among(users)  # nobody else has a phone to push to
        if not users:
            return
        if self._quiet is not None:
            quiet = await self._quiet(users)
            if quiet:
                log.info("event=push_quiet_hours id=%s users=%d", event.event_id, len(quiet))
                users = [u for u in users if u not in quiet]
                if not users:
                    return
        async with self.db.read() as session:
            targets = await store.pushers_of_users(session, users)
        badges: dict[str, int] = {}
        for pusher in targets:
            if pusher.user_id not in badges:
                badges[pusher.user_id] = await self._badge(pusher.user_id) \
                    if self._badge is not None else UNREAD_COUNT
        await asyncio.gather(*(self._notify(event, pusher, badges[pusher.user_id])
                               for pusher in targets))

    async def _notify(self, event: StoredEvent, pusher: Pusher, unread: int) -> None:
        url = pusher.data.get("url")
        if self._http is None or not isinstance(url, str):
            return
        host = urlsplit(url).hostname  # logged instead of the url: no pushkeys in logs
        body = notification(event, pusher, unread)
        for attempt in range(self._retries + 1):
            try:
                async with self._http.post(url, json=body, allow_redirects=False) as response:
                    if response.status >= 500:
                        raise _GatewayUnavailable(str(response.status))
                    if response.status != 200:
                        log.warning("event=push_refused gateway=%s status=%d", host,
                                    response.status)
                        return
                    answer = await _json_or_none(response)
            except (aiohttp.ClientError, TimeoutError, _GatewayUnavailable) as exc:
                if attempt == self._retries:
                    log.warning("event=push_gave_up gateway=%s error=%s", host,
                                type(exc).__name__)
                    return
                await asyncio.sleep(self._backoff * 2 ** attempt)
                continue
            await self._forget_rejected(pusher, answer)
            return

    async def _forget_rejected(self, pusher: Pusher, answer: Any) -> None:
        """The gateway no longer knows this pushkey (app uninstalled): delete the pusher."""
        rejected = answer.get("rejected") if isinstance(answer, Mapping) else None
        if isinstance(rejected, list) and pusher.pushkey in rejected:
            async with self.db.write() as session:
                await store.delete_pusher(session, pusher.account_id, pusher.app_id,
                                          pusher.pushkey)
            self.owners.changed()
            log.info("event=pusher_rejected user=%s app=%s", pusher.user_id, pusher.app_id)
