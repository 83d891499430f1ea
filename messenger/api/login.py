"""Server discovery, versions, capabilities, login/logout, whoami, devices,
register (spec: Client-Server API 2.1 well-known, 2.2 versions, 6 capabilities,
5.7 login, 14.10 devices)."""

from __future__ import annotations

from aiohttp import web

from messenger.api.errors import MatrixError, bad_json
from messenger.api.http import (
    access_token,
    context,
    json_body,
    ok,
    rate_limit,
    requester,
    string_field,
)
from messenger.api.spec_versions import SPEC_VERSIONS
from messenger.events.room_versions import CREATABLE_ROOM_VERSIONS, DEFAULT_ROOM_VERSION
from messenger.sessions import DeviceInfo


async def well_known(request: web.Request) -> web.Response:
    base = f"{request.scheme}://{request.host}"
    return ok({"m.homeserver": {"base_url": base}})


async def versions(request: web.Request) -> web.Response:
    # MSC4186 simplified sliding sync: matrix-rust-sdk (Element X) requires the flag.
    # The versions whose endpoints are all routed (messenger.api.spec_versions).
    return ok({"versions": request.app[SPEC_VERSIONS],
               "unstable_features": {"org.matrix.simplified_msc3575": True}})


async def capabilities(request: web.Request) -> web.Response:
    await requester(request)
    return ok({"capabilities": {
        "m.change_password": {"enabled": True},
        "m.set_displayname": {"enabled": False},
        "m.set_avatar_url": {"enabled": False},
        "m.3pid_changes": {"enabled": False},
        "m.room_versions": {"default": DEFAULT_ROOM_VERSION.identifier,
                            "available": {v: "stable" for v in CREATABLE_ROOM_VERSIONS}},
    }})


async def login_flows(request: web.Request) -> web.Response:
    return ok({"flows": [{"type": "m.login.password"}]})


async def login(request: web.Request) -> web.Response:
    rate_limit(request, "login")
    body = await json_body(request)
    if body.get("type") != "m.login.password":
        raise MatrixError(400, "M_UNKNOWN", "only m.login.password is supported")
    password = string_field(body, "password")
    device_id = string_field(body, "device_id", required=False)
    display = string_field(body, "initial_device_display_name", required=False)
    ctx = context(request)
    login_name = ctx.sessions.login_name(body.get("identifier"), body.get("user"))
    result = await ctx.sessions.login(login_name, password or "", device_id=device_id,
                                      display_name=display, client_ip=request.remote or "")
    # A device id may come back after a logout: drop what /sync kept for the old one.
    who = await ctx.sessions.requester(result.access_token)
    ctx.sync.device_logged_in(who.account_id, who.device_id)
    return ok({"user_id": result.user_id, "access_token": result.access_token,
               "device_id": result.device_id, "home_server": ctx.server_name})


async def register(request: web.Request) -> web.Response:
    raise MatrixError(403, "M_FORBIDDEN",
                      "registration is disabled: accounts come from the school directory")


async def _devices_changed(request: web.Request, user_id: str) -> None:
    e2ee = context(request).e2ee
    if e2ee is not None:  # others must stop encrypting for the deleted device
        await e2ee.device_list_changed(user_id)


async def logout(request: web.Request) -> web.Response:
    who = await requester(request)
    await context(request).sessions.logout(access_token(request) or "")
    await _devices_changed(request, who.user_id)
    return ok()


async def logout_all(request: web.Request) -> web.Response:
    who = await requester(request)
    await context(request).sessions.logout_all(who)
    await _devices_changed(request, who.user_id)
    return ok()


async def whoami(request: web.Request) -> web.Response:
    who = await requester(request)
    return ok({"user_id": who.user_id, "device_id": who.device_id, "is_guest": False})


def _device_json(info: DeviceInfo) -> dict[str, object]:
    return {"device_id": info.device_id, "display_name": info.display_name,
            "last_seen_ts": info.last_seen_ts, "last_seen_ip": info.last_seen_ip}


async def devices(request: web.Request) -> web.Response:
    who = await requester(request)
    infos = await context(request).sessions.devices(who)
    return ok({"devices": [_device_json(i) for i in infos]})


async def device(request: web.Request) -> web.Response:
    who = await requester(request)
    info = await context(request).sessions.device(who, request.match_info["device_id"])
    return ok(_device_json(info))


async def update_device(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request)
    await context(request).sessions.rename_device(
        who, request.match_info["device_id"], string_field(body, "display_name", required=False))
    return ok()


async def delete_device(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request, allow_empty=True)
    device_id = request.match_info["device_id"]
    await context(request).sessions.device(who, device_id)  # 404 before asking for auth
    await context(request).sessions.delete_devices(who, [device_id], body.get("auth"),
                                                   request.remote or "")
    await _devices_changed(request, who.user_id)
    return ok()


async def delete_devices(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request)
    ids = body.get("devices")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad_json("devices must be a list of device ids")
    await context(request).sessions.delete_devices(who, ids, body.get("auth"),
                                                   request.remote or "")
    await _devices_changed(request, who.user_id)
    return ok()


def routes(prefix: str) -> list[web.RouteDef]:
    return [
        web.get("/.well-known/matrix/client", well_known),
        web.get("/_matrix/client/versions", versions),
        web.get(f"{prefix}/capabilities", capabilities),
        web.get(f"{prefix}/login", login_flows),
        web.post(f"{prefix}/login", login),
        web.post(f"{prefix}/register", register),
        web.get(f"{prefix}/register/available", register),
        web.post(f"{prefix}/logout", logout),
        web.post(f"{prefix}/logout/all", logout_all),
        web.get(f"{prefix}/account/whoami", whoami),
        web.get(f"{prefix}/devices", devices),
        web.get(f"{prefix}/devices/{{device_id}}", device),
        web.put(f"{prefix}/devices/{{device_id}}", update_device),
        web.delete(f"{prefix}/devices/{{device_id}}", delete_device),
        web.post(f"{prefix}/delete_devices", delete_devices),
    ]
