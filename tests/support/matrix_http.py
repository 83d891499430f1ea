"""A raw-HTTP Matrix client for tests: every status and body visible, nothing retried
or smoothed over (what an attacker's script or a hand-written client sends)."""

from __future__ import annotations

from typing import Any

import aiohttp

PASSWORD = "correct horse battery"
V3 = "/_matrix/client/v3"


class RawClient:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.token: str | None = None
        self.user_id = ""
        self.device_id = ""

    async def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                   params: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        sent = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        sent.update(headers or {})
        async with self.http.request(method, self.base + path, json=body, data=raw,
                                     params=params, headers=sent) as r:
            data = await r.read()
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, data

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, data = await self.call(method, path, body, **kw)
        assert status == 200, (method, path, status, data)
        return data

    async def login(self, user: str, password: str = PASSWORD) -> RawClient:
        data = await self.ok("POST", f"{V3}/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password})
        self.token, self.user_id, self.device_id = (data["access_token"], data["user_id"],
                                                    data["device_id"])
        return self
