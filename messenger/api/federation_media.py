"""Thin federation handlers for media (spec v1.11 Server-Server API "Content
Repository"): ``GET /_matrix/federation/v1/media/download/{mediaId}`` and
``/thumbnail/{mediaId}`` answer ``multipart/mixed``: a JSON metadata part (empty)
and the file.  Only files the requesting server's users may have (see
``MediaRepository.may_server_see``); the others are 404 as an unknown id is.
Without an image library the original image is its own thumbnail (the spec
allows a larger one than asked for); other types have none."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from aiohttp import MultipartWriter, web

from messenger.api.federation import ORIGIN
from messenger.media import INLINE_TYPES, THUMBNAIL_TYPES, MediaRepository, StoredMedia
from messenger.rooms.errors import RoomNotFound

MEDIA = web.AppKey("federation_media", MediaRepository)


def _not_found(message: str) -> web.Response:
    return web.json_response({"errcode": "M_NOT_FOUND", "error": message}, status=404)


async def _answer(media: StoredMedia) -> web.Response:
    data = await asyncio.to_thread(media.path.read_bytes)
    disposition = "inline" if media.content_type in INLINE_TYPES else "attachment"
    if media.upload_name:
        disposition += f"; filename*=utf-8''{quote(media.upload_name, safe='')}"
    writer = MultipartWriter("mixed")
    writer.append_json({})
    writer.append(data, {"Content-Type": media.content_type,
                         "Content-Disposition": disposition})
    return web.Response(body=writer)  # aiohttp writes the parts and the boundary


async def download(request: web.Request) -> web.Response:
    try:
        media = await request.app[MEDIA].get_for_server(request.match_info["media_id"],
                                                        request[ORIGIN])
    except RoomNotFound:
        return _not_found("unknown media")
    return await _answer(media)


async def thumbnail(request: web.Request) -> web.Response:
    try:
        media = await request.app[MEDIA].get_for_server(request.match_info["media_id"],
                                                        request[ORIGIN])
    except RoomNotFound:
        return _not_found("unknown media")
    if media.content_type not in THUMBNAIL_TYPES:
        return _not_found("no thumbnail for this type of file")
    return await _answer(media)


def install(app: web.Application, media: MediaRepository) -> None:
    app[MEDIA] = media
    app.add_routes([
        web.get("/_matrix/federation/v1/media/download/{media_id}", download),
        web.get("/_matrix/federation/v1/media/thumbnail/{media_id}", thumbnail),
    ])
