"""Mail -> room: a mail delivered to a group address, posted into the group's room.

The school's system user (``messenger.school_rooms``) posts an ``m.room.message``
(spec: Client-Server API 11.2.1 "m.room.message", msgtype ``m.text``) with the
sender's name and address, the subject and the plain text as ``body``; a mail
with HTML adds ``formatted_body`` (``format: org.matrix.custom.html``) reduced to
the spec's HTML subset (``messenger.mail_html``).  Both end with a link to the
message in the webmail.  Attachments follow as ``m.file``/``m.image`` events
(11.2.1.7), uploaded into the media repository in the mail sender's name (so the
file is theirs, and the room's members may download it because an event of the
room names it); what the repository refuses (too large, a type a browser would
run) or what lies beyond the mail side's count is listed in the message as
"only in the mailbox".

Posted only when the sender is verified (a logged-in submission, or DMARC pass
for outside mail), when the group's setting (``messenger.bridge_groups``) is on,
and once per (room, Message-ID): the key is stored in the transaction of the post
and is unique, so a mail delivered twice, even at the same moment, is posted at
most once (and a post that fails leaves no key behind).  Encrypted
rooms (``m.room.encryption`` in the state) cannot be written by the server in
clear: they get a short notice without the mail's content instead.  This module
knows nothing of mail: the composition root (``conf.wiring.bridge``) turns a
delivered mail into a ``MailPost``.
"""

from __future__ import annotations

import hashlib
import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from directory import repository as repo
from directory.db import Database
from messenger import bridge_groups
from messenger.mail_html import matrix_html
from messenger.rooms.errors import Forbidden, TooLarge
from messenger.storage import events as store
from messenger.storage import group_rooms
from messenger.storage.tables import MailBridgedRow

log = logging.getLogger("schulhof.messenger")

MAIL_MARK = "org.schulhof.mail"  # in the content: where the message came from
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@dataclass(frozen=True)
class MailFile:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class MailPost:
    group: str
    sender_name: str
    sender_address: str
    subject: str
    text: str
    message_id: str
    html: str = ""
    files: tuple[MailFile, ...] = ()
    files_left_out: int = 0  # attachments the mail side did not hand over
    link: str = ""  # the message in the webmail
    verified: bool = False  # the sender is who From says (login or DMARC pass)
    uploader_account_id: int | None = None  # whose files the attachments become
    replies_to: tuple[str, ...] = ()  # Message-IDs this mail answers, nearest first


class GroupRoomWriter(Protocol):
    """What the bridge needs of ``SchoolRooms``."""

    system_user: str


class EventAppender(Protocol):
    async def append_as(self, sender: str, room_id: str, event_type: str,
                        content: dict[str, object], *, state_key: str | None = None,
                        also: Callable[[AsyncSession, str], Awaitable[None]] | None = None
                        ) -> str: ...


class MediaUploader(Protocol):
    """What the bridge needs of ``messenger.media.MediaRepository``."""

    def check_upload(self, content_type: str, size: int | None) -> str: ...

    async def upload(self, account_id: int, data: bytes, content_type: str,
                     upload_name: str | None) -> str: ...


@dataclass(frozen=True)
class ThreadPlace:
    """Where a reply goes: the thread's root and the event it answers."""

    root: str
    parent: str

    def relation(self) -> dict[str, object]:
        """Client-Server API 11.10.1 "Threading": a thread event with its fallback reply."""
        return {"rel_type": "m.thread", "event_id": self.root, "is_falling_back": True,
                "m.in_reply_to": {"event_id": self.parent}}


def _record(room_id: str, key: str, *, threads: bool = True, root: str | None = None,
            message_id: str | None = None) -> Callable[[AsyncSession, str], Awaitable[None]]:
    """The bridged mail's row, written with its event (``EventAppender.append_as``);
    ``threads`` False (the encrypted room's notice): no thread for replies to join."""
    async def write(session: AsyncSession, event_id: str) -> None:
        session.add(MailBridgedRow(
            room_id=room_id, message_key=key, event_id=event_id if threads else None,
            thread_root=(root or event_id) if threads else None, message_id=message_id))
        await session.flush()
    return write


def message_key(message_id: str) -> str:
    return hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Uploaded:
    file: MailFile
    uri: str


def message_body(post: MailPost, only_in_mailbox: list[str] | None = None) -> str:
    """The plain text of the room message (German first: what pupils read)."""
    who = f"{post.sender_name} <{post.sender_address}>" if post.sender_name \
        else post.sender_address
    subject = post.subject or "(kein Betreff)"
    parts = [f"✉ E-Mail von {who}\nBetreff: {subject}"]
    if post.text:
        parts.append(post.text)
    tail = _tail_lines(post, only_in_mailbox or [])
    if tail:
        parts.append("\n".join(tail))
    return "\n\n".join(parts)


def _tail_lines(post: MailPost, only_in_mailbox: list[str]) -> list[str]:
    lines = []
    if only_in_mailbox or post.files_left_out:
        names = ", ".join(only_in_mailbox)
        more = f"{post.files_left_out} weitere" if post.files_left_out else ""
        listed = ", ".join(x for x in (names, more) if x)
        lines.append(f"Anhänge nur im Postfach: {listed}")
    if post.link:
        lines.append(f"Im Webmail öffnen: {post.link}")
    return lines


def formatted_body(post: MailPost, only_in_mailbox: list[str]) -> str:
    """``formatted_body`` for a mail with HTML; "" when its HTML leaves nothing."""
    shown = matrix_html(post.html) if post.html else ""
    if not shown:
        return ""
    who = html.escape(post.sender_name or post.sender_address)
    address = html.escape(post.sender_address)
    subject = html.escape(post.subject or "(kein Betreff)")
    head = (f"<p>✉ E-Mail von <b>{who}</b> &lt;{address}&gt;<br>"
            f"Betreff: <b>{subject}</b></p>")
    tail = ""
    if only_in_mailbox or post.files_left_out:
        tail += f"<p>{html.escape(_tail_lines(post, only_in_mailbox)[0])}</p>"
    if post.link:
        link = html.escape(post.link, quote=True)
        tail += f'<p><a href="{link}">Im Webmail öffnen</a></p>'
    return head + shown + tail


ENCRYPTED_NOTICE = ("✉ Eine E-Mail an {group} von {who} ist angekommen; dieser Raum ist "
                    "verschlüsselt, darum steht sie nur im Postfach.")


class MailToRoom:
    """Posts ``MailPost``s into group rooms (see the module docstring)."""

    def __init__(self, db: Database, rooms: GroupRoomWriter, appender: EventAppender, *,
                 media: MediaUploader | None = None) -> None:
        self._db = db
        self._rooms = rooms
        self._appender = appender
        self._media = media

    async def post(self, post: MailPost) -> str | None:
        """The event id posted, or None (not verified, switched off, no room, or
        posted before)."""
        if not post.verified:
            log.info("event=mail_bridge_unverified group=%s", post.group)
            return None
        key = message_key(post.message_id)
        # One read session for all that decides (it was five, each a pooled
        # connection's checkout and a transaction): the group (NotFound when it is gone since RCPT),
        # its setting, its room, the mail's key there, the room's encryption.
        async with self._db.read() as session:
            group = repo.group_from_row(await repo.group_row(session, post.group))
            if not (await bridge_groups.setting(session, group)).mail_to_room:
                log.info("event=mail_bridge_off group=%s", post.group)
                return None
            room_id = await group_rooms.room_of(session, group.id)
            if room_id is None:
                log.info("event=mail_bridge_no_room group=%s", post.group)
                return None
            if await session.get(MailBridgedRow, (room_id, key)) is not None:
                log.info("event=mail_bridge_duplicate group=%s", post.group)
                return None  # (before uploading its attachments again)
            state = await store.current_state(session, room_id, [("m.room.encryption", "")])
        system = self._rooms.system_user
        if state.get(("m.room.encryption", "")) is not None:
            who = post.sender_name or post.sender_address
            content: dict[str, object] = {
                "msgtype": "m.notice",
                "body": ENCRYPTED_NOTICE.format(group=post.group, who=who)}
            return await self._post_once(post, room_id, content,
                                         _record(room_id, key, threads=False))
        uploaded, only_in_mailbox = await self._upload(post)
        place = await self._thread_of(room_id, post.replies_to)
        content = {"msgtype": "m.text", "body": message_body(post, only_in_mailbox),
                   MAIL_MARK: {"from": post.sender_address, "subject": post.subject}}
        formatted = formatted_body(post, only_in_mailbox)
        if formatted:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = formatted
        if place is not None:
            content["m.relates_to"] = place.relation()
        event_id = await self._post_once(post, room_id, content, _record(
            room_id, key, root=None if place is None else place.root,
            message_id=post.message_id))
        if event_id is None:
            return None
        root = event_id if place is None else place.root
        for item in uploaded:
            kind = item.file.content_type
            file_content: dict[str, object] = {
                "msgtype": "m.image" if kind in IMAGE_TYPES else "m.file",
                "body": item.file.filename, "filename": item.file.filename,
                "url": item.uri, "info": {"mimetype": kind, "size": len(item.file.data)},
                MAIL_MARK: {"from": post.sender_address, "attachment_of": event_id}}
            if place is not None:  # a reply's files stay in its thread
                file_content["m.relates_to"] = ThreadPlace(root, event_id).relation()
            await self._appender.append_as(system, room_id, "m.room.message", file_content)
        log.info("event=mail_bridged group=%s room=%s event=%s files=%d skipped=%d",
                 post.group, room_id, event_id, len(uploaded),
                 len(only_in_mailbox) + post.files_left_out)
        return event_id

    async def _post_once(self, post: MailPost, room_id: str, content: dict[str, object],
                         record: Callable[[AsyncSession, str], Awaitable[None]]
                         ) -> str | None:
        """The event and the mail's key in one transaction (one commit, not three,
        for each bridged mail: the next delivery waits less for the database); the
        key's uniqueness refuses a second post of the mail delivered twice at once."""
        try:
            return await self._appender.append_as(self._rooms.system_user, room_id,
                                                  "m.room.message", content, also=record)
        except IntegrityError:
            log.info("event=mail_bridge_duplicate group=%s", post.group)
            return None

    async def _thread_of(self, room_id: str, replies_to: tuple[str, ...]
                         ) -> ThreadPlace | None:
        """The thread of the nearest bridged mail this one answers, if any."""
        if not replies_to:
            return None
        keys = [message_key(m) for m in replies_to]
        async with self._db.read() as session:
            rows = (await session.execute(
                select(MailBridgedRow.message_key, MailBridgedRow.event_id,
                       MailBridgedRow.thread_root)
                .where(MailBridgedRow.room_id == room_id,
                       MailBridgedRow.message_key.in_(keys),
                       MailBridgedRow.event_id.is_not(None)))).all()
        found: dict[str, tuple[str, str]] = {
            key: (event_id, root or event_id) for key, event_id, root in rows if event_id}
        for key in keys:
            if key in found:
                event_id, root = found[key]
                return ThreadPlace(root, event_id)
        return None

    async def _upload(self, post: MailPost) -> tuple[list[Uploaded], list[str]]:
        """The attachments the media repository took, and the names of the others."""
        uploaded: list[Uploaded] = []
        refused: list[str] = []
        for file in post.files:
            if self._media is None or post.uploader_account_id is None:
                refused.append(file.filename)
                continue
            try:
                self._media.check_upload(file.content_type, len(file.data))
                uri = await self._media.upload(post.uploader_account_id, file.data,
                                               file.content_type, file.filename)
            except (TooLarge, Forbidden) as exc:
                log.info("event=mail_bridge_attachment_refused group=%s size=%d reason=%s",
                         post.group, len(file.data), type(exc).__name__)
                refused.append(file.filename)
                continue
            uploaded.append(Uploaded(file, uri))
        return uploaded, refused
