"""The Matrix client API server of one school: a ``Service`` for ``conf``.

Built from plain arguments (database, directory, authenticator, server name,
limits); every object it needs is made here, per instance, so two schools in
one process have separate notifiers, sessions and locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from pathlib import Path

from aiohttp import web

from directory.broadcast import Broadcast
from directory.client_address import TrustedProxies
from directory.db import Database
from directory.service import Directory
from federation.http_guard import GuardedSite, HttpLimits
from messenger.api.app import RequestObserver, build_app
from messenger.api.http import ApiContext
from messenger.api.low_level_errors import MatrixRunner
from messenger.chat_rights import ChatRights
from messenger.e2ee import DeviceMessaging
from messenger.ephemeral import Receipts, TypingTracker
from messenger.events.signing import EventSigner
from messenger.federation_keys import RemoteKeys
from messenger.limits import MessengerLimits
from messenger.media import MediaRepository
from messenger.notifications import Notifications
from messenger.push import PushSender
from messenger.quiet_hours import QuietHours
from messenger.ratelimit import RateLimiter, RateLimits
from messenger.rooms.policy import ChatPolicy
from messenger.rooms.service import RoomService
from messenger.school_rooms import SchoolRooms
from messenger.sessions import PasswordChecker, Sessions
from messenger.storage.events import StoredEvent
from messenger.sync.builder import SyncBuilder
from messenger.sync.cache import SyncCache
from messenger.sync.notifier import Notifier
from messenger.sync.notify_relay import NotifyRelay
from messenger.unread import UnreadCounts
from messenger.user_directory import UserDirectory

log = logging.getLogger("schulhof.messenger")

OTHER_WRITERS_INTERVAL = 1.0  # seconds between looks at the database's stream maxima
PRUNE_NOTIFICATIONS_INTERVAL = 3600.0  # seconds between prunings of read notifications
STOP_GRACE_SECONDS = 5.0  # for a background pass to finish its database work at stop


class MatrixServer:
    def __init__(self, *, db: Database, directory: Directory, authenticator: PasswordChecker,
                 server_name: str, bind: str, port: int,
                 limits: MessengerLimits | None = None, mail_domain: str | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 group_sync_interval: float | None = 60.0,
                 auto_join_groups: bool = True, media_dir: Path | None = None,
                 rate_limits: RateLimits | None = None,
                 trusted_proxies: TrustedProxies | None = None,
                 push_gateways: tuple[str, ...] = (),
                 http_limits: HttpLimits | None = None,
                 event_signer: EventSigner | None = None,
                 chat_rights: ChatRights | None = None,
                 quiet_hours: QuietHours | None = None,
                 broadcast: Broadcast | None = None) -> None:
        self.server_name = server_name
        self.bind = bind
        self.port = port
        self.limits = limits or MessengerLimits()
        self.notifier = Notifier()
        # Recent events and stream positions for /sync, fed by this instance's writers.
        self.sync_cache = SyncCache()
        policy = ChatPolicy(directory, server_name, mail_domain or server_name,
                            rights=chat_rights)
        self.rooms = RoomService(db, server_name, self.notifier, policy, cache=self.sync_cache,
                                 signer=event_signer)
        # Push rules are evaluated once per stored event (in its transaction): the
        # unread counts, the pushes and /notifications all take that one result.
        self.unread = UnreadCounts(db, server_name)
        self.push = PushSender(db, badge=self.unread.badge,
                               quiet=quiet_hours.quiet_users if quiet_hours else None)
        self.rooms.writer.event_stored = self.unread.event_stored
        self.notifications = Notifications(db)
        self.rooms.writer.after_commit = self._events_committed
        self.sessions = Sessions(db, authenticator, server_name, mail_domain or server_name)
        self.typing = TypingTracker(self.notifier)
        self.receipts = Receipts(db, self.notifier, self.sync_cache,
                                 on_read=self.unread.receipt_changed)
        self.e2ee = DeviceMessaging(db, directory, server_name, self.notifier, self.sync_cache,
                                    policy=policy)
        self.sync = SyncBuilder(db, self.notifier, self.limits, self.typing, self.sync_cache,
                                self.unread)
        # Several processes on one database: their wake-ups reach this one's /sync.
        self.relay = None if broadcast is None or not broadcast.shared else NotifyRelay(
            self.notifier, broadcast, self._catch_up)
        self.school_rooms = SchoolRooms(directory, self.rooms, auto_join=auto_join_groups)
        self._group_sync_interval = group_sync_interval
        self._background: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.media = None if media_dir is None else MediaRepository(
            db, media_dir, server_name, self.limits.max_upload_bytes)
        self.limiter = RateLimiter(rate_limits)
        self.context = ApiContext(server_name=server_name, sessions=self.sessions,
                                  rooms=self.rooms, sync=self.sync, limits=self.limits, db=db,
                                  directory=directory, media=self.media,
                                  typing=self.typing, receipts=self.receipts, e2ee=self.e2ee,
                                  limiter=self.limiter,
                                  users=UserDirectory(directory, server_name,
                                                      mail_domain or server_name),
                                  trusted_proxies=trusted_proxies or TrustedProxies(),
                                  push_gateways=push_gateways,
                                  school_rooms=self.school_rooms,
                                  pushers_changed=self.push.owners.changed)
        self._ssl = ssl_context
        # Slow clients time out, one address cannot take every connection.
        self._http_limits = http_limits or HttpLimits(
            exempt=trusted_proxies or TrustedProxies())
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None
        # Told of each client API request (the composition root's metrics).
        self.observer: RequestObserver | None = None

    def federate_keys(self, remote: RemoteKeys) -> None:
        """Ask other servers for their users' keys in /keys/query and /keys/claim
        (called by the wiring before ``start``)."""
        self.context = dataclasses.replace(self.context, remote_keys=remote)

    def _events_committed(self, events: list[StoredEvent]) -> None:
        """After each commit, before /sync runs: counts grow, then pushes go out."""
        self.push.events_committed(events, self.unread.committed(events))

    def app(self) -> web.Application:
        return build_app(self.context, self.observer)

    async def start(self) -> list[str]:
        runner = MatrixRunner(self.app(), access_log=None, handle_signals=False,
                               shutdown_timeout=1.0, **self._http_limits.runner_options())
        await runner.setup()
        site = GuardedSite(runner, self.bind, self.port, limits=self._http_limits,
                           ssl_context=self._ssl)
        await site.start()
        self._runner = runner
        # With port 0 the OS picked one: report the real one.
        self.bound_port = runner.addresses[0][1] if runner.addresses else self.port
        self._stopping.clear()
        await self.push.start()
        if self._group_sync_interval is not None:
            self._background.append(asyncio.create_task(self._sync_groups_periodically()))
        self._background.append(asyncio.create_task(self._watch_other_writers()))
        self._background.append(asyncio.create_task(self._prune_notifications()))
        scheme = "https" if self._ssl else "http"
        return [f"service=matrix addr={self.bind}:{self.bound_port} scheme={scheme} "
                f"server_name={self.server_name}"]

    @property
    def base_url(self) -> str:
        scheme = "https" if self._ssl else "http"
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"{scheme}://{host}:{self.bound_port}"

    async def _sync_groups_periodically(self) -> None:
        """School rooms at start and then every interval (directory changes made by
        another process, e.g. ``schulhof import``, arrive at the latest then)."""
        assert self._group_sync_interval is not None
        while not self._stopping.is_set():
            try:
                await self.school_rooms.sync_group_rooms()
            except Exception:  # the database may be away for a moment: try again later
                log.exception("event=group_room_sync_failed")
            if await self._stopped_within(self._group_sync_interval):
                return

    async def _watch_other_writers(self) -> None:
        """Another process (``schulhof rooms post``, a second server on the database)
        may write: its changes reach /sync within ``OTHER_WRITERS_INTERVAL``."""
        while True:
            if await self._stopped_within(OTHER_WRITERS_INTERVAL):
                return
            try:
                if await self._catch_up():
                    log.info("event=sync_cache_caught_up")
                    self.notifier.wake_all()
            except Exception:  # the database may be away for a moment: try again later
                log.exception("event=sync_cache_check_failed")

    async def _prune_notifications(self) -> None:
        """Read notifications past their time go (messenger.notifications)."""
        while not await self._stopped_within(PRUNE_NOTIFICATIONS_INTERVAL):
            try:
                gone = await self.notifications.prune()
                if gone:
                    log.info("event=notifications_pruned rows=%d", gone)
            except Exception:  # the database may be away for a moment: try again later
                log.exception("event=notifications_prune_failed")

    async def _catch_up(self) -> bool:
        """Bring the sync cache up to the database; True if another process wrote
        (then the unread counts in memory are not sure either)."""
        if not await self.rooms.catch_up():
            return False
        self.unread.reset()
        return True

    async def _stopped_within(self, seconds: float) -> bool:
        """Sleep ``seconds``; True at once when the server is stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        # Let a background pass finish its database work: cancelled in the middle
        # of a query it would strand a connection.
        self._stopping.set()
        if self._background:
            await asyncio.wait(self._background, timeout=STOP_GRACE_SECONDS)
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        await self.push.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
