"""Property tests of what RemoteKeys keeps of other servers' key answers
(messenger.federation_keys; Server-Server API /user/keys/query and /claim): on any
answer it never raises, keeps only keys of the users and devices asked about that
name themselves, and a server that fails is listed under failures (issue 13.4)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.matrix.client import FederationRequestError
from messenger.federation_keys import RemoteKeys
from tests.support.properties import examples

USERS = ["@anna:remote.test", "@bert:remote.test", "@cem:other.test"]
DEVICES = ["DEV1", "DEV2"]

leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6),
                 st.sampled_from([*USERS, *DEVICES, "signed_curve25519:AAA"]))
value = st.recursive(leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from([*USERS, *DEVICES, "user_id", "device_id", "keys",
                                     "device_keys", "master_keys", "self_signing_keys",
                                     "one_time_keys", "signed_curve25519:AAA", "x"]),
                    inner, max_size=4)), max_leaves=15)


class Answering:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def request(self, method: str, server_name: str, path: str, *,
                      query: Mapping[str, str] | None = None, content: Any = None,
                      signed: bool = True) -> Any:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@settings(max_examples=examples(300), deadline=None)
@given(value)
def test_query_keeps_only_self_naming_keys_of_users_asked(answer: Any) -> None:
    remote = RemoteKeys(Answering(answer), "here.test")
    got = asyncio.run(remote.query({"@anna:remote.test": ["DEV1"], "@local:here.test": []}))
    assert set(got.device_keys) <= {"@anna:remote.test"}
    for user_id, devices in got.device_keys.items():
        for device_id, key in devices.items():
            assert device_id == "DEV1"
            assert key["user_id"] == user_id and key["device_id"] == device_id
    for keys in (got.master_keys, got.self_signing_keys):
        assert all(k["user_id"] == u == "@anna:remote.test" for u, k in keys.items())


@settings(max_examples=examples(300), deadline=None)
@given(value)
def test_claim_keeps_one_key_of_the_algorithm_asked(answer: Any) -> None:
    remote = RemoteKeys(Answering(answer), "here.test")
    got = asyncio.run(remote.claim({"@anna:remote.test": {"DEV1": "signed_curve25519"}}))
    for user_id, devices in got.one_time_keys.items():
        assert user_id == "@anna:remote.test" and set(devices) <= {"DEV1"}
        for key in devices.values():
            [key_id] = key
            assert key_id.startswith("signed_curve25519:")


def test_a_failing_server_is_a_failure_not_an_error() -> None:
    remote = RemoteKeys(Answering(FederationRequestError("down", 502)), "here.test")
    got = asyncio.run(remote.query({"@anna:remote.test": []}))
    assert got.device_keys == {} and got.failures == {
        "remote.test": {"status": 502, "message": "the server could not be reached"}}


def test_a_good_answer_is_kept() -> None:
    key = {"user_id": "@anna:remote.test", "device_id": "DEV1", "keys": {}}
    remote = RemoteKeys(Answering({"device_keys": {"@anna:remote.test": {
        "DEV1": key, "DEV9": {**key, "device_id": "DEV9"},
        "DEV2": {**key, "user_id": "@bert:remote.test"}}}}), "here.test")
    got = asyncio.run(remote.query({"@anna:remote.test": []}))
    assert got.device_keys == {"@anna:remote.test": {
        "DEV1": key, "DEV9": {**key, "device_id": "DEV9"}}}
