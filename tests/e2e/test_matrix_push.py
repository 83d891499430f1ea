"""Push notifications over real HTTP: pushers set and listed through the client API,
and a fake push gateway on loopback that records what the server sends it -
only event id, room id, count and device, never content or sender.

The module's tests share one running school and one fake gateway (module-scoped,
in the module's event loop; on one xdist worker: tests/support/xdist_groups.py);
each test has its own accounts (tests/support/shared_school.py) and sees only
what the gateway received since it started (``gateway``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from conf.app import School
from conf.settings import MatrixSettings
from directory.model import Role
from messenger.server import MatrixServer
from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import DOMAIN, V3, Client
from tests.support.schools import make_settings
from tests.support.shared_school import OwnAccounts, running

# Every test of the module runs in the module's event loop, the shared school's.
pytestmark = pytest.mark.asyncio(loop_scope="module")
ACCOUNTS = (("lehrer", Role.TEACHER), ("anna", Role.PUPIL), ("ben", Role.PUPIL),
            ("carl", Role.PUPIL))
#: The running test's own accounts.
account = OwnAccounts()

NOTIFY = "/_matrix/push/v1/notify"
SECRET = "Treffen um drei am Fahrradkeller"


class FakeGateway:
    """Records every notify; answers with ``rejected`` pushkeys or 500s on request."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.rejected: set[str] = set()
        self.failures_left = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def notify(self, request: web.Request) -> web.Response:
        if self.failures_left > 0:
            self.failures_left -= 1
            return web.json_response({}, status=502)
        text = await request.text()
        self.raw.append(text)
        body = json.loads(text)
        self.received.append(body)
        keys = [d["pushkey"] for d in body["notification"]["devices"]]
        return web.json_response({"rejected": [k for k in keys if k in self.rejected]})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(NOTIFY, self.notify)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{NOTIFY}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def forget(self) -> None:
        """What came so far, and the answers ordered for it: a new test starts."""
        self.received.clear()
        self.raw.clear()
        self.rejected.clear()
        self.failures_left = 0


DEAD_GATEWAY = "http://127.0.0.1:9/_matrix/push/v1/notify"  # nothing listens on port 9


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_gateway() -> AsyncIterator[FakeGateway]:
    fake = FakeGateway()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_school(tmp_path_factory: pytest.TempPathFactory, module_database_url: str,
                        shared_gateway: FakeGateway) -> AsyncIterator[School]:
    """The school allows exactly the fake gateway and a dead one (matrix.push_gateways)."""
    settings = make_settings(
        tmp_path_factory.mktemp("shared") / "school", module_database_url,
        matrix=MatrixSettings(push_gateways=(shared_gateway.url, DEAD_GATEWAY)))
    async with running(settings) as school:
        yield school


@pytest.fixture
def server(shared_school: School) -> MatrixServer:
    return next(s for s in shared_school.services if isinstance(s, MatrixServer))


@pytest_asyncio.fixture(loop_scope="module")
async def base(shared_school: School, server: MatrixServer) -> AsyncIterator[str]:
    """The Matrix API's URL; this test's own teacher and pupils Anna, Ben and Carl."""
    await account.make(shared_school, ACCOUNTS, password=test_matrix_api.PASSWORD)
    yield server.base_url
    account.forget()


@pytest_asyncio.fixture(loop_scope="module")
async def gateway(shared_gateway: FakeGateway, server: MatrixServer) -> FakeGateway:
    """The module's gateway, with what earlier tests had pushed delivered and forgotten."""
    await server.push.drained()
    shared_gateway.forget()
    return shared_gateway


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def client(http: aiohttp.ClientSession, base: str, user: str) -> Client:
    return await test_matrix_api.client(http, base, account(user))


def mxid(login: str) -> str:
    return f"@{account(login)}:{DOMAIN}"


def pusher_body(url: str, pushkey: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "http", "app_id": "de.schulhof.app", "pushkey": pushkey,
            "app_display_name": "Schulhof", "device_display_name": "Telefon", "lang": "de",
            "data": {"url": url, "format": "event_id_only"}, **extra}


async def shared_room(teacher: Client, *members: Client) -> str:
    room = (await teacher.ok("POST", f"{V3}/createRoom", {"preset": "public_chat"}))["room_id"]
    for member in members:
        await member.ok("POST", f"{V3}/rooms/{room}/join")
    return room


async def teacher_and_anna(http: aiohttp.ClientSession, base: str, url: str,
                           pushkey: str) -> tuple[Client, Client, str]:
    """The teacher and Anna in a room; Anna's phone has a pusher to ``url``."""
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    room = await shared_room(teacher, anna)
    await anna.ok("POST", f"{V3}/pushers/set", pusher_body(url, pushkey))
    return teacher, anna, room


async def say(sender: Client, room: str, txn: str, msgtype: str = "m.text") -> str:
    sent = await sender.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/{txn}",
                           {"msgtype": msgtype, "body": SECRET})
    return sent["event_id"]


async def test_message_pushes_event_id_only_to_other_members(
        http: aiohttp.ClientSession, base: str, server: MatrixServer,
        gateway: FakeGateway) -> None:
    teacher, anna, room = await teacher_and_anna(http, base, gateway.url, "pk-anna")
    listed = (await anna.ok("GET", f"{V3}/pushers"))["pushers"]
    assert listed == [{"pushkey": "pk-anna", "kind": "http", "app_id": "de.schulhof.app",
                       "app_display_name": "Schulhof", "device_display_name": "Telefon",
                       "lang": "de", "data": {"url": gateway.url, "format": "event_id_only"}}]
    assert (await teacher.ok("GET", f"{V3}/pushers"))["pushers"] == []

    await say(anna, room, "own")  # her own message wakes nobody
    await server.push.drained()
    assert gateway.received == []

    event_id = await say(teacher, room, "t1")
    await server.push.drained()
    assert len(gateway.received) == 1
    note = gateway.received[0]["notification"]
    assert note["event_id"] == event_id and note["room_id"] == room
    assert note["prio"] == "high" and note["counts"] == {"unread": 1}
    [device] = note["devices"]
    assert device["app_id"] == "de.schulhof.app" and device["pushkey"] == "pk-anna"
    assert device["data"] == {"format": "event_id_only"}  # the url stays here
    assert isinstance(device["pushkey_ts"], int) and device["pushkey_ts"] > 0
    assert set(note) == {"event_id", "room_id", "counts", "prio", "devices"}
    assert SECRET not in gateway.raw[0] and mxid("lehrer") not in gateway.raw[0]

    # Notices (bots) stay silent; a pusher deleted with kind null gets nothing more.
    await say(teacher, room, "n1", msgtype="m.notice")
    await anna.ok("POST", f"{V3}/pushers/set",
                  {"kind": None, "app_id": "de.schulhof.app", "pushkey": "pk-anna"})
    assert (await anna.ok("GET", f"{V3}/pushers"))["pushers"] == []
    await say(teacher, room, "t2")
    await server.push.drained()
    assert len(gateway.received) == 1


async def test_muted_room_gets_no_push(http: aiohttp.ClientSession, base: str,
                                       server: MatrixServer, gateway: FakeGateway) -> None:
    teacher = await client(http, base, "lehrer")
    ben = await client(http, base, "ben")
    muted, loud = await shared_room(teacher, ben), await shared_room(teacher, ben)
    await ben.ok("POST", f"{V3}/pushers/set", pusher_body(gateway.url, "pk-ben"))
    rule = {"rule_id": muted, "default": False, "enabled": True, "actions": ["dont_notify"],
            "conditions": [{"kind": "event_match", "key": "room_id", "pattern": muted}]}
    await ben.ok("PUT", f"{V3}/user/{mxid('ben')}/account_data/m.push_rules",
                 {"global": {"override": [rule]}})
    await say(teacher, muted, "m1")
    loud_event = await say(teacher, loud, "l1")
    await server.push.drained()
    assert [n["notification"]["event_id"] for n in gateway.received] == [loud_event]


async def test_muting_from_the_client_stops_pushes_until_unmuted(
        http: aiohttp.ClientSession, base: str, server: MatrixServer,
        gateway: FakeGateway) -> None:
    """Element's mute: PUT /pushrules/global/override/{roomId}; unmute: DELETE."""
    teacher, anna, room = await teacher_and_anna(http, base, gateway.url, "pk-mute")
    rule_path = f"{V3}/pushrules/global/override/{room}"
    await anna.ok("PUT", rule_path, {"actions": [], "conditions": [
        {"kind": "event_match", "key": "room_id", "pattern": room}]})
    rules = await anna.ok("GET", f"{V3}/pushrules/")
    assert [r["rule_id"] for r in rules["global"]["override"]][:2] == [".m.rule.master", room]
    assert (await anna.ok("GET", f"{rule_path}/enabled")) == {"enabled": True}
    synced = await anna.ok("GET", f"{V3}/sync")
    assert any(e["type"] == "m.push_rules" for e in synced["account_data"]["events"])
    await say(teacher, room, "muted")
    await server.push.drained()
    assert gateway.received == []

    await anna.ok("PUT", f"{rule_path}/enabled", {"enabled": False})  # switched off
    first = await say(teacher, room, "switched-off")
    await server.push.drained()
    await anna.ok("PUT", f"{rule_path}/enabled", {"enabled": True})
    await anna.ok("DELETE", rule_path)
    second = await say(teacher, room, "unmuted")
    await server.push.drained()
    assert [n["notification"]["event_id"] for n in gateway.received] == [first, second]
    status, err = await anna.call("DELETE", rule_path)
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    status, err = await anna.call("PUT", f"{V3}/pushrules/global/override/.m.rule.x",
                                  {"actions": []})
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")


async def test_invite_pushes_the_invitee(http: aiohttp.ClientSession, base: str,
                                         server: MatrixServer, gateway: FakeGateway) -> None:
    teacher = await client(http, base, "lehrer")
    carl = await client(http, base, "carl")
    await carl.ok("POST", f"{V3}/pushers/set", pusher_body(gateway.url, "pk-carl"))
    room = (await teacher.ok("POST", f"{V3}/createRoom", {"preset": "private_chat"}))["room_id"]
    await server.push.drained()
    assert gateway.received == []
    await teacher.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": mxid("carl")})
    await server.push.drained()
    assert len(gateway.received) == 1
    note = gateway.received[0]["notification"]
    assert note["room_id"] == room and note["devices"][0]["pushkey"] == "pk-carl"


async def test_rejected_pushkey_removes_the_pusher_and_5xx_is_retried(
        http: aiohttp.ClientSession, base: str, server: MatrixServer,
        gateway: FakeGateway) -> None:
    teacher, anna, room = await teacher_and_anna(http, base, gateway.url, "pk-old")
    gateway.failures_left = 1  # one 502, then the retry is answered
    first = await say(teacher, room, "r1")
    await server.push.drained()
    assert [n["notification"]["event_id"] for n in gateway.received] == [first]
    gateway.rejected.add("pk-old")
    await say(teacher, room, "r2")
    await server.push.drained()
    assert len(gateway.received) == 2
    assert (await anna.ok("GET", f"{V3}/pushers"))["pushers"] == []


async def test_pushkey_moves_between_users_unless_appended(
        http: aiohttp.ClientSession, base: str, gateway: FakeGateway) -> None:
    anna = await client(http, base, "anna")
    ben = await client(http, base, "ben")
    await anna.ok("POST", f"{V3}/pushers/set", pusher_body(gateway.url, "pk-shared"))
    await ben.ok("POST", f"{V3}/pushers/set",
                 pusher_body(gateway.url, "pk-shared", append=True))
    assert len((await anna.ok("GET", f"{V3}/pushers"))["pushers"]) == 1
    await ben.ok("POST", f"{V3}/pushers/set",
                 pusher_body(gateway.url, "pk-shared", device_display_name="Neu"))
    assert (await anna.ok("GET", f"{V3}/pushers"))["pushers"] == []
    [mine] = (await ben.ok("GET", f"{V3}/pushers"))["pushers"]
    assert mine["device_display_name"] == "Neu"  # replaced, not doubled


@pytest.mark.parametrize(("change", "errcode"), [
    ({"kind": "email"}, "M_INVALID_PARAM"),
    ({"data": {"url": "https://push.example/other/path"}}, "M_INVALID_PARAM"),
    ({"data": {"url": "/_matrix/push/v1/notify"}}, "M_INVALID_PARAM"),
    ({"data": {"url": "ftp://push.example/_matrix/push/v1/notify"}}, "M_INVALID_PARAM"),
    ({"data": {"format": "event_id_only"}}, "M_MISSING_PARAM"),
    ({"data": None}, "M_MISSING_PARAM"),
    ({"pushkey": None}, "M_MISSING_PARAM"),
    ({"app_id": "x" * 65}, "M_INVALID_PARAM"),
    ({"lang": None}, "M_MISSING_PARAM"),
    ({"append": "yes"}, "M_INVALID_PARAM"),
])
async def test_bad_pusher_bodies_are_refused(http: aiohttp.ClientSession, base: str,
                                             change: dict[str, Any], errcode: str) -> None:
    anna = await client(http, base, "anna")
    body = {**pusher_body("https://push.example/_matrix/push/v1/notify", "pk"), **change}
    body = {k: v for k, v in body.items() if v is not None}
    status, err = await anna.call("POST", f"{V3}/pushers/set", body)
    assert (status, err["errcode"]) == (400, errcode)
    assert (await anna.ok("GET", f"{V3}/pushers"))["pushers"] == []


async def test_only_the_schools_gateways_are_accepted(http: aiohttp.ClientSession,
                                                      base: str) -> None:
    """No pushes to arbitrary hosts: an internal address is refused like any other."""
    anna = await client(http, base, "anna")
    for url in ("https://push.example/_matrix/push/v1/notify",
                "http://192.168.1.10/_matrix/push/v1/notify"):
        status, err = await anna.call("POST", f"{V3}/pushers/set", pusher_body(url, "pk"))
        assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
        assert "only through" in err["error"]
    assert (await anna.ok("GET", f"{V3}/pushers"))["pushers"] == []


async def test_kind_is_required(http: aiohttp.ClientSession, base: str) -> None:
    anna = await client(http, base, "anna")
    body = pusher_body("https://push.example/_matrix/push/v1/notify", "pk")
    del body["kind"]
    status, err = await anna.call("POST", f"{V3}/pushers/set", body)
    assert (status, err["errcode"]) == (400, "M_MISSING_PARAM")


async def test_stop_does_not_hang_on_a_dead_gateway(
        http: aiohttp.ClientSession, base: str, server: MatrixServer) -> None:
    # A port nothing listens on: every try fails, the retries back off.
    dead = DEAD_GATEWAY
    teacher, _, room = await teacher_and_anna(http, base, dead, "pk-dead")
    await say(teacher, room, "d1")
    await asyncio.sleep(0.1)
    try:
        await asyncio.wait_for(server.push.stop(), 2.0)
    finally:
        await server.push.start()  # the module's later tests push again
