"""Matrix fuzz cases: requests to the real endpoint list of the client and federation APIs.

The routes are read from the aiohttp applications the school builds (so a new
endpoint is fuzzed without touching this file).  A case picks a route and
fills its path variables with real values (the worker's room, user, a real
event id, an uploaded media id) or edge values (huge integers, negative
numbers, empty, ``..``, percent junk, wrong sigils), adds query parameters
from the spec's names with edge values, and a JSON body: the endpoint's own
shape (from a template) with values replaced by wrong types, huge integers,
deep nesting or junk keys, or random JSON, or bytes that are not JSON at all.
A tenth of the cases are raw HTTP/1.1 requests with odd framing.  Findings:
any 5xx answer, and no answer within the deadline.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.fuzz.harness import CaseFailed, Transcript, wait_answer
from tests.fuzz.imap_cases import source_address

HUGE_INTS: list[Any] = [0, -1, 1, 2**31, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
                        10**30, -(10**30), 1.5, 1e308, -0.0]
WRONG_TYPES: list[Any] = [None, True, False, "", "x", [], {}, [1, "a"], {"a": {"b": []}},
                          "\u0000", "\ud7ff\ue000", "x" * 70000, *HUGE_INTS]
PATH_JUNK = ["", "..", "%2e%2e", "%00", "%ff", "x" * 600, "9223372036854775808", "-1",
             "!nope:schule.test", "#nope:schule.test", "@nope:schule.test", "$nope",
             "!x:evil.example", "@a:b:c", "ü", "%25", "a/b", " ", "%0d%0a"]
QUERY_NAMES = ["limit", "from", "to", "dir", "filter", "since", "timeout", "full_state",
               "set_presence", "server_name", "via", "user_id", "allow_remote",
               "allow_redirect", "timeout_ms", "width", "height", "method", "animated",
               "version", "kind", "membership", "not_membership", "at", "ts", "search_term",
               "recurse", "include", "only", "next_batch", "event_id", "org.matrix.msc3575.pos"]
QUERY_VALUES = ["0", "1", "-1", "10", "9223372036854775807", "9223372036854775808",
                "18446744073709551616", "1e3", "0x10", "", "true", "false", "b", "f", "x",
                '{"room":{"timeline":{"limit":1}}}', '{"room":{"timeline":{"limit":-1}}}',
                "[]", "null", "s0_0", "t1-2_3", "%", "ü", "!x:schule.test", "@fuzz1:schule.test"]
EVENT_TYPES = ["m.room.message", "m.room.member", "m.room.power_levels", "m.room.name",
               "m.room.topic", "m.room.join_rules", "m.room.create", "m.room.encrypted",
               "m.reaction", "m.room.redaction", "m.custom.x", "", "x" * 300]


def _body_templates(world: MatrixWorld, session: MatrixSession) -> dict[str, Any]:
    """Plausible bodies by a word of the path: the grammar the mutations start from."""
    other = world.sessions[0].user_id
    return {
        "send": {"msgtype": "m.text", "body": "Hallo",
                 "m.relates_to": {"rel_type": "m.thread", "event_id": session.event_id}},
        "state": {"name": "Raum", "join_rule": "invite", "users": {other: 50},
                  "membership": "join", "topic": "t"},
        "createRoom": {"preset": "private_chat", "invite": [other], "name": "x",
                       "initial_state": [{"type": "m.room.topic", "content": {"topic": "t"}}],
                       "power_level_content_override": {"users_default": 0},
                       "is_direct": True, "room_version": "10"},
        "invite": {"user_id": other, "reason": "r"},
        "kick": {"user_id": other, "reason": "r"}, "ban": {"user_id": other},
        "unban": {"user_id": other},
        "login": {"type": "m.login.password", "identifier": {"type": "m.id.user",
                                                            "user": "nobody"},
                  "password": "wrong", "initial_device_display_name": "x"},
        "filter": {"room": {"timeline": {"limit": 5, "types": ["m.room.message"]},
                            "rooms": [session.room_id]}, "event_fields": ["content"]},
        "typing": {"typing": True, "timeout": 3000},
        "receipt": {"thread_id": "main"},
        "read_markers": {"m.fully_read": session.event_id, "m.read": session.event_id},
        "sendToDevice": {"messages": {other: {"*": {"a": 1}}}},
        "upload": {"device_keys": {"user_id": session.user_id, "device_id": session.device_id,
                                   "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
                                   "keys": {}, "signatures": {}},
                   "one_time_keys": {"signed_curve25519:AAAA": {"key": "x"}}},
        "query": {"device_keys": {other: []}, "timeout": 1000},
        "claim": {"one_time_keys": {other: {"DEV": "signed_curve25519"}}},
        "displayname": {"displayname": "Name"}, "avatar_url": {"avatar_url": "mxc://a/b"},
        "pushers": {"pushkey": "k", "kind": "http", "app_id": "a", "app_display_name": "a",
                    "device_display_name": "d", "lang": "de",
                    "data": {"url": "https://matrix.org/_matrix/push/v1/notify"}},
        "pushrules": {"actions": ["notify"], "conditions": [], "pattern": "x"},
        "account_data": {"x": 1}, "tags": {"order": 0.5},
        "redact": {"reason": "r"}, "search": {"search_categories": {"room_events":
                                                                    {"search_term": "x"}}},
        "user_directory": {"search_term": "fuzz", "limit": 10},
        "devices": {"display_name": "d"}, "delete_devices": {"devices": ["X"]},
        "keys": {"version": "1", "rooms": {}},
        "signatures": {session.user_id: {session.device_id: {"signatures": {}}}},
        "report": {"reason": "x", "score": -100},
        "join": {"reason": "r"}, "leave": {"reason": "r"},
    }


@dataclass
class MatrixSession:
    login: str
    password: str
    user_id: str = ""
    device_id: str = ""
    token: str = ""
    room_id: str = ""
    event_id: str = ""


@dataclass
class Route:
    listener: str  # client | federation
    method: str
    path: str  # aiohttp canonical form: /a/{name}/b or /a/{name:regex}


@dataclass
class MatrixWorld:
    """The fuzz accounts' sessions and the endpoint list, shared by the workers."""

    client_base: str
    federation_base: str
    domain: str
    routes: list[Route]
    sessions: list[MatrixSession]
    tls: ssl.SSLContext
    hang_seconds: float
    max_sync_seconds: float = 60.0
    media_ids: list[str] = field(default_factory=list)
    _relogin: asyncio.Lock = field(default_factory=asyncio.Lock)
    _by_task: dict[int, MatrixSession] = field(default_factory=dict)

    def own_session(self) -> MatrixSession:
        """The calling worker's own session: its requests never race each other on
        one device (a fuzzed /logout beside a /send of the same device is a known
        500, reported; here the workers each keep to their own)."""
        key = id(asyncio.current_task())
        if key not in self._by_task:
            self._by_task[key] = self.sessions[len(self._by_task) % len(self.sessions)]
        return self._by_task[key]

    async def setup(self) -> None:
        async with aiohttp.ClientSession() as http:
            for session in self.sessions:
                await self.login(http, session)
            for session in self.sessions:
                other = [s.user_id for s in self.sessions if s is not session]
                status, data = await _json(http, "POST", self.client_base
                                           + "/_matrix/client/v3/createRoom", session.token,
                                           {"invite": other, "name": "fuzz"})
                assert status == 200, data
                session.room_id = data["room_id"]
                status, data = await _json(
                    http, "PUT", f"{self.client_base}/_matrix/client/v3/rooms/"
                    f"{quote(session.room_id)}/send/m.room.message/{uuid.uuid4().hex}",
                    session.token, {"msgtype": "m.text", "body": "erste"})
                assert status == 200, data
                session.event_id = data["event_id"]
            async with http.post(f"{self.client_base}/_matrix/media/v3/upload",
                                 data=b"\x89PNG fuzz", headers={
                                     "Authorization": f"Bearer {self.sessions[0].token}",
                                     "Content-Type": "image/png"}) as r:
                data = await r.json()
                assert r.status == 200, data
                self.media_ids.append(data["content_uri"].rsplit("/", 1)[-1])

    async def login(self, http: aiohttp.ClientSession, session: MatrixSession) -> None:
        status, data = await _json(http, "POST", self.client_base + "/_matrix/client/v3/login",
                                   None, {"type": "m.login.password", "identifier": {
                                       "type": "m.id.user", "user": session.login},
                                       "password": session.password})
        assert status == 200, data
        session.token, session.user_id = data["access_token"], data["user_id"]
        session.device_id = data["device_id"]

    async def relogin(self, session: MatrixSession, dead_token: str) -> None:
        """A fuzzed /logout ended the session's token: log in again (once)."""
        async with self._relogin:
            if session.token != dead_token:
                return
            async with aiohttp.ClientSession() as http:
                await self.login(http, session)


async def _json(http: aiohttp.ClientSession, method: str, url: str, token: str | None,
                body: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


def routes_of(apps: dict[str, Any]) -> list[Route]:
    """Every (method, path) the applications route, HEAD and catch-alls aside."""
    found = []
    for listener, app in apps.items():
        for route in app.router.routes():
            if route.method in ("HEAD", "*"):
                continue
            canonical = route.resource.canonical if route.resource else ""
            if canonical:
                found.append(Route(listener, route.method, canonical))
    return found


def _path_value(rng: random.Random, name: str, world: MatrixWorld,
                session: MatrixSession) -> str:
    if rng.random() < 0.25:
        return rng.choice(PATH_JUNK)
    other = rng.choice(world.sessions)
    values = {
        "room_id": [session.room_id, other.room_id],
        "room_id_or_alias": [session.room_id, f"#fuzz:{world.domain}"],
        "room_alias": [f"#fuzz:{world.domain}", f"#x:{world.domain}"],
        "user_id": [session.user_id, other.user_id],
        "event_id": [session.event_id, other.event_id],
        "event_type": EVENT_TYPES, "type": EVENT_TYPES,
        "state_key": ["", session.user_id, other.user_id],
        "txn_id": [uuid.uuid4().hex],
        "server_name": [world.domain, "evil.example", "127.0.0.1:1"],
        "media_id": [*world.media_ids, "nope"],
        "filter_id": ["0", "1", "2", "9223372036854775807"],
        "device_id": [session.device_id, other.device_id, "NOPE"],
        "scope": ["global", "device"], "kind": ["override", "underride", "sender", "room",
                                               "content"],
        "rule_id": [".m.rule.master", "x", session.room_id],
        "tag": ["m.favourite", "u.x"], "version": ["1", "2", "0"],
        "key_id": ["ed25519:a", "x"], "session_id": ["s"],
        "file_name": ["a.png", "../../etc/passwd"], "tail": ["a/b", "schule.test/x"],
    }
    choices = values.get(name, ["x", "1", session.user_id])
    return quote(rng.choice(choices), safe="")


def fill_path(rng: random.Random, template: str, world: MatrixWorld,
              session: MatrixSession) -> str:
    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}",
                  lambda m: _path_value(rng, m.group(1), world, session), template)


def random_json(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.random()
    if depth < 6 and choice < 0.25:
        return {rng.choice(["a", "body", "type", "content", "user_id", "limit", "", "ü", "$x"]):
                random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    if depth < 6 and choice < 0.4:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return rng.choice(WRONG_TYPES)


def mutate_json(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """The template with some values swapped for wrong types or edge values."""
    if isinstance(value, dict):
        out = {k: mutate_json(rng, v, depth + 1) if rng.random() < 0.5 else v
               for k, v in value.items() if rng.random() > 0.1}
        if rng.random() < 0.15:
            out[rng.choice(["x", "type", "limit", "timeout", ""])] = random_json(rng)
        return out
    if isinstance(value, list):
        return [mutate_json(rng, v, depth + 1) for v in value] + (
            [random_json(rng)] if rng.random() < 0.2 else [])
    if rng.random() < 0.6:
        return rng.choice(WRONG_TYPES)
    return value


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def make_body(rng: random.Random, route: Route, world: MatrixWorld,
              session: MatrixSession) -> bytes | None:
    if route.method in ("GET", "DELETE") and rng.random() < 0.9:
        return None
    choice = rng.random()
    if choice < 0.05:
        return rng.choice([b"", b"{", b"\xff\xfe", b"null", b"[]", b'{"a":1,"a":2}',
                           nested(5000).encode(), b'{"x": NaN}', b'{"x": 1e999}',
                           b"\x00", b'{"\\ud800": 1}', b'"x"', b"1" * 5000])
    templates = _body_templates(world, session)
    words = [w for w in re.split(r"[/{}]", route.path) if w in templates]
    if words and choice < 0.8:
        template = templates[words[-1]]
        body = mutate_json(rng, template) if rng.random() < 0.7 else template
    else:
        body = random_json(rng)
    try:
        return json.dumps(body).encode()
    except (ValueError, TypeError):
        return b"{}"


def make_query(rng: random.Random) -> dict[str, str]:
    query = {}
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        name = rng.choice(QUERY_NAMES)
        value = rng.choice(QUERY_VALUES)
        if name == "timeout" and rng.random() < 0.9:
            value = rng.choice(["0", "10", "500", "-1", "x"])
        query[name] = value
    return query


RAW_REQUESTS = [
    b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /_matrix/client/v3/../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /_matrix/client/v3/rooms/%zz/state HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://evil.example/_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\n{}x\r\nzz\r\n\r\n",
    b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999"
    b"\r\n\r\n",
    b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /_matrix/client/versions HTTP/9.9\r\nHost: x\r\n\r\n",
    b"BREW /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /_matrix/client/versions HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
    b"GET /_matrix/client/v3/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\r\n\r\n",
    b"GET /_matrix/client/v3/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Basic x\r\n\r\n",
    b"PUT /_matrix/client/v3/profile/@fuzz1:schule.test/displayname HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"\x16\x03\x01\x00\x05hello",
    b"GET / HTTP/1.0\r\n\r\n",
]


@dataclass
class RawTarget:
    host: str
    port: int


async def raw_case(world: MatrixWorld, target: RawTarget, rng: random.Random,
                   t: Transcript) -> None:
    request = rng.choice(RAW_REQUESTS)
    if rng.random() < 0.3:
        at = rng.randrange(len(request))
        request = request[:at] + rng.choice([b"\x00", b" ", b"\r\n", b"\xff", b":"]) + \
            request[at:]
    t.note("raw HTTP")
    reader, writer = await asyncio.open_connection(target.host, target.port,
                                                   local_addr=(source_address(rng), 0))
    try:
        t.sent(request)
        writer.write(request)
        await writer.drain()
        answer = await wait_answer(reader, world.hang_seconds)
        if answer is None:
            # The request may announce a body it lacks: the body timeout ends that.
            if re.search(rb"Content-Length: [1-9]|chunked", request, re.IGNORECASE) or \
                    not request.endswith(b"\r\n\r\n") or b"\r\n\r\n" not in request:
                t.note("server waits for a body or the end of the head; not a hang")
                return
            raise CaseFailed("hang", f"no answer within {world.hang_seconds} s")
        t.got(answer)
        match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
        if match and match.group(1).startswith(b"5") and match.group(1) not in (b"501", b"505"):
            raise CaseFailed("5xx", f"HTTP {match.group(1).decode()} to a raw request")
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def run_case(world: MatrixWorld, raw: RawTarget, rng: random.Random,
                   t: Transcript) -> None:
    if rng.random() < 0.1:
        await raw_case(world, raw, rng, t)
        return
    route = rng.choice(world.routes)
    session = world.own_session()
    path = fill_path(rng, route.path, world, session)
    query = make_query(rng)
    body = make_body(rng, route, world, session)
    token = session.token
    headers = {}
    auth = rng.random()
    if route.listener == "federation":
        if auth < 0.5:
            headers["Authorization"] = rng.choice([
                'X-Matrix origin="evil.example",key="ed25519:a",sig="AAAA"',
                f'X-Matrix origin="{world.domain}",destination="{world.domain}",'
                'key="ed25519:x",sig="!!"', "X-Matrix", "Bearer x"])
    elif auth < 0.85:
        headers["Authorization"] = f"Bearer {token}"
    elif auth < 0.9:
        headers["Authorization"] = rng.choice(["Bearer nope", "Bearer ", "Basic eA==", "x"])
    elif auth < 0.95:
        query["access_token"] = token
    if body is not None:
        headers["Content-Type"] = rng.choice(["application/json"] * 8 + [
            "text/plain", "image/png", "multipart/form-data; boundary=x"])
    base = world.federation_base if route.listener == "federation" else world.client_base
    deadline = world.hang_seconds + (world.max_sync_seconds if "timeout" in query else 0)
    t.note(f"{route.method} {path} query={query} headers={headers}")
    if body is not None:
        t.sent(body)
    connector = aiohttp.TCPConnector(local_addr=(source_address(rng), 0), ssl=world.tls)
    try:
        async with aiohttp.ClientSession(connector=connector) as http, http.request(
                route.method, base + path, params=query, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=deadline)) as response:
            text = await response.read()
            t.got(f"HTTP {response.status} ".encode() + text[:2000])
            if response.status >= 500:
                raise CaseFailed("5xx", f"HTTP {response.status} to {route.method} {path}")
            if response.status == 401 and b"M_UNKNOWN_TOKEN" in text and \
                    headers.get("Authorization") == f"Bearer {token}":
                await world.relogin(session, token)
    except TimeoutError:
        raise CaseFailed("hang", f"no answer within {deadline} s to {route.method} "
                         f"{path}") from None
    except (aiohttp.ClientError, ValueError) as error:
        t.note(f"client error: {error!r}")
