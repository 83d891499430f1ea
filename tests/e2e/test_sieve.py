"""Sieve end to end: scripts uploaded over ManageSieve (RFC 5804) with a real
client (sievelib's), mail submitted over SMTP, the result read over IMAP."""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiosmtplib
import pytest
from imapclient import IMAPClient
from sievelib.managesieve import Client as SieveClient

from conf.app import School
from directory.model import Role

PASSWORD = "ein-sicheres-passwort"

SCRIPT = """require ["fileinto", "vacation", "imap4flags"];
# Post der Eltern in einen eigenen Ordner, markiert
if address :is "from" "mutter@schule.test" {
    fileinto :flags "\\\\Flagged" "Eltern";
}
vacation :days 7 :subject "Abwesend bis Montag" text:
Ich bin bis Montag nicht im Haus.
.
;
"""


def _tls(school: School) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(school.settings.path(school.settings.tls.certificate)))
    context.check_hostname = False
    return context


def _sieve(school: School, login: str, monkeypatch: pytest.MonkeyPatch) -> SieveClient:
    """sievelib's client over STARTTLS, trusting the school's test certificate."""
    monkeypatch.setenv("SSL_CERT_FILE", str(school.settings.path(school.settings.tls.certificate)))
    SieveClient.read_timeout = 20
    client = SieveClient("127.0.0.1", school.settings.listen.managesieve,
                         srvhostname="localhost")
    assert client.connect(login, PASSWORD, starttls=True, authmech="PLAIN"), client.errmsg
    return client


async def _send(school: School, login: str, to: str, subject: str) -> None:
    message = (f"From: {login}@schule.test\r\nTo: {to}\r\nSubject: {subject}\r\n"
               f"Message-ID: <{subject.replace(' ', '.')}@schule.test>\r\n\r\nHallo\r\n")
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=school.settings.listen.submission,
                           start_tls=True, tls_context=_tls(school), timeout=20)
    async with smtp:
        await smtp.login(login, PASSWORD)
        await smtp.sendmail(f"{login}@schule.test", [to], message.encode())


def _imap(school: School, login: str) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=school.settings.listen.imaps, ssl=True,
                        ssl_context=_tls(school), timeout=20)
    client.login(login, PASSWORD)
    return client


def _subjects(school: School, login: str, folder: str) -> list[tuple[str, set[bytes]]]:
    with _imap(school, login) as client:
        client.select_folder(folder, readonly=True)
        found = client.fetch(client.search("ALL"), ["ENVELOPE", "FLAGS"])
        return [(data[b"ENVELOPE"].subject.decode(), set(data[b"FLAGS"]))
                for _uid, data in sorted(found.items())]


async def _eventually(check: object, timeout: float = 15.0) -> None:
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await check()
            return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_managesieve_script_files_mail_and_answers_once_per_sender(
        running_school: School, monkeypatch: pytest.MonkeyPatch) -> None:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    await d.create_account(role=Role.PARENT, login="mutter", password=PASSWORD)
    await d.create_account(role=Role.TEACHER, login="kollege", password=PASSWORD)
    def create_folder() -> None:
        with _imap(running_school, "lehrer") as imap:
            imap.create_folder("Eltern")

    await asyncio.to_thread(create_folder)

    def upload() -> list[str]:
        client = _sieve(running_school, "lehrer", monkeypatch)
        assert "vacation" in client.get_sieve_capabilities()
        assert client.checkscript("if true { keep }") is False
        assert b"line 1" in client.errmsg
        assert client.havespace("regeln", len(SCRIPT))
        assert client.putscript("regeln", SCRIPT), client.errmsg
        assert client.setactive("regeln"), client.errmsg
        active, others = client.listscripts()
        assert client.getscript("regeln").strip() == SCRIPT.strip()
        client.logout()
        return [active, *others]

    assert await asyncio.to_thread(upload) == ["regeln"]

    await _send(running_school, "mutter", "lehrer@schule.test", "Elternabend 1")
    await _send(running_school, "mutter", "lehrer@schule.test", "Elternabend 2")
    await _send(running_school, "kollege", "lehrer@schule.test", "Konferenz")

    async def filed() -> None:
        eltern = await asyncio.to_thread(_subjects, running_school, "lehrer", "Eltern")
        assert [s for s, _ in eltern] == ["Elternabend 1", "Elternabend 2"]
        assert all(b"\\Flagged" in flags for _, flags in eltern)
        inbox = await asyncio.to_thread(_subjects, running_school, "lehrer", "INBOX")
        assert [s for s, _ in inbox] == ["Konferenz"]

    async def answered() -> None:
        for login in ("mutter", "kollege"):
            inbox = await asyncio.to_thread(_subjects, running_school, login, "INBOX")
            assert [s for s, _ in inbox] == ["Abwesend bis Montag"], login

    await _eventually(filed)
    await _eventually(answered)
    await asyncio.sleep(1)  # no second reply to mutter arrives later
    await answered()
    evaluated = running_school.metrics.registry.get_sample_value(
        "schulhof_sieve_evaluation_seconds_count")
    assert evaluated is not None and evaluated >= 3  # lehrer's script ran for each mail


async def test_pupil_redirect_outside_is_refused_at_upload_and_reject_in_smtp(
        running_school: School, monkeypatch: pytest.MonkeyPatch) -> None:
    d = running_school.directory
    await d.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)

    def upload() -> None:
        client = _sieve(running_school, "anna", monkeypatch)
        assert not client.putscript("weg", 'keep;\nredirect "freund@example.org";')
        assert b"line 2" in client.errmsg and b"not allowed" in client.errmsg
        assert client.listscripts() == (None, [])
        assert client.putscript("nein", 'require "reject";\nreject "Keine Post bitte.";')
        assert client.setactive("nein")
        assert not client.deletescript("nein")  # active: RFC 5804 2.10
        client.logout()

    await asyncio.to_thread(upload)
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await _send(running_school, "lehrer", "anna@schule.test", "Test")
    assert refused.value.code == 550 and "Keine Post bitte." in refused.value.message


async def test_plain_is_offered_only_after_starttls(running_school: School) -> None:
    await asyncio.to_thread(_plain_before_tls, running_school)


def _plain_before_tls(running_school: School) -> None:
    with socket.create_connection(("127.0.0.1", running_school.settings.listen.managesieve),
                                  timeout=10) as raw:
        stream = raw.makefile("rwb")
        greeting = b""
        while not greeting.endswith(b'OK "ManageSieve ready"\r\n'):
            line = stream.readline()
            assert line
            greeting += line
        assert b'"SASL" ""' in greeting and b'"STARTTLS"' in greeting
        stream.write(b'AUTHENTICATE "PLAIN" "AGxlaHJlcgB4"\r\n')
        stream.flush()
        assert stream.readline().startswith(b"NO (ENCRYPT-NEEDED)")
        stream.write(b'PUTSCRIPT "x" {5+}\r\nkeep;\r\n')
        stream.flush()
        assert stream.readline() == b'NO "Authenticate first"\r\n'
        stream.write(b"LOGOUT\r\n")
        stream.flush()
        assert stream.readline().startswith(b"OK")


async def test_redirects_between_two_accounts_do_not_loop(running_school: School) -> None:
    """a redirects to b and b to a: the redirected copy is delivered past the
    scripts (and carries a hop trace), so each mail moves once and stops."""
    d = running_school.directory
    lehrer = await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    erste = await d.create_account(role=Role.TEACHER, login="erste", password=PASSWORD)
    zweite = await d.create_account(role=Role.TEACHER, login="zweite", password=PASSWORD)
    scripts = running_school.sieve_scripts
    for account, target in ((erste, "zweite"), (zweite, "erste")):
        await scripts.put(account.id, "weiter", f'redirect "{target}@schule.test";')
        await scripts.activate(account.id, "weiter")
    assert lehrer.login == "lehrer"
    await _send(running_school, "lehrer", "erste@schule.test", "Rundlauf")

    async def once() -> None:
        zweite_inbox = await asyncio.to_thread(_subjects, running_school, "zweite", "INBOX")
        assert [s for s, _ in zweite_inbox] == ["Rundlauf"]

    await _eventually(once)
    await asyncio.sleep(1.5)  # nothing bounces back and forth afterwards
    await once()
    erste_inbox = await asyncio.to_thread(_subjects, running_school, "erste", "INBOX")
    assert erste_inbox == []


async def test_commands_pipelined_after_starttls_are_not_run_inside_tls(
        running_school: School) -> None:
    """STARTTLS command injection (the CVE-2011-0411 class): a man in the middle
    appends a command to the client's plaintext STARTTLS; it must never be read as
    if it came over TLS.  The server closes instead of starting TLS."""
    await asyncio.to_thread(_injected_after_starttls, running_school)


def _injected_after_starttls(running_school: School) -> None:
    with socket.create_connection(("127.0.0.1", running_school.settings.listen.managesieve),
                                  timeout=10) as raw:
        stream = raw.makefile("rwb")
        while not stream.readline().startswith(b"OK"):
            pass
        stream.write(b'STARTTLS\r\nNOOP "injected"\r\n')
        stream.flush()
        answer = stream.readline()
        if answer.startswith(b"OK"):  # the server went on to TLS: nothing injected may run
            try:
                tls = _tls(running_school).wrap_socket(raw, server_hostname="localhost")
            except (ssl.SSLError, OSError):
                return  # closed instead of starting TLS: refused
            inside = tls.makefile("rwb")
            while not inside.readline().startswith(b"OK"):  # capabilities, "TLS active"
                pass
            inside.write(b"LOGOUT\r\n")
            inside.flush()
            rest = inside.read()
            assert b"injected" not in rest, f"the injected NOOP was answered: {rest!r}"
            assert rest.startswith(b"OK"), rest
        else:
            assert answer.startswith(b"BYE"), answer
            assert stream.readline() == b""
