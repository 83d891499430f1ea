"""The requests the rooms make to other servers (Server-Server API "Joining
Rooms", "Inviting to a room", "Leaving Rooms", "Retrieving events"), over
``federation.matrix.client``: typed arguments in, JSON objects out, every
failure a ``RemoteRefused`` with the other server's reason."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from federation.matrix.errors import FederationRequestError


class Transport(Protocol):
    """``federation.matrix.client.FederationClient``."""

    origin: str

    async def request(self, method: str, server_name: str, path: str, *,
                      query: Mapping[str, str] | None = None, content: Any = None,
                      signed: bool = True) -> Any: ...


class RemoteRefused(Exception):
    """The other server could not be reached, refused, or answered nonsense."""

    def __init__(self, message: str, status: int | None = None,
                 errcode: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class RemoteRooms:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self.origin = transport.origin

    async def _call(self, method: str, server: str, path: str, *,
                    query: Mapping[str, str] | None = None, content: Any = None
                    ) -> dict[str, Any]:
        try:
            answer = await self._transport.request(method, server, path, query=query,
                                                   content=content)
        except FederationRequestError as exc:
            reason = exc.body.get("error") if isinstance(exc.body.get("error"), str) else None
            raise RemoteRefused(reason or str(exc), exc.status, exc.errcode) from exc
        if not isinstance(answer, dict):
            raise RemoteRefused(f"{server} answered with something not an object")
        return answer

    async def make_membership(self, server: str, kind: str, room_id: str, user_id: str,
                              versions: Sequence[str]) -> dict[str, Any]:
        """``GET /v1/make_join`` or ``/v1/make_leave``: the event template and version."""
        query = {"ver": versions[0]} if kind == "join" and len(versions) == 1 else None
        path = f"/_matrix/federation/v1/make_{kind}/{_q(room_id)}/{_q(user_id)}"
        if kind == "join" and len(versions) > 1:
            path += "?" + "&".join(f"ver={_q(v)}" for v in versions)
            query = None
        return await self._call("GET", server, path, query=query)

    async def send_membership(self, server: str, kind: str, room_id: str, event_id: str,
                              pdu: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /v2/send_join`` or ``/v2/send_leave``."""
        return await self._call(
            "PUT", server, f"/_matrix/federation/v2/send_{kind}/{_q(room_id)}/{_q(event_id)}",
            content=dict(pdu))

    async def invite(self, server: str, room_id: str, event_id: str, pdu: Mapping[str, Any],
                     room_version: str, invite_room_state: Sequence[Mapping[str, Any]]
                     ) -> dict[str, Any]:
        return await self._call(
            "PUT", server, f"/_matrix/federation/v2/invite/{_q(room_id)}/{_q(event_id)}",
            content={"event": dict(pdu), "room_version": room_version,
                     "invite_room_state": list(invite_room_state)})

    async def query_directory(self, server: str, alias: str) -> dict[str, Any]:
        """``GET /v1/query/directory``: the room an alias of ``server`` names."""
        return await self._call("GET", server, "/_matrix/federation/v1/query/directory",
                                query={"room_alias": alias})

    async def get_missing_events(self, server: str, room_id: str, earliest: Sequence[str],
                                 latest: Sequence[str], limit: int, min_depth: int
                                 ) -> list[Any]:
        answer = await self._call(
            "POST", server, f"/_matrix/federation/v1/get_missing_events/{_q(room_id)}",
            content={"earliest_events": list(earliest), "latest_events": list(latest),
                     "limit": limit, "min_depth": min_depth})
        events = answer.get("events")
        return events if isinstance(events, list) else []

    async def backfill(self, server: str, room_id: str, start: Sequence[str], limit: int
                       ) -> list[Any]:
        """``GET /v1/backfill``: the events ``start`` names and those before them."""
        path = (f"/_matrix/federation/v1/backfill/{_q(room_id)}?limit={int(limit)}&"
                + "&".join(f"v={_q(e)}" for e in start))
        answer = await self._call("GET", server, path)
        events = answer.get("pdus")
        return events if isinstance(events, list) else []

    async def event_auth(self, server: str, room_id: str, event_id: str) -> list[Any]:
        answer = await self._call(
            "GET", server, f"/_matrix/federation/v1/event_auth/{_q(room_id)}/{_q(event_id)}")
        chain = answer.get("auth_chain")
        return chain if isinstance(chain, list) else []
