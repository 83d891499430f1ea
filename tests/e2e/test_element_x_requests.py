"""Element X's requests, replayed over HTTP against a running school.

Element X runs on matrix-rust-sdk; these are the request bodies of
matrix-rust-sdk 0.18.0 (the sdist of PyPI's matrix-sdk-python 0.18.0, ruma 0.16 /
ruma-client-api 0.24), each cited with the file:line it comes from, sent in the
order the SDK's services send them: discovery and login, the room list
service (``conn_id`` "room-list"), the encryption sync (``conn_id``
"encryption"), the notification client (``conn_id`` "notifications"), and the
restart after ``M_UNKNOWN_POS``.  Every response is checked against what the
SDK deserializes (ruma's ``sync_events::v5::Response``: which fields must be
there, which types they have), see ``check_v5_response``.

Paths below are relative to the matrix-rust-sdk tree; "ui" is
crates/matrix-sdk-ui/src, "sdk" is crates/matrix-sdk/src, "ffi" is
bindings/matrix-sdk-ffi/src.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.e2e import test_matrix_sliding_sync as sliding_e2e
from tests.e2e.test_matrix_sliding_sync import PASSWORD, SS, V3, Client, account, mxid

# The sliding sync e2e fixtures: a school shared by the module's tests, in the
# module's event loop; each test gets its own three teachers, and a session.
pytestmark = sliding_e2e.pytestmark
shared_school = sliding_e2e.shared_school
base = sliding_e2e.base
http = sliding_e2e.http

MAX_UINT = 2**53 - 1  # js_int::UInt, what ruma reads every count and stamp into

# ui/room_list_service/mod.rs:79-103 DEFAULT_REQUIRED_STATE, in the SDK's order
# (StateEventType::CallMember is "org.matrix.msc3401.call.member", MemberHints
# "io.element.functional_members", BeaconInfo "org.matrix.msc3672.beacon_info").
ROOM_LIST_STATE = [
    ["m.room.name", ""], ["m.room.encryption", ""], ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"], ["m.room.topic", ""], ["m.room.avatar", ""],
    ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
    ["org.matrix.msc3401.call.member", "*"], ["m.room.join_rules", ""],
    ["m.room.tombstone", ""], ["m.room.create", ""], ["m.room.history_visibility", ""],
    ["io.element.functional_members", ""], ["m.space.parent", "*"], ["m.space.child", "*"],
    ["org.matrix.msc3672.beacon_info", "*"],
]
# ui/room_list_service/mod.rs:162-173: the room list's extensions (the thread
# subscriptions extension, mod.rs:175-184, only when /versions offers MSC4306:
# we do not, so it is not sent).
ROOM_LIST_EXTENSIONS = {"account_data": {"enabled": True},
                        "receipts": {"enabled": True, "rooms": ["*"]},
                        "typing": {"enabled": True}}
# ui/notification_client.rs:500-512
NOTIFICATION_STATE = [
    ["m.room.encryption", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"],
    ["m.room.canonical_alias", ""], ["m.room.name", ""], ["m.room.avatar", ""],
    ["m.room.power_levels", ""], ["m.room.join_rules", ""],
    ["org.matrix.msc3401.call.member", "*"], ["m.room.create", ""],
    ["io.element.functional_members", ""],
]
# ui/room_list_service/mod.rs:481-494 subscribe_to_rooms(): the default state plus
# the pinned events (mod.rs:107-108), timeline 20 (mod.rs:116-117).
SUBSCRIPTION = {"required_state": [*ROOM_LIST_STATE, ["m.room.pinned_events", ""]],
                "timeline_limit": 20}
POLL_TIMEOUT_MS = 30_000  # sdk/sliding_sync/builder.rs:54 poll_timeout default


def room_list_request(ranges: list[list[int]]) -> dict[str, Any]:
    """sdk/sliding_sync/mod.rs:506-517 (conn_id, lists, extensions; no txn_id)
    with the all_rooms list of ui/room_list_service/mod.rs:214-231 as
    sdk/sliding_sync/list/mod.rs:288-294 serializes it (``filters`` with
    ``is_invite: None`` is an empty object)."""
    return {"conn_id": "room-list",
            "lists": {"all_rooms": {"ranges": ranges, "required_state": ROOM_LIST_STATE,
                                    "timeline_limit": 1, "filters": {}}},
            "extensions": ROOM_LIST_EXTENSIONS}


# ui/encryption_sync_service.rs:81-88: no lists, to_device and e2ee; the
# to_device ``since`` is the stored token (sdk/sliding_sync/mod.rs:520-523).
def encryption_request(since: str | None) -> dict[str, Any]:
    to_device: dict[str, Any] = {"enabled": True}
    if since is not None:
        to_device["since"] = since
    return {"conn_id": "encryption",
            "extensions": {"to_device": to_device, "e2ee": {"enabled": True}}}


def notification_request(room_id: str) -> dict[str, Any]:
    """ui/notification_client.rs:514-540: the "invites" list (selective 0..=16,
    timeline 8, is_invite) and a subscription to the notified room (timeline 16)."""
    return {"conn_id": "notifications",
            "lists": {"invites": {"ranges": [[0, 16]], "required_state": NOTIFICATION_STATE,
                                  "timeline_limit": 8, "filters": {"is_invite": True}}},
            "room_subscriptions": {room_id: {"required_state": NOTIFICATION_STATE,
                                             "timeline_limit": 16}},
            "extensions": {"account_data": {"enabled": True}}}


# --- what ruma reads (ruma-client-api sync_events/v5.rs, Response) -----------------------

def is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_UINT


def check_event(event: Any, *, state: bool = False, stripped: bool = False) -> None:
    assert isinstance(event, dict) and isinstance(event.get("type"), str), event
    assert isinstance(event.get("content"), dict), event
    assert isinstance(event.get("sender"), str), event
    if state or stripped:
        assert isinstance(event.get("state_key"), str), event
    if not stripped:
        assert isinstance(event.get("event_id"), str), event
        assert is_uint(event.get("origin_server_ts")), event


ROOM_UINTS = ("notification_count", "highlight_count", "joined_count", "invited_count",
              "num_live", "bump_stamp")


def check_room(room_id: str, room: Any) -> None:
    """response::Room: every field optional, but typed."""
    assert room_id.startswith("!") and isinstance(room, dict), (room_id, room)
    for key in ROOM_UINTS:
        assert key not in room or is_uint(room[key]), (room_id, key, room[key])
    for key in ("initial", "is_dm", "limited"):
        assert key not in room or isinstance(room[key], bool), (room_id, key)
    for key in ("name", "prev_batch"):
        assert key not in room or isinstance(room[key], str), (room_id, key)
    # JsOption<OwnedMxcUri>: null unsets it, a string must be an mxc URI
    assert room.get("avatar") is None or room["avatar"].startswith("mxc://"), room_id
    for event in room.get("timeline", []):
        check_event(event)
    for event in room.get("required_state", []):
        check_event(event, state=True)
    if "invite_state" in room:
        assert isinstance(room["invite_state"], list) and room["invite_state"], room_id
        for event in room["invite_state"]:
            check_event(event, stripped=True)
    for hero in room.get("heroes", []):  # response::Hero: user_id required
        assert isinstance(hero["user_id"], str), hero
        assert set(hero) <= {"user_id", "displayname", "avatar_url"}, hero


def check_extensions(ext: Any) -> None:
    assert isinstance(ext, dict), ext
    if "to_device" in ext:  # response::ToDevice: next_batch is not optional
        assert isinstance(ext["to_device"]["next_batch"], str), ext["to_device"]
        for event in ext["to_device"].get("events", []):
            assert isinstance(event["type"], str) and isinstance(event["sender"], str)
            assert isinstance(event["content"], dict)
    if "e2ee" in ext:
        e2ee = ext["e2ee"]
        for key in ("changed", "left"):
            assert all(isinstance(u, str) for u in e2ee.get("device_lists", {}).get(key, []))
        assert all(isinstance(k, str) and is_uint(v)
                   for k, v in e2ee.get("device_one_time_keys_count", {}).items()), e2ee
        assert all(isinstance(k, str) for k in e2ee.get("device_unused_fallback_key_types", []))
    if "account_data" in ext:
        for event in ext["account_data"].get("global", []):
            assert isinstance(event["type"], str) and isinstance(event["content"], dict)
        for events in ext["account_data"].get("rooms", {}).values():
            assert all(isinstance(e["type"], str) for e in events)
    for name, kind in (("receipts", "m.receipt"), ("typing", "m.typing")):
        for event in ext.get(name, {}).get("rooms", {}).values():
            assert event["type"] == kind and isinstance(event["content"], dict), event


def check_v5_response(data: Any) -> None:
    """Response: ``pos`` is the one required field (sdk/sliding_sync/mod.rs:267
    reads it unconditionally); each list needs ``count`` (response::List, read at
    sdk/sliding_sync/mod.rs:374 as the list's maximum number of rooms)."""
    assert isinstance(data, dict) and isinstance(data.get("pos"), str) and data["pos"], data
    assert "txn_id" not in data  # the SDK sends none (sdk/sliding_sync/mod.rs:506-510)
    for name, summary in data.get("lists", {}).items():
        assert isinstance(name, str) and is_uint(summary["count"]), (name, summary)
    for room_id, room in data.get("rooms", {}).items():
        check_room(room_id, room)
    check_extensions(data.get("extensions", {}))


class ElementX(Client):
    """One Element X device: its sliding sync connections' positions by conn_id."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        super().__init__(http, base)
        self.positions: dict[str, str | None] = {}

    async def ss(self, body: dict[str, Any], timeout: int) -> dict[str, Any]:
        """One request as sdk/sliding_sync/mod.rs:496-510 builds it: ``pos`` and
        ``timeout`` (ms) in the query, ``conn_id`` in the body."""
        params = {"timeout": str(timeout)}
        pos = self.positions.get(body["conn_id"])
        if pos is not None:
            params["pos"] = pos
        data = await self.ok("POST", SS, body, params=params)
        check_v5_response(data)
        self.positions[body["conn_id"]] = data["pos"]
        return data


async def element_x_login(http: aiohttp.ClientSession, base: str, user: str) -> ElementX:
    """ffi/client.rs:550-569 login(): sdk/authentication/matrix/login_builder.rs:
    174-185 sends login::v3 with m.id.user, the password, the device name and no
    refresh_token (ffi login never asks for one)."""
    client = ElementX(http, base)
    data = await client.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": account(user)},
        "password": PASSWORD, "initial_device_display_name": "Element X"})
    for key in ("access_token", "device_id", "user_id"):
        assert isinstance(data[key], str) and data[key], (key, data)
    client.token, client.user_id = data["access_token"], data["user_id"]
    return client


# --- the replay --------------------------------------------------------------------------

async def test_discovery_and_login_as_the_sdk_does_them(http: aiohttp.ClientSession,
                                                        base: str) -> None:
    anonymous = Client(http, base)
    # sdk/client/builder/homeserver_config.rs:167-196: /.well-known/matrix/client,
    # m.homeserver.base_url is required (discover_homeserver::Response).
    status, well_known = await anonymous.call("GET", "/.well-known/matrix/client")
    assert status == 200 and isinstance(well_known["m.homeserver"]["base_url"], str)
    # sdk/client/builder/mod.rs:602-615 + sdk/sliding_sync/client.rs:95-101: with
    # DiscoverNative (ffi/client_builder.rs:514-517) a server whose /versions lacks
    # unstable_features["org.matrix.simplified_msc3575"] = true is refused.
    versions = await anonymous.ok("GET", "/_matrix/client/versions")
    assert isinstance(versions["versions"], list) and versions["versions"]
    assert all(isinstance(v, str) for v in versions["versions"])
    assert versions["unstable_features"]["org.matrix.simplified_msc3575"] is True
    assert all(isinstance(v, bool) for v in versions["unstable_features"].values())
    # ffi/client.rs:504-547 homeserver_login_details(): OAuth metadata first
    # (sdk/authentication/oauth/mod.rs:521-545, GET /_matrix/client/v1/auth_metadata);
    # an error there only means "no OAuth login" (supports_oauth_login = false) ...
    # ruma picks the path by the advertised versions: v1/ from v1.15 on, below that
    # the MSC2965 unstable one; both must say "not implemented" (404 M_UNRECOGNIZED,
    # OAuthDiscoveryError::NotSupported at oauth/mod.rs:527-530).
    for path in ("/_matrix/client/v1/auth_metadata",
                 "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata"):
        status, error = await anonymous.call("GET", path)
        assert (status, error["errcode"]) == (404, "M_UNRECOGNIZED"), path
    # ... then the login types: m.login.password makes supports_password_login.
    flows = await anonymous.ok("GET", f"{V3}/login")
    assert {"type": "m.login.password"} in [{"type": f["type"]} for f in flows["flows"]]
    await element_x_login(http, base, "lehrer")


async def test_room_list_service_setup_growth_and_live_updates(
        http: aiohttp.ClientSession, base: str) -> None:
    kollegin = await element_x_login(http, base, "kollegin")
    lehrer = await element_x_login(http, base, "lehrer")
    rooms = [await lehrer.room(f"Klasse {n}", [mxid("kollegin")]) for n in range(3)]
    for room_id in rooms[:2]:
        await kollegin.ok("POST", f"{V3}/join/{quote(room_id)}")
    await lehrer.send(rooms[0], "Hallo 0")
    # State Init -> SettingUp: selective 0..=19 (ui/room_list_service/state.rs:183,194),
    # timeout 0 (ui/room_list_service/mod.rs:236-241).
    started = time.monotonic()
    data = await kollegin.ss(room_list_request([[0, 19]]), timeout=0)
    assert time.monotonic() - started < 5
    assert data["lists"]["all_rooms"]["count"] == 3  # two joined, one invite
    assert set(data["rooms"]) == set(rooms)
    joined = data["rooms"][rooms[0]]
    assert joined["initial"] is True and joined["name"] == "Klasse 0"
    assert [e["content"]["body"] for e in joined["timeline"]] == ["Hallo 0"]
    assert joined["joined_count"] == 2 and is_uint(joined["bump_stamp"])
    state = {(e["type"], e["state_key"]) for e in joined["required_state"]}
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.power_levels", ""),
            ("m.room.join_rules", ""), ("m.room.history_visibility", ""),
            ("m.room.member", kollegin.user_id)} <= state
    invite = data["rooms"][rooms[2]]
    assert "timeline" not in invite  # an invite: its stripped state only
    assert {"type": "m.room.member", "state_key": kollegin.user_id,
            "sender": lehrer.user_id, "content": {"membership": "invite"}} \
        in [{k: e[k] for k in ("type", "state_key", "sender")}
            | {"content": {"membership": e["content"].get("membership")}}
            for e in invite["invite_state"]]
    assert isinstance(data["extensions"]["account_data"]["global"], list)
    # The timeline paginates back from prev_batch (the event cache's /messages,
    # sdk/event_cache/caches/room/state.rs:848-911 keeps it as a gap when limited).
    assert joined["limited"] is True
    older = await kollegin.ok("GET", f"{V3}/rooms/{quote(rooms[0])}/messages",
                              params={"dir": "b", "from": joined["prev_batch"], "limit": "50"})
    assert isinstance(older["chunk"], list) and isinstance(older["start"], str)
    assert not {e["event_id"] for e in older["chunk"]} \
        & {e["event_id"] for e in joined["timeline"]}
    assert older["chunk"][-1]["type"] == "m.room.create"
    # SettingUp -> Running: growing, batch 100 (state.rs:168-177,198); the range is
    # [0, min(0 + 100, count) - 1] (sdk/sliding_sync/list/request_generator.rs:
    # 174-196, 300-330), still timeout 0 as the list is not fully loaded yet.
    data = await kollegin.ss(room_list_request([[0, 2]]), timeout=0)
    assert data["lists"]["all_rooms"]["count"] == 3
    # Fully loaded: long-poll with the default poll timeout (mod.rs:496-500).
    growing = room_list_request([[0, 2]])
    waiting = asyncio.create_task(kollegin.ss(growing, timeout=POLL_TIMEOUT_MS))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    started = time.monotonic()
    # A message in the room she is only invited to is not hers to see (and an
    # entry without invite_state would make the SDK take the room for joined,
    # msc4186/mod.rs:291-300).
    await lehrer.send(rooms[2], "Nur für Mitglieder")
    event_id = await lehrer.send(rooms[1], "Neue Nachricht")
    data = await asyncio.wait_for(waiting, 10)
    assert time.monotonic() - started < 3
    assert rooms[2] not in data["rooms"]
    room = data["rooms"][rooms[1]]
    assert [e["event_id"] for e in room["timeline"]] == [event_id]
    assert room["notification_count"] >= 1 and "initial" not in room
    # A new invite arrives on the same long-poll, with its invite_state.
    waiting = asyncio.create_task(kollegin.ss(growing, timeout=POLL_TIMEOUT_MS))
    await asyncio.sleep(0.3)
    new_room = await lehrer.room("Fachschaft", [mxid("kollegin")])
    data = await asyncio.wait_for(waiting, 10)
    if new_room not in data["rooms"]:  # the creation and the invite in two passes
        data = await kollegin.ss(growing, timeout=5000)
    assert data["lists"]["all_rooms"]["count"] == 4
    assert any(e["type"] == "m.room.member" and e["state_key"] == kollegin.user_id
               and e["content"]["membership"] == "invite"
               for e in data["rooms"][new_room]["invite_state"])
    # The user opens room 1: subscribe_to_rooms cancels the long-poll in flight
    # (ui/room_list_service/mod.rs:497-503) and the next request, with the same
    # pos, carries the subscription (sdk/sliding_sync/mod.rs:513-514).
    for n in range(3):
        await lehrer.send(rooms[1], f"Verlauf {n}")
    data = await kollegin.ss(growing, timeout=0)
    in_flight = asyncio.create_task(kollegin.ss(growing, timeout=POLL_TIMEOUT_MS))
    await asyncio.sleep(0.3)
    in_flight.cancel()
    kollegin.positions["room-list"] = data["pos"]
    opened = {**growing, "room_subscriptions": {rooms[1]: SUBSCRIPTION}}
    started = time.monotonic()
    data = await kollegin.ss(opened, timeout=POLL_TIMEOUT_MS)
    assert time.monotonic() - started < 5  # new parameters: an answer at once
    room = data["rooms"][rooms[1]]
    bodies = [e["content"].get("body") for e in room["timeline"]
              if e["type"] == "m.room.message"]
    assert bodies == ["Neue Nachricht", "Verlauf 0", "Verlauf 1", "Verlauf 2"]
    # Fewer events than timeline_limit: the whole room, not limited. The SDK's event
    # cache drops prev_batch when limited is false and it knows earlier events
    # (sdk/event_cache/caches/room/state.rs:842-846), so a cut timeline here would
    # lose the room's start for good.
    assert room["limited"] is False and room["timeline"][0]["type"] == "m.room.create"
    # A read receipt comes through the receipts extension (rooms ["*"]).
    last = room["timeline"][-1]["event_id"]
    waiting = asyncio.create_task(kollegin.ss(opened, timeout=POLL_TIMEOUT_MS))
    await asyncio.sleep(0.3)
    await lehrer.ok("POST", f"{V3}/rooms/{quote(rooms[1])}/receipt/m.read/{quote(last)}", {})
    data = await asyncio.wait_for(waiting, 10)
    receipt = data["extensions"]["receipts"]["rooms"][rooms[1]]
    assert lehrer.user_id in receipt["content"][last]["m.read"]
    # A favourite (room account data, m.tag) comes through the account_data
    # extension, which covers every list room (lists: None).
    waiting = asyncio.create_task(kollegin.ss(opened, timeout=POLL_TIMEOUT_MS))
    await asyncio.sleep(0.3)
    await kollegin.ok("PUT", f"{V3}/user/{quote(kollegin.user_id)}/rooms/{quote(rooms[0])}"
                             "/tags/m.favourite", {"order": 0.5})
    data = await asyncio.wait_for(waiting, 10)
    assert {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.5}}}} \
        in data["extensions"]["account_data"]["rooms"][rooms[0]]
    # Her own message comes back with its transaction id: the send queue matches
    # its local echo by it or the event id (ui/timeline/event_handler.rs:1213-1230).
    waiting = asyncio.create_task(kollegin.ss(opened, timeout=POLL_TIMEOUT_MS))
    await asyncio.sleep(0.3)
    txn = f"sq-{time.monotonic_ns()}"
    own = await kollegin.ok("PUT", f"{V3}/rooms/{quote(rooms[1])}/send/m.room.message/{txn}",
                            {"msgtype": "m.text", "body": "Danke!"})
    data = await asyncio.wait_for(waiting, 10)
    echo = [e for e in data["rooms"][rooms[1]]["timeline"]
            if e["event_id"] == own["event_id"]]
    assert echo and echo[0]["unsigned"]["transaction_id"] == txn
    # The SDK takes a room's state from required_state only, never from the
    # timeline (matrix-sdk-base response_processors/room/msc4186/mod.rs:72-80,
    # State::After, state_events.rs:75-79): a renamed room's new m.room.name must
    # be in required_state even though it is in the timeline too.
    waiting = asyncio.create_task(kollegin.ss(opened, timeout=POLL_TIMEOUT_MS))
    await asyncio.sleep(0.3)
    await lehrer.ok("PUT", f"{V3}/rooms/{quote(rooms[1])}/state/m.room.name/",
                    {"name": "Klasse 1b"})
    data = await asyncio.wait_for(waiting, 10)
    renamed = data["rooms"][rooms[1]]
    assert "m.room.name" in [e["type"] for e in renamed["timeline"]]
    assert [e["content"]["name"] for e in renamed.get("required_state", [])
            if e["type"] == "m.room.name"] == ["Klasse 1b"]
    # Kicked out of a room: it comes once more, with the leave in required_state
    # (the SDK finds its own membership there: msc4186/mod.rs:291-315), and
    # leaves the list.
    waiting = asyncio.create_task(kollegin.ss(opened, timeout=POLL_TIMEOUT_MS))
    await asyncio.sleep(0.3)
    await lehrer.ok("POST", f"{V3}/rooms/{quote(rooms[0])}/kick",
                    {"user_id": kollegin.user_id, "reason": "Schuljahresende"})
    data = await asyncio.wait_for(waiting, 10)
    left = data["rooms"][rooms[0]]
    assert [e["content"]["membership"] for e in left.get("required_state", [])
            if e["type"] == "m.room.member" and e["state_key"] == kollegin.user_id] \
        == ["leave"]
    # As Synapse: a room left since pos counts in the list this once, then not.
    data = await kollegin.ss(opened, timeout=0)
    assert data["lists"]["all_rooms"]["count"] == 3 and rooms[0] not in data["rooms"]
    # The invite withdrawn: the leave alone, none of the room's messages.
    waiting = asyncio.create_task(kollegin.ss(opened, timeout=POLL_TIMEOUT_MS))
    await asyncio.sleep(0.3)
    await lehrer.ok("POST", f"{V3}/rooms/{quote(rooms[2])}/kick",
                    {"user_id": kollegin.user_id})
    data = await asyncio.wait_for(waiting, 10)
    withdrawn = data["rooms"][rooms[2]]
    assert "invite_state" not in withdrawn
    for part in ("timeline", "required_state"):
        assert [(e["type"], e["state_key"], e["content"]["membership"])
                for e in withdrawn[part]] == [("m.room.member", kollegin.user_id, "leave")]


async def test_encryption_sync_connection_and_to_device(http: aiohttp.ClientSession,
                                                       base: str) -> None:
    kollegin = await element_x_login(http, base, "kollegin")
    lehrer = await element_x_login(http, base, "lehrer")
    device = (await kollegin.ok("GET", f"{V3}/account/whoami"))["device_id"]
    # Both connections of ui/sync_service.rs run side by side on one device.
    await kollegin.ss(room_list_request([[0, 19]]), timeout=0)
    # The first encryption request: no pos, no since, and the default timeout
    # (no lists: PollTimeout::Default, sdk/sliding_sync/mod.rs:417-427, 496-500).
    # A new connection must answer at once, not after 30 s.
    started = time.monotonic()
    data = await kollegin.ss(encryption_request(None), timeout=POLL_TIMEOUT_MS)
    assert time.monotonic() - started < 5
    ext = data["extensions"]
    since = ext["to_device"]["next_batch"]
    assert ext["to_device"].get("events", []) == []
    assert "signed_curve25519" in ext["e2ee"]["device_one_time_keys_count"]
    assert "device_unused_fallback_key_types" in ext["e2ee"]  # fallback keys supported
    # A to-device message for this device arrives by long-poll, with the since
    # the SDK stored from next_batch.
    waiting = asyncio.create_task(
        kollegin.ss(encryption_request(since), timeout=POLL_TIMEOUT_MS))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await lehrer.ok("PUT", f"{V3}/sendToDevice/m.room_key_request/ex{time.monotonic_ns()}",
                    {"messages": {kollegin.user_id: {device: {"action": "request_cancellation",
                                                              "request_id": "r1",
                                                              "requesting_device_id": "X"}}}})
    data = await asyncio.wait_for(waiting, 10)
    to_device = data["extensions"]["to_device"]
    assert [(e["type"], e["sender"]) for e in to_device["events"]] \
        == [("m.room_key_request", lehrer.user_id)]
    assert to_device["next_batch"] != since
    # The next request with the new since acknowledges: nothing comes twice.
    data = await kollegin.ss(encryption_request(to_device["next_batch"]), timeout=0)
    assert data["extensions"].get("to_device", {}).get("events", []) == []
    # Someone comes to share a room: their devices are news for the OlmMachine
    # (e2ee.device_lists.changed), on this connection that has no lists at all.
    room_id = await kollegin.room("Verschlüsselt", [mxid("lehrer")])
    waiting = asyncio.create_task(
        kollegin.ss(encryption_request(to_device["next_batch"]), timeout=POLL_TIMEOUT_MS))
    await asyncio.sleep(0.3)
    await lehrer.ok("POST", f"{V3}/join/{quote(room_id)}")
    data = await asyncio.wait_for(waiting, 10)
    if lehrer.user_id not in data["extensions"]["e2ee"].get("device_lists", {}).get(
            "changed", []):  # the invite woke it first
        data = await kollegin.ss(encryption_request(to_device["next_batch"]), timeout=5000)
    assert lehrer.user_id in data["extensions"]["e2ee"]["device_lists"]["changed"]
    # The room list connection's pos is untouched by the encryption connection.
    data = await kollegin.ss(room_list_request([[0, 0]]), timeout=0)
    assert data["lists"]["all_rooms"]["count"] == 1 and list(data["rooms"]) == [room_id]


async def test_notification_client_finds_the_event(http: aiohttp.ClientSession,
                                                   base: str) -> None:
    kollegin = await element_x_login(http, base, "kollegin")
    lehrer = await element_x_login(http, base, "lehrer")
    room_id = await lehrer.room("Elternabend", [mxid("kollegin")])
    await kollegin.ok("POST", f"{V3}/join/{quote(room_id)}")
    invited = await lehrer.room("Einladung", [mxid("kollegin")])
    event_id = await lehrer.send(room_id, "Bitte lesen")
    # poll_timeout 1 s (notification_client.rs:525); the selective list is fully
    # loaded at once, so the timeout is sent (list/builder.rs:74-80).
    data = await kollegin.ss(notification_request(room_id), timeout=1000)
    room = data["rooms"][room_id]
    assert event_id in [e["event_id"] for e in room["timeline"]]
    state = {(e["type"], e["state_key"]) for e in room["required_state"]}
    # the push context needs the power levels (notification_client.rs:499)
    assert ("m.room.power_levels", "") in state and ("m.room.create", "") in state
    assert data["lists"]["invites"]["count"] == 1
    assert "invite_state" in data["rooms"][invited]


async def test_lost_pos_is_m_unknown_pos_and_the_sdk_starts_over(
        http: aiohttp.ClientSession, base: str) -> None:
    kollegin = await element_x_login(http, base, "kollegin")
    lehrer = await element_x_login(http, base, "lehrer")
    room_id = await lehrer.room("Neustart", [mxid("kollegin")])
    await kollegin.ok("POST", f"{V3}/join/{quote(room_id)}")
    await kollegin.ss(room_list_request([[0, 19]]), timeout=0)
    first = await kollegin.ss(encryption_request(None), timeout=0)
    since = first["extensions"]["to_device"]["next_batch"]
    # A pos the server no longer knows (expired, from before a restart).
    kollegin.positions["room-list"] = "verloren"
    status, error = await kollegin.call("POST", SS, room_list_request([[0, 0]]),
                                        params={"pos": "verloren", "timeout": "0"})
    # ruma ErrorKind::UnknownPos from the errcode; sdk/sliding_sync/mod.rs:744-746
    # then drops pos (expire_session, mod.rs:779-805).
    assert (status, error["errcode"]) == (400, "M_UNKNOWN_POS")
    assert isinstance(error.get("error"), str)
    # ui/room_list_service/state.rs:143-156: Error{from: Running} -> Recovering,
    # selective 0..=19 again, no pos: the whole room comes again.
    kollegin.positions["room-list"] = None
    data = await kollegin.ss(room_list_request([[0, 19]]), timeout=0)
    assert data["rooms"][room_id]["initial"] is True
    assert data["rooms"][room_id]["name"] == "Neustart"
    # The encryption connection after its own M_UNKNOWN_POS: no pos but the stored
    # since (sdk/sliding_sync/mod.rs:448-452, 520-523): a message sent meanwhile
    # arrives, nothing from before since comes again.
    device = (await kollegin.ok("GET", f"{V3}/account/whoami"))["device_id"]
    await lehrer.ok("PUT", f"{V3}/sendToDevice/m.dummy/ex{time.monotonic_ns()}",
                    {"messages": {kollegin.user_id: {device: {"n": 1}}}})
    status, error = await kollegin.call("POST", SS, encryption_request(since),
                                        params={"pos": "verloren", "timeout": "0"})
    assert (status, error["errcode"]) == (400, "M_UNKNOWN_POS")
    kollegin.positions["encryption"] = None
    data = await kollegin.ss(encryption_request(since), timeout=POLL_TIMEOUT_MS)
    assert [e["content"] for e in data["extensions"]["to_device"]["events"]] == [{"n": 1}]
