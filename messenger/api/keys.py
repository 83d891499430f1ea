"""End-to-end encryption key endpoints, minimal (spec: Client-Server API
11.12.5 "Key management API"): device keys and one-time keys are stored and
handed out, fallback keys used when one-time keys run out; device-list
changes and to-device messages (11.11.3) via messenger.e2ee; cross-signing keys
in /keys/query via messenger.cross_signing."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from directory.model import NotFound
from messenger.api.errors import MatrixError, bad_json, invalid_param
from messenger.api.http import context, event_content, json_body, ok, rate_limit, requester
from messenger.cross_signing import published_keys
from messenger.device_keys import (
    InvalidKeys,
    check_device_keys,
    check_one_time_keys,
    stored_device_key,
)
from messenger.events.identifiers import InvalidIdentifier, UserId
from messenger.storage import device_messages, user_data
from messenger.sync.tokens import InvalidToken, SyncToken


async def upload(request: web.Request) -> web.Response:
    """POST /keys/upload: only the requester's device's own keys, self-signed
    (messenger.device_keys); else 400 M_INVALID_PARAM."""
    who = await requester(request)
    body = await json_body(request)
    device_keys = body.get("device_keys")
    one_time = body.get("one_time_keys") or {}
    fallback = body.get("fallback_keys") or body.get("org.matrix.msc2732.fallback_keys") or {}
    ctx = context(request)
    async with ctx.db.write() as session:
        device_key: str | None  # None: the device has published no keys yet
        try:
            if device_keys is not None:
                device_key = check_device_keys(device_keys, who.user_id, who.device_id)
            else:
                device_key = stored_device_key(
                    await user_data.device_keys(session, who.account_id, who.device_id),
                    who.device_id)
            check_one_time_keys(one_time, "one_time_keys", who.user_id, who.device_id,
                                device_key)
            check_one_time_keys(fallback, "fallback_keys", who.user_id, who.device_id,
                                device_key)
        except InvalidKeys as exc:
            raise invalid_param(str(exc)) from None
        if device_keys is not None:
            await user_data.set_device_keys(session, who.account_id, who.device_id, device_keys)
        await user_data.add_one_time_keys(session, who.account_id, who.device_id, one_time)
        if fallback:
            await user_data.set_fallback_keys(session, who.account_id, who.device_id, fallback)
        counts = await user_data.one_time_key_counts(session, who.account_id, who.device_id)
    ctx.sync.keys_changed(who.account_id, who.device_id)
    if device_keys is not None and ctx.e2ee is not None:
        await ctx.e2ee.device_list_changed(who.user_id)
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
    """POST /keys/query: device keys and cross-signing keys with the signatures the
    requester may see (user-signing keys only their own)."""
    who = await requester(request)
    body = await json_body(request)
    wanted = body.get("device_keys")
    if not isinstance(wanted, dict):
        raise bad_json("device_keys must be an object")
    result: dict[str, Any] = {}
    cross_signing: dict[str, dict[str, Any]] = {
        "master_keys": {}, "self_signing_keys": {}, "user_signing_keys": {}}
    async with context(request).db.read() as session:
        for user_id, device_ids in wanted.items():
            account_id = await _account_id(request, user_id)
            if account_id is None:
                continue
            published = await published_keys(session, who.user_id, user_id, account_id)
            keys = published.devices
            if isinstance(device_ids, list) and device_ids:
                keys = {d: k for d, k in keys.items() if d in device_ids}
            result[user_id] = keys
            for field, key in (("master_keys", published.master),
                               ("self_signing_keys", published.self_signing),
                               ("user_signing_keys", published.user_signing)):
                if key is not None:
                    cross_signing[field][user_id] = key
    failures: dict[str, Any] = {}
    remote_keys = context(request).remote_keys
    if remote_keys is not None and remote_keys.by_server(wanted):
        # Users of other servers: asked over federation (spec 11.12.5 /keys/query
        # "failures": the servers that could not be reached).
        remote = await remote_keys.query(
            {u: [d for d in ds if isinstance(d, str)] if isinstance(ds, list) else []
             for u, ds in wanted.items()})
        result.update(remote.device_keys)
        cross_signing["master_keys"].update(remote.master_keys)
        cross_signing["self_signing_keys"].update(remote.self_signing_keys)
        failures = remote.failures
    return ok({"device_keys": result, "failures": failures, **cross_signing})


async def claim(request: web.Request) -> web.Response:
    await requester(request)
    body = await json_body(request)
    wanted = body.get("one_time_keys")
    if not isinstance(wanted, dict):
        raise bad_json("one_time_keys must be an object")
    result: dict[str, Any] = {}
    claimed: list[tuple[int, str]] = []
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
                claimed.append((account_id, device_id))
                if found is not None:
                    result.setdefault(user_id, {}).setdefault(device_id, {})[found[0]] = found[1]
    for account_id, device_id in claimed:  # committed: their counts went down
        context(request).sync.keys_changed(account_id, device_id)
    failures: dict[str, Any] = {}
    remote_keys = context(request).remote_keys
    if remote_keys is not None and remote_keys.by_server(wanted):
        remote = await remote_keys.claim(
            {u: {d: a for d, a in ds.items() if isinstance(a, str)}
             for u, ds in wanted.items() if isinstance(ds, dict)})
        result.update(remote.one_time_keys)
        failures = remote.failures
    return ok({"one_time_keys": result, "failures": failures})


async def changes(request: web.Request) -> web.Response:
    """GET /keys/changes?from=&to= (spec 11.12.5.1): users sharing a room whose keys changed."""
    who = await requester(request)
    try:
        start = SyncToken.parse(request.query.get("from", "")).device_lists
        end = SyncToken.parse(request.query["to"]).device_lists if "to" in request.query \
            else 2 ** 62
    except InvalidToken as exc:
        raise MatrixError(400, "M_INVALID_PARAM", str(exc)) from None
    async with context(request).db.read() as session:
        users = await device_messages.users_sharing_a_room(session, who.user_id)
        changed = await device_messages.changed_users(session, start, end,
                                                      users | {who.user_id})
    return ok({"changed": sorted(changed), "left": []})


async def send_to_device(request: web.Request) -> web.Response:
    """PUT /sendToDevice/{eventType}/{txnId} (spec 11.11.3.1)."""
    who = await requester(request)
    rate_limit(request, "to_device", who)
    body = await json_body(request)
    messages = body.get("messages")
    if not isinstance(messages, dict):
        raise bad_json("messages must be an object")
    event_content(body, context(request).limits)  # size and canonical JSON
    await context(request).e2ee.send(who.user_id, who.device_id, request.match_info["txn_id"],
                                     request.match_info["event_type"], messages)
    return ok()


def routes(prefix: str) -> list[web.RouteDef]:
    return [
        web.post(f"{prefix}/keys/upload", upload),
        web.post(f"{prefix}/keys/query", query),
        web.post(f"{prefix}/keys/claim", claim),
        web.get(f"{prefix}/keys/changes", changes),
        web.put(f"{prefix}/sendToDevice/{{event_type}}/{{txn_id}}", send_to_device),
    ]
