"""Issue 19 point 4: /keys/upload publishes only the uploading device's own keys.

A pupil must not be able to publish device keys in a teacher's name (or junk):
the server checks that ``device_keys`` names the requester's user and device
and carries the device's own ed25519 self-signature, and that signed one-time
and fallback keys are signed by that key; else 400 M_INVALID_PARAM, and
/keys/query never hands the forgery out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from conf.app import School
from directory.model import Role
from tests.messenger.signed_json import SigningKey, device_keys, unpadded
from tests.security.matrix_client import DOMAIN, PASSWORD, V3, RawClient, matrix_server


@pytest.fixture
async def pair(running_school: School) -> AsyncIterator[tuple[RawClient, RawClient]]:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)
    base = matrix_server(running_school).base_url
    async with aiohttp.ClientSession() as http:
        yield (await RawClient(http, base).login("lehrer"),
               await RawClient(http, base).login("anna"))


async def _published(client: RawClient, user_id: str) -> dict[str, Any]:
    queried = await client.ok("POST", f"{V3}/keys/query", {"device_keys": {user_id: []}})
    return queried["device_keys"].get(user_id, {})


def _forgeries(teacher: RawClient, anna: RawClient, key: SigningKey) -> dict[str, Any]:
    """Device keys anna might try to publish, each signed by a key she holds."""
    other = SigningKey()
    good = device_keys(anna.user_id, anna.device_id, key)
    unsigned = {k: v for k, v in good.items() if k != "signatures"}
    return {
        "the teacher's device": device_keys(teacher.user_id, teacher.device_id, key),
        "the teacher's user id": device_keys(teacher.user_id, anna.device_id, key),
        "another device id": device_keys(anna.user_id, "FREMD", key),
        "junk ids": device_keys("junk", "junk", key),
        "no signature": unsigned,
        "signed by another key": other.sign(unsigned, anna.user_id,
                                            f"ed25519:{anna.device_id}"),
        "a key named for another device": key.sign(
            {**unsigned, "keys": {**unsigned["keys"], "curve25519:FREMD": unpadded(b"x" * 32)}},
            anna.user_id, f"ed25519:{anna.device_id}"),
        "no ed25519 key": key.sign(
            {**unsigned, "keys": {f"curve25519:{anna.device_id}": unpadded(b"c" * 32)}},
            anna.user_id, f"ed25519:{anna.device_id}"),
        "tampered after signing": {**good, "algorithms": ["m.megolm.v1.aes-sha2", "x"]},
    }


async def test_forged_device_keys_are_refused_and_never_published(
        pair: tuple[RawClient, RawClient]) -> None:
    teacher, anna = pair
    key = SigningKey()
    for name, forged in _forgeries(teacher, anna, key).items():
        status, body = await anna.call("POST", f"{V3}/keys/upload", {"device_keys": forged})
        assert (status, body.get("errcode")) == (400, "M_INVALID_PARAM"), name
    assert await _published(anna, teacher.user_id) == {}
    assert await _published(teacher, anna.user_id) == {}

    own = device_keys(anna.user_id, anna.device_id, key)
    await anna.ok("POST", f"{V3}/keys/upload", {"device_keys": own})
    assert await _published(teacher, anna.user_id) == {anna.device_id: own}


def _key_object(key: SigningKey, anna: RawClient, text: str, **extra: Any) -> dict[str, Any]:
    return key.sign({"key": unpadded(text.encode().ljust(32, b"k")), **extra}, anna.user_id,
                    f"ed25519:{anna.device_id}")


async def test_signed_one_time_and_fallback_keys_must_be_signed_by_the_device(
        pair: tuple[RawClient, RawClient]) -> None:
    _, anna = pair
    key, other = SigningKey(), SigningKey()
    # Without published device keys nothing can vouch for a signed key.
    status, body = await anna.call("POST", f"{V3}/keys/upload", {
        "one_time_keys": {"signed_curve25519:A": _key_object(key, anna, "a")}})
    assert (status, body.get("errcode")) == (400, "M_INVALID_PARAM")
    await anna.ok("POST", f"{V3}/keys/upload",
                  {"device_keys": device_keys(anna.user_id, anna.device_id, key)})
    bad = {
        "unsigned": {"key": unpadded(b"u" * 32)},
        "a bare string": unpadded(b"s" * 32),
        "signed by another key": _key_object(other, anna, "o"),
        "tampered after signing": {**_key_object(key, anna, "t"), "key": unpadded(b"z" * 32)},
    }
    for field in ("one_time_keys", "fallback_keys"):
        for name, value in bad.items():
            status, body = await anna.call("POST", f"{V3}/keys/upload",
                                           {field: {"signed_curve25519:B": value}})
            assert (status, body.get("errcode")) == (400, "M_INVALID_PARAM"), (field, name)
    counts = await anna.ok("POST", f"{V3}/keys/upload", {
        "one_time_keys": {"signed_curve25519:C": _key_object(key, anna, "c")},
        "fallback_keys": {"signed_curve25519:D": _key_object(key, anna, "d", fallback=True)}})
    assert counts["one_time_key_counts"]["signed_curve25519"] == 1
    claimed = await anna.ok("POST", f"{V3}/keys/claim", {
        "one_time_keys": {anna.user_id: {anna.device_id: "signed_curve25519"}}})
    assert list(claimed["one_time_keys"][anna.user_id][anna.device_id]) == [
        "signed_curve25519:C"]
    assert f"@anna:{DOMAIN}" == anna.user_id
