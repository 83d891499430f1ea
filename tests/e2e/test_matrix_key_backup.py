"""Server-side key backup over raw HTTP on loopback: versions, keys at all three
granularities, the spec's rule for which key wins, the wrong-version error,
deletion, and one user's backup invisible to another."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from tests.e2e import test_matrix_cross_signing
from tests.e2e.test_matrix_api import V3, Client, client

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM_A, ROOM_B = "!a:schule.test", "!b:schule.test"
SLASHED = "ab/cd+ef"  # Megolm session ids are base64: "/" and "+" come through quoted

# The same accounts and HTTP session as the cross-signing tests.
base = test_matrix_cross_signing.base
http = test_matrix_cross_signing.http


def key(index: int, forwarded: int = 0, verified: bool = False,
        ciphertext: str = "") -> dict[str, Any]:
    return {"first_message_index": index, "forwarded_count": forwarded,
            "is_verified": verified,
            "session_data": {"ephemeral": "eph", "ciphertext": ciphertext or f"c{index}",
                             "mac": "mac"}}


def keys_path(room: str | None = None, session: str | None = None) -> str:
    path = f"{V3}/room_keys/keys"
    if room is not None:
        path += "/" + quote(room, safe="")
    if session is not None:
        path += "/" + quote(session, safe="")
    return path


async def put(c: Client, version: str, body: Any, room: str | None = None,
              session: str | None = None) -> dict[str, Any]:
    return await c.ok("PUT", keys_path(room, session), body, params={"version": version})


async def get(c: Client, version: str, room: str | None = None,
              session: str | None = None) -> Any:
    return await c.ok("GET", keys_path(room, session), params={"version": version})


async def test_versions_keys_and_the_replacement_rule(http: aiohttp.ClientSession,
                                                     base: str) -> None:
    anna = await client(http, base, "anna")
    status, err = await anna.call("GET", f"{V3}/room_keys/version")
    assert status == 404 and err["errcode"] == "M_NOT_FOUND"
    auth_data = {"public_key": "pk1", "signatures": {}}
    version = (await anna.ok("POST", f"{V3}/room_keys/version",
                             {"algorithm": ALGORITHM, "auth_data": auth_data}))["version"]
    info = await anna.ok("GET", f"{V3}/room_keys/version")
    assert info == {"version": version, "algorithm": ALGORITHM, "auth_data": auth_data,
                    "count": 0, "etag": info["etag"]}
    assert await anna.ok("GET", f"{V3}/room_keys/version/{version}") == info

    # All three granularities of PUT, then of GET.
    first = await put(anna, version, {"rooms": {ROOM_A: {"sessions": {
        "s1": key(5, verified=True), "s2": key(3)}}}})
    assert first["count"] == 2 and first["etag"] != info["etag"]
    assert (await put(anna, version, {"sessions": {"s3": key(0)}}, ROOM_B))["count"] == 3
    fourth = await put(anna, version, key(7), ROOM_A, SLASHED)
    assert fourth["count"] == 4
    everything = await get(anna, version)
    assert set(everything["rooms"]) == {ROOM_A, ROOM_B}
    assert set(everything["rooms"][ROOM_A]["sessions"]) == {"s1", "s2", SLASHED}
    assert (await get(anna, version, ROOM_B)) == {"sessions": {"s3": key(0)}}
    assert (await get(anna, version, ROOM_A, SLASHED)) == key(7)
    assert (await get(anna, version, "!none:schule.test")) == {"sessions": {}}
    status, err = await anna.call("GET", keys_path(ROOM_A, "nope"), params={"version": version})
    assert status == 404 and err["errcode"] == "M_NOT_FOUND"

    # Which key wins: verified first, then the lower first_message_index, then the
    # lower forwarded_count; otherwise the stored key stays (and the etag with it).
    etag = fourth["etag"]
    kept = await put(anna, version, key(0, ciphertext="unverified"), ROOM_A, "s1")
    assert kept["etag"] == etag and (await get(anna, version, ROOM_A, "s1")) == key(5, 0, True)
    await put(anna, version, key(4, verified=True, ciphertext="lower"), ROOM_A, "s1")
    assert (await get(anna, version, ROOM_A, "s1"))["session_data"]["ciphertext"] == "lower"
    await put(anna, version, key(4, forwarded=2, verified=True, ciphertext="fwd"), ROOM_A, "s1")
    assert (await get(anna, version, ROOM_A, "s1"))["session_data"]["ciphertext"] == "lower"
    await put(anna, version, key(3, forwarded=1, ciphertext="s2-fwd"), ROOM_A, "s2")
    assert (await get(anna, version, ROOM_A, "s2"))["session_data"]["ciphertext"] == "c3"
    await put(anna, version, key(9, verified=True, ciphertext="verified"), ROOM_A, "s2")
    assert (await get(anna, version, ROOM_A, "s2"))["session_data"]["ciphertext"] == "verified"

    # Only the current version takes keys; auth_data may change, the algorithm not.
    newer = (await anna.ok("POST", f"{V3}/room_keys/version",
                           {"algorithm": ALGORITHM, "auth_data": {"public_key": "pk2"}}
                           ))["version"]
    status, err = await anna.call("PUT", keys_path(ROOM_A, "s9"), key(1),
                                  params={"version": version})
    assert status == 403 and err["errcode"] == "M_WRONG_ROOM_KEYS_VERSION"
    assert err["current_version"] == newer
    status, err = await anna.call("PUT", keys_path(ROOM_A, "s9"), key(1))
    assert status == 400 and err["errcode"] == "M_MISSING_PARAM"
    assert (await get(anna, version, ROOM_B)) == {"sessions": {"s3": key(0)}}  # still readable
    await anna.ok("PUT", f"{V3}/room_keys/version/{newer}",
                  {"algorithm": ALGORITHM, "auth_data": {"public_key": "pk3"}})
    assert (await anna.ok("GET", f"{V3}/room_keys/version"))["auth_data"] == {"public_key": "pk3"}
    status, err = await anna.call("PUT", f"{V3}/room_keys/version/{newer}",
                                  {"algorithm": "other", "auth_data": {}})
    assert status == 400 and err["errcode"] == "M_INVALID_PARAM"

    # Deleting: one session, one room, a version (again: still fine; unknown: 404).
    status, err = await anna.call("POST", f"{V3}/room_keys/version", {"algorithm": ALGORITHM})
    assert status == 400 and err["errcode"] == "M_MISSING_PARAM"
    gone = await anna.ok("DELETE", keys_path(ROOM_A, SLASHED), params={"version": version})
    assert gone["count"] == 3
    assert (await anna.ok("DELETE", keys_path(ROOM_A), params={"version": version}))["count"] == 1
    await anna.ok("DELETE", f"{V3}/room_keys/version/{newer}")
    await anna.ok("DELETE", f"{V3}/room_keys/version/{newer}")
    status, err = await anna.call("DELETE", f"{V3}/room_keys/version/99")
    assert status == 404 and err["errcode"] == "M_NOT_FOUND"
    status, err = await anna.call("GET", f"{V3}/room_keys/version/{newer}")
    assert status == 404 and err["errcode"] == "M_NOT_FOUND"
    assert (await anna.ok("GET", f"{V3}/room_keys/version"))["version"] == version
    assert (await anna.ok("GET", f"{V3}/room_keys/version"))["count"] == 1
    again = (await anna.ok("POST", f"{V3}/room_keys/version",
                           {"algorithm": ALGORITHM, "auth_data": {}}))["version"]
    assert again not in (version, newer)  # version ids are never reused


async def test_one_users_backup_is_invisible_to_another(http: aiohttp.ClientSession,
                                                       base: str) -> None:
    anna = await client(http, base, "anna")
    teacher = await client(http, base, "lehrer")
    version = (await anna.ok("POST", f"{V3}/room_keys/version",
                             {"algorithm": ALGORITHM, "auth_data": {}}))["version"]
    await put(anna, version, key(1, ciphertext="geheim"), ROOM_A, "s1")
    status, err = await teacher.call("GET", f"{V3}/room_keys/version")
    assert status == 404 and err["errcode"] == "M_NOT_FOUND"
    for method in ("GET", "PUT", "DELETE"):
        status, err = await teacher.call(method, keys_path(ROOM_A, "s1"),
                                         key(1) if method == "PUT" else None,
                                         params={"version": version})
        assert status == 404 and err["errcode"] == "M_NOT_FOUND", method
    own = (await teacher.ok("POST", f"{V3}/room_keys/version",
                            {"algorithm": ALGORITHM, "auth_data": {}}))["version"]
    assert (await get(teacher, own)) == {"rooms": {}}
    assert (await get(anna, version, ROOM_A, "s1"))["session_data"]["ciphertext"] == "geheim"
