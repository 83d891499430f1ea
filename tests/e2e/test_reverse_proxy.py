"""Behind a reverse proxy: one client's failed logins do not lock out everybody.

The Matrix port is meant to sit behind a TLS proxy, so every request comes
from the proxy's address.  With ``listen.trusted_proxies`` the login
throttle counts the address the proxy names in X-Forwarded-For; without it,
the proxy's own address (and so everyone) is locked after a few failures.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import aiohttp
import pytest

from conf.app import School
from conf.settings import Settings
from directory.model import Role
from tests.support.schools import make_settings
from tests.support.smtp_clients import client_tls_context

PASSWORD = "Anna-Lehrerin-1"
ATTACKER, TEACHER = "203.0.113.66", "198.51.100.7"


def service(school: School, name: str) -> object:
    (found,) = [s for s in school.services if type(s).__name__ == name]
    return found


async def matrix_login(http: aiohttp.ClientSession, url: str, user: str, password: str,
                       client: str) -> int:
    body = {"type": "m.login.password", "password": password,
            "identifier": {"type": "m.id.user", "user": user}}
    async with http.post(f"{url}/_matrix/client/v3/login", json=body,
                         headers={"X-Forwarded-For": client}) as response:
        return response.status


async def webmail_login(http: aiohttp.ClientSession, url: str, login: str, password: str,
                        client: str) -> int:
    # The login form is CSRF-protected: its page hands out the token (and the cookie).
    async with http.get(f"{url}/login", headers={"X-Forwarded-For": client}) as response:
        match = re.search(r'name="csrf" value="([^"]+)"', await response.text())
        assert match is not None
    async with http.post(f"{url}/login",
                         data={"csrf": match.group(1), "login": login, "password": password},
                         headers={"X-Forwarded-For": client},
                         allow_redirects=False) as response:
        return response.status


def proxied_settings(tmp_path: Path, database_url: str, trusted: tuple[str, ...]) -> Settings:
    settings = make_settings(tmp_path / "school", database_url)
    # An address is slowed only after many distinct failing accounts (a school NAT);
    # three here, so five guesses at five accounts show which address is counted.
    return dataclasses.replace(
        settings, listen=dataclasses.replace(settings.listen, trusted_proxies=trusted),
        auth=dataclasses.replace(settings.auth, ip_failing_accounts=3))


@pytest.mark.parametrize("trusted", [("127.0.0.1",), ()], ids=["trusted", "not-configured"])
async def test_a_guessing_client_behind_the_proxy_locks_out_only_itself(
        tmp_path: Path, database_url: str, trusted: tuple[str, ...]) -> None:
    school = await School.open(proxied_settings(tmp_path, database_url, trusted),
                               migrate=False)
    await school.start()
    try:
        await school.directory.create_account(role=Role.TEACHER, login="anna",
                                              password=PASSWORD)
        matrix_url = service(school, "MatrixServer").base_url  # type: ignore[attr-defined]
        web_url = service(school, "WebmailServer").base_url  # type: ignore[attr-defined]
        connector = aiohttp.TCPConnector(ssl=client_tls_context(school.settings))
        # unsafe=True: keep the webmail's session cookie although the host is an IP.
        async with aiohttp.ClientSession(connector=connector,
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            # Different accounts each time: only the address can be what is counted.
            statuses = [await matrix_login(http, matrix_url, f"nobody{n}", "guess", ATTACKER)
                        for n in range(5)]
            assert statuses[:3] == [403, 403, 403] and statuses[-1] == 429
            matrix_ok = await matrix_login(http, matrix_url, "anna", PASSWORD, TEACHER)
            web_ok = await webmail_login(http, web_url, "anna", PASSWORD, TEACHER)
        if trusted:
            assert (matrix_ok, web_ok) == (200, 303)
        else:  # everyone shares the proxy's address, and it is locked
            assert (matrix_ok, web_ok) == (429, 429)
    finally:
        await school.close()
