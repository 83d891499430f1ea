"""This server as the resident server of a room for other servers (Server-Server
API "Joining Rooms" ``make_join``/``send_join`` v2, "Leaving Rooms"
``make_leave``/``send_leave`` v2, "Inviting to a room" ``invite`` v2 on the
invitee's side, and "Retrieving events": ``event``, ``state``, ``state_ids``,
``event_auth``, ``get_missing_events``, ``backfill``).

Every operation takes the authenticated origin server; the HTTP edge
(``messenger.api.federation_rooms``) maps the domain errors to errcodes.
Every request about a room is refused (``Forbidden``) to a server the room's
server ACL denies.  Events and state are only handed to servers with a member in the room, and
``event``, ``backfill`` and ``get_missing_events`` redact the events the asking
server may not see under the room's history visibility (Server-Server API "Room
history visibility"; as Synapse, redacted rather than dropped so the DAG stays whole).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from messenger.events.identifiers import InvalidIdentifier, UserId, parse_room_alias, server_of
from messenger.events.redaction import redact
from messenger.events.room_versions import RoomVersion, UnsupportedRoomVersion, room_version
from messenger.events.signing import EventSignatureError, EventSigner
from messenger.rooms import dag_state
from messenger.rooms.aliases import local_alias_target
from messenger.rooms.auth import check_event
from messenger.rooms.errors import AuthRuleViolation, Forbidden, InvalidRequest, RoomNotFound
from messenger.rooms.lookups import check_server_acl
from messenger.rooms.pdu_checks import MalformedPdu
from messenger.rooms.policy import ChatPolicy
from messenger.rooms.receiving import NotInRoom, RemoteEvents, joined_servers, pdu_for_wire
from messenger.rooms.state import auth_state_keys
from messenger.rooms.visibility import server_visibility_of
from messenger.rooms.writer import RoomWriter
from messenger.storage import dag
from messenger.storage import events as store

log = logging.getLogger("schulhof.messenger.federation")

MAX_BACKFILL = 100
MAX_MISSING = 20
MAX_INVITE_STATE_BYTES = 64 * 1024


class IncompatibleVersion(Exception):
    """The joining server does not support the room's version (M_INCOMPATIBLE_ROOM_VERSION)."""

    def __init__(self, version: str) -> None:
        super().__init__(f"the room has version {version}")
        self.version = version


class ResidentRooms:
    def __init__(self, writer: RoomWriter, events: RemoteEvents, policy: ChatPolicy,
                 signer: EventSigner | None) -> None:
        self._writer = writer
        self._events = events
        self._policy = policy
        self._signer = signer
        self.server_name = events.server_name

    async def query_directory(self, origin: str, alias: str) -> dict[str, Any]:
        """Server-Server API "Room aliases" (``GET /query/directory``): the room one
        of our aliases names and the servers holding it, ours first."""
        try:
            _local, server = parse_room_alias(alias)
        except InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None
        if server != self.server_name:
            raise RoomNotFound(f"{alias} is not an alias of {self.server_name}")
        async with self._writer.db.read() as session:
            target = await local_alias_target(session, alias, self.server_name)
        if target is None:
            raise RoomNotFound(f"unknown room alias {alias}")
        log.info("event=alias_queried origin=%s alias=%s room=%s", origin, alias,
                 target.room_id)
        return {"room_id": target.room_id, "servers": list(target.servers)}

    async def _version(self, room_id: str) -> RoomVersion:
        try:
            return await self._events.room_version_of(room_id)
        except NotInRoom as exc:
            raise RoomNotFound(str(exc)) from None

    # --- make_join / make_leave ------------------------------------------------------------
    async def make_membership(self, origin: str, kind: str, room_id: str, user_id: str,
                              versions: Sequence[str]) -> dict[str, Any]:
        if server_of(user_id) != origin:
            raise Forbidden(f"{origin} cannot {kind} for {user_id}")
        version = await self._version(room_id)
        await self._check_acl(origin, room_id)
        if kind == "join" and version.identifier not in versions:
            raise IncompatibleVersion(version.identifier)
        content = {"membership": kind}
        async with self._writer.transaction() as write:
            head = await self._writer.head(write, room_id)
            keys = auth_state_keys("m.room.member", user_id, user_id, content)
            state = {k: head.state[k] for k in keys if k in head.state}
            template = self._writer.build_event(version, room_id, state, head.prev_events(),
                                                user_id, "m.room.member", content, user_id)
            try:
                check_event(template, state, version)
            except AuthRuleViolation as exc:
                raise Forbidden(str(exc)) from None
        return {"event": template, "room_version": version.identifier}

    # --- send_join / send_leave -------------------------------------------------------------
    async def send_membership(self, origin: str, kind: str, room_id: str, event_id: str,
                              pdu: Mapping[str, Any]) -> dict[str, Any]:
        version = await self._version(room_id)
        await self._check_acl(origin, room_id)
        content = pdu.get("content")
        sender = pdu.get("sender")
        if pdu.get("type") != "m.room.member" or not isinstance(sender, str) \
                or pdu.get("state_key") != sender or server_of(sender) != origin \
                or not isinstance(content, Mapping) or content.get("membership") != kind:
            raise InvalidRequest(f"not a {kind} of a user of {origin}")
        try:
            checked = await self._events.check(pdu, version, room_id)
        except (MalformedPdu, EventSignatureError) as exc:
            raise InvalidRequest(str(exc)) from None
        if checked.event_id != event_id:
            raise InvalidRequest("the event id does not match the event")
        async with self._writer.db.read() as session:
            residents = await joined_servers(session, room_id)
        relay = frozenset(residents - {origin, self.server_name})
        outcome = await self._events.process(origin, checked, fetch_missing=False,
                                             relay_to=relay)
        if outcome.status in ("rejected", "soft_failed"):
            raise Forbidden(f"the {kind} is not allowed: {outcome.reason}")
        log.info("event=remote_%s room=%s user=%s outcome=%s", kind, room_id, sender,
                 outcome.status)
        if kind == "leave":
            return {}
        async with self._writer.db.read() as session:
            before = outcome.state_before or await self._state_before(session, room_id,
                                                                      checked.pdu)
            state = await dag_state.events_by_id(session, before.values())
            chain = await dag_state.with_auth_chains(session, [*before.values(), event_id])
            servers = await joined_servers(session, room_id)
        auth_chain = [pdu_for_wire(e) for i, e in chain.items() if i not in state
                      and i != event_id]
        return {"origin": self.server_name, "members_omitted": False,
                "state": [pdu_for_wire(e) for e in state.values()],
                "auth_chain": auth_chain + [pdu_for_wire(e) for e in state.values()],
                "event": pdu_for_wire(checked.pdu), "servers_in_room": sorted(servers)}

    @staticmethod
    async def _state_before(session: Any, room_id: str, pdu: Mapping[str, Any]
                            ) -> dict[tuple[str, str], str]:
        version = room_version((await store.room(session, room_id)).room_version)  # type: ignore[union-attr]
        states = [s for p in pdu.get("prev_events") or []
                  if (s := await dag_state.state_after(session, room_id, p)) is not None]
        return await dag_state.resolve(session, version, states)

    # --- invite (we are the invitee's server) --------------------------------------------
    async def invite(self, origin: str, room_id: str, event_id: str,
                     body: Mapping[str, Any]) -> dict[str, Any]:
        pdu = body.get("event")
        try:
            version = room_version(str(body.get("room_version", "")))
        except UnsupportedRoomVersion:
            raise IncompatibleVersion(str(body.get("room_version"))) from None
        if not isinstance(pdu, Mapping):
            raise InvalidRequest("event is missing")
        sender, target = pdu.get("sender"), pdu.get("state_key")
        content = pdu.get("content")
        if pdu.get("type") != "m.room.member" or not isinstance(content, Mapping) \
                or content.get("membership") != "invite" or not isinstance(sender, str) \
                or not isinstance(target, str) or pdu.get("room_id") != room_id:
            raise InvalidRequest("not an invite")
        if server_of(sender) != origin:
            raise Forbidden(f"{origin} cannot invite in the name of {sender}")
        await self._check_acl(origin, room_id)  # a room known here: its ACL counts
        try:
            if UserId.parse(target).server != self.server_name:
                raise InvalidRequest(f"{target} is not a user of {self.server_name}")
        except InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None
        invitee = await self._policy.local_account(target)
        await self._policy.check_remote_inviter(invitee, target, sender)
        try:
            checked = await self._events.check(pdu, version, room_id)
        except (MalformedPdu, EventSignatureError) as exc:
            raise InvalidRequest(str(exc)) from None
        if checked.event_id != event_id:
            raise InvalidRequest("the event id does not match the event")
        signed = dict(checked.pdu)
        if self._signer is not None:
            signed = self._signer.sign(signed, version)
        stripped = body.get("invite_room_state")
        if not isinstance(stripped, list) or \
                len(json.dumps(stripped)) > MAX_INVITE_STATE_BYTES:
            stripped = []
        await self._store_invite(version, room_id, signed, event_id, stripped)
        log.info("event=remote_invite room=%s sender=%s target=%s", room_id, sender, target)
        return {"event": pdu_for_wire(signed)}

    async def _store_invite(self, version: RoomVersion, room_id: str, pdu: dict[str, Any],
                            event_id: str, stripped: list[Any]) -> None:
        async with self._writer.db.read() as session:
            resident = await store.room(session, room_id) is not None and \
                self.server_name in await joined_servers(session, room_id)
        if resident:  # a member here: the room's own rules judge it as any event
            from messenger.rooms.receiving import Checked
            outcome = await self._events.persist(Checked(version, pdu, event_id))
            if outcome.status not in ("accepted", "known"):
                raise Forbidden(f"the invite is not allowed: {outcome.reason}")
            return
        unsigned = dict(pdu.get("unsigned") or {})
        unsigned["invite_room_state"] = [s for s in stripped if isinstance(s, dict)]
        stub = {**pdu, "unsigned": unsigned}
        async with self._writer.transaction() as write:
            session = write.session
            if await dag.known_events(session, [event_id]):
                return
            if await store.room(session, room_id) is None:
                await store.insert_room(session, room_id, version.identifier,
                                        str(pdu["sender"]), False)
            position = await store.max_stream_ordering(session) + 1
            stored = await store.insert_event(session, stub, event_id, position)
            write.publish(stored)
            write.forget_head(room_id)

    async def _check_acl(self, origin: str, room_id: str) -> None:
        async with self._writer.db.read() as session:
            await check_server_acl(session, room_id, origin)

    # --- retrieving events ------------------------------------------------------------------
    async def _visible_to(self, origin: str, room_id: str) -> None:
        """The origin must have a joined member in the room now (as Synapse's
        ``assert_host_in_room``): a server whose users were only invited, or all left
        or were banned, must not read what was said after (Server-Server API
        "Retrieving events": "the requesting server must be in the room")."""
        async with self._writer.db.read() as session:
            if await store.room(session, room_id) is None:
                raise RoomNotFound(f"{room_id} is not known here")
            await check_server_acl(session, room_id, origin)
            members = await store.room_members(session, room_id, "join")
        if not any(server_of(m.user_id) == origin for m in members):
            raise Forbidden(f"{origin} has no joined member in {room_id}")

    async def _for_server(self, origin: str, room_id: str,
                          pdus: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The events as ``origin`` may see them: those before its users' arrival
        under ``joined``/``invited`` visibility redacted (outliers, which have no
        place in the timeline, too)."""
        version = await self._version(room_id)
        async with self._writer.db.read() as session:
            seen = await server_visibility_of(session, room_id, origin)
            stored = await store.get_events(session, {str(p.get("event_id")) for p in pdus})
        out = []
        for pdu in pdus:
            event = stored.get(str(pdu.get("event_id")))
            if event is None or not seen.visible(event.stream_ordering):
                pdu = redact(pdu, version)
            out.append(pdu_for_wire(pdu))
        return out

    async def event(self, origin: str, event_id: str) -> dict[str, Any]:
        async with self._writer.db.read() as session:
            found = await dag_state.events_by_id(session, [event_id])
        pdu = found.get(event_id)
        if pdu is None:
            raise RoomNotFound(f"unknown event {event_id}")
        room_id = str(pdu.get("room_id"))
        await self._visible_to(origin, room_id)
        return {"pdus": await self._for_server(origin, room_id, [pdu])}

    async def state_ids(self, origin: str, room_id: str, event_id: str
                        ) -> tuple[dict[tuple[str, str], str], set[str]]:
        """The state at (before) ``event_id`` and its auth chain's ids."""
        await self._visible_to(origin, room_id)
        async with self._writer.db.read() as session:
            found = await dag_state.events_by_id(session, [event_id])
            pdu = found.get(event_id)
            if pdu is None or pdu.get("room_id") != room_id:
                raise RoomNotFound(f"unknown event {event_id}")
            state = await self._state_before(session, room_id, pdu)
            chain = await dag_state.auth_chain_ids(session, state.values())
        return state, chain

    async def state(self, origin: str, room_id: str, event_id: str
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        state, chain = await self.state_ids(origin, room_id, event_id)
        async with self._writer.db.read() as session:
            events = await dag_state.events_by_id(session, [*state.values(), *chain])
        return ([pdu_for_wire(events[i]) for i in state.values() if i in events],
                [pdu_for_wire(events[i]) for i in chain if i in events])

    async def event_auth(self, origin: str, room_id: str, event_id: str
                         ) -> list[dict[str, Any]]:
        await self._visible_to(origin, room_id)
        async with self._writer.db.read() as session:
            found = await dag_state.events_by_id(session, [event_id])
            if event_id not in found or found[event_id].get("room_id") != room_id:
                raise RoomNotFound(f"unknown event {event_id}")
            chain = await dag_state.with_auth_chains(session, [event_id])
        chain.pop(event_id, None)
        return [pdu_for_wire(e) for e in sorted(chain.values(), key=lambda e: e["depth"])]

    async def _walk_back(self, room_id: str, start: Sequence[str], stop: set[str],
                         limit: int, min_depth: int, include_start: bool
                         ) -> list[Mapping[str, Any]]:
        """Events before ``start`` along prev_events (breadth first), not past ``stop``."""
        found: dict[str, Mapping[str, Any]] = {}
        async with self._writer.db.read() as session:
            frontier = list(start)
            if not include_start:
                first = await dag_state.events_by_id(session, frontier)
                frontier = [p for e in first.values() for p in e.get("prev_events") or []]
            seen = set(frontier)
            while frontier and len(found) < limit:
                events = await dag_state.events_by_id(session, frontier)
                following: list[str] = []
                for event_id in frontier:
                    event = events.get(event_id)
                    if event is None or event_id in stop or event.get("room_id") != room_id \
                            or int(event.get("depth", 0)) < min_depth:
                        continue
                    found[event_id] = event
                    if len(found) >= limit:
                        break
                    for prev in event.get("prev_events") or []:
                        if prev not in seen:
                            seen.add(prev)
                            following.append(prev)
                frontier = following
        return sorted(found.values(), key=lambda e: (e["depth"], e["event_id"]))

    async def get_missing_events(self, origin: str, room_id: str, body: Mapping[str, Any]
                                 ) -> list[dict[str, Any]]:
        await self._visible_to(origin, room_id)
        earliest = body.get("earliest_events", [])
        latest = body.get("latest_events", [])
        limit = body.get("limit", 10)
        min_depth = body.get("min_depth", 0)
        if not isinstance(earliest, list) or not isinstance(latest, list) \
                or not all(isinstance(e, str) for e in [*earliest, *latest]) \
                or not isinstance(limit, int) or not isinstance(min_depth, int):
            raise InvalidRequest("earliest_events, latest_events, limit, min_depth")
        found = await self._walk_back(room_id, latest[:20], set(earliest),
                                      max(0, min(limit, MAX_MISSING)), min_depth, False)
        return await self._for_server(origin, room_id, found)

    async def backfill(self, origin: str, room_id: str, start: Sequence[str], limit: int
                       ) -> list[dict[str, Any]]:
        await self._visible_to(origin, room_id)
        found = await self._walk_back(room_id, list(start)[:20], set(),
                                      max(0, min(limit, MAX_BACKFILL)), 0, True)
        return await self._for_server(origin, room_id, found)
