"""Cross-signing over raw HTTP on loopback: uploading the three keys (first upload
without, replacement with user-interactive auth), refused signatures, signatures
uploaded later with per-key failures, /keys/query as the owner and as another
user, and the device-list change reaching the other user's /sync."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from conf.app import School
from directory.model import Role
from messenger.server import MatrixServer
from tests.e2e.test_matrix_api import PASSWORD, V3, Client, client, mxid
from tests.messenger.signed_json import SigningKey, cross_signing_key, device_keys, verifies

UPLOAD = f"{V3}/keys/device_signing/upload"
SIGNATURES = f"{V3}/keys/signatures/upload"


@pytest.fixture
async def base(running_school: School) -> str:
    for login, role in (("lehrer", Role.TEACHER), ("anna", Role.PUPIL)):
        await running_school.directory.create_account(role=role, login=login, password=PASSWORD)
    return next(s for s in running_school.services if isinstance(s, MatrixServer)).base_url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Identity:
    """One user's device key and cross-signing keys, kept on the client side."""

    def __init__(self, user: Client) -> None:
        self.user = user
        self.device = SigningKey()
        self.master, self.self_signing, self.user_signing = (SigningKey(), SigningKey(),
                                                             SigningKey())

    def keys(self) -> dict[str, Any]:
        uid = self.user.user_id
        return {"master_key": cross_signing_key(uid, "master", self.master),
                "self_signing_key": self.master.sign(
                    cross_signing_key(uid, "self_signing", self.self_signing), uid),
                "user_signing_key": self.master.sign(
                    cross_signing_key(uid, "user_signing", self.user_signing), uid)}

    def device_keys(self) -> dict[str, Any]:
        return device_keys(self.user.user_id, self.user.device_id, self.device)

    async def publish(self) -> None:
        await self.user.ok("POST", f"{V3}/keys/upload", {"device_keys": self.device_keys()})
        await self.user.ok("POST", UPLOAD, self.keys())


async def query(c: Client, *users: str) -> dict[str, Any]:
    return await c.ok("POST", f"{V3}/keys/query", {"device_keys": {u: [] for u in users}})


def password_auth(session: str, password: str = PASSWORD) -> dict[str, Any]:
    return {"type": "m.login.password", "session": session, "password": password,
            "identifier": {"type": "m.id.user", "user": "anna"}}


async def test_first_upload_free_replacement_needs_user_interactive_auth(
        http: aiohttp.ClientSession, base: str) -> None:
    anna = Identity(await client(http, base, "anna"))
    await anna.publish()  # no master key yet: no auth asked (spec v1.11, MSC3967)
    await anna.user.ok("POST", UPLOAD, anna.keys())  # the same keys again: nothing new
    mine = await query(anna.user, anna.user.user_id)
    assert mine["master_keys"][mxid("anna")] == anna.keys()["master_key"]
    assert mine["user_signing_keys"][mxid("anna")] == anna.keys()["user_signing_key"]

    replacement = Identity(anna.user)
    status, challenge = await anna.user.call("POST", UPLOAD, replacement.keys())
    assert status == 401 and "errcode" not in challenge
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    status, failed = await anna.user.call("POST", UPLOAD, {
        **replacement.keys(), "auth": password_auth(challenge["session"], "falsch")})
    assert status == 401 and failed["errcode"] == "M_FORBIDDEN"
    assert (await query(anna.user, mxid("anna")))["master_keys"][mxid("anna")] == \
        anna.keys()["master_key"]  # unchanged until authenticated
    await anna.user.ok("POST", UPLOAD, {**replacement.keys(),
                                        "auth": password_auth(failed["session"])})
    now = await query(anna.user, mxid("anna"))
    assert now["master_keys"][mxid("anna")]["keys"] == {
        f"ed25519:{replacement.master.public}": replacement.master.public}


async def test_bad_keys_and_signatures_are_refused(http: aiohttp.ClientSession,
                                                   base: str) -> None:
    anna = Identity(await client(http, base, "anna"))
    uid = anna.user.user_id
    keys = anna.keys()
    forged = SigningKey().sign(cross_signing_key(uid, "self_signing", anna.self_signing), uid,
                               f"ed25519:{anna.master.public}")
    status, err = await anna.user.call("POST", UPLOAD, {**keys, "self_signing_key": forged})
    assert status == 400 and err["errcode"] == "M_INVALID_SIGNATURE"
    status, err = await anna.user.call("POST", UPLOAD,
                                       {"self_signing_key": keys["self_signing_key"]})
    assert status == 400 and err["errcode"] == "M_MISSING_PARAM"  # no master key to check
    two_keys = {**keys["master_key"], "keys": {f"ed25519:{anna.master.public}":
                                               anna.master.public, "ed25519:x": "x"}}
    status, err = await anna.user.call("POST", UPLOAD, {"master_key": two_keys})
    assert status == 400 and err["errcode"] == "M_INVALID_PARAM"
    other_user = {**keys["master_key"], "user_id": mxid("lehrer")}
    status, err = await anna.user.call("POST", UPLOAD, {"master_key": other_user})
    assert status == 400 and err["errcode"] == "M_INVALID_PARAM"
    # A public key equal to one of the user's device ids (spec: 403).
    clash = await Client(http, base).login("anna")
    clash_key = SigningKey()
    await clash.ok("POST", f"{V3}/logout")
    data = await clash.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "anna"},
        "password": PASSWORD, "device_id": clash_key.public})
    assert data["device_id"] == clash_key.public
    status, err = await anna.user.call("POST", UPLOAD, {
        "master_key": cross_signing_key(uid, "master", clash_key)})
    assert status == 403 and err["errcode"] == "M_FORBIDDEN"
    assert (await query(anna.user, uid))["master_keys"] == {}


async def test_signatures_query_and_device_list_changes(http: aiohttp.ClientSession,
                                                        base: str) -> None:
    teacher = Identity(await client(http, base, "lehrer"))
    anna = Identity(await client(http, base, "anna"))
    room = (await teacher.user.ok("POST", f"{V3}/createRoom",
                                  {"invite": [mxid("anna")]}))["room_id"]
    await anna.user.ok("POST", f"{V3}/rooms/{room}/join")
    await teacher.publish()
    await anna.user.ok("POST", f"{V3}/keys/upload", {"device_keys": anna.device_keys()})
    since = (await teacher.user.ok("GET", f"{V3}/sync"))["next_batch"]
    await anna.user.ok("POST", UPLOAD, anna.keys())

    got = await teacher.user.ok("GET", f"{V3}/sync", params={"since": since, "timeout": "5000"})
    assert mxid("anna") in got["device_lists"]["changed"]
    since = got["next_batch"]

    # Anna signs her device with her self-signing key (good) and her master key with
    # her device under a forged signature (bad): one failure, one stored signature.
    aid, device_id = anna.user.user_id, anna.user.device_id
    signed_device = anna.self_signing.sign(anna.device_keys(), aid)
    badly_signed_master = SigningKey().sign(anna.keys()["master_key"], aid,
                                            f"ed25519:{device_id}")
    answer = await anna.user.ok("POST", SIGNATURES, {aid: {
        device_id: signed_device, anna.master.public: badly_signed_master}})
    assert answer["failures"] == {aid: {anna.master.public: {
        "errcode": "M_INVALID_SIGNATURE", "error": answer["failures"][aid][
            anna.master.public]["error"]}}}
    got = await teacher.user.ok("GET", f"{V3}/sync", params={"since": since, "timeout": "5000"})
    assert mxid("anna") in got["device_lists"]["changed"]

    seen = await query(teacher.user, aid)
    device = seen["device_keys"][aid][device_id]
    assert verifies(device, aid, f"ed25519:{anna.self_signing.public}",
                    anna.self_signing.public)
    assert verifies(device, aid, f"ed25519:{device_id}", anna.device.public)
    assert seen["master_keys"][aid]["keys"] == {f"ed25519:{anna.master.public}":
                                                anna.master.public}
    assert verifies(seen["self_signing_keys"][aid], aid, f"ed25519:{anna.master.public}",
                    anna.master.public)
    assert seen["user_signing_keys"] == {}  # only the owner sees a user-signing key

    # The teacher verifies Anna: her user-signing key signs Anna's master key.
    tid = teacher.user.user_id
    signed_master = teacher.user_signing.sign(seen["master_keys"][aid], tid)
    answer = await teacher.user.ok("POST", SIGNATURES, {aid: {anna.master.public:
                                                              signed_master}})
    assert answer["failures"] == {}
    master_as_teacher = (await query(teacher.user, aid))["master_keys"][aid]
    assert verifies(master_as_teacher, tid, f"ed25519:{teacher.user_signing.public}",
                    teacher.user_signing.public)
    master_as_anna = (await query(anna.user, aid))["master_keys"][aid]
    assert tid not in master_as_anna.get("signatures", {})  # private to the signer
    # A signature on a key that is not Anna's current master key is a failure.
    stale = teacher.user_signing.sign(cross_signing_key(aid, "master", SigningKey()), tid)
    answer = await teacher.user.ok("POST", SIGNATURES, {aid: {"unknown": stale}})
    assert answer["failures"][aid]["unknown"]["errcode"] == "M_NOT_FOUND"
