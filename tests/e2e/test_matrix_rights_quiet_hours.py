"""Messenger rights and quiet hours over the real client API with the school's default
``[chat]`` settings: pupils open no rooms but start direct chats, parents only answer
in chats a teacher opened, a group can grant a right; pushes to the test gateway are
held back in a pupil's quiet hours (teachers: off), and a person's own override in
account data wins."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from conf.app import School
from conf.settings import ChatSettings, MatrixSettings, QuietHoursSettings, Settings
from directory.model import Role
from messenger.server import MatrixServer
from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import V3, client, mxid
from tests.e2e.test_matrix_push import FakeGateway, pusher_body, say
from tests.support.schools import make_settings

base, http = test_matrix_api.base, test_matrix_api.http
__all__ = ["base", "http"]


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    """A fake push gateway of this test's own (test_matrix_push's is the module's)."""
    fake = FakeGateway()
    await fake.start()
    yield fake
    await fake.stop()


def window_around_now() -> str:
    """A two-hour quiet window around the school's local time now (the test must not
    depend on when it runs)."""
    now = dt.datetime.now(ZoneInfo("Europe/Berlin"))
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, gateway: FakeGateway) -> Settings:
    return make_settings(
        tmp_path / "school", database_url, matrix=MatrixSettings(push_gateways=(gateway.url,)),
        chat=ChatSettings(create_rooms_groups=("sv",)),
        quiet_hours=QuietHoursSettings(window=window_around_now(), weekends=False,
                                       roles=("teacher=off",)))


async def test_rights_of_pupils_parents_and_groups(running_school: School, base: str,
                                                  http: aiohttp.ClientSession) -> None:
    d = running_school.directory
    await d.create_account(role=Role.PARENT, login="mutter", password=test_matrix_api.PASSWORD)
    await d.link_parent("mutter", "anna")
    anna, lehrer = await client(http, base, "anna"), await client(http, base, "lehrer")
    mutter, carl = await client(http, base, "mutter"), await client(http, base, "carl")

    status, body = await anna.call("POST", f"{V3}/createRoom", {"name": "AG"})
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    assert "create rooms" in body["error"]
    await anna.ok("POST", f"{V3}/createRoom", {"is_direct": True, "invite": [mxid("ben")],
                                               "preset": "trusted_private_chat"})

    status, body = await mutter.call("POST", f"{V3}/createRoom", {
        "is_direct": True, "invite": [mxid("lehrer")]})
    assert status == 403 and "answer in chats" in body["error"]
    room = (await lehrer.ok("POST", f"{V3}/createRoom", {
        "is_direct": True, "invite": [mxid("mutter")]}))["room_id"]
    await mutter.ok("POST", f"{V3}/join/{room}", {})
    await mutter.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/m1",
                    {"msgtype": "m.text", "body": "Danke für die Nachricht"})
    status, body = await mutter.call("POST", f"{V3}/rooms/{room}/invite",
                                     {"user_id": mxid("lehrer")})
    assert status == 403

    status, _ = await carl.call("POST", f"{V3}/createRoom", {"name": "SV"})
    assert status == 403
    await d.create_group("sv")
    await d.add_member("sv", "carl")
    await carl.ok("POST", f"{V3}/createRoom", {"name": "SV"})  # the group grants it


async def test_no_push_in_quiet_hours(running_school: School, base: str,
                                      http: aiohttp.ClientSession,
                                      gateway: FakeGateway) -> None:
    server = next(s for s in running_school.services if isinstance(s, MatrixServer))
    lehrer, anna = await client(http, base, "lehrer"), await client(http, base, "anna")
    room = (await lehrer.ok("POST", f"{V3}/createRoom", {"preset": "public_chat"}))["room_id"]
    await anna.ok("POST", f"{V3}/rooms/{room}/join")
    await anna.ok("POST", f"{V3}/pushers/set", pusher_body(gateway.url, "pk-anna"))
    await lehrer.ok("POST", f"{V3}/pushers/set", pusher_body(gateway.url, "pk-lehrer"))

    quiet_event = await say(lehrer, room, "t1")  # anna is a pupil: quiet now
    answer = await say(anna, room, "a1")  # teachers have no quiet hours here
    await server.push.drained()
    pushed = [(n["notification"]["event_id"], n["notification"]["devices"][0]["pushkey"])
              for n in gateway.received]
    assert pushed == [(answer, "pk-lehrer")]
    # The message itself arrived: anna reads it in the app.
    page = await anna.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b"})
    assert quiet_event in [e["event_id"] for e in page["chunk"]]

    await anna.ok("PUT", f"{V3}/user/{mxid('anna')}/account_data/de.schulhof.quiet_hours",
                  {"enabled": False})
    loud = await say(lehrer, room, "t2")
    await lehrer.ok("PUT", f"{V3}/user/{mxid('lehrer')}/account_data/de.schulhof.quiet_hours",
                    dict(zip(("start", "end"), window_around_now().split("-"), strict=True)))
    await say(anna, room, "a2")
    await server.push.drained()
    pushed = [(n["notification"]["event_id"], n["notification"]["devices"][0]["pushkey"])
              for n in gateway.received]
    assert pushed[1:] == [(loud, "pk-anna")]
