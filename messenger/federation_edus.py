"""EDUs across servers (Server-Server API "Typing Notifications", "Receipts",
"Send-to-device messaging", "Device Management"): what this school's users do
goes out to the servers that should know, through the durable outbox; what
other servers send in ``PUT /send`` reaches the same typing tracker, receipt
store, to-device queue and device-list stream as local changes do.

Outgoing (``EphemeralFederation``): typing and ``m.read`` receipts to the servers
of the room's joined members that the room's server ACL allows; to-device
messages to the server of each remote recipient; a device-list or cross-signing
change (``m.device_list_update`` with no ``prev_id``, so the receiver fetches the
whole list with ``/user/devices``, and ``m.signing_key_update``) to the servers
of everyone the user shares a room with.  Private receipts (``m.read.private``)
never leave the server.

Incoming (``EduReceiver``): an EDU speaks only for users of the server that sent
it; typing and receipts only for members joined to the room, from a server the
room's server ACL allows; to-device messages only of the end-to-end key traffic
(``KEY_SHARING_TYPES``) between people who share a room (as local ones, see
``messenger.e2ee``), each message id once.  Anything else, or malformed, is
dropped and logged: an EDU never fails the transaction.  In one transaction the
key traffic is applied before the PDUs, typing and receipts after them
(``split_edus``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Protocol

from sqlalchemy import select

from directory.db import Database
from messenger.e2ee import KEY_SHARING_TYPES, DeviceMessaging
from messenger.ephemeral import Receipts, TypingTracker
from messenger.events.identifiers import InvalidIdentifier, UserId, server_of
from messenger.federation_keys import LocalKeys
from messenger.rooms.errors import Forbidden
from messenger.rooms.lookups import check_server_acl, room_server_acl
from messenger.storage import device_messages
from messenger.storage.tables import MembershipRow

log = logging.getLogger("schulhof.messenger.federation")

# How long a remote user's typing lasts without a new EDU (the EDU has no timeout;
# the sending server repeats it while the user types).
REMOTE_TYPING_MS = 30_000
MAX_REMEMBERED_MESSAGE_IDS = 10_000
MAX_ID_BYTES = 255


# EDUs a receiver applies before the PDUs of the same transaction: the end-to-end
# key traffic that the events after it need (a room key before the message it
# decrypts, a new device before a message encrypted for it).
EDUS_BEFORE_PDUS = frozenset({"m.direct_to_device", "m.device_list_update",
                              "m.signing_key_update"})


def split_edus(edus: Iterable[Mapping[str, Any]]
               ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The EDUs of a transaction to apply before its PDUs, and those after (each
    in the order sent)."""
    before: list[Mapping[str, Any]] = []
    after: list[Mapping[str, Any]] = []
    for edu in edus:
        (before if edu.get("edu_type") in EDUS_BEFORE_PDUS else after).append(edu)
    return before, after


class EduQueue(Protocol):
    """The durable per-destination queue (``federation.matrix.outbox.Outbox``)."""

    async def enqueue(self, destinations: Iterable[str], *,
                      pdus: Any = (), edus: Any = ()) -> None: ...


async def _joined_servers(db: Database, room_id: str) -> set[str]:
    """The servers of the room's joined members that its server ACL lets take part
    (a denied server gets no typing nor receipts of the room, as no events)."""
    async with db.read() as session:
        users = await session.scalars(select(MembershipRow.user_id).where(
            MembershipRow.room_id == room_id, MembershipRow.membership == "join"))
        servers = {server_of(u) for u in users}
        acl = await room_server_acl(session, room_id) if len(servers) > 1 else None
    return servers if acl is None else {s for s in servers if acl.allows(s)}


async def _is_joined(db: Database, room_id: str, user_id: str) -> bool:
    async with db.read() as session:
        row = await session.get(MembershipRow, (room_id, user_id))
        return row is not None and row.membership == "join"


class EphemeralFederation:
    """Sends this school's users' typing, receipts, to-device messages and key changes
    to the servers that should know (Server-Server API EDUs)."""

    def __init__(self, db: Database, server_name: str, queue: EduQueue,
                 wake: Callable[[], None], allowed: Callable[[str], bool],
                 keys: LocalKeys) -> None:
        self._db = db
        self.server_name = server_name
        self._queue = queue
        self._wake = wake
        self._allowed = allowed
        self._keys = keys
        self._tasks: set[asyncio.Task[None]] = set()

    def _local(self, user_id: str) -> bool:
        return server_of(user_id) == self.server_name

    async def _send(self, destinations: Iterable[str], edus: list[dict[str, Any]]) -> None:
        targets = {d for d in destinations if d != self.server_name and self._allowed(d)}
        if targets and edus:
            await self._queue.enqueue(targets, edus=edus)
            self._wake()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event=edu_queue_failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for queued typing EDUs (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- hooks of the local objects -------------------------------------------------------
    def typing_changed(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        """``TypingTracker`` hook (synchronous): queue ``m.typing`` in the background."""
        if self._local(user_id):
            self._spawn(self.typing(room_id, user_id, typing))

    async def typing(self, room_id: str, user_id: str, typing: bool) -> None:
        await self._send(await _joined_servers(self._db, room_id), [{
            "edu_type": "m.typing",
            "content": {"room_id": room_id, "user_id": user_id, "typing": typing}}])

    async def receipt(self, room_id: str, user_id: str, receipt_type: str, thread_id: str,
                      event_id: str) -> None:
        """``Receipts`` hook: public read receipts of local users (spec "Receipts")."""
        if receipt_type != "m.read" or not self._local(user_id):
            return
        data: dict[str, Any] = {"ts": int(time.time() * 1000)}
        if thread_id:
            data["thread_id"] = thread_id
        await self._send(await _joined_servers(self._db, room_id), [{
            "edu_type": "m.receipt",
            "content": {room_id: {"m.read": {user_id: {"event_ids": [event_id],
                                                        "data": data}}}}}])

    async def to_device(self, sender: str, event_type: str,
                        messages: Mapping[str, Mapping[str, Any]]) -> None:
        """``DeviceMessaging`` hook: messages for other servers' users, one EDU per
        server (``m.direct_to_device``)."""
        by_server: dict[str, dict[str, Any]] = {}
        for user_id, devices in messages.items():
            if not self._local(user_id):
                by_server.setdefault(server_of(user_id), {})[user_id] = dict(devices)
        for server, for_server in by_server.items():
            await self._send([server], [{
                "edu_type": "m.direct_to_device",
                "content": {"sender": sender, "type": event_type,
                            "message_id": secrets.token_hex(12), "messages": for_server}}])

    async def device_list_changed(self, user_id: str) -> None:
        """``DeviceMessaging`` hook: a local user's devices or keys changed."""
        if not self._local(user_id):
            return
        async with self._db.read() as session:
            others = await device_messages.users_sharing_a_room(session, user_id)
        servers = {server_of(u) for u in others}
        if not servers - {self.server_name}:
            return
        current = await self._keys.devices(user_id)
        edus: list[dict[str, Any]] = [{
            "edu_type": "m.device_list_update",
            # No prev_id: the receiver fetches the whole list (GET /user/devices),
            # which also tells it about deleted devices.
            "content": {"user_id": user_id, "device_id": device["device_id"],
                        "stream_id": current["stream_id"], "prev_id": [],
                        "deleted": False, **({"keys": device["keys"]} if "keys" in device
                                             else {})}}
            for device in current["devices"]]
        if not edus:
            # The last device is gone: one update that names none, so the receiver
            # still fetches the (now empty) list.
            edus.append({"edu_type": "m.device_list_update", "content": {
                "user_id": user_id, "device_id": "", "stream_id": current["stream_id"],
                "prev_id": [], "deleted": True}})
        if "master_key" in current or "self_signing_key" in current:
            edus.append({"edu_type": "m.signing_key_update", "content": {
                "user_id": user_id,
                **{k: current[k] for k in ("master_key", "self_signing_key") if k in current}}})
        await self._send(servers, edus)


class EduReceiver:
    """EDUs of a received transaction into the local machinery."""

    def __init__(self, db: Database, server_name: str, typing: TypingTracker,
                 receipts: Receipts, e2ee: DeviceMessaging) -> None:
        self._db = db
        self.server_name = server_name
        self._typing = typing
        self._receipts = receipts
        self._e2ee = e2ee
        self._seen_messages: dict[tuple[str, str], None] = {}
        self._handlers: dict[str, Callable[[str, Mapping[str, Any]],
                                           Coroutine[Any, Any, str | None]]] = {
            "m.typing": self._typing_edu, "m.receipt": self._receipt_edu,
            "m.direct_to_device": self._to_device_edu,
            "m.device_list_update": self._device_list_edu,
            "m.signing_key_update": self._device_list_edu,
        }

    async def receive(self, origin: str, edus: list[Mapping[str, Any]]) -> None:
        for edu in edus:
            kind, content = edu.get("edu_type"), edu.get("content")
            handler = self._handlers.get(kind) if isinstance(kind, str) else None
            if handler is None or not isinstance(content, Mapping):
                continue  # presence, unknown types: not used here
            try:
                refused = await handler(origin, content)
            except Exception:  # one EDU never fails the others nor the transaction
                log.exception("event=edu_failed origin=%s type=%s", origin, kind)
                continue
            if refused:
                log.info("event=edu_refused origin=%s type=%s reason=%r", origin, kind,
                         refused)

    async def is_joined(self, room_id: str, user_id: str) -> bool:
        return await _is_joined(self._db, room_id, user_id)

    async def acl_denies(self, room_id: str, server: str) -> str:
        """Why the room's server ACL refuses ``server``'s EDUs about it; "" if not
        (Server-Server API "Server Access Control Lists": typing and receipts)."""
        async with self._db.read() as session:
            try:
                await check_server_acl(session, room_id, server)
            except Forbidden as exc:
                return str(exc)
        return ""

    async def shares_a_room(self, user_id: str) -> bool:
        """Whether ``user_id`` shares a room with anyone here."""
        async with self._db.read() as session:
            return bool(await device_messages.users_sharing_a_room(session, user_id))

    def _of_origin(self, origin: str, user_id: object) -> str | None:
        """The user id if it is a valid id of a user of ``origin``."""
        if not isinstance(user_id, str):
            return None
        try:
            user = UserId.parse(user_id)
        except InvalidIdentifier:
            return None
        return user_id if user.server == origin else None

    async def _typing_edu(self, origin: str, content: Mapping[str, Any]) -> str | None:
        room_id, typing = content.get("room_id"), content.get("typing")
        user_id = self._of_origin(origin, content.get("user_id"))
        if user_id is None:
            return "user_id is not a user of the sending server"
        if not isinstance(room_id, str) or not isinstance(typing, bool):
            return "room_id and typing are required"
        if denied := await self.acl_denies(room_id, origin):
            return denied
        if not await self.is_joined(room_id, user_id):
            return f"{user_id} is not joined to {room_id}"
        self._typing.set_typing(room_id, user_id, typing, REMOTE_TYPING_MS)
        return None

    async def _receipt_edu(self, origin: str, content: Mapping[str, Any]) -> str | None:
        problems = []
        for room_id, by_type in content.items():
            receipts = by_type.get("m.read") if isinstance(by_type, Mapping) else None
            if not isinstance(receipts, Mapping):
                continue
            if denied := await self.acl_denies(room_id, origin):
                problems.append(denied)  # all the room's receipts (spec)
                continue
            for raw_user, receipt in receipts.items():
                user_id = self._of_origin(origin, raw_user)
                event_ids = receipt.get("event_ids") if isinstance(receipt, Mapping) else None
                data = receipt.get("data") if isinstance(receipt, Mapping) else None
                thread = data.get("thread_id", "") if isinstance(data, Mapping) else ""
                if (user_id is None or not isinstance(event_ids, list) or not event_ids
                        or not isinstance(event_ids[0], str) or not isinstance(thread, str)
                        or len(event_ids[0].encode()) > MAX_ID_BYTES
                        or len(thread.encode()) > MAX_ID_BYTES):
                    problems.append(f"bad receipt of {str(raw_user)[:80]}")
                    continue
                if not await self.is_joined(room_id, user_id):
                    problems.append(f"{user_id} is not joined to {room_id[:80]}")
                    continue
                await self._receipts.put(room_id, user_id, "m.read", thread, event_ids[0])
        return "; ".join(problems) or None

    async def _to_device_edu(self, origin: str, content: Mapping[str, Any]) -> str | None:
        sender = self._of_origin(origin, content.get("sender"))
        event_type, message_id = content.get("type"), content.get("message_id")
        messages = content.get("messages")
        if sender is None:
            return "sender is not a user of the sending server"
        if not (isinstance(event_type, str) and isinstance(message_id, str)
                and isinstance(messages, Mapping)):
            return "type, message_id and messages are required"
        if event_type not in KEY_SHARING_TYPES:
            return f"to-device {event_type[:80]} across servers is not allowed here"
        key = (origin, message_id)
        if key in self._seen_messages:
            return None  # the same message again (a retried transaction)
        self._seen_messages[key] = None
        if len(self._seen_messages) > MAX_REMEMBERED_MESSAGE_IDS:
            for old in list(self._seen_messages)[:MAX_REMEMBERED_MESSAGE_IDS // 2]:
                del self._seen_messages[old]
        delivered = await self._e2ee.receive_remote(sender, event_type, messages)
        log.debug("event=to_device_received origin=%s messages=%d", origin, delivered)
        return None

    async def _device_list_edu(self, origin: str, content: Mapping[str, Any]) -> str | None:
        user_id = self._of_origin(origin, content.get("user_id"))
        if user_id is None:
            return "user_id is not a user of the sending server"
        if not await self.shares_a_room(user_id):
            return f"{user_id} shares no room with this server's users"
        # Local users who share a room see the user in /sync device_lists.changed and
        # ask again (their /keys/query goes to the user's server).
        await self._e2ee.device_list_changed(user_id)
        return None
