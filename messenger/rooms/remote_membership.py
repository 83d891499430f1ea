"""Membership in rooms of other servers, from this server's side (Server-Server
API "Joining Rooms", "Inviting to a room", "Leaving Rooms" / "Rejecting
invites"): joining through ``make_join``/``send_join`` v2, inviting a user of
another server through ``invite`` v2, rejecting an invitation through
``make_leave``/``send_leave`` v2.

A join stores what the resident server hands over: the room's state in the
timeline (so /sync and the client API serve it like any room), the rest of
the auth chain as outliers, then the join itself, whose state group is the
state before it plus the join.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from messenger.events.client_format import stripped_state
from messenger.events.hashing import event_id_for
from messenger.events.identifiers import server_of
from messenger.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, room_version
from messenger.events.signing import EventSignatureError
from messenger.rooms import dag_state
from messenger.rooms.auth import check_event
from messenger.rooms.errors import AuthRuleViolation, Forbidden, RoomNotFound
from messenger.rooms.pdu_checks import MalformedPdu, check_against_auth_events
from messenger.rooms.receiving import Checked, RemoteEvents, joined_servers, pdu_for_wire
from messenger.rooms.remote_requests import RemoteRefused, RemoteRooms
from messenger.rooms.state import auth_event_ids, auth_state_keys
from messenger.rooms.writer import RoomWriter
from messenger.storage import dag
from messenger.storage import events as store

log = logging.getLogger("schulhof.messenger.federation")

MAX_JOIN_STATE_EVENTS = 20_000
INVITE_STATE_TYPES = ("m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
                      "m.room.canonical_alias", "m.room.encryption", "m.room.topic")


def _refused(exc: RemoteRefused, server: str) -> Forbidden | RoomNotFound:
    if exc.status == 404:
        return RoomNotFound(f"{server}: {exc}")
    return Forbidden(f"{server} refused: {exc}")


class RemoteMembership:
    def __init__(self, writer: RoomWriter, events: RemoteEvents, remote: RemoteRooms) -> None:
        self._writer = writer
        self._events = events
        self._remote = remote
        self.server_name = events.server_name

    async def is_resident(self, room_id: str) -> bool:
        """Whether this server holds the room's state to build on: a user of it is
        joined, or the room is known and nobody elsewhere is (a room of ours that
        everybody left).  Otherwise a join or leave goes through another server."""
        async with self._writer.db.read() as session:
            if await store.room(session, room_id) is None:
                return server_of(room_id) == self.server_name
            servers = await joined_servers(session, room_id)
            if self.server_name in servers:
                return True
            # Only an invitation from elsewhere (no create event here) is no state.
            has_state = bool(await store.current_state(session, room_id,
                                                       [("m.room.create", "")]))
        return has_state and not servers

    async def join_servers(self, room_id: str, user_id: str, extra: Sequence[str]) -> list[str]:
        """Where to ask to join: the given servers, the inviter's, the room id's."""
        servers = list(extra)
        async with self._writer.db.read() as session:
            row = await store.membership(session, room_id, user_id)
            if row is not None and row.membership == "invite":
                invite = await store.get_event(session, row.event_id)
                if invite is not None:
                    servers.append(server_of(invite.sender))
        servers.append(server_of(room_id))
        reachable = self._events.federates_with
        return [s for s in dict.fromkeys(servers)
                if s and s != self.server_name and (reachable is None or reachable(s))]

    # --- joining -------------------------------------------------------------------------
    async def join(self, user_id: str, display_name: str | None, room_id: str,
                   servers: Sequence[str]) -> None:
        candidates = await self.join_servers(room_id, user_id, servers)
        if not candidates:
            raise RoomNotFound(f"no server to join {room_id} through")
        last: Exception = RoomNotFound(f"could not join {room_id}")
        for server in candidates:
            try:
                await self._join_via(server, user_id, display_name, room_id)
                return
            except RemoteRefused as exc:
                log.info("event=remote_join_failed server=%s room=%s reason=%r", server,
                         room_id, str(exc))
                last = _refused(exc, server)
                if exc.status == 403:
                    break
        raise last

    async def _template(self, server: str, kind: str, room_id: str, user_id: str
                        ) -> tuple[RoomVersion, dict[str, Any]]:
        answer = await self._remote.make_membership(server, kind, room_id, user_id,
                                                    list(KNOWN_ROOM_VERSIONS))
        try:
            version = room_version(str(answer.get("room_version", "")))
        except ValueError as exc:
            raise RemoteRefused(str(exc)) from None
        event = answer.get("event")
        if not isinstance(event, dict) or event.get("room_id") != room_id \
                or event.get("sender") != user_id or event.get("state_key") != user_id \
                or event.get("type") != "m.room.member" \
                or not isinstance(event.get("content"), dict) \
                or event["content"].get("membership") != kind:
            raise RemoteRefused(f"{server} sent a {kind} template for something else")
        return version, event

    def _finish(self, event: Mapping[str, Any], version: RoomVersion,
                content: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        pdu = {k: v for k, v in event.items() if k not in ("hashes", "signatures", "unsigned",
                                                             "event_id")}
        pdu["content"] = {**pdu["content"], **content}
        pdu["origin_server_ts"] = int(time.time() * 1000)
        pdu = self._writer.finish_event(pdu, version)
        return pdu, event_id_for(pdu, version)

    async def _join_via(self, server: str, user_id: str, display_name: str | None,
                        room_id: str) -> None:
        version, template = await self._template(server, "join", room_id, user_id)
        extra = {"displayname": display_name} if display_name else {}
        pdu, event_id = self._finish(template, version, {"membership": "join", **extra})
        answer = await self._remote.send_membership(server, "join", room_id, event_id, pdu)
        state = answer.get("state")
        chain = answer.get("auth_chain")
        if not isinstance(state, list) or not isinstance(chain, list) \
                or len(state) + len(chain) > MAX_JOIN_STATE_EVENTS:
            raise RemoteRefused(f"{server} sent no usable room state")
        returned = answer.get("event")
        if isinstance(returned, dict):
            try:  # the resident may have added its signature: same event id required
                checked_join = await self._events.check(returned, version, room_id)
                if checked_join.event_id == event_id:
                    pdu = {k: v for k, v in checked_join.pdu.items() if k != "event_id"}
            except (MalformedPdu, EventSignatureError):
                pass
        await self._store_join(version, room_id, {**pdu, "event_id": event_id}, event_id,
                               state, chain)

    async def _store_join(self, version: RoomVersion, room_id: str, join: dict[str, Any],
                          event_id: str, state: list[Any], chain: list[Any]) -> None:
        passed = await self._events.store_outliers([*chain, *state], version, room_id)
        state_ids: dict[tuple[str, str], str] = {}
        for pdu in state:
            if not isinstance(pdu, dict):
                continue
            try:
                state_id = event_id_for({k: v for k, v in pdu.items() if k != "event_id"},
                                        version)
            except (TypeError, ValueError):
                continue
            c = passed.get(state_id)
            if c is not None and isinstance(c.pdu.get("state_key"), str):
                state_ids[(c.pdu["type"], c.pdu["state_key"])] = state_id
        create = state_ids.get(("m.room.create", ""))
        if create is None:
            raise Forbidden("the room state from the resident server lacks the create event")
        async with self._writer.transaction() as write:
            session = write.session
            if await store.room(session, room_id) is None:
                creator = passed[create].pdu["sender"]
                await store.insert_room(session, room_id, version.identifier, creator, False)
            events = await dag_state.events_by_id(session, state_ids.values())
            before = {k: events[i] for k, i in state_ids.items() if i in events}
            try:
                check_against_auth_events(join, await dag_state.events_by_id(
                    session, auth_event_ids(join)), version)
                check_event(join, before, version)
            except AuthRuleViolation as exc:
                raise Forbidden(f"the join does not pass the auth rules: {exc}") from None
            position = await store.max_stream_ordering(session)
            # The state into the timeline (oldest first), so the room reads like any other.
            for event_id_ in sorted(state_ids.values(),
                                    key=lambda i: (events[i]["depth"], i) if i in events
                                    else (0, i)):
                if event_id_ not in events or await store.get_event(session, event_id_):
                    continue
                position += 1
                await dag.drop_outlier(session, event_id_)
                stored = await store.insert_event(session, events[event_id_], event_id_,
                                                  position, update_state=False)
                write.publish(stored)
            after = dict(state_ids)
            after[("m.room.member", join["state_key"])] = event_id
            group = await dag.new_state_group(session, room_id, after)
            position += 1
            stored = await store.insert_event(session, join, event_id, position,
                                              state_group=group, update_state=False)
            old = await dag.forward_extremities(session, room_id)
            await dag.move_extremities(session, room_id, old, [event_id])
            await dag_state.set_current_state(session, room_id, after, position)
            write.publish(stored)
            write.forget_head(room_id)
        log.info("event=remote_room_joined room=%s state=%d", room_id, len(state_ids))

    # --- inviting a user of another server ------------------------------------------------
    async def invite(self, sender: str, room_id: str, target: str,
                     content: Mapping[str, Any]) -> None:
        async with self._writer.transaction() as write:
            head = await self._writer.head(write, room_id)
            keys = auth_state_keys("m.room.member", sender, target, content)
            state = {k: head.state[k] for k in keys if k in head.state}
            built = self._writer.build_event(head.version, room_id, state, head.prev_events(),
                                             sender, "m.room.member", content, target)
            check_event(built, state, head.version)
            version = head.version
            pdu = self._writer.finish_event(built, version)
            invite_state = [stripped_state(head.state[(t, "")]) for t in INVITE_STATE_TYPES
                            if (t, "") in head.state]
            if ("m.room.member", sender) in head.state:
                invite_state.append(stripped_state(head.state[("m.room.member", sender)]))
        event_id = event_id_for(pdu, version)
        try:
            answer = await self._remote.invite(server_of(target), room_id, event_id, pdu,
                                               version.identifier, invite_state)
        except RemoteRefused as exc:
            raise _refused(exc, server_of(target)) from None
        signed = answer.get("event")
        try:
            checked = await self._events.check(signed if isinstance(signed, dict) else {},
                                               version, room_id)
        except (MalformedPdu, EventSignatureError) as exc:
            raise Forbidden(f"{server_of(target)} returned an invalid invite: {exc}") from None
        if checked.event_id != event_id or server_of(target) not in (
                (signed or {}).get("signatures") or {}):
            raise Forbidden(f"{server_of(target)} returned another event")
        residents = await self._residents(room_id, {server_of(target)})
        outcome = await self._events.persist(checked, relay_to=residents)
        if outcome.status not in ("accepted", "known"):
            raise Forbidden(f"the invite was not accepted: {outcome.reason}")

    async def _residents(self, room_id: str, exclude: set[str]) -> frozenset[str]:
        async with self._writer.db.read() as session:
            servers = await joined_servers(session, room_id)
        return frozenset(servers - exclude - {self.server_name})

    # --- rejecting an invitation of another server -----------------------------------------
    async def reject_invite(self, user_id: str, room_id: str, reason: str | None) -> None:
        servers = await self.join_servers(room_id, user_id, [])
        last: Exception = RoomNotFound(f"no server to leave {room_id} through")
        for server in servers:
            try:
                version, template = await self._template(server, "leave", room_id, user_id)
                extra = {"reason": reason} if reason else {}
                pdu, event_id = self._finish(template, version, {"membership": "leave",
                                                                 **extra})
                await self._remote.send_membership(server, "leave", room_id, event_id, pdu)
                break
            except RemoteRefused as exc:
                last = _refused(exc, server)
        else:
            raise last
        async with self._writer.transaction() as write:
            session = write.session
            position = await store.max_stream_ordering(session) + 1
            stored = await store.insert_event(session, {**pdu, "event_id": event_id}, event_id,
                                              position)
            write.publish(stored)
            write.forget_head(room_id)

    @staticmethod
    def wire(pdu: Mapping[str, Any]) -> dict[str, Any]:
        return pdu_for_wire(pdu)


__all__ = ["Checked", "RemoteMembership"]
