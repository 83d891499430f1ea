"""What end-to-end encryption needs of the server besides key storage
(spec: Client-Server API 11.11.3 "Send-to-Device messaging", 11.12.5.1
"Tracking the device list for a user").

To-device messages wait in the database until their device syncs with a
token past them.  Device-list changes (keys uploaded, devices deleted) are a
stream: /sync tells each user which users they share a room with changed.
Messages to unknown users or devices are dropped as the spec allows; messages
for other servers' users and local users' device changes go out through
``federation`` (``messenger.federation_edus``), and other servers' messages come
in through ``receive_remote``.

To-device messages are a channel between people like a direct chat, so they
follow the same role policy (``ChatPolicy.check_may_invite``: both may write
to each other).  The one exception is the end-to-end encryption traffic that
Matrix clients exchange with everyone they share a room with (room keys, key
requests, verification, secrets, all types in ``KEY_SHARING_TYPES``): that is
allowed between users who are joined to or invited into a common room, as the
room itself already passed the policy.  A user's own devices may always talk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from directory.db import Database
from directory.model import NotFound
from directory.service import Directory
from messenger.events.identifiers import InvalidIdentifier, UserId
from messenger.rooms.errors import InvalidRequest
from messenger.rooms.policy import ChatPolicy
from messenger.storage import device_messages as dm
from messenger.storage.stream_locks import lock_stream
from messenger.sync.cache import SyncCache
from messenger.sync.notifier import Notifier

log = logging.getLogger("schulhof.messenger")

MAX_TO_DEVICE_TARGETS = 10_000

# To-device types of end-to-end encryption (spec 11.12 "End-to-End Encryption":
# 11.12.2 key verification, 11.12.5 room key sharing and requests, 11.12.8 secrets;
# Olm-wrapped m.room_key, m.forwarded_room_key, m.secret.send and m.dummy travel as
# m.room.encrypted) as clients send them to the people they share a room with.
KEY_SHARING_TYPES = frozenset({
    "m.room.encrypted", "m.room_key_request", "m.room_key.withheld",
    "org.matrix.room_key.withheld", "m.secret.request", "m.key.verification.request",
    "m.key.verification.ready", "m.key.verification.start", "m.key.verification.accept",
    "m.key.verification.key", "m.key.verification.mac", "m.key.verification.cancel",
    "m.key.verification.done",
})


class DeviceFederation(Protocol):
    """Where to-device messages and device-list changes for other servers go."""

    async def to_device(self, sender: str, event_type: str,
                        messages: Mapping[str, Mapping[str, Any]]) -> None: ...

    async def device_list_changed(self, user_id: str) -> None: ...


class DeviceMessaging:
    def __init__(self, db: Database, directory: Directory, server_name: str, notifier: Notifier,
                 cache: SyncCache | None = None, policy: ChatPolicy | None = None) -> None:
        self._db = db
        self._policy = policy or ChatPolicy(directory, server_name, server_name)
        self._cache = cache
        self._directory = directory
        self._server_name = server_name
        self._notifier = notifier
        self._lock = asyncio.Lock()
        self._recent_txns: dict[tuple[str, str, str], None] = {}  # idempotent txn ids
        # Messages for other servers' users and local users' key changes go there
        # (messenger.federation_edus); None: the school does not federate.
        self.federation: DeviceFederation | None = None

    async def local_account_id(self, user_id: str) -> int | None:
        """The account behind a user id of this server; None for others and unknown ones."""
        try:
            user = UserId.parse(user_id)
        except InvalidIdentifier:
            return None
        if user.server != self._server_name:
            return None  # remote users: needs federation
        try:
            return (await self._directory.get_account(user.localpart)).id
        except NotFound:
            return None

    async def send(self, sender: str, sender_device: str, txn_id: str, event_type: str,
                   messages: Mapping[str, Any]) -> int:
        """Queue ``messages`` ({user: {device or "*": content}}); returns how many
        were queued here (those for other servers' users go to ``federation``)."""
        key = (sender, sender_device, txn_id)
        if key in self._recent_txns:
            return 0  # a retried request: already queued
        targets: list[tuple[int, str, str, Mapping[str, Any]]] = []
        remote: dict[str, dict[str, Mapping[str, Any]]] = {}
        for user_id, devices in messages.items():
            if not isinstance(devices, Mapping):
                raise InvalidRequest("messages must map users to devices to contents")
            for content in devices.values():
                if not isinstance(content, Mapping):
                    raise InvalidRequest("a to-device message content must be an object")
            account_id = await self.local_account_id(user_id)
            if account_id is None:
                if self.federation is not None and self._remote_user(user_id):
                    remote[user_id] = dict(devices)
                continue
            for device_id, content in devices.items():
                targets.append((account_id, user_id, device_id, content))
        if len(targets) + sum(len(d) for d in remote.values()) > MAX_TO_DEVICE_TARGETS:
            raise InvalidRequest("too many to-device messages in one request")
        await self.check_recipients(sender, event_type,
                                    ({t[1] for t in targets} | set(remote)) - {sender})
        count = await self._queue(sender, event_type, targets)
        if remote and self.federation is not None:
            await self.federation.to_device(sender, event_type, remote)
        self._recent_txns[key] = None
        if len(self._recent_txns) > 10_000:  # bounded: the oldest half goes
            for old in list(self._recent_txns)[:5_000]:
                del self._recent_txns[old]
        log.info("event=to_device sender=%s type=%s messages=%d remote_users=%d", sender,
                 event_type, count, len(remote))
        return count

    async def receive_remote(self, sender: str, event_type: str,
                             messages: Mapping[str, Any]) -> int:
        """To-device messages another server's ``sender`` sent (``m.direct_to_device``):
        queued for local users who share a room with the sender, as end-to-end key
        traffic between room mates is (the caller checked the type and the origin)."""
        wanted: list[tuple[int, str, str, Mapping[str, Any]]] = []
        for user_id, devices in messages.items():
            account_id = await self.local_account_id(user_id)
            if account_id is None or not isinstance(devices, Mapping):
                continue
            wanted += [(account_id, user_id, str(d), c) for d, c in devices.items()
                       if isinstance(c, Mapping)]
        wanted = wanted[:MAX_TO_DEVICE_TARGETS]
        async with self._db.read() as session:
            mates = await dm.room_mates(session, sender, {t[1] for t in wanted})
        return await self._queue(sender, event_type, [t for t in wanted if t[1] in mates])

    async def _queue(self, sender: str, event_type: str,
                     targets: list[tuple[int, str, str, Mapping[str, Any]]]) -> int:
        """Store one message per target device (``*``: each of the user's devices)."""
        woken: set[str] = set()
        count = 0
        async with self._lock:
            async with self._db.write() as session:
                await lock_stream(session, "to_device")
                stream_id = await dm.max_to_device(session)
                for account_id, user_id, device_id, content in targets:
                    known = await dm.device_ids(session, account_id)
                    for target in (known if device_id == "*" else
                                   [device_id] if device_id in known else []):
                        stream_id += 1
                        await dm.add_to_device(session, stream_id, account_id, target,
                                               sender, event_type, content)
                        count += 1
                        woken.add(user_id)
            if self._cache is not None and count:
                self._cache.advance("to_device", stream_id)
        for user_id in woken:
            self._notifier.user_event(user_id)
        return count

    def _remote_user(self, user_id: str) -> bool:
        try:
            return UserId.parse(user_id).server != self._server_name
        except InvalidIdentifier:
            return False

    async def check_recipients(self, sender: str, event_type: str, recipients: set[str]) -> None:
        """Raise ``Forbidden`` unless ``sender`` may send ``event_type`` to all of
        ``recipients`` (see the module docstring); nothing is queued then."""
        if not recipients:
            return
        if event_type in KEY_SHARING_TYPES:
            async with self._db.read() as session:
                recipients = recipients - await dm.room_mates(session, sender, recipients)
        if not recipients:
            return
        account = await self._policy.local_account(sender)
        for recipient in sorted(recipients):
            await self._policy.check_may_invite(account, sender, recipient)

    async def device_list_changed(self, user_id: str) -> None:
        """``user_id``'s devices or keys changed: tell everyone who shares a room."""
        async with self._lock:
            async with self._db.write() as session:
                await lock_stream(session, "device_lists")
                stream_id = await dm.max_device_list(session) + 1
                await dm.add_device_list_change(session, stream_id, user_id)
                others = await dm.users_sharing_a_room(session, user_id)
            if self._cache is not None:
                self._cache.advance("device_lists", stream_id)
        for other in others | {user_id}:
            self._notifier.user_event(other)
        if self.federation is not None:
            await self.federation.device_list_changed(user_id)
