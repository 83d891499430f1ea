"""Mail -> room: a mail delivered to a group address, posted into the group's room.

The school's system user (``messenger.school_rooms``) posts an ``m.room.message``
(spec: Client-Server API 11.2.1 "m.room.message", msgtype ``m.text``) with the
sender's name and address, the subject and the plain text; ``body`` only, never
HTML (the mail side hands over text).  Once per (room, Message-ID): the key is
stored before the post, so a mail delivered twice, even at the same moment, is
posted at most once.  Encrypted rooms (``m.room.encryption`` in the state) cannot
be written by the server in clear: they get a short notice without the mail's
content instead.  This module knows nothing of mail: the composition root
(``conf.wiring.bridge``) turns a delivered mail into a ``MailPost``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.exc import IntegrityError

from directory.db import Database
from messenger.storage import events as store
from messenger.storage.tables import MailBridgedRow

log = logging.getLogger("schulhof.messenger")

MAIL_MARK = "org.schulhof.mail"  # in the content: where the message came from


@dataclass(frozen=True)
class MailPost:
    group: str
    sender_name: str
    sender_address: str
    subject: str
    text: str
    message_id: str


class GroupRoomWriter(Protocol):
    """What the bridge needs of ``SchoolRooms``."""

    system_user: str

    async def room_of_group(self, name: str) -> str | None: ...


class EventAppender(Protocol):
    async def append_as(self, sender: str, room_id: str, event_type: str,
                        content: dict[str, object], *, state_key: str | None = None) -> str: ...


def message_body(post: MailPost) -> str:
    """The plain text of the room message (German first: what pupils read)."""
    who = f"{post.sender_name} <{post.sender_address}>" if post.sender_name \
        else post.sender_address
    subject = post.subject or "(kein Betreff)"
    head = f"✉ E-Mail von {who}\nBetreff: {subject}"
    return f"{head}\n\n{post.text}" if post.text else head


ENCRYPTED_NOTICE = ("✉ Eine E-Mail an {group} von {who} ist angekommen; dieser Raum ist "
                    "verschlüsselt, darum steht sie nur im Postfach.")


class MailToRoom:
    """Posts ``MailPost``s into group rooms (see the module docstring)."""

    def __init__(self, db: Database, rooms: GroupRoomWriter, appender: EventAppender) -> None:
        self._db = db
        self._rooms = rooms
        self._appender = appender

    async def post(self, post: MailPost) -> str | None:
        """The event id posted, or None (no room, or posted before)."""
        room_id = await self._rooms.room_of_group(post.group)
        if room_id is None:
            log.info("event=mail_bridge_no_room group=%s", post.group)
            return None
        key = hashlib.sha256(post.message_id.encode("utf-8", "replace")).hexdigest()
        try:
            async with self._db.write() as session:
                session.add(MailBridgedRow(room_id=room_id, message_key=key))
                await session.flush()
        except IntegrityError:
            log.info("event=mail_bridge_duplicate group=%s", post.group)
            return None
        async with self._db.read() as session:
            state = await store.current_state(session, room_id, [("m.room.encryption", "")])
        content: dict[str, object]
        if state.get(("m.room.encryption", "")) is not None:
            who = post.sender_name or post.sender_address
            content = {"msgtype": "m.notice",
                       "body": ENCRYPTED_NOTICE.format(group=post.group, who=who)}
        else:
            content = {"msgtype": "m.text", "body": message_body(post),
                       MAIL_MARK: {"from": post.sender_address, "subject": post.subject}}
        event_id = await self._appender.append_as(self._rooms.system_user, room_id,
                                                  "m.room.message", content)
        log.info("event=mail_bridged group=%s room=%s event=%s", post.group, room_id, event_id)
        return event_id
