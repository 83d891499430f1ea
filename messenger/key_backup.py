"""Server-side key backups (spec: Client-Server API "Server-side key backups",
/room_keys/version and /room_keys/keys).

Each user may keep backup versions; the newest one not deleted is the current
one, and only it takes new keys.  The server never sees a room key: it stores
each session's ``session_data`` (the client's ciphertext) as it came, with the
three pieces of metadata the spec's replacement rule looks at.  ``etag``
changes whenever the keys of a version change.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from directory.db import Database
from messenger.events.canonical import CanonicalJsonError, canonical_json, check_canonical_value
from messenger.storage import key_backup as store
from messenger.storage.tables import KeyBackupSessionRow, KeyBackupVersionRow

MAX_ID_LENGTH = 255  # room and session ids are stored in String(255) columns
MAX_VERSION_DIGITS = 18  # fits a BIGINT


class KeyBackupError(Exception):
    """A request the backup refuses; the API turns each kind into an errcode."""


class NoBackup(KeyBackupError):
    """No such (or no current) backup version, or no such key (404 M_NOT_FOUND)."""


class WrongVersion(KeyBackupError):
    """Keys sent to a version that is not the current one (403 M_WRONG_ROOM_KEYS_VERSION)."""

    def __init__(self, current_version: str) -> None:
        super().__init__(f"the current backup version is {current_version}")
        self.current_version = current_version


class MissingField(KeyBackupError):
    """A required field is absent (M_MISSING_PARAM)."""


class MalformedField(KeyBackupError):
    """A field of the wrong type or form (M_BAD_JSON)."""


class Mismatch(KeyBackupError):
    """An update that would change what may not change (M_INVALID_PARAM)."""


@dataclass(frozen=True)
class SessionKey:
    """KeyBackupData: one Megolm session's backed-up key and its metadata."""

    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"first_message_index": self.first_message_index,
                "forwarded_count": self.forwarded_count, "is_verified": self.is_verified,
                "session_data": self.session_data}

    def replaces(self, stored: SessionKey) -> bool:
        """The spec's rule for a key already in the backup: the verified one wins, then the
        lower first_message_index, then the lower forwarded_count; on a tie the stored one
        stays."""
        if self.is_verified != stored.is_verified:
            return self.is_verified
        if self.first_message_index != stored.first_message_index:
            return self.first_message_index < stored.first_message_index
        return self.forwarded_count < stored.forwarded_count


@dataclass(frozen=True)
class BackupVersion:
    version: str
    algorithm: str
    auth_data: Mapping[str, Any]
    count: int
    etag: str

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "algorithm": self.algorithm,
                "auth_data": self.auth_data, "count": self.count, "etag": self.etag}


# --- parsing -------------------------------------------------------------------------


def _field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in body:
        raise MissingField(f"{name} is required")
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedField(f"{name} has the wrong type")
    return value


def _storable(value: Any, what: str) -> None:
    try:
        check_canonical_value(value)
    except CanonicalJsonError as exc:
        raise MalformedField(f"{what} cannot be stored: {exc}") from None


def parse_backup_config(body: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(algorithm, auth_data) of a POST or PUT /room_keys/version body."""
    algorithm = _field(body, "algorithm", str)
    auth_data = _field(body, "auth_data", Mapping)
    if not algorithm or len(algorithm) > MAX_ID_LENGTH:
        raise MalformedField("algorithm must be a non-empty string of at most 255 characters")
    _storable(auth_data, "auth_data")
    return algorithm, auth_data


def parse_session_key(value: object) -> SessionKey:
    """KeyBackupData (spec definitions/key_backup_data)."""
    if not isinstance(value, Mapping):
        raise MalformedField("a backed-up key must be an object")
    first = _field(value, "first_message_index", int)
    forwarded = _field(value, "forwarded_count", int)
    verified = _field(value, "is_verified", bool)
    data = _field(value, "session_data", Mapping)
    if first < 0 or forwarded < 0:
        raise MalformedField("first_message_index and forwarded_count must not be negative")
    _storable(first, "first_message_index")
    _storable(forwarded, "forwarded_count")
    _storable(data, "session_data")
    return SessionKey(first, forwarded, verified, data)


def _id(value: str, what: str) -> str:
    _storable(value, what)
    if not value or len(value.encode("utf-8")) > MAX_ID_LENGTH:
        raise MalformedField(f"{what} must have 1 to 255 bytes")
    return value


def _sessions(value: object, room_id: str) -> dict[tuple[str, str], SessionKey]:
    """A RoomKeyBackup object ({"sessions": {session id: KeyBackupData}})."""
    if not isinstance(value, Mapping):
        raise MalformedField("a room's backup must be an object")
    sessions = _field(value, "sessions", Mapping)
    return {(room_id, _id(session_id, "a session id")): parse_session_key(key)
            for session_id, key in sessions.items()}


def parse_backup_keys(body: Mapping[str, Any], room_id: str | None = None,
                      session_id: str | None = None) -> dict[tuple[str, str], SessionKey]:
    """The keys of a PUT /room_keys/keys[/{roomId}[/{sessionId}]] body, by (room, session)."""
    if room_id is not None and session_id is not None:
        return {(_id(room_id, "the room id"), _id(session_id, "the session id")):
                parse_session_key(body)}
    if room_id is not None:
        return _sessions(body, _id(room_id, "the room id"))
    rooms = _field(body, "rooms", Mapping)
    out: dict[tuple[str, str], SessionKey] = {}
    for room, backup in rooms.items():
        out.update(_sessions(backup, _id(room, "a room id")))
    return out


def parse_version(text: str) -> int | None:
    """The number of a version id we handed out ("1", "2", ...); None for anything else."""
    if (not text.isascii() or not text.isdigit() or len(text) > MAX_VERSION_DIGITS
            or str(int(text)) != text):
        return None
    return int(text)


# --- the service ---------------------------------------------------------------------


def _session_key(row: KeyBackupSessionRow) -> SessionKey:
    return SessionKey(row.first_message_index, row.forwarded_count, row.is_verified,
                      json.loads(row.session_data))


def _text(value: Mapping[str, Any]) -> str:
    return canonical_json(value).decode("utf-8")


class KeyBackup:
    """Backup versions and keys of this server's users (one per server instance)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = asyncio.Lock()  # version numbers and etags are max + 1

    async def _version(self, session: Any, account_id: int, version: str,
                       ) -> KeyBackupVersionRow:
        number = parse_version(version)
        row = None if number is None else await store.get_version(session, account_id, number)
        if row is None or row.deleted:
            raise NoBackup(f"unknown backup version {version}")
        return row

    async def _describe(self, session: Any, row: KeyBackupVersionRow) -> BackupVersion:
        count = await store.count_sessions(session, row.account_id, row.version)
        return BackupVersion(str(row.version), row.algorithm, json.loads(row.auth_data), count,
                             str(row.etag))

    async def create(self, account_id: int, algorithm: str,
                     auth_data: Mapping[str, Any]) -> str:
        async with self._lock, self._db.write() as session:
            return str(await store.add_version(session, account_id, algorithm,
                                               _text(auth_data)))

    async def latest(self, account_id: int) -> BackupVersion:
        async with self._db.read() as session:
            row = await store.latest_version(session, account_id)
            if row is None:
                raise NoBackup("no current backup version")
            return await self._describe(session, row)

    async def get(self, account_id: int, version: str) -> BackupVersion:
        async with self._db.read() as session:
            return await self._describe(session, await self._version(session, account_id,
                                                                     version))

    async def update(self, account_id: int, version: str, algorithm: str,
                     auth_data: Mapping[str, Any], body_version: object = None) -> None:
        """PUT /room_keys/version/{version}: only auth_data may change."""
        if body_version is not None and body_version != version:
            raise Mismatch("the version in the body is not the one in the path")
        async with self._lock, self._db.write() as session:
            row = await self._version(session, account_id, version)
            if row.algorithm != algorithm:
                raise Mismatch("the algorithm of a backup version cannot change")
            row.auth_data = _text(auth_data)

    async def delete(self, account_id: int, version: str) -> None:
        """DELETE /room_keys/version/{version}: the version and all its keys; deleting a
        deleted version again succeeds."""
        number = parse_version(version)
        async with self._lock, self._db.write() as session:
            row = None if number is None else await store.get_version(session, account_id,
                                                                      number)
            if row is None:
                raise NoBackup(f"unknown backup version {version}")
            await store.delete_sessions(session, account_id, row.version)
            row.deleted = True

    async def put_keys(self, account_id: int, version: str,
                       keys: Mapping[tuple[str, str], SessionKey]) -> tuple[str, int]:
        """Store keys in the current version; returns the new (etag, count)."""
        async with self._lock, self._db.write() as session:
            current = await store.latest_version(session, account_id, for_update=True)
            if current is None:
                raise NoBackup("no current backup version")
            if parse_version(version) != current.version:
                raise WrongVersion(str(current.version))
            changed = False
            for (room_id, session_id), key in keys.items():
                row = await store.get_session(session, account_id, current.version, room_id,
                                              session_id)
                if row is None:
                    session.add(KeyBackupSessionRow(
                        account_id=account_id, version=current.version, room_id=room_id,
                        session_id=session_id, first_message_index=key.first_message_index,
                        forwarded_count=key.forwarded_count, is_verified=key.is_verified,
                        session_data=_text(key.session_data)))
                elif key.replaces(_session_key(row)):
                    row.first_message_index, row.forwarded_count = (key.first_message_index,
                                                                    key.forwarded_count)
                    row.is_verified, row.session_data = key.is_verified, _text(key.session_data)
                else:
                    continue
                changed = True
            if changed:
                current.etag += 1
            await session.flush()
            return str(current.etag), await store.count_sessions(session, account_id,
                                                                 current.version)

    async def get_keys(self, account_id: int, version: str, room_id: str | None = None,
                       session_id: str | None = None) -> dict[str, dict[str, SessionKey]]:
        """room id -> session id -> key, of the whole version, one room or one session."""
        async with self._db.read() as session:
            row = await self._version(session, account_id, version)
            rows = await store.sessions(session, account_id, row.version, room_id, session_id)
        out: dict[str, dict[str, SessionKey]] = {}
        for r in rows:
            out.setdefault(r.room_id, {})[r.session_id] = _session_key(r)
        return out

    async def delete_keys(self, account_id: int, version: str, room_id: str | None = None,
                          session_id: str | None = None) -> tuple[str, int]:
        """Delete keys of the version (all, one room's, one session's): (etag, count)."""
        async with self._lock, self._db.write() as session:
            row = await self._version(session, account_id, version)
            if await store.delete_sessions(session, account_id, row.version, room_id,
                                           session_id):
                row.etag += 1
            await session.flush()
            return str(row.etag), await store.count_sessions(session, account_id, row.version)
