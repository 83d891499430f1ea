"""Other servers' media for this school's users (spec v1.11 authenticated media:
``GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`` of a remote
server's file is fetched over ``GET /_matrix/federation/v1/media/download``).

A file is fetched once and kept (a row in ``matrix_remote_media``, the bytes in
the same content-addressed files as local uploads); concurrent requests for one
file share one fetch.  Checks before anything is kept: at most the school's
upload limit, not a type a browser would run (the same list local uploads are
refused for).  Who may see it: a local user in whose rooms an event names the
file, or in whose rooms a user of that server posted an encrypted event (the
server cannot read which file an encrypted event carries).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from directory.db import Database
from federation.matrix.client import DownloadedMedia, FederationRequestError
from federation.matrix.discovery import InvalidServerName, split_server_name
from messenger.identity import Requester
from messenger.media import REFUSED_TYPES, StoredMedia, _write_file, base_type
from messenger.rooms.errors import Forbidden, RoomNotFound
from messenger.storage import media as media_rows
from messenger.storage import remote_media as rows

log = logging.getLogger("schulhof.messenger")

MAX_MEDIA_ID_BYTES = 255

# (server name, media id, max bytes) -> the file from that server.
Downloader = Callable[[str, str, int], Awaitable[DownloadedMedia]]


class RemoteMediaUnavailable(Exception):
    """The other server could not hand the file over (answered 502 M_UNKNOWN... at the edge)."""


class RemoteMedia:
    def __init__(self, db: Database, root: Path, download: Downloader, max_bytes: int) -> None:
        self._db = db
        self._root = root
        self._download = download
        self.max_bytes = max_bytes
        self._fetching: dict[tuple[str, str], asyncio.Future[None]] = {}

    async def may_see(self, session: Any, server_name: str, media_id: str,
                      viewer: Requester) -> bool:
        uri = f"mxc://{server_name}/{media_id}"
        return (await media_rows.referenced_in_rooms_of(session, uri, viewer.user_id, 0)
                or await rows.encrypted_from_server_in_rooms_of(session, server_name,
                                                                viewer.user_id))

    async def get(self, server_name: str, media_id: str, viewer: Requester) -> StoredMedia:
        """The file, fetched if not kept yet; ``RoomNotFound`` when ``viewer`` may not see
        it (as for an unknown file), ``Forbidden`` for a refused type."""
        if not media_id or len(media_id.encode()) > MAX_MEDIA_ID_BYTES or "/" in media_id:
            raise RoomNotFound("unknown media")
        try:
            split_server_name(server_name)
        except InvalidServerName:
            raise RoomNotFound("unknown media") from None
        async with self._db.read() as session:
            if not await self.may_see(session, server_name, media_id, viewer):
                log.info("event=remote_media_refused server=%s media=%s viewer=%s",
                         server_name, media_id, viewer.user_id)
                raise RoomNotFound("unknown media")
            row = await rows.get(session, server_name, media_id)
        if row is None:
            await self._fetch_once(server_name, media_id)
            async with self._db.read() as session:
                row = await rows.get(session, server_name, media_id)
            if row is None:
                raise RoomNotFound("unknown media")
        path = self._root / row.sha256[:2] / row.sha256[2:4] / row.sha256
        return StoredMedia(media_id, row.content_type, row.upload_name, row.size, path)

    async def _fetch_once(self, server_name: str, media_id: str) -> None:
        key = (server_name, media_id)
        running = self._fetching.get(key)
        if running is not None:
            await asyncio.shield(running)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fetching[key] = future
        try:
            await self._fetch(server_name, media_id)
        finally:
            del self._fetching[key]
            future.set_result(None)

    async def _fetch(self, server_name: str, media_id: str) -> None:
        try:
            got = await self._download(server_name, media_id, self.max_bytes)
        except FederationRequestError as exc:
            log.info("event=remote_media_failed server=%s media=%s reason=%r", server_name,
                     media_id, str(exc))
            if exc.status == 404:
                return  # unknown there: unknown here
            raise RemoteMediaUnavailable(str(exc)) from exc
        kind = base_type(got.content_type or "application/octet-stream")
        if kind in REFUSED_TYPES:
            log.info("event=remote_media_type_refused server=%s media=%s type=%s",
                     server_name, media_id, kind)
            raise Forbidden(f"files of type {kind} from other servers are not served here")
        name = None
        if got.content_disposition:
            _, params = parse_content_disposition(got.content_disposition)
            name = content_disposition_filename(params, "filename")
        digest = hashlib.sha256(got.data).hexdigest()
        await asyncio.to_thread(_write_file, self._root, got.data, digest)
        async with self._db.write() as session:
            await rows.add(session, server_name=server_name, media_id=media_id, sha256=digest,
                           content_type=kind[:255], upload_name=name[:255] if name else None,
                           size=len(got.data))
        log.info("event=remote_media_fetched server=%s media=%s size=%d type=%s", server_name,
                 media_id, len(got.data), kind)
