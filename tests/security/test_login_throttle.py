"""Issue 19.7 / issue 11.1: login throttling locks out the guesser, not the owner or the NAT.

Against a running school, over IMAP LOGIN, SMTP AUTH and Matrix /login, from
distinct loopback source addresses (127.0.0.0/8 is all ours):

* an attacker at one address guesses at the teacher's password until every
  protocol throttles it; the teacher, at another address, logs in at once;
* many pupils behind one NAT address type wrong passwords; a pupil behind the
  same address who types the right one gets in.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import socket
import ssl

import aiohttp

from tests.security.conftest import ServedSchool

ATTACKER, TEACHER_HOME, NAT = "127.0.0.66", "127.0.0.10", "127.0.0.20"


class _Imap(imaplib.IMAP4):
    """imaplib from a chosen source address."""

    def __init__(self, host: str, port: int, source: str) -> None:
        self._source = source
        super().__init__(host, port, timeout=20)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


def imap_login(served: ServedSchool, source: str, login: str, password: str) -> str:
    """"OK", "NO" or the NO's response code (e.g. "[UNAVAILABLE]")."""
    cafile = str(served.settings.path(served.settings.tls.certificate))
    imap = _Imap(served.host, served.settings.listen.imap, source)
    try:
        imap.starttls(ssl.create_default_context(cafile=cafile))
        try:
            imap.login(login, password)
        except imaplib.IMAP4.error as error:
            text = str(error)
            return "THROTTLED" if "UNAVAILABLE" in text or "later" in text.lower() else "NO"
        return "OK"
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def smtp_login(served: ServedSchool, source: str, login: str, password: str) -> str:
    cafile = str(served.settings.path(served.settings.tls.certificate))
    with smtplib.SMTP(served.host, served.settings.listen.submission, timeout=20,
                      source_address=(source, 0)) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=cafile))
        try:
            smtp.login(login, password)
        except smtplib.SMTPAuthenticationError as error:
            return "THROTTLED" if error.smtp_code == 454 else "NO"
        return "OK"


async def matrix_login(served: ServedSchool, source: str, login: str, password: str) -> str:
    url = f"http://{served.host}:{served.settings.listen.matrix}/_matrix/client/v3/login"
    body = {"type": "m.login.password", "password": password,
            "identifier": {"type": "m.id.user", "user": login}}
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http, \
            http.post(url, json=body) as response:
        if response.status == 200:
            return "OK"
        return "THROTTLED" if response.status == 429 else "NO"


async def login_everywhere(served: ServedSchool, source: str, login: str,
                           password: str) -> dict[str, str]:
    return {
        "imap": await asyncio.to_thread(imap_login, served, source, login, password),
        "smtp": await asyncio.to_thread(smtp_login, served, source, login, password),
        "matrix": await matrix_login(served, source, login, password),
    }


async def test_an_attacker_elsewhere_cannot_lock_the_teacher_out(served: ServedSchool) -> None:
    teacher = served.address("lehrerin")
    for _ in range(8):  # until every protocol refuses the attacker without checking
        results = await login_everywhere(served, ATTACKER, teacher, "rate-mal-123")
        assert "OK" not in results.values()
        if set(results.values()) == {"THROTTLED"}:
            break
    assert set(results.values()) == {"THROTTLED"}, results
    # The teacher, at another address she never used before, is not locked out ...
    assert await login_everywhere(served, TEACHER_HOME, teacher,
                                  served.password("lehrerin")) == dict.fromkeys(
        ("imap", "smtp", "matrix"), "OK")
    assert served.bad_log_lines() == []


async def test_many_pupils_behind_one_nat_do_not_lock_out_the_one_who_types_right(
        served: ServedSchool) -> None:
    # 40 pupils (some mistyping their login, which counts just the same) fail twice
    # each, spread over the three protocols: 80 failures from one address.
    protocols = ["imap", "smtp", "matrix"]
    for n in range(40):
        for attempt in range(2):
            protocol = protocols[(n + attempt) % 3]
            login, password = f"schueler{n}@{served.domain}", "falsches-passwort"
            if protocol == "matrix":
                result = await matrix_login(served, NAT, login, password)
            else:
                call = imap_login if protocol == "imap" else smtp_login
                result = await asyncio.to_thread(call, served, NAT, login, password)
            assert result == "NO", (n, protocol, result)
    pupil = served.address("schueler")
    assert await login_everywhere(served, NAT, pupil, served.password("schueler")) == \
        dict.fromkeys(("imap", "smtp", "matrix"), "OK")
    # A pupil who mistypes behind the NAT is slowed down alone after a few tries.
    other = served.address("schuelerin")
    results = [await asyncio.to_thread(imap_login, served, NAT, other, "vertippt")
               for _ in range(5)]
    assert results[:3] == ["NO"] * 3 and results[-1] == "THROTTLED"
    assert await asyncio.to_thread(imap_login, served, NAT, pupil,
                                   served.password("schueler")) == "OK"
    assert served.bad_log_lines() == []
