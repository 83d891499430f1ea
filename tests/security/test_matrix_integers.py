"""Issue 19 point 5: no integer a client sends reaches the database unchecked.

Walks the Client-Server endpoints that take a number in the path, the query or
the JSON body with numbers past 64 bits, negative, non-decimal and absurdly
long, against a running school, and asserts that every answer is a Matrix
error (4xx with an errcode) or a success: never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest

from conf.app import School
from directory.model import Role
from tests.security.matrix_client import PASSWORD, V3, RawClient, matrix_server

# What an attacker types where a number belongs (query and path text).
SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575"
BAD_TEXT = ["9223372036854775808", "-9223372036854775809", "18446744073709551616",
            "99999999999999999999999999999999999999", "9" * 1000, "-1", "1e3", "0x10",
            "abc", "", " 1", "١٢", "1_000", "NaN"]
# ...and as raw JSON numbers in a body.
BAD_JSON_NUMBERS = ["9223372036854775808", "-9223372036854775809", "18446744073709551616",
                    "1e400", "-1e400", "9223372036854775808.0", "1" * 400, "-1", "1.5"]


@pytest.fixture
async def alice(running_school: School) -> AsyncIterator[tuple[RawClient, str, str]]:
    await running_school.directory.create_account(role=Role.TEACHER, login="lehrer",
                                                  password=PASSWORD)
    base = matrix_server(running_school).base_url
    async with aiohttp.ClientSession() as http:
        client = await RawClient(http, base).login("lehrer")
        room = (await client.ok("POST", f"{V3}/createRoom", {"name": "Zahlen"}))["room_id"]
        sent = await client.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/t0",
                               {"msgtype": "m.text", "body": "x"})
        yield client, room, sent["event_id"]


def _query_cases(me: str, room: str, event: str, n: str) -> list[tuple[str, str, dict[str, str]]]:
    r = quote(room)
    return [
        ("GET", f"{V3}/sync", {"filter": n}),
        ("GET", f"{V3}/sync", {"timeout": n}),
        ("GET", f"{V3}/sync", {"since": n}),
        ("GET", f"{V3}/sync", {"since": f"s{n}_{n}"}),
        ("GET", f"{V3}/sync", {"filter": '{"room":{"timeline":{"limit":N}}}'.replace("N", n)}),
        ("GET", f"{V3}/user/{me}/filter/{quote(n, safe='')}", {}),
        ("GET", f"{V3}/rooms/{r}/messages", {"limit": n}),
        ("GET", f"{V3}/rooms/{r}/messages", {"from": n, "dir": "b"}),
        ("GET", f"{V3}/rooms/{r}/messages", {"from": f"t{n}", "to": f"t{n}"}),
        ("GET", f"{V3}/rooms/{r}/context/{quote(event)}", {"limit": n}),
        ("GET", f"{V3}/publicRooms", {"limit": n}),
        ("GET", f"{V3}/publicRooms", {"since": f"o{n}"}),
        ("GET", f"{V3}/keys/changes", {"from": f"s{n}_{n}", "to": f"s{n}_{n}"}),
        ("GET", f"{V3}/room_keys/version/{quote(n, safe='')}", {}),
        ("GET", f"{V3}/room_keys/keys", {"version": n}),
        ("GET", f"{V3}/notifications", {"limit": n, "from": n}),
        ("GET", f"{V3}/rooms/{r}/relations/{quote(event)}", {"limit": n, "from": n}),
        ("GET", f"{V3}/rooms/{r}/threads", {"limit": n, "from": n}),
        ("GET", "/_matrix/client/v1/media/thumbnail/x/y", {"width": n, "height": n}),
        ("GET", "/_matrix/client/v1/media/download/x/y", {"timeout_ms": n}),
        ("PUT", f"{V3}/rooms/{r}/send/m.room.message/{quote(n, safe='') or 'e'}", {}),
        ("PUT", f"{V3}/sendToDevice/m.x/{quote(n, safe='') or 'e'}", {}),
        ("GET", f"{V3}/rooms/{r}/relations/{quote(event)}/m.thread", {"limit": n, "to": n}),
        ("GET", f"{V3}/user/{me}/rooms/{r}/tags", {"limit": n}),
        ("POST", f"{SLIDING}/sync", {"timeout": n, "pos": n}),
    ]


def _body_cases(me: str, room: str, n: str) -> list[tuple[str, str, str]]:
    r = quote(room)
    cases = [
        ("POST", f"{V3}/publicRooms", '{"limit": NUM}'),
        ("POST", f"{V3}/publicRooms", '{"limit": 5, "since": "oNUM"}'),
        ("POST", f"{V3}/user_directory/search", '{"search_term": "a", "limit": NUM}'),
        ("PUT", f"{V3}/rooms/{r}/typing/{me}", '{"typing": true, "timeout": NUM}'),
        ("POST", f"{V3}/user/{me}/filter", '{"room": {"timeline": {"limit": NUM}}}'),
        ("POST", f"{V3}/keys/claim", '{"timeout": NUM, "one_time_keys": {}}'),
        ("PUT", f"{V3}/user/{me}/account_data/x.y", '{"n": NUM}'),
        ("PUT", f"{V3}/rooms/{r}/state/m.room.power_levels",
         '{"users": {"@lehrer:schule.test": NUM}, "users_default": NUM}'),
        ("PUT", f"{V3}/rooms/{r}/send/m.room.message/b{abs(hash(n))}",
         '{"msgtype": "m.text", "body": "x", "n": NUM}'),
        ("POST", f"{V3}/rooms/{r}/receipt/m.read/$x", '{"ts": NUM}'),
        ("POST", f"{V3}/keys/upload", '{"one_time_keys": {"signed_curve25519:A": NUM}}'),
        ("PUT", f"{V3}/sendToDevice/m.x/b{abs(hash(n))}",
         '{"messages": {"@lehrer:schule.test": {"*": {"n": NUM}}}}'),
        ("POST", f"{V3}/room_keys/version", '{"algorithm": "x", "auth_data": {"n": NUM}}'),
        ("POST", f"{V3}/rooms/{r}/read_markers", '{"m.fully_read": NUM}'),
        ("POST", f"{V3}/search", '{"search_categories": {"room_events": '
                                 '{"search_term": "x", "filter": {"limit": NUM}}}}'),
        ("PUT", f"{V3}/user/{me}/rooms/{r}/tags/u.x", '{"order": NUM}'),
        ("POST", f"{SLIDING}/sync", '{"lists": {"a": {"ranges": [[0, NUM]], '
                                    '"timeline_limit": NUM}}, "extensions": {"to_device": '
                                    '{"enabled": true, "since": "NUM", "limit": NUM}}}'),
    ]
    return [(method, path, body.replace("NUM", n)) for method, path, body in cases]


async def test_no_integer_anywhere_gives_a_500(alice: tuple[RawClient, str, str]) -> None:
    client, room, event = alice
    me = quote(client.user_id)
    failures: list[str] = []
    for n in BAD_TEXT:
        for method, path, params in _query_cases(client.user_id, room, event, n):
            status, _ = await client.call(method, path, {} if method == "PUT" else None,
                                             params=params)
            if status >= 500:
                failures.append(f"{status} {method} {path[:80]} {json.dumps(params)[:80]}")
    for n in BAD_JSON_NUMBERS:
        for method, path, text in _body_cases(me, room, n):
            status, _ = await client.call(method, path, raw=text.encode(),
                                             headers={"Content-Type": "application/json"})
            if status >= 500:
                failures.append(f"{status} {method} {path[:80]} {text[:80]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("path", ["sync?filter=9223372036854775808",
                                  "user/{me}/filter/9223372036854775808"])
async def test_the_reported_overflows_are_clear_errors(alice: tuple[RawClient, str, str],
                                                       path: str) -> None:
    client, _, _ = alice
    status, body = await client.call("GET", f"{V3}/" + path.format(me=quote(client.user_id)))
    assert (status, body["errcode"]) in {(400, "M_INVALID_PARAM"), (404, "M_NOT_FOUND")}


async def test_a_body_integer_past_the_canonical_range_is_bad_json(
        alice: tuple[RawClient, str, str]) -> None:
    client, _, _ = alice
    status, body = await client.call(
        "PUT", f"{V3}/user/{quote(client.user_id)}/account_data/x.y",
        raw=b'{"n": 9007199254740992}', headers={"Content-Type": "application/json"})
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    await client.ok("PUT", f"{V3}/user/{quote(client.user_id)}/account_data/x.y",
                    raw=b'{"n": 9007199254740991}', headers={"Content-Type": "application/json"})
