"""GET /versions advertises exactly the spec versions whose endpoints the server
routes (messenger.api.spec_versions): every listed endpoint of every advertised
version is asked over HTTP and answers anything but "unrecognized"."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

from messenger.api.spec_versions import ADDED
from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import V3, client, mxid
from tests.e2e.test_matrix_relations import room_of, send, text

base = test_matrix_api.base
http = test_matrix_api.http

ENDS_SESSION = {f"{V3}/logout", f"{V3}/logout/all"}


async def test_versions_are_the_routed_ones_and_each_endpoint_answers(
        http: aiohttp.ClientSession, base: str) -> None:
    anna = await client(http, base, "anna")
    versions = await anna.ok("GET", "/_matrix/client/versions")
    # Everything up to v1.12 is routed; nothing later is claimed.
    assert versions["versions"] == [v for v, _ in ADDED]
    assert versions["versions"][-1] == "v1.12"
    room = await room_of(anna)
    event = await send(anna, room, text("Hallo"))
    values = {"room_id": room, "event_id": event, "user_id": mxid("anna"),
              "room_id_or_alias": room, "alias": "#nichtda:schule.test"}
    probes = []
    for version, endpoints in ADDED:
        for method, template in endpoints:
            path = template
            for name, value in values.items():
                path = path.replace(f"{{{name}}}", quote(value, safe="@:"))
            while "{" in path:  # any other parameter: a harmless word
                start = path.index("{")
                path = path[:start] + "x" + path[path.index("}", start) + 1:]
            probes.append((version, method, template, path))
    probes.sort(key=lambda p: p[2] in ENDS_SESSION)  # logging out comes last
    for version, method, template, path in probes:
        body = {} if method in ("POST", "PUT") else None
        async with http.request(method, base + path, json=body, headers={
                "Authorization": f"Bearer {anna.token}"}) as r:
            answer = await r.json(content_type=None) if r.content_type == "application/json" \
                else {}
            status = r.status
        errcode = answer.get("errcode") if isinstance(answer, dict) else None
        assert errcode != "M_UNRECOGNIZED" and status not in (405, 500), (
            version, method, template, status, answer)


async def test_refused_endpoints_say_why(http: aiohttp.ClientSession, base: str) -> None:
    anna = await client(http, base, "anna")
    room = await room_of(anna)
    for method, path, want in (
            ("POST", f"{V3}/account/deactivate", (403, "M_FORBIDDEN")),
            ("POST", f"{V3}/rooms/{room}/upgrade", (403, "M_FORBIDDEN")),
            ("POST", f"{V3}/knock/{room}", (403, "M_FORBIDDEN")),
            ("PUT", f"{V3}/directory/list/room/{room}", (403, "M_FORBIDDEN")),
            ("POST", f"{V3}/user/{mxid('anna')}/openid/request_token", (403, "M_FORBIDDEN")),
            ("GET", f"{V3}/thirdparty/protocol/irc", (404, "M_NOT_FOUND")),
            ("POST", "/_matrix/media/v1/create", (403, "M_FORBIDDEN")),
            ("GET", "/_matrix/client/v1/media/preview_url", (403, "M_FORBIDDEN"))):
        status, data = await anna.call(method, path, {} if method != "GET" else None)
        assert (status, data["errcode"]) == want, path
        assert data["error"]
    assert (await anna.ok("GET", f"{V3}/thirdparty/location")) == []
    assert (await anna.ok("GET", f"{V3}/rooms/{room}/aliases")) == {"aliases": []}
    await anna.ok("PUT", f"{V3}/directory/room/{quote('#klasse:schule.test')}",
                  {"room_id": room})
    assert (await anna.ok("GET", f"{V3}/rooms/{room}/aliases")) == {
        "aliases": ["#klasse:schule.test"]}
    whois = await anna.ok("GET", f"{V3}/admin/whois/{mxid('anna')}")
    assert whois["user_id"] == mxid("anna") and anna.device_id in whois["devices"]
    status, data = await anna.call("GET", f"{V3}/admin/whois/{mxid('ben')}")
    assert (status, data["errcode"]) == (403, "M_FORBIDDEN")
    carl = await client(http, base, "carl")
    status, data = await carl.call("GET", f"{V3}/rooms/{room}/aliases")
    assert (status, data["errcode"]) == (403, "M_FORBIDDEN")
