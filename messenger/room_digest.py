"""Room -> mail: announcements of a group's room, mailed as a digest (issue 18.2).

Announcement rooms are the rooms of groups whose members may not post
(``Group.members_may_post`` False: only the teachers write).  A message there
(``m.room.message``, not redacted, not the mail bridge's own post, not the
system user's) is *due* for a member once it is ``delay`` old and the member
has not read it: no read receipt of theirs (``m.read`` or ``m.read.private``,
spec: Client-Server API 11.7 "Receipts") reaches it, and it is not their own.
Parents of the group's pupils get every due message of the groups whose
setting allows it (``messenger.bridge_groups``): they are not in the room.

Each person is looked at once per run, for the messages between the time up to
which they were looked at last (``up_to_ms``; a person seen for the first time:
one period back) and now - ``delay``; at most one digest per person per
``period`` (someone who got one less than a period ago waits, and their
messages wait with them).  People who turned digests off (their own setting,
``DigestPreferences``) and people no longer in the group get nothing; only the
group's owners' (teachers') messages are mailed, never a member's.  The
digest is data (``Digest``); the composition root turns it into a mail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from directory.model import Account, Group, GroupMember, MemberRole, Role
from messenger.bridge_groups import BridgeGroups
from messenger.mail_bridge import MAIL_MARK
from messenger.storage import group_rooms
from messenger.storage.tables import DigestRecipientRow, EventRow, MailBridgedRow, ReceiptRow

log = logging.getLogger("schulhof.messenger")

READ_RECEIPTS = ("m.read", "m.read.private")
LOOKBACK = dt.timedelta(days=7)  # a person back after a long pause: a week at most
MAX_MESSAGES_PER_ROOM = 50  # per run; the rest is in the room
MAX_BODY = 2000  # characters of one message in a digest
SEND_CHUNK = 32  # digests delivered at once


class DigestDirectory(Protocol):
    async def list_groups(self) -> list[Group]: ...

    async def group_members(self, name: str) -> list[GroupMember]: ...

    async def parents_of(self, child_ids: Iterable[int]) -> dict[int, list[Account]]: ...


@dataclass(frozen=True)
class Announcement:
    event_id: str
    room_name: str
    sender: str  # Matrix user id
    sender_name: str
    text: str
    ts_ms: int
    stream: int
    # The Message-ID of the bridged mail whose room thread this message answers
    # (messenger.mail_bridge): the digest's References name it, so mail programs
    # show the digest in that mail's conversation.
    answers_mail: str = ""


@dataclass(frozen=True)
class Digest:
    """One person's mail: the messages in time order, whose writers get the replies."""

    account: Account
    items: tuple[Announcement, ...]
    as_parent_of: tuple[str, ...] = ()  # children's names, when sent as a parent

    @property
    def references(self) -> tuple[str, ...]:
        """The bridged mails the digest's messages answer, each once."""
        return tuple(dict.fromkeys(i.answers_mail for i in self.items if i.answers_mail))


@dataclass
class _Person:
    account: Account
    items: dict[str, Announcement] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)


class DigestPreferences:
    """A person's own setting: room digests by mail on (the default) or off."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def enabled(self, account_id: int) -> bool:
        async with self._db.read() as session:
            row = await session.get(DigestRecipientRow, account_id)
        return row is None or row.enabled

    async def set_enabled(self, account_id: int, enabled: bool) -> None:
        async with self._db.write() as session:
            row = await session.get(DigestRecipientRow, account_id)
            if row is None:
                session.add(DigestRecipientRow(account_id=account_id, enabled=enabled))
            else:
                row.enabled = enabled


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _thread_root(content: object) -> str | None:
    """The thread root a message answers (Client-Server API 11.10.1), if any."""
    relation = content.get("m.relates_to") if isinstance(content, dict) else None
    if isinstance(relation, dict) and relation.get("rel_type") == "m.thread":
        root = relation.get("event_id")
        return root if isinstance(root, str) else None
    return None


def _text(content: object) -> str | None:
    """The message's text, or None for what is not an announcement to mail."""
    if not isinstance(content, dict) or MAIL_MARK in content:
        return None
    body = content.get("body")
    if not isinstance(body, str) or not body.strip():
        return None
    return body if len(body) <= MAX_BODY else body[:MAX_BODY - 1] + "…"


class RoomDigests:
    """Plans and records the digests of one run (see the module docstring)."""

    def __init__(self, db: Database, directory: DigestDirectory, groups: BridgeGroups,
                 server_name: str, system_user: str, *, send_chunk: int = SEND_CHUNK) -> None:
        self._db = db
        self.send_chunk = send_chunk
        self._directory = directory
        self._groups = groups
        self._server_name = server_name
        self._system_user = system_user

    def _user_id(self, account: Account) -> str:
        return f"@{account.login}:{self._server_name}"

    async def run(self, now: dt.datetime, *, delay: dt.timedelta, period: dt.timedelta,
                  send: Callable[[Digest], Awaitable[None]]) -> int:
        """Send the digests due at ``now``; returns how many went out."""
        cutoff = _ms(now - delay)
        oldest = _ms(now - delay - LOOKBACK)
        people: dict[int, _Person] = {}
        announcement_groups = [g for g in await self._directory.list_groups()
                               if not g.members_may_post]
        parent_groups = await self._groups.parents_digest_groups()
        rooms: dict[str, tuple[Group, list[GroupMember]]] = {}
        async with self._db.read() as session:
            room_of = await group_rooms.all_links(session)
        for group in announcement_groups:
            room_id = room_of.get(group.id)
            if room_id is not None:
                rooms[room_id] = (group, await self._directory.group_members(group.name))
        messages = await self._messages(list(rooms), oldest, cutoff, rooms)
        read = await self._read_positions(list(rooms))
        pupils_of: dict[int, list[tuple[str, Account]]] = {}  # child id -> (room, child)
        for room_id, (group, members) in rooms.items():
            for member in members:
                account = member.account
                if not account.is_active:
                    continue
                person = people.setdefault(account.id, _Person(account))
                user_id = self._user_id(account)
                seen = read.get((room_id, user_id), 0)
                for item in messages.get(room_id, []):
                    if item.sender != user_id and item.stream > seen:
                        person.items[item.event_id] = item
                if (group.id in parent_groups and account.role is Role.PUPIL
                        and member.role is MemberRole.MEMBER):
                    pupils_of.setdefault(account.id, []).append((room_id, account))
        parents = await self._directory.parents_of(pupils_of)
        for child_id, links in pupils_of.items():
            for parent in parents.get(child_id, []):
                if not parent.is_active:
                    continue
                person = people.setdefault(parent.id, _Person(parent))
                for room_id, child in links:
                    name = child.display_name or child.login
                    if name not in person.children:
                        person.children.append(name)
                    for item in messages.get(room_id, []):
                        person.items[item.event_id] = item
        return await self._send_due(people, now, cutoff, period, send)

    async def _send_due(self, people: dict[int, _Person], now: dt.datetime, cutoff: int,
                        period: dt.timedelta, send: Callable[[Digest], Awaitable[None]]
                        ) -> int:
        marks = await self._marks(people)
        first_look = cutoff - int(period.total_seconds() * 1000)
        due: list[tuple[int, Digest | None]] = []  # None: nothing for them, just marked
        for account_id, person in people.items():
            mark = marks.get(account_id)
            if mark is not None and not mark.enabled:
                continue
            if mark is not None and mark.sent_at is not None and mark.sent_at > now - period:
                continue  # one digest per period: these messages wait for the next
            since = first_look if mark is None or mark.up_to_ms is None else mark.up_to_ms
            items = sorted((i for i in person.items.values() if since < i.ts_ms <= cutoff),
                           key=lambda i: (i.ts_ms, i.stream))
            digest = Digest(person.account, tuple(items), tuple(person.children)) \
                if items else None
            due.append((account_id, digest))
        sent = 0
        # Several deliveries at once (the mail store commits concurrent ones together),
        # and one write for the marks of each chunk: a crash repeats at most a chunk.
        for start in range(0, len(due), self.send_chunk):
            chunk = due[start:start + self.send_chunk]
            done = await asyncio.gather(*(self._send_one(send, d) for _, d in chunk))
            sent += sum(1 for (_, d), ok in zip(chunk, done, strict=True) if ok and d)
            await self._mark_many(
                [(account_id, now if digest is not None else None)
                 for (account_id, digest), ok in zip(chunk, done, strict=True) if ok],
                cutoff, set(marks))
        log.info("event=room_digests people=%d sent=%d", len(people), sent)
        return sent

    @staticmethod
    async def _send_one(send: Callable[[Digest], Awaitable[None]],
                        digest: Digest | None) -> bool:
        if digest is None:
            return True
        try:
            await send(digest)
        except Exception:  # the next run tries again: nothing is marked
            log.exception("event=room_digest_failed account=%d", digest.account.id)
            return False
        return True

    async def _mark_many(self, done: list[tuple[int, dt.datetime | None]], up_to_ms: int,
                         existing: set[int]) -> None:
        """``up_to_ms`` for everyone in ``done``, ``sent_at`` for those who got one."""
        if not done:
            return
        sent_ids = [account_id for account_id, sent_at in done if sent_at is not None]
        sent_at = next((at for _, at in done if at is not None), None)
        try:
            async with self._db.write() as session:
                old = [account_id for account_id, _ in done if account_id in existing]
                if old:
                    await session.execute(update(DigestRecipientRow).where(
                        DigestRecipientRow.account_id.in_(old)).values(up_to_ms=up_to_ms))
                if sent_ids and sent_at is not None:
                    await session.execute(update(DigestRecipientRow).where(
                        DigestRecipientRow.account_id.in_(
                            [i for i in sent_ids if i in existing])).values(sent_at=sent_at))
                session.add_all(DigestRecipientRow(
                    account_id=account_id, enabled=True, up_to_ms=up_to_ms, sent_at=at)
                    for account_id, at in done if account_id not in existing)
        except IntegrityError:  # a row made meanwhile (the person's own setting): one by one
            for account_id, at in done:
                await self._mark(account_id, up_to_ms, at)

    async def _marks(self, people: dict[int, _Person]) -> dict[int, DigestRecipientRow]:
        ids = list(people)
        found: dict[int, DigestRecipientRow] = {}
        async with self._db.read() as session:
            for start in range(0, len(ids), 500):
                rows = await session.scalars(select(DigestRecipientRow).where(
                    DigestRecipientRow.account_id.in_(ids[start:start + 500])))
                found.update((r.account_id, r) for r in rows)
        return found

    async def _mark(self, account_id: int, up_to_ms: int, sent_at: dt.datetime | None) -> None:
        async with self._db.write() as session:
            row = await session.get(DigestRecipientRow, account_id)
            if row is None:
                row = DigestRecipientRow(account_id=account_id, enabled=True)
                session.add(row)
            row.up_to_ms = up_to_ms
            if sent_at is not None:
                row.sent_at = sent_at

    async def _messages(self, room_ids: Sequence[str], oldest: int, cutoff: int,
                        rooms: dict[str, tuple[Group, list[GroupMember]]]
                        ) -> dict[str, list[Announcement]]:
        found: dict[str, list[Announcement]] = {}
        system = self._system_user
        async with self._db.read() as session:
            for room_id in room_ids:
                rows = (await session.execute(
                    select(EventRow.event_id, EventRow.sender, EventRow.origin_server_ts,
                           EventRow.stream_ordering, EventRow.json)
                    .where(EventRow.room_id == room_id, EventRow.type == "m.room.message",
                           EventRow.redacted.is_(False), EventRow.sender != system,
                           EventRow.origin_server_ts > oldest,
                           EventRow.origin_server_ts <= cutoff)
                    .order_by(EventRow.stream_ordering.desc())
                    .limit(MAX_MESSAGES_PER_ROOM))).all()
                group, members = rooms[room_id]
                names = {self._user_id(m.account): m.account.display_name or m.account.login
                         for m in members}
                # Only the teachers' announcements go out by mail: never a pupil's words
                # (members cannot post here; a message from before the group changed).
                plain = {self._user_id(m.account) for m in members
                         if m.role is MemberRole.MEMBER}
                parsed = [(event_id, sender, ts, stream, json.loads(raw).get("content"))
                          for event_id, sender, ts, stream, raw in reversed(rows)]
                mails = await self._bridged_mails(session, room_id, {
                    root for *_, content in parsed if (root := _thread_root(content))})
                for event_id, sender, ts, stream, content in parsed:
                    text = _text(content)
                    if text is None or sender in plain:
                        continue
                    found.setdefault(room_id, []).append(Announcement(
                        event_id, group.display_name or group.name, sender,
                        names.get(sender, sender.split(":", 1)[0].lstrip("@")), text, ts,
                        stream, mails.get(_thread_root(content) or "", "")))
        return found

    @staticmethod
    async def _bridged_mails(session: AsyncSession, room_id: str, roots: set[str]
                             ) -> dict[str, str]:
        """Thread root event -> the Message-ID of the mail it was bridged from."""
        if not roots:
            return {}
        rows = await session.execute(
            select(MailBridgedRow.event_id, MailBridgedRow.message_id).where(
                MailBridgedRow.room_id == room_id, MailBridgedRow.event_id.in_(roots),
                MailBridgedRow.message_id.is_not(None)))
        return {event_id: message_id for event_id, message_id in rows
                if event_id and message_id and not message_id.startswith("sha256:")}

    async def _read_positions(self, room_ids: Sequence[str]) -> dict[tuple[str, str], int]:
        """(room, user) -> the stream position up to which the user has read."""
        if not room_ids:
            return {}
        async with self._db.read() as session:
            rows = (await session.execute(
                select(ReceiptRow.room_id, ReceiptRow.user_id,
                       func.max(EventRow.stream_ordering))
                .join(EventRow, and_(EventRow.event_id == ReceiptRow.event_id))
                .where(ReceiptRow.room_id.in_(list(room_ids)),
                       ReceiptRow.receipt_type.in_(READ_RECEIPTS))
                .group_by(ReceiptRow.room_id, ReceiptRow.user_id))).all()
        return {(room_id, user_id): int(position) for room_id, user_id, position in rows}
