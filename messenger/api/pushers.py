"""``GET /pushers`` and ``POST /pushers/set`` (spec: Client-Server API "Push
Notifications"): the HTTP pushers phones register so their push gateway wakes
them (sending: ``messenger.push``)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from messenger.api.errors import MatrixError, invalid_param
from messenger.api.http import context, json_body, ok, requester
from messenger.identity import Requester
from messenger.storage import pushers as store
from messenger.storage.pushers import Pusher

NOTIFY_PATH = "/_matrix/push/v1/notify"
# Column sizes (messenger.storage.tables.PusherRow); the spec caps app_id and pushkey.
MAX_LENGTHS = {"app_id": 64, "pushkey": 512, "app_display_name": 255,
               "device_display_name": 255, "profile_tag": 255, "lang": 64}


def missing(key: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", f"{key} is required")


def _text(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise missing(key)
        return None
    if not isinstance(value, str) or (required and not value):
        raise invalid_param(f"{key} must be a non-empty string")
    if len(value) > MAX_LENGTHS[key]:
        raise invalid_param(f"{key} is longer than {MAX_LENGTHS[key]} characters")
    return value


def _gateway_data(body: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """``data`` with a ``url`` that is an absolute http(s) URL of a notify endpoint
    on this server's list of push gateways (``matrix.push_gateways``)."""
    data = body.get("data")
    if data is None:
        raise missing("data")
    if not isinstance(data, dict):
        raise invalid_param("data must be an object")
    url = data.get("url")
    if url is None:
        raise missing("data.url")
    if not isinstance(url, str):
        raise invalid_param("data.url must be a string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.path != NOTIFY_PATH or parts.query or parts.fragment:
        raise invalid_param(f"data.url must be an absolute http(s) URL ending in {NOTIFY_PATH}")
    if url not in allowed:
        raise invalid_param("this server pushes only through: " + (", ".join(allowed) or
                                                                  "no gateway"))
    return data


def _pusher(who: Requester, body: dict[str, Any], app_id: str, pushkey: str,
            allowed: tuple[str, ...]) -> Pusher:
    kind = body["kind"]
    if kind != "http":
        raise invalid_param("only pushers of kind \"http\" are supported")
    app_display_name = _text(body, "app_display_name")
    device_display_name = _text(body, "device_display_name")
    lang = _text(body, "lang")
    assert app_display_name is not None and device_display_name is not None \
        and lang is not None
    return Pusher(account_id=who.account_id, user_id=who.user_id, app_id=app_id,
                  pushkey=pushkey, kind=kind, app_display_name=app_display_name,
                  device_display_name=device_display_name,
                  profile_tag=_text(body, "profile_tag", required=False), lang=lang,
                  data=_gateway_data(body, allowed), pushkey_ts=int(time.time()))


async def pushers(request: web.Request) -> web.Response:
    who = await requester(request)
    async with context(request).db.read() as session:
        mine = await store.pushers_of_account(session, who.account_id)
    return ok({"pushers": [p.client_view() for p in mine]})


async def set_pusher(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request)
    if "kind" not in body:
        raise missing("kind")
    app_id = _text(body, "app_id")
    pushkey = _text(body, "pushkey")
    assert app_id is not None and pushkey is not None
    append = body.get("append", False)
    if not isinstance(append, bool):
        raise invalid_param("append must be a boolean")
    db = context(request).db
    if body["kind"] is None:  # kind null: delete this pusher
        async with db.write() as session:
            await store.delete_pusher(session, who.account_id, app_id, pushkey)
        context(request).pushers_changed()
        return ok()
    pusher = _pusher(who, body, app_id, pushkey, context(request).push_gateways)
    async with db.write() as session:
        await store.put_pusher(session, pusher, append=append)
    context(request).pushers_changed()
    return ok()


def routes(prefix: str) -> list[web.RouteDef]:
    return [
        web.get(f"{prefix}/pushers", pushers),
        web.post(f"{prefix}/pushers/set", set_pusher),
    ]
