"""End-to-end IMAP over loopback with real TLS and real clients: imaplib
(STARTTLS and implicit TLS), imapclient and aioimaplib.

Messages arrive through the store's delivery transaction (the same path
the SMTP server uses; conf/wiring/smtp.py does not start a server yet)."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aioimaplib import aioimaplib
from imapclient import IMAPClient

from conf.app import School
from conf.settings import Settings
from tests.mailserver.imap.session.helpers import (
    PASSWORD,
    RawClient,
    client_tls,
    deliver,
    imap_ports,
    imap_school,
    imap_settings,
    make_account,
    sample_message,
)

MULTIPART = (
    b"From: Lehrer <lehrer@schule.test>\r\nTo: anna.schmidt@schule.test\r\n"
    b"Subject: Hausaufgaben\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSeite 12 lesen.\r\n"
    b"--XX\r\nContent-Type: application/pdf; name=\"blatt.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n")


@pytest.fixture
def imap_env_settings(tmp_path: Path, database_url: str) -> Settings:
    return imap_settings(tmp_path / "school", database_url, max_line_length=2000)


@pytest.fixture
async def imap_env(imap_env_settings: Settings) -> AsyncIterator[tuple[School, int]]:
    async with imap_school(imap_env_settings) as school:
        account_id = await make_account(school)
        yield school, account_id


def _imaps(school: School, settings: Settings) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL("127.0.0.1", imap_ports(school)[1],
                             ssl_context=client_tls(settings), timeout=20)


async def test_imaplib_starttls_list_fetch_bodystructure(
        imap_env: tuple[School, int], imap_env_settings: Settings) -> None:
    school, account_id = imap_env
    await deliver(school, account_id, MULTIPART)
    port = imap_ports(school)[0]

    def client() -> tuple[bytes, list, list]:
        with imaplib.IMAP4("127.0.0.1", port, timeout=20) as m:
            assert "LOGINDISABLED" in m.capabilities
            assert "STARTTLS" in m.capabilities
            m.starttls(client_tls(imap_env_settings))
            assert "LOGINDISABLED" not in m.capabilities
            m.login("anna.schmidt", PASSWORD)
            _, listing = m.list()
            m.select("INBOX")
            _, structure = m.fetch("1", "(BODYSTRUCTURE)")
            _, body = m.fetch("1", "(BODY.PEEK[1] BODY[])")
            _, flags = m.fetch("1", "(FLAGS)")
            return structure[0], body, listing + flags
    structure, body, rest = await asyncio.to_thread(client)
    assert b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 15 1' in structure
    assert b'("application" "pdf" ("name" "blatt.pdf") NIL NIL "base64" 12' in structure
    assert b'"mixed" ("boundary" "XX")' in structure
    # The CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1); a
    # short printable part comes as a quoted string, the whole message as a literal.
    assert b'BODY[1] "Seite 12 lesen."' in body[0][0]
    assert body[0][1] == MULTIPART
    listing = [line for line in rest if b"LIST" not in line and b"FETCH" not in line]
    assert any(b"\\Sent" in line and b'"Sent"' in line for line in rest)
    assert any(b"\\Trash" in line for line in rest)
    # BODY[] set \Seen, BODY.PEEK did not; the first session to see the
    # message has it \Recent (RFC 3501 2.3.2).
    assert rest[-1] == b"1 (FLAGS (\\Recent \\Seen))"
    del listing


async def test_logindisabled_before_starttls_and_wrong_password(
        imap_env: tuple[School, int], imap_env_settings: Settings) -> None:
    school, _ = imap_env
    port = imap_ports(school)[0]

    def client() -> list[str]:
        errors = []
        with imaplib.IMAP4("127.0.0.1", port, timeout=20) as m:
            try:
                m.login("anna.schmidt", PASSWORD)
            except imaplib.IMAP4.error as error:
                errors.append(str(error))
        with _imaps(school, imap_env_settings) as m:
            try:
                m.login("anna.schmidt", "falsch")
            except imaplib.IMAP4.error as error:
                errors.append(str(error))
        return errors
    errors = await asyncio.to_thread(client)
    assert "PRIVACYREQUIRED" in errors[0]
    assert "AUTHENTICATIONFAILED" in errors[1]


async def test_a_remembered_login_ends_with_a_password_change_and_failures_still_count(
        imap_env: tuple[School, int], imap_env_settings: Settings) -> None:
    """A login verified a moment ago skips argon2id (directory.verified_logins), but
    never for another password, nor once the password changed, nor past the throttle."""
    school, _ = imap_env
    verified = school.authenticator.verified
    assert verified is not None

    def login(password: str) -> str:
        with _imaps(school, imap_env_settings) as m:
            try:
                return m.login("anna.schmidt", password)[0]
            except imaplib.IMAP4.error as error:
                return str(error)

    async def logins(*passwords: str) -> list[str]:
        return [await asyncio.to_thread(login, password) for password in passwords]

    new_password = "Neues-Passwort-456"
    assert await logins(PASSWORD, PASSWORD) == ["OK", "OK"]
    assert verified.hits == 1  # the second came from the cache
    assert "AUTHENTICATIONFAILED" in (await logins("falsch"))[0]
    await school.directory.set_password("anna.schmidt", new_password)
    old, new, again = await logins(PASSWORD, new_password, new_password)
    assert "AUTHENTICATIONFAILED" in old and (new, again) == ("OK", "OK")
    assert verified.hits == 2
    # Four failures lock this address for anna, the remembered password included.
    for outcome in await logins("falsch", PASSWORD, "falsch", ""):
        assert "AUTHENTICATIONFAILED" in outcome
    assert "UNAVAILABLE" in (await logins(new_password))[0]
    assert verified.hits == 2


async def test_imapclient_move_copyuid_quota_and_append_20mb(
        imap_env: tuple[School, int], imap_env_settings: Settings) -> None:
    school, account_id = imap_env
    for n in range(3):
        await deliver(school, account_id, sample_message(subject=f"m{n}"))
    big = sample_message("gross", body="x" * 998 + "\r\n") + b"y" * 76 + b"\r\n"
    big = big + (b"z" * 998 + b"\r\n") * (20 * 1024 * 1024 // 1000)
    context = client_tls(imap_env_settings)

    def client() -> dict[str, object]:
        out: dict[str, object] = {}
        with IMAPClient("127.0.0.1", port=imap_ports(school)[1], ssl=True,
                        ssl_context=context, timeout=60) as c:
            c.login("anna.schmidt", PASSWORD)
            out["special"] = {name: flags for flags, _, name in c.list_folders()}
            c.select_folder("INBOX")
            uids = c.search(["SUBJECT", "m1"])
            out["uids"] = uids
            out["move"] = c.move(uids, "Archive")
            c.select_folder("Archive")
            out["archive"] = c.search("ALL")
            out["append"] = c.append("Drafts", big, flags=[b"\\Draft"])
            out["quota"] = c.get_quota_root("INBOX")
            c.select_folder("Drafts", readonly=True)
            fetched = c.fetch(c.search("ALL"), ["RFC822.SIZE", "BODY.PEEK[]"])
            out["size"] = [v[b"RFC822.SIZE"] for v in fetched.values()]
            out["body_ok"] = [v[b"BODY[]"] == big for v in fetched.values()]
        return out
    out = await asyncio.to_thread(client)
    assert out["uids"] == [2]
    assert b"\\Archive" in out["special"]["Archive"]  # type: ignore[index]
    assert out["archive"] == [1]
    assert out["size"] == [len(big)]
    assert out["body_ok"] == [True]
    assert b"APPENDUID" in out["append"]  # type: ignore[operator]
    quota = await school.mail_store.quota(account_id)
    _roots, quotas = out["quota"]  # type: ignore[misc]
    assert quotas[0].usage == (quota.used + 1023) // 1024
    assert quotas[0].limit == quota.limit // 1024  # type: ignore[operator]
    assert quotas[0].resource == "STORAGE"


async def test_move_reports_copyuid_raw(imap_env: tuple[School, int],
                                        imap_env_settings: Settings) -> None:
    school, account_id = imap_env
    for n in range(3):
        await deliver(school, account_id, sample_message(subject=f"m{n}"))
    c = await RawClient.connect(imap_ports(school)[1], tls=client_tls(imap_env_settings))
    await c.login()
    await c.command("SELECT Archive")
    archive_validity = int((await c.command("STATUS Archive (UIDVALIDITY)")).untagged[0]
                           .split(b"UIDVALIDITY ")[1].rstrip(b")"))
    await c.command("SELECT INBOX")
    reply = await c.command("MOVE 2:3 Archive")
    assert reply.status == "OK"
    assert reply.untagged == [f"* OK [COPYUID {archive_validity} 2:3 1:2] Moved".encode(),
                              b"* 3 EXPUNGE", b"* 2 EXPUNGE"]
    await c.close()


async def test_flags_survive_restart(imap_env_settings: Settings) -> None:
    async with imap_school(imap_env_settings) as school:
        account_id = await make_account(school)
        await deliver(school, account_id, sample_message())
        c = await RawClient.connect(imap_ports(school)[1], tls=client_tls(imap_env_settings))
        await c.login()
        await c.command("SELECT INBOX")
        assert (await c.command("STORE 1 +FLAGS ($Wichtig \\Flagged)")).status == "OK"
        await c.close()
    async with imap_school(imap_env_settings) as school:
        c = await RawClient.connect(imap_ports(school)[1], tls=client_tls(imap_env_settings))
        await c.login()
        await c.command("EXAMINE INBOX")
        reply = await c.command("FETCH 1 (FLAGS)")
        assert reply.untagged == [b"* 1 FETCH (FLAGS (\\Flagged $Wichtig))"]
        await c.close()


async def test_aioimaplib_idle_wakes_on_delivery(imap_env: tuple[School, int],
                                                 imap_env_settings: Settings) -> None:
    school, account_id = imap_env
    client = aioimaplib.IMAP4_SSL("127.0.0.1", imap_ports(school)[1],
                                  ssl_context=client_tls(imap_env_settings), timeout=20)
    await client.wait_hello_from_server()
    assert (await client.login("anna.schmidt", PASSWORD)).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    idle = await client.idle_start(timeout=10)
    await client.wait_server_push()  # "+ idling"
    started = time.monotonic()
    await deliver(school, account_id, sample_message("neu"))
    pushed = await client.wait_server_push(timeout=5)
    elapsed = time.monotonic() - started
    client.idle_done()
    await asyncio.wait_for(idle, 5)
    assert b"1 EXISTS" in b" ".join(x if isinstance(x, bytes) else x.encode() for x in pushed)
    assert elapsed < 1.0
    await client.logout()


async def test_two_sessions_see_flags_and_expunges(imap_env: tuple[School, int],
                                                   imap_env_settings: Settings) -> None:
    school, account_id = imap_env
    for n in range(4):
        await deliver(school, account_id, sample_message(subject=f"m{n}"))
    tls = client_tls(imap_env_settings)
    port = imap_ports(school)[1]
    a = await RawClient.connect(port, tls=tls)
    b = await RawClient.connect(port, tls=tls)
    for c in (a, b):
        await c.login()
        await c.command("SELECT INBOX")
    await a.command("STORE 2 +FLAGS.SILENT (\\Deleted)")
    await a.command("STORE 3 +FLAGS.SILENT (\\Flagged)")
    noop = await b.command("NOOP")
    assert sorted(noop.untagged) == [b"* 2 FETCH (UID 2 FLAGS (\\Deleted))",
                                     b"* 3 FETCH (UID 3 FLAGS (\\Flagged))"]
    assert (await a.command("EXPUNGE")).untagged == [b"* 2 EXPUNGE"]
    # B may not hear of the expunge during a FETCH by sequence number ...
    fetch = await b.command("FETCH 4 (UID)")
    assert fetch.untagged == [b"* 4 FETCH (UID 4)"]
    # ... but does at the next NOOP, after which its numbers match A's.
    assert (await b.command("NOOP")).untagged == [b"* 2 EXPUNGE"]
    await deliver(school, account_id, sample_message(subject="m5"))
    assert (await b.command("NOOP")).untagged == [b"* 4 EXISTS", b"* 1 RECENT"]
    assert (await b.command("FETCH 3:4 (UID)")).untagged == [b"* 3 FETCH (UID 4)",
                                                            b"* 4 FETCH (UID 5)"]
    await a.close()
    await b.close()


async def test_malformed_commands_get_bad_and_long_line_gets_bye(
        imap_env: tuple[School, int], imap_env_settings: Settings) -> None:
    school, _ = imap_env
    c = await RawClient.connect(imap_ports(school)[1], tls=client_tls(imap_env_settings))
    assert (await c.command("FROBNICATE")).status == "BAD"
    assert (await c.command("SELECT INBOX")).status == "BAD"  # wrong state
    await c.send_raw(b"\r\n")
    assert (await c.read_line()).startswith(b"* BAD")
    assert (await c.login()).status == "OK"
    assert (await c.command("FETCH 1:* (FLAGS")).status == "BAD"
    assert (await c.command("SELECT INBOX")).status == "OK"
    assert (await c.command("FETCH 1 (NOSUCHITEM)")).status == "BAD"
    assert (await c.command("NOOP")).status == "OK"
    await c.send_raw(b"a1 NOOP " + b"x" * 5000 + b"\r\n")
    assert (await c.read_line()).startswith(b"* BYE")
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError, ssl.SSLError)):
        await c.read_line()
    await c.close()


async def test_too_many_errors_ends_the_session(tmp_path: Path, database_url: str) -> None:
    settings = imap_settings(tmp_path / "s", database_url, max_errors=3)
    async with imap_school(settings) as school:
        c = await RawClient.connect(imap_ports(school)[1], tls=client_tls(settings))
        for _ in range(2):
            assert (await c.command("NOPE")).status == "BAD"
        reply = await c.command("NOPE")
        assert reply.status == "BAD"
        assert (await c.read_line()).startswith(b"* BYE")
        await c.close()


async def test_idle_timeout_logs_out(tmp_path: Path, database_url: str) -> None:
    settings = imap_settings(tmp_path / "s", database_url, idle_timeout_seconds=0.5)
    async with imap_school(settings) as school:
        c = await RawClient.connect(imap_ports(school)[1], tls=client_tls(settings))
        assert (await c.read_line()).startswith(b"* BYE Autologout")
        await c.close()
