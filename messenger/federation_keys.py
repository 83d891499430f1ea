"""End-to-end encryption keys across servers (Server-Server API "End-to-End
Encryption": ``GET /user/devices/{userId}``, ``POST /user/keys/query``,
``POST /user/keys/claim``).

``LocalKeys`` answers other servers about this school's users, from the same
store the client API's ``/keys/*`` use (device keys, one-time and fallback keys,
the master and self-signing keys; user-signing keys never leave the server).
``RemoteKeys`` asks other servers about theirs for the client API's
``/keys/query`` and ``/keys/claim``, and keeps only what the answer may say:
keys of the users that were asked for, of that server, naming themselves
(a device's keys name their user and device, a cross-signing key its user).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from directory.db import Database
from directory.model import NotFound
from directory.service import Directory
from messenger.cross_signing import published_keys
from messenger.events.identifiers import InvalidIdentifier, UserId
from messenger.storage import device_messages, devices, user_data

log = logging.getLogger("schulhof.messenger.federation")

MAX_USERS_PER_REQUEST = 1_000
MAX_KEYS_PER_CLAIM = 1_000
REMOTE_TIMEOUT_SECONDS = 10.0


class BadKeyRequest(ValueError):
    """A key request whose shape the spec does not allow (the edge answers 400)."""


def _user(user_id: object) -> UserId | None:
    if not isinstance(user_id, str):
        return None
    try:
        return UserId.parse(user_id)
    except InvalidIdentifier:
        return None


class LocalKeys:
    """This school's users' keys, as other servers may see them."""

    def __init__(self, db: Database, directory: Directory, server_name: str, *,
                 keys_claimed: Callable[[int, str], None] | None = None) -> None:
        self._db = db
        self._directory = directory
        self.server_name = server_name
        # /sync shows the owner the lower one-time key count (the client API's SyncBuilder).
        self._keys_claimed = keys_claimed

    async def account_of(self, user_id: str) -> int | None:
        user = _user(user_id)
        if user is None or user.server != self.server_name:
            return None
        try:
            return (await self._directory.get_account(user.localpart)).id
        except NotFound:
            return None

    async def devices(self, user_id: str) -> dict[str, Any]:
        """``GET /user/devices/{userId}``: every device with its keys and name, the
        master and self-signing keys, and a stream id that grows with each change."""
        account_id = await self.account_of(user_id)
        out: dict[str, Any] = {"user_id": user_id, "devices": []}
        async with self._db.read() as session:
            out["stream_id"] = await device_messages.max_device_list(session)
            if account_id is None:
                return out
            published = await published_keys(session, user_id, user_id, account_id)
            for row in await devices.list_devices(session, account_id):
                entry: dict[str, Any] = {"device_id": row.device_id}
                keys = published.devices.get(row.device_id)
                if keys is not None:
                    entry["keys"] = keys
                if row.display_name:
                    entry["device_display_name"] = row.display_name
                out["devices"].append(entry)
        if published.master is not None:
            out["master_key"] = published.master
        if published.self_signing is not None:
            out["self_signing_key"] = published.self_signing
        return out

    async def query(self, wanted: Any) -> dict[str, Any]:
        """``POST /user/keys/query``: ``{"device_keys": {user: [device ids] or []}}``."""
        if not isinstance(wanted, Mapping) or len(wanted) > MAX_USERS_PER_REQUEST:
            raise BadKeyRequest(f"device_keys must map at most {MAX_USERS_PER_REQUEST} "
                                "users to lists of device ids")
        out: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
        for user_id, device_ids in wanted.items():
            if not isinstance(device_ids, list):
                raise BadKeyRequest("device_keys must map users to lists of device ids")
            account_id = await self.account_of(user_id)
            if account_id is None:
                continue
            async with self._db.read() as session:
                published = await published_keys(session, user_id, user_id, account_id)
            keys = published.devices
            if device_ids:
                keys = {d: k for d, k in keys.items() if d in device_ids}
            out["device_keys"][user_id] = keys
            if published.master is not None:
                out["master_keys"][user_id] = published.master
            if published.self_signing is not None:
                out["self_signing_keys"][user_id] = published.self_signing
        return out

    async def claim(self, wanted: Any) -> dict[str, Any]:
        """``POST /user/keys/claim``: ``{"one_time_keys": {user: {device: algorithm}}}``;
        each claimed one-time key is gone (a fallback key stays)."""
        if not isinstance(wanted, Mapping) or not all(
                isinstance(d, Mapping) for d in wanted.values()):
            raise BadKeyRequest("one_time_keys must map users to {device: algorithm}")
        if sum(len(d) for d in wanted.values()) > MAX_KEYS_PER_CLAIM:
            raise BadKeyRequest(f"at most {MAX_KEYS_PER_CLAIM} keys per claim")
        result: dict[str, Any] = {}
        claimed: list[tuple[int, str]] = []
        accounts = {user_id: await self.account_of(user_id) for user_id in wanted}
        async with self._db.write() as session:
            for user_id, device_algorithms in wanted.items():
                account_id = accounts[user_id]
                if account_id is None:
                    continue
                for device_id, algorithm in device_algorithms.items():
                    if not isinstance(algorithm, str) or not algorithm:
                        raise BadKeyRequest("an algorithm must be a string")
                    found = await user_data.claim_one_time_key(session, account_id,
                                                               device_id, algorithm)
                    if found is not None:
                        claimed.append((account_id, device_id))
                        result.setdefault(user_id, {}).setdefault(device_id, {})[
                            found[0]] = found[1]
        if self._keys_claimed is not None:
            for account_id, device_id in claimed:  # committed: their counts went down
                self._keys_claimed(account_id, device_id)
        return {"one_time_keys": result}


class FederationRequester(Protocol):
    """The federation client's one call RemoteKeys needs."""

    async def request(self, method: str, server_name: str, path: str, *,
                      query: Mapping[str, str] | None = None, content: Any = None,
                      signed: bool = True) -> Any: ...


@dataclass
class RemoteAnswer:
    """What other servers said, merged, and which servers could not answer."""

    device_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    master_keys: dict[str, Any] = field(default_factory=dict)
    self_signing_keys: dict[str, Any] = field(default_factory=dict)
    one_time_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, Any] = field(default_factory=dict)


def _names_itself(key: object, user_id: str, device_id: str | None = None) -> bool:
    if not isinstance(key, Mapping) or key.get("user_id") != user_id:
        return False
    return device_id is None or key.get("device_id") == device_id


class RemoteKeys:
    """The client API's view of other servers' users' keys (asked live each time)."""

    def __init__(self, client: FederationRequester, server_name: str, *,
                 timeout: float = REMOTE_TIMEOUT_SECONDS) -> None:
        self._client = client
        self.server_name = server_name
        self._timeout = timeout

    def by_server(self, users: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Users of other servers grouped by their server (bad ids left out)."""
        out: dict[str, dict[str, Any]] = {}
        for user_id, value in users.items():
            user = _user(user_id)
            if user is not None and user.server != self.server_name:
                out.setdefault(user.server, {})[user_id] = value
        return out

    async def _ask(self, server: str, path: str, content: Mapping[str, Any],
                   answer: RemoteAnswer) -> Any:
        try:
            return await asyncio.wait_for(
                self._client.request("POST", server, path, content=content), self._timeout)
        except Exception as exc:  # any failure of one server is that server's failure
            log.info("event=remote_keys_failed server=%s path=%s reason=%r", server, path,
                     str(exc) or exc.__class__.__name__)
            status = getattr(exc, "status", None)
            answer.failures[server] = {"status": status if isinstance(status, int) else 503,
                                       "message": "the server could not be reached"}
            return None

    async def query(self, users: Mapping[str, list[str]]) -> RemoteAnswer:
        """Device and cross-signing keys of remote ``users`` ({user: [device ids]})."""
        answer = RemoteAnswer()
        groups = self.by_server(users)
        replies = await asyncio.gather(*(
            self._ask(server, "/_matrix/federation/v1/user/keys/query",
                      {"device_keys": wanted}, answer) for server, wanted in groups.items()))
        for wanted, reply in zip(groups.values(), replies, strict=True):
            if not isinstance(reply, Mapping):
                continue
            self._take_query(wanted, reply, answer)
        return answer

    @staticmethod
    def _take_query(wanted: Mapping[str, Any], reply: Mapping[str, Any],
                    answer: RemoteAnswer) -> None:
        device_keys = reply.get("device_keys")
        for user_id, asked in wanted.items():
            per_device = device_keys.get(user_id) if isinstance(device_keys, Mapping) else None
            if isinstance(per_device, Mapping):
                answer.device_keys[user_id] = {
                    d: dict(k) for d, k in per_device.items()
                    if isinstance(d, str) and _names_itself(k, user_id, d)
                    and (not asked or d in asked)}
            for name, target in (("master_keys", answer.master_keys),
                                 ("self_signing_keys", answer.self_signing_keys)):
                keys = reply.get(name)
                key = keys.get(user_id) if isinstance(keys, Mapping) else None
                if _names_itself(key, user_id):
                    assert isinstance(key, Mapping)
                    target[user_id] = dict(key)

    async def claim(self, wanted: Mapping[str, Mapping[str, str]]) -> RemoteAnswer:
        """One-time keys of remote users' devices ({user: {device: algorithm}})."""
        answer = RemoteAnswer()
        groups = self.by_server(wanted)
        replies = await asyncio.gather(*(
            self._ask(server, "/_matrix/federation/v1/user/keys/claim",
                      {"one_time_keys": asked}, answer) for server, asked in groups.items()))
        for asked, reply in zip(groups.values(), replies, strict=True):
            keys = reply.get("one_time_keys") if isinstance(reply, Mapping) else None
            if not isinstance(keys, Mapping):
                continue
            for user_id, devices_asked in asked.items():
                per_device = keys.get(user_id)
                if not isinstance(per_device, Mapping):
                    continue
                for device_id, key in per_device.items():
                    # Exactly one key, of the algorithm asked, for a device asked about.
                    algorithm = devices_asked.get(device_id) \
                        if isinstance(devices_asked, Mapping) else None
                    if (isinstance(key, Mapping) and len(key) == 1 and algorithm and
                            str(next(iter(key))).startswith(f"{algorithm}:")):
                        answer.one_time_keys.setdefault(user_id, {})[device_id] = dict(key)
        return answer
