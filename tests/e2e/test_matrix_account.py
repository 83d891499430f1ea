"""Password change and 3PIDs over raw HTTP against a running school (spec:
Client-Server API v1.12 "Account management")."""

from __future__ import annotations

import aiohttp

from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import PASSWORD, V3, Client, client, mxid

base = test_matrix_api.base
http = test_matrix_api.http

NEW_PASSWORD = "ein ganz neues Passwort"


async def change(anna: Client, new_password: str, password: str = PASSWORD,
                 **extra: object) -> tuple[int, dict]:
    status, first = await anna.call("POST", f"{V3}/account/password",
                                    {"new_password": new_password, **extra})
    if status != 401:
        return status, first
    assert first["flows"] == [{"stages": ["m.login.password"]}] and "errcode" not in first
    return await anna.call("POST", f"{V3}/account/password", {
        "new_password": new_password, **extra,
        "auth": {"type": "m.login.password", "session": first["session"], "password": password,
                 "identifier": {"type": "m.id.user", "user": mxid("anna")}}})


async def test_password_change_logs_out_the_other_devices(http: aiohttp.ClientSession,
                                                          base: str) -> None:
    phone = await client(http, base, "anna")
    laptop = await client(http, base, "anna")
    caps = await phone.ok("GET", f"{V3}/capabilities")
    assert caps["capabilities"]["m.change_password"] == {"enabled": True}
    status, data = await change(phone, NEW_PASSWORD)
    assert status == 200, data
    assert (await phone.ok("GET", f"{V3}/account/whoami"))["user_id"] == mxid("anna")
    status, data = await laptop.call("GET", f"{V3}/account/whoami")
    assert (status, data["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    # The directory has the new password: a new login works with it, not the old one.
    fresh = Client(http, base)
    status, _ = await fresh.call("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "anna"},
        "password": PASSWORD})
    assert status == 403
    await fresh.login("anna", NEW_PASSWORD)


async def test_password_change_may_keep_the_other_devices(http: aiohttp.ClientSession,
                                                          base: str) -> None:
    phone = await client(http, base, "anna")
    laptop = await client(http, base, "anna")
    status, data = await change(phone, NEW_PASSWORD, logout_devices=False)
    assert status == 200, data
    await laptop.ok("GET", f"{V3}/account/whoami")


async def test_password_change_refusals(http: aiohttp.ClientSession, base: str) -> None:
    anna = await client(http, base, "anna")
    status, data = await change(anna, "kurz")
    assert (status, data["errcode"]) == (400, "M_WEAK_PASSWORD")
    status, data = await change(anna, "x" * 5000)
    assert (status, data["errcode"]) == (400, "M_WEAK_PASSWORD")
    status, data = await change(anna, NEW_PASSWORD, password="falsch geraten")
    assert (status, data["errcode"]) == (401, "M_FORBIDDEN")
    for body in ({}, {"new_password": 5}, {"new_password": NEW_PASSWORD,
                                           "logout_devices": "yes"}):
        status, data = await anna.call("POST", f"{V3}/account/password", body)
        assert (status, data["errcode"]) == (400, "M_BAD_JSON"), body
    status, data = await Client(http, base).call("POST", f"{V3}/account/password",
                                                 {"new_password": NEW_PASSWORD})
    assert (status, data["errcode"]) == (401, "M_MISSING_TOKEN")
    # Nothing changed: the old password still logs in.
    await client(http, base, "anna")


async def test_threepids_are_an_empty_list(http: aiohttp.ClientSession, base: str) -> None:
    anna = await client(http, base, "anna")
    assert (await anna.ok("GET", f"{V3}/account/3pid")) == {"threepids": []}
    status, data = await anna.call("POST", f"{V3}/account/3pid/add", {"sid": "x",
                                                                     "client_secret": "y"})
    assert (status, data["errcode"]) == (403, "M_FORBIDDEN")
    status, data = await anna.call("POST", f"{V3}/account/3pid/email/requestToken", {
        "client_secret": "s", "email": "anna@example.org", "send_attempt": 1})
    assert (status, data["errcode"]) == (403, "M_THREEPID_DENIED")
    data = await anna.ok("POST", f"{V3}/account/3pid/delete", {"medium": "email",
                                                               "address": "a@b.c"})
    assert data == {"id_server_unbind_result": "no-support"}
    status, data = await Client(http, base).call("GET", f"{V3}/account/3pid")
    assert (status, data["errcode"]) == (401, "M_MISSING_TOKEN")
