"""The media repository (spec: Client-Server API 10.7 "Content repository"; v1.11
authenticated media).

Bytes are stored content-addressed under ``root/ab/cd/<sha256>``: written to a
temporary file, fsynced, renamed into place and the directory fsynced before
the upload is answered, so an ``mxc://`` URI handed out survives a crash.
Identical uploads share one file.  What is dangerous in a browser (HTML,
XHTML, JavaScript, SVG with scripts, XML) is refused at upload; everything
else is served with ``Content-Security-Policy: sandbox`` and, unless it is a
plain image, audio or video type, as an attachment.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from directory.db import Database
from messenger.identity import Requester, user_id_for
from messenger.rooms.errors import Forbidden, RoomNotFound, TooLarge
from messenger.storage import media as media_rows
from messenger.storage import remote_media as remote_rows

log = logging.getLogger("schulhof.messenger")

CLOCK_SLACK_MS = 60_000  # upload time and event time come from different clocks' rows

# Types a browser would run or render with script: no legitimate chat upload needs them.
REFUSED_TYPES = frozenset({
    "text/html", "application/xhtml+xml", "text/javascript", "application/javascript",
    "application/ecmascript", "text/ecmascript", "image/svg+xml", "text/xml",
    "application/xml", "text/xsl", "application/x-shockwave-flash", "multipart/x-mixed-replace",
})
# Shown inline by clients (images in the timeline, voice messages): the rest downloads.
INLINE_TYPES = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/apng",
    "audio/ogg", "audio/mpeg", "audio/mp4", "audio/webm", "audio/wav", "audio/aac",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime", "text/plain",
    "application/json", "application/pdf",
})
THUMBNAIL_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@dataclass(frozen=True)
class StoredMedia:
    media_id: str
    content_type: str
    upload_name: str | None
    size: int
    path: Path


def base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _new_media_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(24))


def _write_file(root: Path, data: bytes, digest: str) -> Path:
    """Blocking: the file for ``digest``, written and on disk (runs in a thread)."""
    folder = root / digest[:2] / digest[2:4]
    target = folder / digest
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{digest}.{secrets.token_hex(4)}.tmp"
    with open(temp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, target)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself must be durable too
    finally:
        os.close(fd)
    return target


class RemoteFiles(Protocol):
    """Other servers' files (``messenger.remote_media.RemoteMedia``)."""

    async def get(self, server_name: str, media_id: str, viewer: Requester) -> StoredMedia: ...


class MediaRepository:
    """Uploaded files and who may download them.

    The spec lets any logged-in user download any file (Client-Server API 10.7);
    a school restricts that to the people the file was shared with: the uploader,
    members (joined or invited) of a room where an event names the file, and,
    because the server cannot read encrypted events, members of a room into
    which the uploader posted an encrypted event after the upload.  A file
    posted nowhere yet is the uploader's alone.  (Profile avatars cannot be set
    here, names and pictures come from the directory; room and member avatars
    are events of their room.)
    """

    def __init__(self, db: Database, root: Path, server_name: str, max_upload_bytes: int) -> None:
        self.db = db
        self.root = root
        self.server_name = server_name
        self.max_upload_bytes = max_upload_bytes
        # Other servers' files (messenger.remote_media); None: the school does not federate.
        self.remote: RemoteFiles | None = None

    async def may_see(self, session: Any, row: Any, viewer: Requester) -> bool:
        if row.account_id == viewer.account_id:
            return True
        uri = f"mxc://{self.server_name}/{row.media_id}"
        after = row.stream_position or 0  # nothing before the upload can name the file
        if await media_rows.referenced_in_rooms_of(session, uri, viewer.user_id, after):
            return True
        login = await media_rows.uploader_login(session, row)
        if login is None:
            return False
        uploaded_ms = int(row.created_at.timestamp() * 1000) - CLOCK_SLACK_MS
        return await media_rows.encrypted_post_in_rooms_of(
            session, user_id_for(login, self.server_name), uploaded_ms, viewer.user_id, after)

    def check_upload(self, content_type: str, size: int | None) -> str:
        kind = base_type(content_type or "application/octet-stream")
        if kind in REFUSED_TYPES:
            raise Forbidden(f"uploads of type {kind} are not allowed (they could run in a "
                            "browser); send the file as a download instead")
        if size is not None and size > self.max_upload_bytes:
            raise TooLarge(f"the file is larger than {self.max_upload_bytes} bytes")
        return kind

    async def upload(self, account_id: int, data: bytes, content_type: str,
                     upload_name: str | None) -> str:
        """Store ``data``; returns the ``mxc://`` URI once bytes and row are durable."""
        kind = self.check_upload(content_type, len(data))
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(_write_file, self.root, data, digest)
        media_id = _new_media_id()
        async with self.db.write() as session:
            await media_rows.add(session, media_id=media_id, sha256=digest, content_type=kind,
                                 upload_name=upload_name, size=len(data),
                                 account_id=account_id)
        log.info("event=media_uploaded media=%s size=%d type=%s account=%d", media_id,
                 len(data), kind, account_id)
        return f"mxc://{self.server_name}/{media_id}"

    async def get(self, server_name: str, media_id: str,
                  viewer: Requester | None = None) -> StoredMedia:
        """The file behind ``mxc://server_name/media_id`` if ``viewer`` may see it
        (``may_see``; None: no check, for the server itself); else ``RoomNotFound``,
        as for an unknown id, so that a refusal tells nothing about the file."""
        if server_name != self.server_name:
            if self.remote is None or viewer is None:
                raise RoomNotFound("media of other servers are not available here")
            return await self.remote.get(server_name, media_id, viewer)
        async with self.db.read() as session:
            row = await media_rows.get(session, media_id)
            if row is not None and viewer is not None and not await self.may_see(
                    session, row, viewer):
                log.info("event=media_refused media=%s viewer=%s", media_id, viewer.user_id)
                row = None
        if row is None:
            raise RoomNotFound("unknown media")
        path = self.root / row.sha256[:2] / row.sha256[2:4] / row.sha256
        return StoredMedia(media_id, row.content_type, row.upload_name, row.size, path)

    async def may_server_see(self, session: Any, row: Any, server_name: str) -> bool:
        """Whether another server's users may have the file: an event after the upload
        names it in a room they share, or the uploader posted an encrypted event
        since into such a room (as ``may_see`` for one user)."""
        uri = f"mxc://{self.server_name}/{row.media_id}"
        after = row.stream_position or 0
        if await remote_rows.referenced_in_rooms_with_server(session, uri, server_name, after):
            return True
        login = await media_rows.uploader_login(session, row)
        if login is None:
            return False
        uploaded_ms = int(row.created_at.timestamp() * 1000) - CLOCK_SLACK_MS
        return await remote_rows.encrypted_post_in_rooms_with_server(
            session, user_id_for(login, self.server_name), uploaded_ms, server_name, after)

    async def get_for_server(self, media_id: str, server_name: str) -> StoredMedia:
        """A local file for another server (``GET /_matrix/federation/v1/media/download``),
        if its users may have it; else ``RoomNotFound``."""
        async with self.db.read() as session:
            row = await media_rows.get(session, media_id)
            if row is not None and not await self.may_server_see(session, row, server_name):
                log.info("event=media_refused media=%s server=%s", media_id, server_name)
                row = None
        if row is None:
            raise RoomNotFound("unknown media")
        path = self.root / row.sha256[:2] / row.sha256[2:4] / row.sha256
        return StoredMedia(media_id, row.content_type, row.upload_name, row.size, path)
