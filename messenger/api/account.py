"""Account endpoints (spec: Client-Server API v1.12 "Account management"):
POST /account/password and the third-party identifier endpoints under /account/3pid.

Accounts come from the school's directory, which has no e-mail addresses or
phone numbers to verify for Matrix: the 3PID list is always empty and adding
one is refused.
"""

from __future__ import annotations

from aiohttp import web

from messenger.account import PasswordChange
from messenger.api.errors import MatrixError, bad_json
from messenger.api.http import CONTEXT, json_body, ok, requester, string_field

PASSWORD_CHANGE = web.AppKey("messenger_password_change", PasswordChange)


def install(app: web.Application) -> None:
    ctx = app[CONTEXT]
    app[PASSWORD_CHANGE] = PasswordChange(ctx.sessions, ctx.directory)


async def change_password(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request)
    new_password = string_field(body, "new_password") or ""
    logout_devices = body.get("logout_devices", True)
    if not isinstance(logout_devices, bool):
        raise bad_json("logout_devices must be true or false")
    await request.app[PASSWORD_CHANGE].change(who, new_password, body.get("auth"),
                                              request.remote or "",
                                              logout_devices=logout_devices)
    return ok()


async def threepids(request: web.Request) -> web.Response:
    await requester(request)
    return ok({"threepids": []})


async def add_threepid(request: web.Request) -> web.Response:
    await requester(request)
    raise MatrixError(403, "M_FORBIDDEN",
                      "contact details are kept by the school's directory, not here")


async def request_token(request: web.Request) -> web.Response:
    raise MatrixError(403, "M_THREEPID_DENIED",
                      "this server does not verify e-mail addresses or phone numbers")


async def remove_threepid(request: web.Request) -> web.Response:
    await requester(request)
    await json_body(request)
    # Nothing is bound, so there is nothing to remove from an identity server.
    return ok({"id_server_unbind_result": "no-support"})


async def whois(request: web.Request) -> web.Response:
    """GET /admin/whois/{userId} (spec "Server administration"): a user's own
    sessions; other users' are for the school's admins, not through the app."""
    who = await requester(request)
    if request.match_info["user_id"] != who.user_id:
        raise MatrixError(403, "M_FORBIDDEN", "you can only look up your own sessions")
    devices = await request.app[CONTEXT].sessions.devices(who)
    return ok({"user_id": who.user_id, "devices": {
        d.device_id: {"sessions": [{"connections": [
            {"ip": d.last_seen_ip, "last_seen": d.last_seen_ts}
            if d.last_seen_ip else {"last_seen": d.last_seen_ts}]}]}
        for d in devices}})


def routes(prefix: str) -> list[web.RouteDef]:
    base = f"{prefix}/account"
    return [
        web.post(f"{base}/password", change_password),
        web.get(f"{prefix}/admin/whois/{{user_id}}", whois),
        web.get(f"{base}/3pid", threepids),
        web.post(f"{base}/3pid", add_threepid),
        web.post(f"{base}/3pid/add", add_threepid),
        web.post(f"{base}/3pid/bind", add_threepid),
        web.post(f"{base}/3pid/delete", remove_threepid),
        web.post(f"{base}/3pid/unbind", remove_threepid),
        web.post(f"{base}/3pid/email/requestToken", request_token),
        web.post(f"{base}/3pid/msisdn/requestToken", request_token),
        web.post(f"{base}/password/email/requestToken", request_token),
        web.post(f"{base}/password/msisdn/requestToken", request_token),
    ]
