"""Property tests of the EDU receiver (messenger.federation_edus.EduReceiver): on any
EDUs at all it never raises, and whatever it applies speaks only for users of the
sending server who are joined to the room; to-device messages only of the key
traffic, each message id once (Server-Server API EDUs; issue 13.4)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.e2ee import KEY_SHARING_TYPES
from messenger.events.identifiers import server_of
from messenger.federation_edus import EduReceiver
from tests.support.properties import examples

ORIGIN = "remote.test"
ROOM = "!raum:here.test"
JOINED = {(ROOM, "@anna:remote.test"), (ROOM, "@lehrer:here.test")}
KNOWN = ["@anna:remote.test", "@bert:remote.test", "@lehrer:here.test", "nobody", ""]


class Recorder:
    def __init__(self) -> None:
        self.typing: list[tuple[str, str, bool]] = []
        self.receipts: list[tuple[str, str, str]] = []
        self.to_device: list[tuple[str, str]] = []
        self.device_lists: list[str] = []

    def set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        self.typing.append((room_id, user_id, typing))

    async def put(self, room_id: str, user_id: str, receipt_type: str, thread_id: str,
                  event_id: str) -> None:
        self.receipts.append((room_id, user_id, event_id))

    async def receive_remote(self, sender: str, event_type: str,
                             messages: Mapping[str, Any]) -> int:
        self.to_device.append((sender, event_type))
        return 1

    async def device_list_changed(self, user_id: str) -> None:
        self.device_lists.append(user_id)


class Receiver(EduReceiver):
    """The receiver with its membership questions answered from ``JOINED`` (and no
    room's server ACL denies the origin)."""

    async def acl_denies(self, room_id: str, server: str) -> str:
        return ""

    async def is_joined(self, room_id: str, user_id: str) -> bool:
        return (room_id, user_id) in JOINED

    async def shares_a_room(self, user_id: str) -> bool:
        return any(user == user_id for _, user in JOINED)


def receiver(recorder: Recorder) -> Receiver:
    return Receiver(None, "here.test", recorder, recorder, recorder)  # type: ignore[arg-type]


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                      st.sampled_from([*KNOWN, ROOM, "m.read", "m.room.encrypted", "*"]))
json_value = st.recursive(
    json_leaf, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(
            [*KNOWN, ROOM, "room_id", "user_id", "typing", "sender", "type", "message_id",
             "messages", "event_ids", "data", "thread_id", "m.read"])),
            inner, max_size=4)),
    max_leaves=12)
edu_types = st.sampled_from(["m.typing", "m.receipt", "m.direct_to_device",
                             "m.device_list_update", "m.signing_key_update", "m.presence"])
well_formed = st.one_of(
    st.builds(lambda u, t: {"edu_type": "m.typing",
                            "content": {"room_id": ROOM, "user_id": u, "typing": t}},
              st.sampled_from(KNOWN), st.booleans()),
    st.builds(lambda u, e: {"edu_type": "m.receipt", "content": {ROOM: {"m.read": {
        u: {"event_ids": [e], "data": {"ts": 1}}}}}},
              st.sampled_from(KNOWN), st.text(min_size=1, max_size=5)),
    st.builds(lambda s, t, m: {"edu_type": "m.direct_to_device", "content": {
        "sender": s, "type": t, "message_id": m,
        "messages": {"@lehrer:here.test": {"*": {}}}}},
              st.sampled_from(KNOWN), st.sampled_from(["m.room.encrypted", "m.custom"]),
              st.sampled_from(["m1", "m2"])),
    st.builds(lambda u: {"edu_type": "m.device_list_update", "content": {"user_id": u}},
              st.sampled_from(KNOWN)),
)
any_edu = st.one_of(well_formed,
                    st.builds(lambda t, c: {"edu_type": t, "content": c}, edu_types,
                              json_value),
                    st.dictionaries(st.text(max_size=5), json_value, max_size=3))


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(any_edu, max_size=8))
def test_receiver_applies_only_what_may_speak(edus: list[Any]) -> None:
    recorder = Recorder()
    asyncio.run(receiver(recorder).receive(ORIGIN, edus))
    for room_id, user_id, _ in recorder.typing + recorder.receipts:
        assert server_of(user_id) == ORIGIN and (room_id, user_id) in JOINED
    for sender, event_type in recorder.to_device:
        assert server_of(sender) == ORIGIN and event_type in KEY_SHARING_TYPES
    assert all(server_of(u) == ORIGIN for u in recorder.device_lists)


def test_a_message_id_is_delivered_once() -> None:
    recorder = Recorder()
    edu = {"edu_type": "m.direct_to_device", "content": {
        "sender": "@anna:remote.test", "type": "m.room.encrypted", "message_id": "x",
        "messages": {"@lehrer:here.test": {"*": {}}}}}
    r = receiver(recorder)
    asyncio.run(r.receive(ORIGIN, [edu, edu]))
    asyncio.run(r.receive(ORIGIN, [edu]))
    assert recorder.to_device == [("@anna:remote.test", "m.room.encrypted")]


def test_well_formed_edus_of_members_are_applied() -> None:
    """The property above must not hold trivially: members' EDUs do get through."""
    recorder = Recorder()
    asyncio.run(receiver(recorder).receive(ORIGIN, [
        {"edu_type": "m.typing", "content": {"room_id": ROOM, "user_id": "@anna:remote.test",
                                             "typing": True}},
        {"edu_type": "m.receipt", "content": {ROOM: {"m.read": {
            "@anna:remote.test": {"event_ids": ["$e"], "data": {"ts": 1}}}}}},
        {"edu_type": "m.device_list_update", "content": {"user_id": "@anna:remote.test"}},
    ]))
    assert recorder.typing == [(ROOM, "@anna:remote.test", True)]
    assert recorder.receipts == [(ROOM, "@anna:remote.test", "$e")]
    assert recorder.device_lists == ["@anna:remote.test"]
