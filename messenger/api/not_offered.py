"""Endpoints of the Client-Server API that this server answers with a clear refusal
or an empty answer, by the school's policy, rather than leaving them unrouted
(an unrouted endpoint is M_UNRECOGNIZED, which apps read as "old server").

- accounts come from the school's directory: no deactivation from an app;
- rooms are not upgraded, knocked on or published to the directory by users:
  the school's rooms are kept by the server and invitations come from teachers;
- no third-party networks (bridges), no URL previews (a preview fetch would
  make the server visit any link a pupil posts), no asynchronous uploads
  (``POST /upload`` is offered);
- OpenID tokens for widgets are not issued (no widgets or integration managers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from messenger.api.errors import MatrixError
from messenger.api.http import ok, requester


def _refusal(status: int, errcode: str, message: str, *, authenticated: bool = True,
             ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        if authenticated:
            await requester(request)
        raise MatrixError(status, errcode, message)
    return handler


async def empty_list(request: web.Request) -> web.Response:
    await requester(request)
    return ok([])


def routes(prefix: str) -> list[web.RouteDef]:
    forbidden = "M_FORBIDDEN"
    return [
        web.post(f"{prefix}/account/deactivate", _refusal(
            403, forbidden, "accounts are kept by the school's directory: ask the school")),
        web.post(f"{prefix}/rooms/{{room_id}}/upgrade", _refusal(
            403, forbidden, "room upgrades are not offered on this server")),
        web.post(f"{prefix}/knock/{{room_id_or_alias}}", _refusal(
            403, forbidden, "knocking is not offered: ask a teacher for an invitation")),
        web.put(f"{prefix}/directory/list/room/{{room_id}}", _refusal(
            403, forbidden, "the school's room directory is kept by the server")),
        web.post(f"{prefix}/user/{{user_id}}/openid/request_token", _refusal(
            403, forbidden, "OpenID tokens are not issued (no widgets on this server)")),
        web.get(f"{prefix}/thirdparty/protocol/{{protocol}}", _refusal(
            404, "M_NOT_FOUND", "no third-party protocols are bridged here")),
        web.get(f"{prefix}/thirdparty/location/{{protocol}}", _refusal(
            404, "M_NOT_FOUND", "no third-party protocols are bridged here")),
        web.get(f"{prefix}/thirdparty/user/{{protocol}}", _refusal(
            404, "M_NOT_FOUND", "no third-party protocols are bridged here")),
        web.get(f"{prefix}/thirdparty/location", empty_list),
        web.get(f"{prefix}/thirdparty/user", empty_list),
    ]


def media_routes() -> list[web.RouteDef]:
    """Media endpoints outside the client prefixes (spec v1.7 async uploads, v1.11
    authenticated URL previews)."""
    previews = _refusal(403, "M_FORBIDDEN", "URL previews are off on this server")
    asynchronous = _refusal(403, "M_FORBIDDEN",
                            "asynchronous uploads are not offered: use POST /upload")
    return [
        web.post("/_matrix/media/v1/create", asynchronous),
        web.put("/_matrix/media/v3/upload/{server_name}/{media_id}", asynchronous),
        web.get("/_matrix/client/v1/media/preview_url", previews),
        web.get("/_matrix/media/v3/preview_url", previews),
    ]
