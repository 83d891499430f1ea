"""End-to-end encryption key endpoints, minimal (spec: Client-Server API
11.12.5 "Key management API"): device keys and one-time keys are stored and
handed out; cross-signing, key backup and device-list tracking come later."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from directory.model import NotFound
from messenger.api.errors import bad_json
from messenger.api.http import context, json_body, ok, requester
from messenger.events.identifiers import InvalidIdentifier, UserId
from messenger.storage import user_data


async def upload(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request)
    device_keys = body.get("device_keys")
    one_time = body.get("one_time_keys") or {}
    if device_keys is not None and not isinstance(device_keys, dict):
        raise bad_json("device_keys must be an object")
    if not isinstance(one_time, dict):
        raise bad_json("one_time_keys must be an object")
    async with context(request).db.write() as session:
        if device_keys is not None:
            await user_data.set_device_keys(session, who.account_id, who.device_id, device_keys)
        await user_data.add_one_time_keys(session, who.account_id, who.device_id, one_time)
        counts = await user_data.one_time_key_counts(session, who.account_id, who.device_id)
    counts.setdefault("signed_curve25519", 0)
    return ok({"one_time_key_counts": counts})


async def _account_id(request: web.Request, user_id: str) -> int | None:
    ctx = context(request)
    try:
        user = UserId.parse(user_id)
    except InvalidIdentifier:
        return None
    if user.server != ctx.server_name:
        return None
    try:
        return (await ctx.directory.get_account(user.localpart)).id
    except NotFound:  # unknown users simply have no keys
        return None


async def query(request: web.Request) -> web.Response:
    await requester(request)
    body = await json_body(request)
    wanted = body.get("device_keys")
    if not isinstance(wanted, dict):
        raise bad_json("device_keys must be an object")
    result: dict[str, Any] = {}
    async with context(request).db.read() as session:
        for user_id, device_ids in wanted.items():
            account_id = await _account_id(request, user_id)
            if account_id is None:
                continue
            keys = await user_data.devices_with_keys(session, account_id)
            if isinstance(device_ids, list) and device_ids:
                keys = {d: k for d, k in keys.items() if d in device_ids}
            result[user_id] = keys
    return ok({"device_keys": result, "failures": {}, "master_keys": {},
               "self_signing_keys": {}, "user_signing_keys": {}})


async def claim(request: web.Request) -> web.Response:
    await requester(request)
    body = await json_body(request)
    wanted = body.get("one_time_keys")
    if not isinstance(wanted, dict):
        raise bad_json("one_time_keys must be an object")
    result: dict[str, Any] = {}
    async with context(request).db.write() as session:
        for user_id, devices in wanted.items():
            account_id = await _account_id(request, user_id)
            if account_id is None or not isinstance(devices, dict):
                continue
            for device_id, algorithm in devices.items():
                if not isinstance(algorithm, str):
                    continue
                found = await user_data.claim_one_time_key(session, account_id, device_id,
                                                           algorithm)
                if found is not None:
                    result.setdefault(user_id, {}).setdefault(device_id, {})[found[0]] = found[1]
    return ok({"one_time_keys": result, "failures": {}})


async def changes(request: web.Request) -> web.Response:
    await requester(request)
    return ok({"changed": [], "left": []})


def routes(prefix: str) -> list[web.RouteDef]:
    return [
        web.post(f"{prefix}/keys/upload", upload),
        web.post(f"{prefix}/keys/query", query),
        web.post(f"{prefix}/keys/claim", claim),
        web.get(f"{prefix}/keys/changes", changes),
    ]
