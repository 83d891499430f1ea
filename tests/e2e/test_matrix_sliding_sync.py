"""Simplified sliding sync (MSC4186) over raw HTTP against a running school:
connections and positions, lists and ranges, invites and leaves, room
subscriptions, required_state, the extensions, long-polling and bad input.

The tests of this module (and of test_element_x_requests, which uses these
fixtures) share one running school (``shared_school``, module-scoped: starting
one costs 1-5 s, far more than most tests here) and so one event loop; with
``--dist loadgroup`` they stay on one xdist worker (tests/support/xdist_groups.py).
Each test still starts from nothing: ``base`` makes it its own three teachers
(tests/support/shared_school.py), so no test sees another's rooms, invites,
connections or to-device messages, and their order does not matter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import event as sqlalchemy_event

from conf.app import School
from directory.model import Role
from messenger.server import MatrixServer
from tests.support.schools import make_settings
from tests.support.shared_school import OwnAccounts, running

DOMAIN = "schule.test"
PASSWORD = "correct horse battery"
V3 = "/_matrix/client/v3"
SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

# What Element X's room list asks for (matrix-rust-sdk RoomListService, abridged).
ELEMENT_X_STATE = [["m.room.encryption", ""], ["m.room.member", "$LAZY"],
                   ["m.room.member", "$ME"], ["m.room.name", ""], ["m.room.avatar", ""],
                   ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
                   ["m.room.join_rules", ""], ["m.room.create", ""]]


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.token = ""
        self.user_id = ""
        self.pos: str | None = None
        self.txn = 0

    async def call(self, method: str, path: str, body: Any = None,
                   params: dict[str, str] | None = None,
                   raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.request(method, self.base + path,
                                     json=body if raw is None else None, data=raw,
                                     params=params, headers=headers) as r:
            return r.status, await r.json()

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, data = await self.call(method, path, body, **kw)
        assert status == 200, (method, path, status, data)
        return data

    async def login(self, user: str) -> Client:
        data = await self.ok("POST", f"{V3}/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user",
                                                       "user": account(user)},
            "password": PASSWORD})
        self.token, self.user_id = data["access_token"], data["user_id"]
        return self

    async def sliding(self, body: dict[str, Any], *, pos: str | None = None,
                      timeout: int = 0, keep: bool = True) -> dict[str, Any]:
        params = {"timeout": str(timeout)}
        if pos is not None:
            params["pos"] = pos
        data = await self.ok("POST", SS, body, params=params)
        if keep:
            self.pos = data["pos"]
        return data

    async def next(self, body: dict[str, Any], timeout: int = 0) -> dict[str, Any]:
        return await self.sliding(body, pos=self.pos, timeout=timeout)

    async def room(self, name: str, invite: list[str] = ()) -> str:
        data = await self.ok("POST", f"{V3}/createRoom", {"name": name, "invite": list(invite)})
        return data["room_id"]

    async def send(self, room_id: str, text: str) -> str:
        self.txn += 1
        data = await self.ok("PUT", f"{V3}/rooms/{quote(room_id)}/send/m.room.message/"
                                    f"t{self.txn}-{time.monotonic_ns()}",
                             {"msgtype": "m.text", "body": text})
        return data["event_id"]


def room_list(ranges: list[list[int]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"lists": {"all": {"ranges": ranges or [[0, 99]], "timeline_limit": 1,
                              "required_state": ELEMENT_X_STATE, **extra}}}


def list_ids(data: dict[str, Any], name: str = "all") -> list[str]:
    return [r for op in data["lists"][name]["ops"] for r in op["room_ids"]]


def bodies(room: dict[str, Any]) -> list[str]:
    return [e["content"].get("body") for e in room.get("timeline", [])
            if e["type"] == "m.room.message"]


# Every test of the module runs in the module's event loop, the shared school's.
pytestmark = pytest.mark.asyncio(loop_scope="module")
TEACHERS = ("lehrer", "kollegin", "referendar")
#: The running test's own accounts (tests/support/shared_school.py).
account = OwnAccounts()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_school(tmp_path_factory: pytest.TempPathFactory,
                        module_database_url: str) -> AsyncIterator[School]:
    """One school for the module's tests, every network service listening on loopback."""
    settings = make_settings(tmp_path_factory.mktemp("shared") / "school", module_database_url)
    async with running(settings) as school:
        yield school


@pytest_asyncio.fixture(loop_scope="module")
async def base(shared_school: School) -> AsyncIterator[str]:
    """The Matrix API's URL; this test's own three teachers (see the module docstring)."""
    await account.make(shared_school, ((login, Role.TEACHER) for login in TEACHERS))
    server = next(s for s in shared_school.services if isinstance(s, MatrixServer))
    yield server.base_url
    account.forget()


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def login(http: aiohttp.ClientSession, base: str, user: str) -> Client:
    return await Client(http, base).login(user)


def mxid(login: str) -> str:
    return f"@{account(login)}:{DOMAIN}"


async def test_versions_advertise_simplified_sliding_sync(http: aiohttp.ClientSession,
                                                          base: str) -> None:
    data = await Client(http, base).ok("GET", "/_matrix/client/versions")
    assert data["unstable_features"]["org.matrix.simplified_msc3575"] is True


async def test_initial_room_list_is_sorted_by_recency_with_room_fields(
        http: aiohttp.ClientSession, base: str) -> None:
    lehrer = await login(http, base, "lehrer")
    kollegin = await login(http, base, "kollegin")
    first = await lehrer.room("Erste", [mxid("kollegin")])
    second = await lehrer.room("Zweite")
    await kollegin.ok("POST", f"{V3}/join/{quote(first)}")
    await lehrer.send(first, "neu in der ersten")  # now first is the most recent
    data = await lehrer.sliding(room_list())
    assert list_ids(data) == [first, second]
    assert data["lists"]["all"]["count"] == 2
    room = data["rooms"][first]
    assert room["initial"] is True
    assert room["name"] == "Erste"
    assert room["joined_count"] == 2 and room["invited_count"] == 0
    assert [h["user_id"] for h in room["heroes"]] == [mxid("kollegin")]
    assert room["heroes"][0]["displayname"] == "Kollegin"
    assert bodies(room) == ["neu in der ersten"] and room["limited"] is True
    assert room["prev_batch"] and room["num_live"] == 0
    assert room["bump_stamp"] > data["rooms"][second]["bump_stamp"]
    state = {(e["type"], e["state_key"]) for e in room["required_state"]}
    assert ("m.room.name", "") in state and ("m.room.member", mxid("lehrer")) in state
    assert ("m.room.create", "") in state
    assert ("m.room.topic", "") not in state


async def test_a_new_message_moves_a_room_up_and_arrives_by_long_poll(
        http: aiohttp.ClientSession, base: str) -> None:
    lehrer = await login(http, base, "lehrer")
    kollegin = await login(http, base, "kollegin")
    rooms = [await lehrer.room(f"Raum {n}", [mxid("kollegin")]) for n in range(3)]
    for room_id in rooms:
        await kollegin.ok("POST", f"{V3}/join/{quote(room_id)}")
    body = room_list([[0, 1]])
    data = await kollegin.sliding(body)
    assert list_ids(data) == [rooms[2], rooms[1]]  # the window: the two newest
    assert data["lists"]["all"]["count"] == 3
    waiting = asyncio.create_task(kollegin.next(body, timeout=10_000))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    started = time.monotonic()
    await lehrer.send(rooms[0], "nach oben")
    data = await waiting
    assert time.monotonic() - started < 2
    assert list_ids(data) == [rooms[0], rooms[2]]  # the oldest room moved to the top
    room = data["rooms"][rooms[0]]
    assert bodies(room) == ["nach oben"]
    assert "initial" not in room or room["initial"] is True  # new in the window
    # The next message in a room the client has is incremental: num_live, no initial.
    waiting = asyncio.create_task(kollegin.next(body, timeout=10_000))
    await asyncio.sleep(0.1)
    await lehrer.send(rooms[0], "noch eine")
    data = await waiting
    room = data["rooms"][rooms[0]]
    assert bodies(room) == ["noch eine"] and room["num_live"] == 1
    assert "initial" not in room and room["limited"] is False
    # Nothing new: the long-poll times out with the same pos and no rooms.
    before = kollegin.pos
    data = await kollegin.next(body, timeout=300)
    assert data["rooms"] == {} and data["pos"] == before


async def test_a_long_poll_with_new_parameters_answers_at_once(
        http: aiohttp.ClientSession, base: str) -> None:
    """Nothing new since the pos, but the request widens the range or subscribes to a
    room: the rooms the client now lacks come at once, not after the timeout."""
    lehrer = await login(http, base, "lehrer")
    rooms = [await lehrer.room(f"Raum {n}") for n in range(3)]
    narrow = room_list([[0, 0]])
    data = await lehrer.sliding(narrow)
    assert list(data["rooms"]) == [rooms[2]]
    data = await lehrer.next(narrow, timeout=200)  # nothing new: the same pos
    assert data["rooms"] == {}
    started = time.monotonic()
    data = await lehrer.next(room_list([[0, 1]]), timeout=10_000)
    assert time.monotonic() - started < 5
    assert list(data["rooms"]) == [rooms[1]] and data["rooms"][rooms[1]]["initial"] is True
    started = time.monotonic()
    data = await lehrer.next({**room_list([[0, 1]]), "room_subscriptions": {
        rooms[0]: {"timeline_limit": 1, "required_state": [["m.room.name", ""]]}}},
        timeout=10_000)
    assert time.monotonic() - started < 5
    assert list(data["rooms"]) == [rooms[0]]


async def test_unknown_and_malformed_pos_are_m_unknown_pos(http: aiohttp.ClientSession,
                                                           base: str) -> None:
    lehrer = await login(http, base, "lehrer")
    data = await lehrer.sliding(room_list())
    epoch, serial = data["pos"].split(".")
    for pos in ("garbage", f"{epoch}.{int(serial) + 1000}", f"00000000.{serial}", "", "1" * 80):
        status, error = await lehrer.call("POST", SS, room_list(), params={"pos": pos})
        assert (status, error["errcode"]) == (400, "M_UNKNOWN_POS"), pos
    # Another conn_id is another connection: this pos means nothing there.
    status, error = await lehrer.call("POST", SS, {**room_list(), "conn_id": "other"},
                                      params={"pos": data["pos"]})
    assert (status, error["errcode"]) == (400, "M_UNKNOWN_POS")
    # After a reset (no pos) the old position is gone.
    await lehrer.sliding(room_list())
    status, error = await lehrer.call("POST", SS, room_list(), params={"pos": data["pos"]})
    assert (status, error["errcode"]) == (400, "M_UNKNOWN_POS")


async def test_concurrent_requests_on_one_connection(http: aiohttp.ClientSession,
                                                     base: str) -> None:
    lehrer = await login(http, base, "lehrer")
    room_id = await lehrer.room("Parallel")
    first = await lehrer.sliding(room_list())
    await lehrer.send(room_id, "eins")
    # Two requests with the same pos (a retry while the first is in flight): both answer.
    a, b = await asyncio.gather(lehrer.sliding(room_list(), pos=first["pos"]),
                                lehrer.sliding(room_list(), pos=first["pos"]))
    assert bodies(a["rooms"][room_id]) == ["eins"] == bodies(b["rooms"][room_id])
    # Either answer's pos works next; the first pos works too until one is used.
    await lehrer.send(room_id, "zwei")
    from_a = await lehrer.sliding(room_list(), pos=a["pos"])
    assert bodies(from_a["rooms"][room_id]) == ["zwei"]
    from_b = await lehrer.sliding(room_list(), pos=b["pos"])
    assert bodies(from_b["rooms"][room_id]) == ["zwei"]
    # Using a newer pos acknowledged it: the original pos is forgotten.
    status, error = await lehrer.call("POST", SS, room_list(), params={"pos": first["pos"]})
    assert (status, error["errcode"]) == (400, "M_UNKNOWN_POS")


async def test_invites_and_leaves_in_lists(http: aiohttp.ClientSession, base: str) -> None:
    lehrer = await login(http, base, "lehrer")
    kollegin = await login(http, base, "kollegin")
    body = {"lists": {"invites": {"ranges": [[0, 9]], "filters": {"is_invite": True},
                                  "timeline_limit": 1},
                      "rooms": {"ranges": [[0, 9]], "filters": {"is_invite": False},
                                "timeline_limit": 1,
                                "required_state": [["m.room.member", "$ME"]]}}}
    data = await kollegin.sliding(body)
    assert data["lists"]["invites"]["count"] == 0
    room_id = await lehrer.room("Einladung", [mxid("kollegin")])
    data = await kollegin.next(body, timeout=5000)
    assert list_ids(data, "invites") == [room_id] and list_ids(data, "rooms") == []
    invite = data["rooms"][room_id]
    assert invite["initial"] is True
    kinds = {(e["type"], e.get("state_key")) for e in invite["invite_state"]}
    assert ("m.room.member", mxid("kollegin")) in kinds and ("m.room.name", "") in kinds
    await kollegin.ok("POST", f"{V3}/join/{quote(room_id)}")
    data = await kollegin.next(body, timeout=5000)
    assert list_ids(data, "invites") == [] and list_ids(data, "rooms") == [room_id]
    assert data["rooms"][room_id]["initial"] is True
    assert "timeline" in data["rooms"][room_id]
    await kollegin.ok("POST", f"{V3}/rooms/{quote(room_id)}/leave")
    data = await kollegin.next(body, timeout=5000)
    assert list_ids(data, "rooms") == [room_id]  # once, so the client hears of the leave
    left = data["rooms"][room_id]
    leave_events = [e for e in left.get("timeline", []) + left.get("required_state", [])
                    if e["type"] == "m.room.member" and e["state_key"] == mxid("kollegin")]
    assert leave_events and leave_events[-1]["content"]["membership"] == "leave"
    data = await kollegin.next(body)
    assert list_ids(data, "rooms") == [] and data["lists"]["rooms"]["count"] == 0
    assert room_id not in data["rooms"]


async def test_room_subscriptions_and_required_state(http: aiohttp.ClientSession,
                                                     base: str) -> None:
    lehrer = await login(http, base, "lehrer")
    kollegin = await login(http, base, "kollegin")
    room_id = await lehrer.room("Abo", [mxid("kollegin")])
    await kollegin.ok("POST", f"{V3}/join/{quote(room_id)}")
    for n in range(5):
        await kollegin.send(room_id, f"m{n}")
    hidden = await kollegin.room("Nicht abonniert")
    data = await lehrer.sliding({"room_subscriptions": {
        room_id: {"timeline_limit": 3, "required_state": [["m.room.member", "$LAZY"],
                                                          ["m.room.name", "*"]]},
        hidden: {"timeline_limit": 3},  # not the user's room: ignored
        "!unbekannt:schule.test": {"timeline_limit": 1}}})
    assert set(data["rooms"]) == {room_id}
    room = data["rooms"][room_id]
    assert bodies(room) == ["m2", "m3", "m4"] and room["limited"] is True
    members = {e["state_key"] for e in room["required_state"] if e["type"] == "m.room.member"}
    assert members == {mxid("kollegin")}  # $LAZY: the timeline's senders only
    # wildcards: every state event but members
    data = await lehrer.sliding({"room_subscriptions": {room_id: {
        "timeline_limit": 0, "required_state": [["*", "*"], ["-m.room.member", "*"]]}}})
    types = {e["type"] for e in data["rooms"][room_id]["required_state"]}
    assert {"m.room.create", "m.room.power_levels", "m.room.name"} <= types
    assert "m.room.member" not in types and "timeline" not in data["rooms"][room_id]


async def test_extensions(http: aiohttp.ClientSession, base: str) -> None:
    lehrer = await login(http, base, "lehrer")
    kollegin = await login(http, base, "kollegin")
    room_id = await lehrer.room("Erweiterungen", [mxid("kollegin")])
    await kollegin.ok("POST", f"{V3}/join/{quote(room_id)}")
    event_id = await lehrer.send(room_id, "gelesen?")
    await kollegin.ok("POST", f"{V3}/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}",
                      {})
    await lehrer.ok("PUT", f"{V3}/user/{quote(lehrer.user_id)}/account_data/m.direct",
                    {mxid("kollegin"): [room_id]})
    extensions = {"to_device": {"enabled": True}, "e2ee": {"enabled": True},
                  "account_data": {"enabled": True}, "receipts": {"enabled": True},
                  "typing": {"enabled": True}}
    body = {**room_list(), "extensions": extensions}
    data = await lehrer.sliding(body)
    ext = data["extensions"]
    assert {"type": "m.direct", "content": {mxid("kollegin"): [room_id]}} \
        in ext["account_data"]["global"]
    receipts = ext["receipts"]["rooms"][room_id]
    assert receipts["type"] == "m.receipt"
    assert mxid("kollegin") in receipts["content"][event_id]["m.read"]
    assert ext["e2ee"]["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert ext["e2ee"]["device_unused_fallback_key_types"] == []
    assert ext["to_device"]["events"] == [] and ext["to_device"]["next_batch"]
    # typing arrives by long-poll
    waiting = asyncio.create_task(lehrer.next(body, timeout=5000))
    await asyncio.sleep(0.1)
    await kollegin.ok("PUT", f"{V3}/rooms/{quote(room_id)}/typing/{quote(kollegin.user_id)}",
                      {"typing": True, "timeout": 5000})
    data = await waiting
    assert data["extensions"]["typing"]["rooms"][room_id]["content"]["user_ids"] \
        == [mxid("kollegin")]


async def test_to_device_since_and_acknowledgement(http: aiohttp.ClientSession,
                                                   base: str) -> None:
    lehrer = await login(http, base, "lehrer")
    kollegin = await login(http, base, "kollegin")
    status, who = await kollegin.call("GET", f"{V3}/account/whoami")
    device = who["device_id"]

    async def send_to_device(n: int) -> None:
        await lehrer.ok("PUT", f"{V3}/sendToDevice/m.test/td{n}-{time.monotonic_ns()}",
                        {"messages": {kollegin.user_id: {device: {"n": n}}}})

    await send_to_device(1)
    await send_to_device(2)
    ext = {"extensions": {"to_device": {"enabled": True, "limit": 1}}}
    data = await kollegin.sliding(ext)
    first = data["extensions"]["to_device"]
    assert [e["content"]["n"] for e in first["events"]] == [1]
    data = await kollegin.next({"extensions": {"to_device": {
        "enabled": True, "since": first["next_batch"]}}})
    second = data["extensions"]["to_device"]
    assert [e["content"]["n"] for e in second["events"]] == [2]
    # A new connection with the old since gets what came after it again (not yet acked).
    data = await kollegin.sliding({"extensions": {"to_device": {
        "enabled": True, "since": first["next_batch"]}}})
    assert [e["content"]["n"] for e in data["extensions"]["to_device"]["events"]] == [2]
    # Acknowledged with the newest since: nothing again; a new message by long-poll.
    waiting = asyncio.create_task(kollegin.next({"extensions": {"to_device": {
        "enabled": True, "since": second["next_batch"]}}}, timeout=5000))
    await asyncio.sleep(0.1)
    await send_to_device(3)
    data = await waiting
    assert [e["content"]["n"] for e in data["extensions"]["to_device"]["events"]] == [3]
    status, error = await kollegin.call("POST", SS, {"extensions": {"to_device": {
        "enabled": True, "since": "x1"}}})
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")


@pytest.mark.parametrize("body", [
    [],
    {"lists": []},
    {"lists": {"a": {"ranges": [[5, 1]]}}},
    {"lists": {"a": {"ranges": [[0]]}}},
    {"lists": {"a": {"ranges": [[0, -1]]}}},
    {"lists": {"a": {"ranges": [[0, 2**40]]}}},
    {"lists": {"a": {"ranges": [[0, "9"]]}}},
    {"lists": {"a": {"timeline_limit": -1}}},
    {"lists": {"a": {"timeline_limit": True}}},
    {"lists": {"a": {"required_state": [["m.room.name"]]}}},
    {"lists": {"a": {"required_state": "all"}}},
    {"lists": {"a": {"filters": {"is_dm": "yes"}}}},
    {"lists": {"a": {"filters": {"tags": "m.favourite"}}}},
    {"lists": {"": {"ranges": [[0, 1]]}}},
    {"lists": {"x" * 65: {"ranges": [[0, 1]]}}},
    {"room_subscriptions": {"!a:b": {"timeline_limit": "5"}}},
    {"room_subscriptions": {f"!r{n}:schule.test": {} for n in range(1001)}},
    {"extensions": {"to_device": {"enabled": "true"}}},
    {"extensions": {"to_device": {"limit": 0}}},
    {"conn_id": 5},
])
async def test_bad_request_bodies_are_m_invalid_param(http: aiohttp.ClientSession, base: str,
                                                      body: Any) -> None:
    lehrer = await login(http, base, "lehrer")
    status, error = await lehrer.call("POST", SS, body)
    assert status == 400 and error["errcode"] in ("M_INVALID_PARAM", "M_BAD_JSON"), error


async def test_odd_but_valid_input(http: aiohttp.ClientSession, base: str) -> None:
    lehrer = await login(http, base, "lehrer")
    room_id = await lehrer.room("Grenzen")
    # Unknown keys are ignored; a huge (allowed) range just holds every room.
    data = await lehrer.sliding({"lists": {"a": {"ranges": [[0, 2**31]], "unknown": 1,
                                                 "timeline_limit": 10**9}},
                                 "whatever": {"x": 1},
                                 "extensions": {"unknown_ext": {"enabled": True},
                                                "receipts": {"enabled": True,
                                                             "lists": ["nope"]}}})
    assert list_ids(data, "a") == [room_id]
    # 1,000 subscriptions to rooms the user is not in: fine, and nothing for them.
    data = await lehrer.sliding({"room_subscriptions": {
        f"!r{n}:schule.test": {"timeline_limit": 1} for n in range(1000)}})
    assert data["rooms"] == {}
    for timeout in ("-1", "abc", "1e3"):
        status, error = await lehrer.call("POST", SS, {}, params={"timeout": timeout})
        assert (status, error["errcode"]) == (400, "M_INVALID_PARAM"), timeout
    status, error = await lehrer.call("POST", SS, None)  # an empty body is an empty request
    assert status == 200, error
    # Read without aiohttp's copy on the request, still bounded: too large is 413.
    status, error = await lehrer.call("POST", SS, raw=b" " * (1024 * 1024 + 1))
    assert (status, error["errcode"]) == (413, "M_TOO_LARGE")
    status, error = await lehrer.call("POST", SS, raw=b"{nope")
    assert (status, error["errcode"]) == (400, "M_NOT_JSON")
    status, error = await Client(http, base).call("POST", SS, {})
    assert (status, error["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_lazy_members_come_with_a_new_senders_first_message(
        http: aiohttp.ClientSession, base: str) -> None:
    lehrer = await login(http, base, "lehrer")
    kollegin = await login(http, base, "kollegin")
    referendar = await login(http, base, "referendar")
    room_id = await lehrer.room("Lazy", [mxid("kollegin"), mxid("referendar")])
    await kollegin.ok("POST", f"{V3}/join/{quote(room_id)}")
    await referendar.ok("POST", f"{V3}/join/{quote(room_id)}")
    await lehrer.send(room_id, "eins")
    body = room_list()
    data = await kollegin.sliding(body)
    members = {e["state_key"] for e in data["rooms"][room_id]["required_state"]
               if e["type"] == "m.room.member"}
    assert members == {mxid("lehrer"), mxid("kollegin")}  # the sender and $ME
    for sender, expected in ((referendar, mxid("referendar")), (lehrer, None)):
        waiting = asyncio.create_task(kollegin.next(body, timeout=5000))
        await asyncio.sleep(0.1)
        await sender.send(room_id, f"von {sender.user_id}")
        room = (await waiting)["rooms"][room_id]
        assert bodies(room) == [f"von {sender.user_id}"]
        lazy = [e for e in room.get("required_state", []) if e["type"] == "m.room.member"]
        # A sender's member event comes once, with their first message here.
        assert [e["state_key"] for e in lazy] == ([expected] if expected else [])
        if expected:
            assert lazy[0]["content"]["membership"] == "join"


async def test_more_new_messages_than_the_limit_come_limited_from_memory(
        http: aiohttp.ClientSession, shared_school: School, base: str) -> None:
    lehrer = await login(http, base, "lehrer")
    kollegin = await login(http, base, "kollegin")
    referendar = await login(http, base, "referendar")
    room_id = await lehrer.room("Viele", [mxid("kollegin"), mxid("referendar")])
    await kollegin.ok("POST", f"{V3}/join/{quote(room_id)}")
    await referendar.ok("POST", f"{V3}/join/{quote(room_id)}")
    for n in range(3):  # the initial timeline: the teacher's alone
        await lehrer.send(room_id, f"vorher {n}")
    body = room_list(timeline_limit=3)
    await kollegin.sliding(body)
    for n in range(4):
        await lehrer.send(room_id, f"m{n}")
    await referendar.send(room_id, "m4")  # a sender new to the client: $LAZY
    events_read = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM matrix_events" in statement:
            events_read.append(statement)

    engine = shared_school.db.read_engine.sync_engine
    sqlalchemy_event.listen(engine, "before_cursor_execute", seen)
    try:
        data = await kollegin.next(body)
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", seen)
    room = data["rooms"][room_id]
    # The newest three, limited, and where to page back from for the two before them.
    assert bodies(room) == ["m2", "m3", "m4"] and room["limited"] is True
    assert room["num_live"] == 3 and "initial" not in room
    assert [e["state_key"] for e in room["required_state"]] == [mxid("referendar")]
    # The sync cache had them all: no read of the events table (the database path
    # read the timeline, the state changes and the relations).
    assert events_read == []
    older = await kollegin.ok("GET", f"{V3}/rooms/{quote(room_id)}/messages", params={
        "from": room["prev_batch"], "dir": "b", "limit": "2"})
    assert [e["content"]["body"] for e in older["chunk"]] == ["m1", "m0"]
