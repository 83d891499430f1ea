"""Hypothesis state machine: a user's sliding sync room lists (MSC4186) agree with
what /v3/sync tells the same user, after random room creations, sends,
invites, joins and leaves by several users.

The observer keeps one sliding sync connection and one /v3/sync ``since``
for the whole run (both incremental after the first request) and builds its
view of the rooms only from what the responses say, as a client must:

* the joined list (``is_invite: false``) is exactly /v3's ``rooms.join`` and
  its order is by recency (the model's last create/send per room);
* the invite list is exactly /v3's ``rooms.invite``;
* a room the observer left comes once more with the leave, then is gone;
* the newest message per joined room is the same in both views.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conf.app import School
from directory.model import Role
from messenger.server import MatrixServer
from tests.support.properties import examples
from tests.support.schools import make_settings

PASSWORD = "correct horse battery"
V3 = "/_matrix/client/v3"
SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
USERS = ("beobachter", "lehrer", "kollegin")
LISTS = {"joined": {"ranges": [[0, 99]], "timeline_limit": 20,
                    "filters": {"is_invite": False},
                    "required_state": [["m.room.member", "$ME"]]},
         "invites": {"ranges": [[0, 99]], "timeline_limit": 0,
                     "filters": {"is_invite": True}}}


class BackgroundSchool:
    """A school and an HTTP client session served from an event loop in another thread."""

    def __init__(self, settings_: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.school: School = self.run(self._open(settings_))
        server = next(s for s in self.school.services if isinstance(s, MatrixServer))
        self.base = server.base_url
        self.domain = server.server_name
        self.http: aiohttp.ClientSession = self.run(self._session())
        self.tokens: dict[str, str] = {}
        self.logins: dict[str, str] = {}
        self.generation = 0

    def fresh_users(self) -> None:
        """New accounts for the roles in USERS: each example starts with no rooms."""
        self.generation += 1
        self.logins = {u: f"{u}{self.generation}" for u in USERS}
        self.tokens = {u: self.run(self._account(login)) for u, login in self.logins.items()}

    async def _account(self, login: str) -> str:
        await self.school.directory.create_account(role=Role.TEACHER, login=login,
                                                   password=PASSWORD)
        return await self._login(login)

    async def _open(self, settings_: Any) -> School:
        school = await School.open(settings_, migrate=False)
        await school.start()
        return school

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    async def _login(self, user: str) -> str:
        status, data = await self._call(None, "POST", f"{V3}/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": PASSWORD})
        assert status == 200, data
        return data["access_token"]

    async def _call(self, token: str | None, method: str, path: str, body: Any = None,
                    params: dict[str, str] | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.base + path, json=body, params=params,
                                     headers=headers) as r:
            return r.status, await r.json()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def call(self, user: str, method: str, path: str, body: Any = None,
             params: dict[str, str] | None = None) -> Any:
        status, data = self.run(self._call(self.tokens[user], method, path, body, params))
        assert status == 200, (method, path, status, data)
        return data

    def mxid(self, user: str) -> str:
        return f"@{self.logins[user]}:{self.domain}"

    def close(self) -> None:
        self.run(self.http.close())
        self.run(self.school.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class RoomLists(RuleBasedStateMachine):
    env: BackgroundSchool
    rooms = Bundle("rooms")

    def __init__(self) -> None:
        super().__init__()
        self.env.fresh_users()
        self.serial = 0
        self.members: dict[str, dict[str, str]] = {}  # room -> user -> join/invite
        self.bumped: dict[str, int] = {}  # room -> model time of its last create/send
        self.last_body: dict[str, str] = {}
        self.left_since_check: set[str] = set()
        # The observer's two views, built from responses only.
        self.pos: str | None = None
        self.since: str | None = None
        self.v3_join: set[str] = set()
        self.v3_invite: set[str] = set()
        self.v3_last: dict[str, str] = {}
        self.ss_last: dict[str, str] = {}

    def _tick(self) -> int:
        self.serial += 1
        return self.serial

    # --- actions ----------------------------------------------------------------------
    @rule(target=rooms, creator=st.sampled_from(USERS[1:]), invite=st.booleans())
    def create(self, creator: str, invite: bool) -> Any:
        env = self.env
        body = {"invite": [env.mxid("beobachter")] if invite else []}
        room_id = env.call(creator, "POST", f"{V3}/createRoom", body)["room_id"]
        self.members[room_id] = {creator: "join"}
        if invite:
            self.members[room_id]["beobachter"] = "invite"
        self.bumped[room_id] = self._tick()
        return room_id

    @rule(room=rooms, who=st.sampled_from(USERS))
    def send(self, room: str, who: str) -> None:
        if self.members[room].get(who) != "join":
            return
        self.serial += 1
        text = f"n{self.serial}"
        self.env.call(who, "PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/"
                                  f"{text}-{time.monotonic_ns()}",
                      {"msgtype": "m.text", "body": text})
        self.bumped[room] = self._tick()
        self.last_body[room] = text

    @rule(room=rooms, who=st.sampled_from(USERS))
    def invite_or_join(self, room: str, who: str) -> None:
        state = self.members[room]
        if state.get(who) == "join":
            return
        if who == "beobachter":
            self.left_since_check.discard(room)  # back before the check: no leave to see
        if state.get(who) == "invite":
            self.env.call(who, "POST", f"{V3}/join/{quote(room)}")
            state[who] = "join"
            return
        inviter = next((u for u, m in state.items() if m == "join"), None)
        if inviter is None:
            return  # everyone left: the room is dead
        self.env.call(inviter, "POST", f"{V3}/rooms/{quote(room)}/invite",
                      {"user_id": self.env.mxid(who)})
        state[who] = "invite"

    @rule(room=rooms, who=st.sampled_from(USERS))
    def leave(self, room: str, who: str) -> None:
        state = self.members[room]
        if who not in state:
            return
        self.env.call(who, "POST", f"{V3}/rooms/{quote(room)}/leave")
        del state[who]
        if who == "beobachter":
            self.left_since_check.add(room)

    # --- the observer's views ---------------------------------------------------------
    def _v3_sync(self) -> None:
        params = {"timeout": "0"}
        if self.since:
            params["since"] = self.since
        data = self.env.call("beobachter", "GET", f"{V3}/sync", params=params)
        self.since = data["next_batch"]
        rooms = data["rooms"]
        for room_id, room in rooms["join"].items():
            self.v3_join.add(room_id)
            self.v3_invite.discard(room_id)
            texts = [e["content"]["body"] for e in room["timeline"]["events"]
                     if e["type"] == "m.room.message"]
            if texts:
                self.v3_last[room_id] = texts[-1]
        for room_id in rooms["invite"]:
            self.v3_invite.add(room_id)
            self.v3_join.discard(room_id)
        for room_id in rooms["leave"]:
            self.v3_join.discard(room_id)
            self.v3_invite.discard(room_id)
            self.v3_last.pop(room_id, None)

    def _sliding(self) -> dict[str, Any]:
        params = {"timeout": "0"}
        if self.pos:
            params["pos"] = self.pos
        data = self.env.call("beobachter", "POST", SS, {"lists": LISTS}, params=params)
        self.pos = data["pos"]
        for room_id, room in data["rooms"].items():
            texts = [e["content"]["body"] for e in room.get("timeline", [])
                     if e["type"] == "m.room.message"]
            if texts:
                self.ss_last[room_id] = texts[-1]
        return data

    @staticmethod
    def _ids(data: dict[str, Any], name: str) -> list[str]:
        return [r for op in data["lists"][name].get("ops", []) for r in op["room_ids"]]

    @precondition(lambda self: bool(self.members))
    @rule()
    def compare(self) -> None:
        self._v3_sync()
        first = self._sliding()
        me = self.env.mxid("beobachter")
        for room_id in self.left_since_check:
            # Reported once with the leave (unless it was never sent as joined).
            room = first["rooms"].get(room_id)
            if room is not None and room_id in self._ids(first, "joined"):
                events = room.get("timeline", []) + room.get("required_state", [])
                mine = [e for e in events if e["type"] == "m.room.member"
                        and e["state_key"] == me]
                assert mine and mine[-1]["content"]["membership"] == "leave", room
        self.left_since_check.clear()
        data = self._sliding()
        joined, invites = self._ids(data, "joined"), self._ids(data, "invites")
        assert set(joined) == self.v3_join, (joined, self.v3_join)
        assert set(invites) == self.v3_invite, (invites, self.v3_invite)
        assert data["lists"]["joined"]["count"] == len(joined)
        assert joined == sorted(joined, key=lambda r: -self.bumped[r]), "recency order"
        expected = {r: self.members[r].get("beobachter") for r in self.members}
        assert self.v3_join == {r for r, m in expected.items() if m == "join"}
        assert self.v3_invite == {r for r, m in expected.items() if m == "invite"}
        for room_id in self.v3_join:
            assert self.ss_last.get(room_id) == self.v3_last.get(room_id), room_id
            assert self.v3_last.get(room_id) == self.last_body.get(room_id) \
                or room_id not in self.last_body, room_id


def test_sliding_sync_room_lists_agree_with_v3_sync(tmp_path: Path, database_url: str) -> None:
    env = BackgroundSchool(make_settings(tmp_path / "school", database_url))
    try:
        RoomLists.env = env
        run_state_machine_as_test(RoomLists, settings=settings(
            max_examples=examples(10), stateful_step_count=20, deadline=None,
            suppress_health_check=list(HealthCheck)))
    finally:
        env.close()


pytestmark = [pytest.mark.timeout(600), pytest.mark.hypothesis]
