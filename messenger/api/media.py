"""Media endpoints (spec: Client-Server API 10.7 "Content repository", v1.11+).

- ``POST /_matrix/media/v3/upload``: the body is the file; ``Content-Type``
  and ``?filename=``.  Read in chunks up to the size limit (the app's
  ``client_max_size`` is for JSON and does not apply to a streamed read).
- ``GET /_matrix/client/v1/media/{config,download,thumbnail}``: authenticated.
- The legacy unauthenticated ``/_matrix/media/v3/download|thumbnail`` answer
  404 M_NOT_FOUND: spec 1.11 lets servers "freeze" unauthenticated media, and
  every file here was uploaded after the freeze (this server had no media
  before), so none is served without an access token.
- Thumbnails: without an image library the original image is the thumbnail
  (the spec allows a larger one than asked for); other types have none.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from messenger.api.errors import MatrixError
from messenger.api.http import ApiContext, ok, rate_limit, requester
from messenger.media import INLINE_TYPES, THUMBNAIL_TYPES, MediaRepository, StoredMedia
from messenger.remote_media import RemoteMediaUnavailable
from messenger.rooms.errors import TooLarge

MEDIA_KEY = web.AppKey("messenger_media", MediaRepository)
# What synapse sends: nothing runs, nothing loads, even if a browser opens the URL.
CSP = ("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
       "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")
CHUNK = 64 * 1024


def _media(request: web.Request) -> MediaRepository:
    repo = request.app.get(MEDIA_KEY)
    if repo is None:
        raise MatrixError(404, "M_NOT_FOUND", "no media repository on this server")
    return repo


async def upload(request: web.Request) -> web.Response:
    who = await requester(request)
    rate_limit(request, "upload", who)
    repo = _media(request)
    content_type = request.headers.get("Content-Type", "application/octet-stream")
    repo.check_upload(content_type, request.content_length)
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.read(CHUNK):
        size += len(chunk)
        if size > repo.max_upload_bytes:
            raise TooLarge(f"the file is larger than {repo.max_upload_bytes} bytes")
        parts.append(chunk)
    filename = request.query.get("filename") or None
    uri = await repo.upload(who.account_id, b"".join(parts), content_type, filename)
    return ok({"content_uri": uri})


async def config(request: web.Request) -> web.Response:
    await requester(request)
    return ok({"m.upload.size": _media(request).max_upload_bytes})


def _file_response(media: StoredMedia, file_name: str | None) -> web.FileResponse:
    name = file_name or media.upload_name
    disposition = "inline" if media.content_type in INLINE_TYPES else "attachment"
    if name:
        disposition += f"; filename*=utf-8''{quote(name, safe='')}"
    headers = {
        "Content-Type": media.content_type,
        "Content-Disposition": disposition,
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Cache-Control": "private, max-age=86400, immutable",
    }
    return web.FileResponse(media.path, headers=headers)


async def _get(request: web.Request) -> StoredMedia:
    who = await requester(request)
    try:
        return await _media(request).get(request.match_info["server_name"],
                                         request.match_info["media_id"], who)
    except RemoteMediaUnavailable:
        raise MatrixError(502, "M_UNKNOWN",
                          "the file's server could not hand it over; try again later") from None


async def download(request: web.Request) -> web.StreamResponse:
    media = await _get(request)
    return _file_response(media, request.match_info.get("file_name") or None)


async def thumbnail(request: web.Request) -> web.StreamResponse:
    media = await _get(request)
    if media.content_type not in THUMBNAIL_TYPES:
        raise MatrixError(404, "M_NOT_FOUND", "no thumbnail for this type of file")
    return _file_response(media, None)


async def frozen(request: web.Request) -> web.Response:
    raise MatrixError(404, "M_NOT_FOUND",
                      "unauthenticated media are frozen here (spec 1.11): use "
                      "/_matrix/client/v1/media with an access token")


def routes(ctx: ApiContext) -> list[Any]:
    client = "/_matrix/client/v1/media"
    legacy = "/_matrix/media/v3"
    out: list[Any] = []
    for base in ("/_matrix/media/v3", "/_matrix/media/r0"):
        out.append(web.post(f"{base}/upload", upload))
        out.append(web.get(f"{base}/config", config))
    out += [
        web.get(f"{client}/config", config),
        web.get(f"{client}/download/{{server_name}}/{{media_id}}", download),
        web.get(f"{client}/download/{{server_name}}/{{media_id}}/{{file_name:.*}}", download),
        web.get(f"{client}/thumbnail/{{server_name}}/{{media_id}}", thumbnail),
        web.get(f"{legacy}/download/{{tail:.*}}", frozen),
        web.get(f"{legacy}/thumbnail/{{tail:.*}}", frozen),
        web.get("/_matrix/media/r0/download/{tail:.*}", frozen),
    ]
    return out
