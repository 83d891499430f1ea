"""Other servers' verify keys, fetched when needed and kept while valid
(Matrix Server-Server API, "Retrieving server keys").

A key is fetched from its server directly (``GET /_matrix/key/v2/server``) and,
if that fails, through the notary servers the school trusts (``POST
/_matrix/key/v2/query``), whose own signature on the answer is checked with
the notary's key.  Concurrent requests for one server share one fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from federation.matrix.client import FederationClient, FederationRequestError
from federation.matrix.server_keys import InvalidServerKeys, VerifyKey, parse_server_keys
from federation.matrix.signed_json import verify_signature

log = logging.getLogger("schulhof.federation.matrix")

MAX_CACHED_SERVERS = 10_000


class KeyNotFound(Exception):
    """No valid key with that id could be had for that server."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class KeyRing:
    def __init__(self, client: FederationClient, *, notaries: tuple[str, ...] = (),
                 clock_ms: Callable[[], int] = _now_ms) -> None:
        self._client = client
        self._notaries = notaries
        self._clock_ms = clock_ms
        self._keys: dict[str, dict[str, VerifyKey]] = {}
        self._fetching: dict[str, asyncio.Future[None]] = {}

    def remember(self, keys: list[VerifyKey]) -> None:
        for key in keys:
            if len(self._keys) >= MAX_CACHED_SERVERS and key.server_name not in self._keys:
                self._keys.clear()  # a flood of server names: start over, keys are refetchable
            self._keys.setdefault(key.server_name, {})[key.key_id] = key

    def _cached(self, server_name: str, key_id: str, at_ms: int) -> VerifyKey | None:
        key = self._keys.get(server_name, {}).get(key_id)
        return key if key is not None and key.valid_until_ts >= at_ms else None

    async def verify_key(self, server_name: str, key_id: str, *,
                         at_ms: int | None = None) -> str:
        """The public key (unpadded base64) of ``server_name``'s ``key_id``, valid at
        ``at_ms`` (default: now)."""
        at = self._clock_ms() if at_ms is None else at_ms
        key = self._cached(server_name, key_id, at)
        if key is None:
            await self._fetch_once(server_name)
            key = self._cached(server_name, key_id, at)
        if key is None:
            raise KeyNotFound(f"{server_name} {key_id}")
        return key.public_key

    async def _fetch_once(self, server_name: str) -> None:
        running = self._fetching.get(server_name)
        if running is not None:
            await asyncio.shield(running)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fetching[server_name] = future
        try:
            await self._fetch(server_name)
        finally:
            del self._fetching[server_name]
            future.set_result(None)

    async def _fetch_direct(self, server_name: str) -> bool:
        try:
            body = await self._client.request("GET", server_name, "/_matrix/key/v2/server",
                                              signed=False)
            self.remember(parse_server_keys(body, server_name, self._clock_ms()))
            return True
        except (FederationRequestError, InvalidServerKeys) as exc:
            log.info("event=matrix_key_fetch_failed server=%s reason=%s", server_name, exc)
            return False

    async def _fetch(self, server_name: str) -> None:
        if await self._fetch_direct(server_name):
            return
        for notary in self._notaries:
            if notary == server_name:
                continue
            try:
                await self._fetch_from_notary(notary, server_name)
                return
            except (FederationRequestError, InvalidServerKeys, KeyNotFound) as exc:
                log.info("event=matrix_notary_failed notary=%s server=%s reason=%s",
                         notary, server_name, exc)

    async def _fetch_from_notary(self, notary: str, server_name: str) -> None:
        now = self._clock_ms()
        answer = await self._client.request(
            "POST", notary, "/_matrix/key/v2/query",
            content={"server_keys": {server_name: {}}})
        responses = answer.get("server_keys") if isinstance(answer, dict) else None
        if not isinstance(responses, list):
            raise InvalidServerKeys("notary answer without server_keys")
        for body in responses:
            if not isinstance(body, dict) or body.get("server_name") != server_name:
                continue
            keys = parse_server_keys(body, server_name, now)
            notary_signatures = body.get("signatures", {}).get(notary, {})
            for notary_key_id in notary_signatures:
                # The notary's own key only directly: asking notaries about
                # notaries could go round in circles.
                notary_key = self._cached(notary, notary_key_id, now)
                if notary_key is None and await self._fetch_direct(notary):
                    notary_key = self._cached(notary, notary_key_id, now)
                if notary_key is not None and verify_signature(
                        body, notary, notary_key_id, notary_key.public_key):
                    self.remember(keys)
                    return
        raise InvalidServerKeys(f"{notary} vouched for no key of {server_name}")
