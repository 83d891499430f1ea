"""The Matrix client API over raw HTTP on loopback: the endpoints and error codes
nio does not exercise (devices with user-interactive auth, moderation, state,
aliases, redactions, sync details, account data, keys, limits)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest

from conf.app import School
from directory.model import Role
from messenger.server import MatrixServer
from tests.messenger.signed_json import SigningKey, device_keys
from tests.support.matrix_http import PASSWORD, V3
from tests.support.matrix_http import RawClient as Client

DOMAIN = "schule.test"


@pytest.fixture
async def base(running_school: School) -> str:
    d = running_school.directory
    for login, role in (("lehrer", Role.TEACHER), ("anna", Role.PUPIL), ("ben", Role.PUPIL),
                        ("carl", Role.PUPIL)):
        await d.create_account(role=role, login=login, password=PASSWORD,
                               display_name=login.title())
    server = next(s for s in running_school.services if isinstance(s, MatrixServer))
    return server.base_url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def client(http: aiohttp.ClientSession, base: str, user: str | None = None) -> Client:
    c = Client(http, base)
    return await c.login(user) if user else c


def mxid(login: str) -> str:
    return f"@{login}:{DOMAIN}"


async def test_discovery_login_variants_and_whoami(http: aiohttp.ClientSession,
                                                   base: str) -> None:
    anon = await client(http, base)
    wk = await anon.ok("GET", "/.well-known/matrix/client")
    assert wk["m.homeserver"]["base_url"] == base
    flows = await anon.ok("GET", f"{V3}/login")
    assert flows["flows"] == [{"type": "m.login.password"}]
    by_email = await anon.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "password": PASSWORD,
        "identifier": {"type": "m.id.thirdparty", "medium": "email",
                       "address": f"anna@{DOMAIN}"}})
    assert by_email["user_id"] == mxid("anna")
    by_mxid = await client(http, base, mxid("anna"))
    who = await by_mxid.ok("GET", f"{V3}/account/whoami")
    assert who == {"user_id": mxid("anna"), "device_id": by_mxid.device_id, "is_guest": False}
    assert by_mxid.device_id != by_email["device_id"]
    status, err = await anon.call("POST", f"{V3}/login", {
        "type": "m.login.password", "password": PASSWORD,
        "identifier": {"type": "m.id.user", "user": "@anna:other.example"}})
    assert status == 403 and err["errcode"] == "M_FORBIDDEN"
    caps = await by_mxid.ok("GET", f"{V3}/capabilities")
    assert caps["capabilities"]["m.room_versions"]["default"] == "10"
    assert caps["capabilities"]["m.room_versions"]["available"] == {
        "10": "stable", "11": "stable", "12": "stable"}
    status, err = await anon.call("GET", f"{V3}/account/whoami")
    assert status == 401 and err["errcode"] == "M_MISSING_TOKEN"
    anon.token = "shm_forged"
    status, err = await anon.call("GET", f"{V3}/account/whoami")
    assert status == 401 and err["errcode"] == "M_UNKNOWN_TOKEN"


async def test_failed_logins_are_throttled(http: aiohttp.ClientSession, base: str) -> None:
    anon = await client(http, base)
    body = {"type": "m.login.password", "password": "nope",
            "identifier": {"type": "m.id.user", "user": "ben"}}
    codes = []
    for _ in range(6):
        status, err = await anon.call("POST", f"{V3}/login", body)
        codes.append((status, err["errcode"]))
        if status == 429:
            assert err["retry_after_ms"] > 0
            break
    assert codes[0] == (403, "M_FORBIDDEN")
    assert codes[-1] == (429, "M_LIMIT_EXCEEDED")


async def test_devices_and_user_interactive_auth(http: aiohttp.ClientSession,
                                                 base: str) -> None:
    phone = await client(http, base, "anna")
    laptop = await client(http, base, "anna")
    devices = (await phone.ok("GET", f"{V3}/devices"))["devices"]
    assert {d["device_id"] for d in devices} == {phone.device_id, laptop.device_id}
    await phone.ok("PUT", f"{V3}/devices/{laptop.device_id}", {"display_name": "Laptop"})
    assert (await phone.ok("GET", f"{V3}/devices/{laptop.device_id}"))["display_name"] == \
        "Laptop"
    status, challenge = await phone.call("DELETE", f"{V3}/devices/{laptop.device_id}", {})
    assert status == 401 and challenge["flows"] == [{"stages": ["m.login.password"]}]
    assert "errcode" not in challenge and challenge["params"] == {}
    session = challenge["session"]
    auth = {"type": "m.login.password", "session": session, "password": "wrong",
            "identifier": {"type": "m.id.user", "user": "anna"}}
    status, failed = await phone.call("DELETE", f"{V3}/devices/{laptop.device_id}",
                                      {"auth": auth})
    assert status == 401 and failed["errcode"] == "M_FORBIDDEN"
    await phone.ok("DELETE", f"{V3}/devices/{laptop.device_id}",
                   {"auth": {**auth, "password": PASSWORD}})
    status, err = await laptop.call("GET", f"{V3}/account/whoami")
    assert status == 401 and err["errcode"] == "M_UNKNOWN_TOKEN"
    status, err = await phone.call("GET", f"{V3}/devices/{laptop.device_id}")
    assert status == 404 and err["errcode"] == "M_NOT_FOUND"
    # logout/all ends every session.
    other = await client(http, base, "anna")
    await phone.ok("POST", f"{V3}/logout/all")
    for c in (phone, other):
        status, err = await c.call("GET", f"{V3}/account/whoami")
        assert err["errcode"] == "M_UNKNOWN_TOKEN"


async def test_moderation_state_and_aliases(http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    ben = await client(http, base, "ben")
    room = (await teacher.ok("POST", f"{V3}/createRoom", {
        "preset": "public_chat", "name": "AG Schach", "topic": "Dienstags",
        "room_alias_name": "schach"}))["room_id"]
    alias = quote(f"#schach:{DOMAIN}")
    found = await anna.ok("GET", f"{V3}/directory/room/{alias}")
    assert found == {"room_id": room, "servers": [DOMAIN]}
    await anna.ok("POST", f"{V3}/join/{alias}")
    await ben.ok("POST", f"{V3}/rooms/{room}/join")
    joined = (await anna.ok("GET", f"{V3}/rooms/{room}/joined_members"))["joined"]
    assert set(joined) == {mxid("lehrer"), mxid("anna"), mxid("ben")}
    assert joined[mxid("anna")]["display_name"] == "Anna"

    name = await anna.ok("GET", f"{V3}/rooms/{room}/state/m.room.name")
    assert name == {"name": "AG Schach"}
    status, err = await anna.call("PUT", f"{V3}/rooms/{room}/state/m.room.name/",
                                  {"name": "Meins"})
    assert status == 403 and err["errcode"] == "M_FORBIDDEN" and "power level" in err["error"]
    await teacher.ok("PUT", f"{V3}/rooms/{room}/state/m.room.topic", {"topic": "Mittwochs"})
    state = await anna.ok("GET", f"{V3}/rooms/{room}/state")
    topics = [e["content"]["topic"] for e in state if e["type"] == "m.room.topic"]
    assert topics == ["Mittwochs"]
    status, err = await anna.call("GET", f"{V3}/rooms/{room}/state/m.room.avatar")
    assert status == 404 and err["errcode"] == "M_NOT_FOUND"

    # Pupils cannot kick; the teacher can, and ban, and unban.
    status, err = await anna.call("POST", f"{V3}/rooms/{room}/kick", {"user_id": mxid("ben")})
    assert status == 403 and err["errcode"] == "M_FORBIDDEN"
    await teacher.ok("POST", f"{V3}/rooms/{room}/kick", {"user_id": mxid("ben"),
                                                         "reason": "Ruhe"})
    await ben.ok("POST", f"{V3}/rooms/{room}/join")
    await teacher.ok("POST", f"{V3}/rooms/{room}/ban", {"user_id": mxid("ben")})
    status, err = await ben.call("POST", f"{V3}/rooms/{room}/join")
    assert status == 403 and "banned" in err["error"]
    await teacher.ok("POST", f"{V3}/rooms/{room}/unban", {"user_id": mxid("ben")})
    await ben.ok("POST", f"{V3}/rooms/{room}/join")
    members = (await ben.ok("GET", f"{V3}/rooms/{room}/members"))["chunk"]
    assert {m["state_key"]: m["content"]["membership"] for m in members}[mxid("ben")] == "join"

    # Leave, then forget; a forgotten room's history is gone for the user.
    await ben.ok("POST", f"{V3}/rooms/{room}/leave")
    assert room not in (await ben.ok("GET", f"{V3}/joined_rooms"))["joined_rooms"]
    await ben.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b"})
    await ben.ok("POST", f"{V3}/rooms/{room}/forget")
    status, _ = await ben.call("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b"})
    assert status == 403

    # Aliases: members add, others may not remove; unknown aliases are 404.
    extra = quote(f"#schach-ag:{DOMAIN}")
    await anna.ok("PUT", f"{V3}/directory/room/{extra}", {"room_id": room})
    status, err = await anna.call("PUT", f"{V3}/directory/room/{extra}", {"room_id": room})
    assert status == 409
    status, err = await ben.call("DELETE", f"{V3}/directory/room/{extra}")
    assert status == 403
    await teacher.ok("DELETE", f"{V3}/directory/room/{extra}")
    status, err = await anna.call("GET", f"{V3}/directory/room/{extra}")
    assert status == 404 and err["errcode"] == "M_NOT_FOUND"


async def test_redaction_and_event_fetch(http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    ben = await client(http, base, "ben")
    room = (await teacher.ok("POST", f"{V3}/createRoom", {
        "invite": [mxid("anna"), mxid("ben")]}))["room_id"]
    await anna.ok("POST", f"{V3}/rooms/{room}/join")
    await ben.ok("POST", f"{V3}/rooms/{room}/join")
    msg = (await anna.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/a1",
                         {"msgtype": "m.text", "body": "geheim"}))["event_id"]
    status, err = await ben.call("PUT", f"{V3}/rooms/{room}/redact/{msg}/r1", {})
    assert status == 403 and err["errcode"] == "M_FORBIDDEN"
    redaction = (await anna.ok("PUT", f"{V3}/rooms/{room}/redact/{msg}/r1",
                               {"reason": "oops"}))["event_id"]
    again = (await anna.ok("PUT", f"{V3}/rooms/{room}/redact/{msg}/r1",
                           {"reason": "oops"}))["event_id"]
    assert again == redaction
    event = await ben.ok("GET", f"{V3}/rooms/{room}/event/{msg}")
    assert event["event_id"] == msg and event["content"] == {}
    assert event["unsigned"]["redacted_because"]["event_id"] == redaction
    red = await ben.ok("GET", f"{V3}/rooms/{room}/event/{redaction}")
    assert red["redacts"] == msg and red["content"]["reason"] == "oops"
    # The teacher (redact level) may redact others' messages.
    other = (await ben.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/b1",
                          {"msgtype": "m.text", "body": "Quatsch"}))["event_id"]
    await teacher.ok("PUT", f"{V3}/rooms/{room}/redact/{other}/t1", {})
    status, err = await ben.call("GET", f"{V3}/rooms/{room}/event/$nope")
    assert status == 404
    outsider = await client(http, base, "carl")
    status, err = await outsider.call("GET", f"{V3}/rooms/{room}/event/{msg}")
    assert status == 403 and err["errcode"] == "M_FORBIDDEN"
    status, err = await anna.call("PUT", f"{V3}/rooms/{room}/send/m.room.message/f1",
                                  {"msgtype": "m.text", "body": "x", "n": 1.5})
    assert status == 400 and err["errcode"] == "M_BAD_JSON"


async def test_sync_details(http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    initial = await anna.ok("GET", f"{V3}/sync")
    since = initial["next_batch"]
    room = (await teacher.ok("POST", f"{V3}/createRoom", {
        "name": "Klasse 7b", "invite": [mxid("anna")], "is_direct": False}))["room_id"]
    got = await anna.ok("GET", f"{V3}/sync", params={"since": since, "timeout": "5000"})
    invite = got["rooms"]["invite"][room]["invite_state"]["events"]
    assert {(e["type"], e.get("state_key")) for e in invite} >= {
        ("m.room.name", ""), ("m.room.member", mxid("anna")), ("m.room.create", "")}
    await anna.ok("POST", f"{V3}/rooms/{room}/join")
    got = await anna.ok("GET", f"{V3}/sync", params={"since": got["next_batch"],
                                                      "timeout": "5000"})
    joined = got["rooms"]["join"][room]
    state_types = {e["type"] for e in joined["state"]["events"]} | {
        e["type"] for e in joined["timeline"]["events"]}
    assert {"m.room.create", "m.room.power_levels", "m.room.name"} <= state_types

    # A stored filter with a timeline limit: a gap gives limited + prev_batch.
    filter_id = (await anna.ok("POST", f"{V3}/user/{quote(mxid('anna'))}/filter",
                               {"room": {"timeline": {"limit": 2}}}))["filter_id"]
    assert (await anna.ok("GET", f"{V3}/user/{quote(mxid('anna'))}/filter/{filter_id}")) == \
        {"room": {"timeline": {"limit": 2}}}
    since = got["next_batch"]
    for n in range(5):
        await teacher.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/m{n}",
                         {"msgtype": "m.text", "body": f"Nachricht {n}"})
    await teacher.ok("PUT", f"{V3}/rooms/{room}/state/m.room.topic", {"topic": "neu"})
    await teacher.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/m5",
                     {"msgtype": "m.text", "body": "Nachricht 5"})
    await teacher.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/m6",
                     {"msgtype": "m.text", "body": "Nachricht 6"})
    got = await anna.ok("GET", f"{V3}/sync", params={"since": since, "filter": filter_id})
    timeline = got["rooms"]["join"][room]["timeline"]
    assert timeline["limited"] is True
    assert [e["content"]["body"] for e in timeline["events"]] == ["Nachricht 5", "Nachricht 6"]
    assert [e["type"] for e in got["rooms"]["join"][room]["state"]["events"]] == ["m.room.topic"]
    older = await anna.ok("GET", f"{V3}/rooms/{room}/messages",
                          params={"dir": "b", "from": timeline["prev_batch"], "limit": "2"})
    assert [e["type"] for e in older["chunk"]] == ["m.room.topic", "m.room.message"]
    # Inline filter JSON works too; a sync with nothing new waits for its timeout.
    since = got["next_batch"]
    started = time.monotonic()
    quiet = await anna.ok("GET", f"{V3}/sync", params={
        "since": since, "timeout": "300", "filter": '{"room":{"timeline":{"limit":1}}}'})
    assert time.monotonic() - started >= 0.25
    assert quiet["rooms"]["join"] == {} and quiet["next_batch"] == since

    # Account data reaches sync and wakes a waiting one.
    waiting = asyncio.create_task(anna.ok("GET", f"{V3}/sync", params={
        "since": since, "timeout": "10000"}))
    await asyncio.sleep(0.2)
    await anna.ok("PUT", f"{V3}/user/{quote(mxid('anna'))}/account_data/m.direct",
                  {mxid("lehrer"): [room]})
    woke = await asyncio.wait_for(waiting, 5)
    assert woke["account_data"]["events"] == [
        {"type": "m.direct", "content": {mxid("lehrer"): [room]}}]
    assert (await anna.ok("GET", f"{V3}/user/{quote(mxid('anna'))}/account_data/m.direct")) \
        == {mxid("lehrer"): [room]}
    status, _ = await anna.call("GET", f"{V3}/user/{quote(mxid('lehrer'))}/account_data/x")
    assert status == 403

    # Leaving shows up under rooms.leave of the next sync.
    await anna.ok("POST", f"{V3}/rooms/{room}/leave")
    left = await anna.ok("GET", f"{V3}/sync", params={"since": woke["next_batch"]})
    assert room in left["rooms"]["leave"]
    status, err = await anna.call("GET", f"{V3}/sync", params={"since": "garbage"})
    assert status == 400 and err["errcode"] == "M_INVALID_PARAM"


async def test_profile_pushrules_keys_and_limits(http: aiohttp.ClientSession,
                                                 base: str) -> None:
    anna = await client(http, base, "anna")
    profile = await anna.ok("GET", f"{V3}/profile/{quote(mxid('lehrer'))}")
    assert profile == {"displayname": "Lehrer"}
    status, err = await anna.call("PUT", f"{V3}/profile/{quote(mxid('anna'))}/displayname",
                                  {"displayname": "X"})
    assert status == 403
    rules = await anna.ok("GET", f"{V3}/pushrules/")
    assert {r["rule_id"] for r in rules["global"]["underride"]} >= {".m.rule.message"}
    key = SigningKey()  # keys are the device's own and self-signed (messenger.device_keys)
    uploaded = await anna.ok("POST", f"{V3}/keys/upload", {
        "device_keys": device_keys(mxid("anna"), anna.device_id, key),
        "one_time_keys": {
            f"signed_curve25519:{name}": key.sign({"key": name.lower()}, mxid("anna"),
                                                  f"ed25519:{anna.device_id}")
            for name in ("AAAA", "AAAB")}})
    assert uploaded["one_time_key_counts"]["signed_curve25519"] == 2
    queried = await anna.ok("POST", f"{V3}/keys/query", {"device_keys": {mxid("anna"): []}})
    assert list(queried["device_keys"][mxid("anna")]) == [anna.device_id]
    claimed = await anna.ok("POST", f"{V3}/keys/claim", {
        "one_time_keys": {mxid("anna"): {anna.device_id: "signed_curve25519"}}})
    assert list(claimed["one_time_keys"][mxid("anna")][anna.device_id]) == [
        "signed_curve25519:AAAA"]
    status, err = await anna.call("POST", f"{V3}/createRoom", raw=b"[1, 2]")
    assert status == 400 and err["errcode"] == "M_BAD_JSON"
    status, err = await anna.call("POST", f"{V3}/createRoom", raw=b"x" * (2 * 1024 * 1024))
    assert status == 413 and err["errcode"] == "M_TOO_LARGE"
    status, err = await anna.call("DELETE", f"{V3}/createRoom")
    assert status == 405 and err["errcode"] == "M_UNRECOGNIZED"
    room = (await anna.ok("POST", f"{V3}/createRoom", {}))["room_id"]
    status, err = await anna.call("PUT", f"{V3}/rooms/{room}/send/m.room.message/big",
                                  {"body": "x" * 70000})
    assert status == 413 and err["errcode"] == "M_TOO_LARGE"
    status, err = await anna.call("POST", f"{V3}/createRoom", {"room_version": "1"})
    assert status == 400 and err["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"
    v11 = (await anna.ok("POST", f"{V3}/createRoom", {"room_version": "11"}))["room_id"]
    create = await anna.ok("GET", f"{V3}/rooms/{v11}/state/m.room.create")
    assert create == {"room_version": "11"}
