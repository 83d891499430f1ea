"""Sending events into a room (spec: Client-Server API 9.6 "Sending events",
10.9 "Redactions"): messages go through the group commit
(``messenger.rooms.batching``), state and redactions one by one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from messenger.identity import Requester
from messenger.rooms.batching import MessageSend, SendBatcher
from messenger.rooms.errors import DuplicateAnnotation, Forbidden, InvalidRequest
from messenger.rooms.writer import AlsoWrite, RoomWriter
from messenger.storage import events as store
from messenger.storage import relations as relation_store


class EventSending:
    def __init__(self, writer: RoomWriter) -> None:
        self._writer = writer
        self._sends = SendBatcher(writer.append_messages)

    async def send(self, requester: Requester, room_id: str, event_type: str,
                   content: Mapping[str, Any], txn_id: str | None = None) -> str:
        if event_type == "m.room.redaction":
            raise InvalidRequest("use /redact to redact events")
        await self._check_annotation(requester, event_type, content, txn_id)
        event = await self._sends.submit(MessageSend(requester, room_id, event_type, content,
                                                     txn_id))
        return event.event_id

    async def _check_annotation(self, requester: Requester, event_type: str,
                                content: Mapping[str, Any], txn_id: str | None) -> None:
        """One reaction per sender, event, type and key (spec "Avoiding duplicate
        annotations": 400 M_DUPLICATE_ANNOTATION); a retried transaction is not a
        second reaction, it gets its first event back."""
        relation = relation_store.relation_of(content)
        if relation is None or relation.rel_type != "m.annotation" or relation.key is None:
            return
        async with self._writer.db.read() as session:
            if txn_id is not None and await store.events_of_txns(
                    session, [(requester.account_id, requester.device_id, txn_id)]):
                return
            if await relation_store.has_annotation(session, relation.relates_to,
                                                   requester.user_id, event_type,
                                                   relation.key):
                raise DuplicateAnnotation("you already reacted with this key")

    async def set_state(self, requester: Requester, room_id: str, event_type: str,
                        state_key: str, content: Mapping[str, Any]) -> str:
        if event_type == "m.room.member":
            raise InvalidRequest("use the membership endpoints (join, invite, leave...)")
        if event_type == "m.room.create":
            raise Forbidden("a room has exactly one create event")
        event = await self._writer.append(requester, requester.user_id, room_id, event_type,
                                          content, state_key=state_key)
        return event.event_id

    async def redact_event(self, requester: Requester, room_id: str, event_id: str,
                           reason: str | None, txn_id: str | None) -> str:
        content = {"reason": reason} if reason else {}
        event = await self._writer.append(requester, requester.user_id, room_id,
                                          "m.room.redaction", content, txn_id=txn_id,
                                          redacts=event_id)
        return event.event_id

    async def append_as(self, sender: str, room_id: str, event_type: str,
                        content: Mapping[str, Any], *, state_key: str | None = None,
                        also: AlsoWrite | None = None) -> str:
        """An event the server sends in a user's name (its system user, or a local user
        it joins to a school room); the auth rules still apply.  ``also``: rows that
        belong with the event, written in its transaction (``RoomWriter.append``)."""
        event = await self._writer.append(None, sender, room_id, event_type, content,
                                          state_key=state_key, also=also)
        return event.event_id
