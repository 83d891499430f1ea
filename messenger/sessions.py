"""Logins, devices and access tokens (spec: Client-Server API 5 "Client
Authentication", 5.7 "Login", 14.10 "Device Management", 5.4 "User-Interactive
Authentication" for deleting devices).

Passwords are the school directory's (the same ``Authenticator`` as SMTP and
IMAP, so the same throttling applies across protocols).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from directory.auth import AuthenticationFailed
from directory.db import Database
from directory.model import Account, NotFound
from directory.repository import account_by_id
from messenger.events.identifiers import InvalidIdentifier, UserId, new_device_id
from messenger.identity import Requester, user_id_for
from messenger.rooms.errors import Forbidden, InvalidRequest, RoomNotFound
from messenger.storage import devices as device_store

log = logging.getLogger("schulhof.messenger")

UIA_SESSION_SECONDS = 300.0
SEEN_INTERVAL_SECONDS = 60.0  # "last seen" is news, not a log: at most one write a minute
# Access tokens are looked up at most every few seconds per token: every request
# (and every /sync wake-up) would otherwise cost a query.  A logout here drops the
# cached entry at once; a change made by another process (``schulhof user
# suspend``) takes effect within this time.
TOKEN_CACHE_SECONDS = 10.0
TOKEN_CACHE_SIZE = 50_000


class PasswordChecker(Protocol):
    async def authenticate(self, login: str, password: str, client_ip: str = "") -> Account: ...


class UnknownToken(Exception):
    """The access token is not (or no longer) valid (M_UNKNOWN_TOKEN)."""


class AuthRequired(Exception):
    """User-interactive auth must be (re)done (401 with flows and a session)."""

    def __init__(self, session: str, message: str | None = None) -> None:
        super().__init__(message or "authentication required")
        self.session = session
        self.failed = message is not None


@dataclass(frozen=True)
class LoginResult:
    user_id: str
    access_token: str
    device_id: str


@dataclass(frozen=True)
class DeviceInfo:
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None


class Sessions:
    def __init__(self, db: Database, authenticator: PasswordChecker, server_name: str,
                 mail_domain: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self._authenticator = authenticator
        self.server_name = server_name
        self.mail_domain = mail_domain
        self._clock = clock
        self._uia_sessions: dict[str, tuple[str, float]] = {}  # session -> (user, started)
        self._last_seen: dict[tuple[int, str], float] = {}
        self._tokens: dict[str, tuple[Requester, float]] = {}  # token -> (who, valid until)

    # --- login ------------------------------------------------------------------------
    def login_name(self, identifier: object, legacy_user: object = None) -> str:
        """The directory login (or address) an identifier names (spec 5.7.2 identifiers)."""
        if identifier is None and isinstance(legacy_user, str):
            identifier = {"type": "m.id.user", "user": legacy_user}
        if not isinstance(identifier, dict):
            raise InvalidRequest("identifier is missing")
        kind = identifier.get("type")
        if kind == "m.id.user":
            user = identifier.get("user")
            if not isinstance(user, str) or not user:
                raise InvalidRequest("identifier.user is missing")
            if user.startswith("@"):
                try:
                    parsed = UserId.parse(user.lower())
                except InvalidIdentifier as exc:
                    raise InvalidRequest(str(exc)) from None
                if parsed.server != self.server_name:
                    raise Forbidden(f"{user} does not belong to this server")
                return parsed.localpart
            return user
        if kind == "m.id.thirdparty":
            if identifier.get("medium") != "email" or not isinstance(
                    identifier.get("address"), str):
                raise InvalidRequest("only e-mail addresses are known here")
            return identifier["address"]  # login@domain: the authenticator resolves it
        raise InvalidRequest(f"unsupported identifier type {kind!r}")

    async def login(self, login: str, password: str, *, device_id: str | None,
                    display_name: str | None, client_ip: str) -> LoginResult:
        account = await self._authenticator.authenticate(login, password, client_ip)
        device_id = device_id or new_device_id()
        token = "shm_" + secrets.token_urlsafe(32)
        async with self.db.write() as session:
            await device_store.ensure_device(session, account.id, device_id, display_name)
            await device_store.add_token(session, account.id, device_id, token)
        user_id = user_id_for(account.login, self.server_name)
        log.info("event=matrix_login user=%s device=%s ip=%s", user_id, device_id, client_ip)
        return LoginResult(user_id, token, device_id)

    async def requester(self, token: str, client_ip: str | None = None) -> Requester:
        cached = self._tokens.get(token)
        now = self._clock()
        if cached is not None and now < cached[1]:
            return cached[0]
        # Two one-hop statements, not an ORM session (thousands of long-polls re-check).
        found = await device_store.token_device(self.db, token)
        if found is None:
            raise UnknownToken("unknown access token")
        account_id, device_id = found
        try:
            account = await account_by_id(self.db, account_id)
        except NotFound:
            raise UnknownToken("unknown access token") from None
        if not account.is_active:
            raise UnknownToken("the account is not active")
        who = Requester(user_id_for(account.login, self.server_name), account, device_id)
        if len(self._tokens) >= TOKEN_CACHE_SIZE:
            self._tokens.clear()
        # Each entry lives between half and all of TOKEN_CACHE_SECONDS: tokens first seen
        # together (clients reconnecting after a restart) do not all expire together
        # and queue their look-ups behind each other.
        self._tokens[token] = (who, now + TOKEN_CACHE_SECONDS * (0.5 + random.random() / 2))
        return who

    def forget_account(self, account_id: int) -> None:
        """Drop the account's cached tokens (an erasure deleted its devices)."""
        self._forget_tokens(account_id)

    def _forget_tokens(self, account_id: int, device_ids: list[str] | None = None) -> None:
        for token, (who, _at) in list(self._tokens.items()):
            if who.account_id == account_id and (device_ids is None
                                                 or who.device_id in device_ids):
                del self._tokens[token]

    async def seen(self, requester: Requester, client_ip: str | None) -> None:
        key, now = (requester.account_id, requester.device_id), self._clock()
        if now - self._last_seen.get(key, -SEEN_INTERVAL_SECONDS) < SEEN_INTERVAL_SECONDS:
            return
        self._last_seen[key] = now
        if len(self._last_seen) > 100_000:
            self._last_seen.clear()
        async with self.db.write() as session:
            await device_store.touch_device(session, requester.account_id, requester.device_id,
                                            dt.datetime.now(dt.UTC), client_ip)

    async def logout(self, token: str) -> None:
        self._tokens.pop(token, None)
        async with self.db.write() as session:
            found = await device_store.token_owner(session, token)
            if found is not None:
                # Logging out ends the device (spec 5.7.3): its keys and txn ids go too.
                await device_store.delete_devices(session, found[1].account_id,
                                                  [found[1].device_id])

    async def logout_all(self, requester: Requester) -> None:
        async with self.db.write() as session:
            await device_store.delete_devices(session, requester.account_id)
        self._forget_tokens(requester.account_id)

    # --- devices ------------------------------------------------------------------
    async def devices(self, requester: Requester) -> list[DeviceInfo]:
        async with self.db.read() as session:
            rows = await device_store.list_devices(session, requester.account_id)
        return [DeviceInfo(r.device_id, r.display_name,
                           int(r.last_seen.timestamp() * 1000) if r.last_seen else None,
                           r.last_seen_ip) for r in rows]

    async def device(self, requester: Requester, device_id: str) -> DeviceInfo:
        for info in await self.devices(requester):
            if info.device_id == device_id:
                return info
        raise RoomNotFound(f"unknown device {device_id}")

    async def rename_device(self, requester: Requester, device_id: str,
                            display_name: str | None) -> None:
        async with self.db.write() as session:
            row = await device_store.get_device(session, requester.account_id, device_id)
            if row is None:
                raise RoomNotFound(f"unknown device {device_id}")
            if display_name is not None:
                row.display_name = display_name

    async def delete_devices(self, requester: Requester, device_ids: list[str],
                             auth: object, client_ip: str) -> None:
        await self.check_user_interactive_auth(requester, auth, client_ip)
        async with self.db.write() as session:
            await device_store.delete_devices(session, requester.account_id, device_ids)
        self._forget_tokens(requester.account_id, device_ids)
        log.info("event=matrix_devices_deleted user=%s count=%d", requester.user_id,
                 len(device_ids))

    async def log_out_other_devices(self, requester: Requester) -> list[str]:
        """Delete every device of the account but the requester's (after a password
        change, spec "Password management": ``logout_devices``)."""
        async with self.db.write() as session:
            rows = await device_store.list_devices(session, requester.account_id)
            others = [r.device_id for r in rows if r.device_id != requester.device_id]
            if others:
                await device_store.delete_devices(session, requester.account_id, others)
        self._forget_tokens(requester.account_id, others)
        return others

    # --- user-interactive auth (m.login.password only) ------------------------------
    def _new_uia_session(self, user_id: str) -> str:
        now = self._clock()
        for key in [k for k, (_u, t) in self._uia_sessions.items()
                    if now - t > UIA_SESSION_SECONDS]:
            del self._uia_sessions[key]
        session = secrets.token_urlsafe(16)
        self._uia_sessions[session] = (user_id, now)
        return session

    async def check_user_interactive_auth(self, requester: Requester, auth: object,
                                          client_ip: str) -> None:
        """Pass, or raise ``AuthRequired`` (spec 5.4: 401 with flows; M_FORBIDDEN on failure)."""
        if not isinstance(auth, dict) or "type" not in auth:
            raise AuthRequired(self._new_uia_session(requester.user_id))
        session = auth.get("session")
        if not isinstance(session, str):
            raise AuthRequired(self._new_uia_session(requester.user_id))
        known = self._uia_sessions.get(session)
        if known is None or known[0] != requester.user_id:
            raise AuthRequired(self._new_uia_session(requester.user_id))
        if auth.get("type") != "m.login.password" or not isinstance(auth.get("password"), str):
            raise AuthRequired(session, "only m.login.password is offered")
        login = self.login_name(auth.get("identifier"), auth.get("user"))
        try:
            account = await self._authenticator.authenticate(login, auth["password"], client_ip)
        except AuthenticationFailed:
            raise AuthRequired(session, "invalid password") from None
        if account.id != requester.account_id:
            raise AuthRequired(session, "you can only authenticate as yourself")
        del self._uia_sessions[session]
