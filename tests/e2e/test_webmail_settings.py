"""Webmail settings over HTTPS: password change (then IMAP with the new one),
signature in new mail, vacation replies at delivery."""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import io
import json
import re
import zipfile
from email.message import EmailMessage

import aiohttp
import pytest
from sievelib.managesieve import Client as SieveClient
from sqlalchemy import select

from conf.app import School
from mailserver.schema import MessageBlobRow, OutboundRow
from tests.e2e.webmail_support import *  # noqa: F403  (fixtures)
from tests.e2e.webmail_support import OUTSIDE, PASSWORDS, csrf_of, deliver, log_in
from tests.mailserver.imap.session.helpers import client_tls, imap_ports

NEW_PASSWORD = "Herbstlaub-auf-dem-Schulhof"


async def token(browser: aiohttp.ClientSession) -> str:
    async with browser.get("/settings") as response:
        assert response.status == 200
        return csrf_of(await response.text())


def imap_login(school: School, login: str, password: str) -> bool:
    with imaplib.IMAP4_SSL("127.0.0.1", imap_ports(school)[1],
                           ssl_context=client_tls(school.settings), timeout=20) as imap:
        try:
            imap.login(login, password)
        except imaplib.IMAP4.error:
            return False
        return True


async def test_password_change_needs_the_old_one_and_works_over_imap(
        school_with_people: School, browser: aiohttp.ClientSession) -> None:
    school = school_with_people
    await log_in(browser, "paul")
    csrf = await token(browser)

    async def change(old: str, new: str, again: str | None = None) -> tuple[int, str]:
        async with browser.post("/settings/password", data={
                "csrf": csrf, "old": old, "new": new, "again": again or new}) as response:
            return response.status, await response.text()

    status, html = await change("falsch", NEW_PASSWORD)
    assert status == 400 and "bisherige Passwort stimmt nicht" in html
    status, html = await change(PASSWORDS["paul"], "kurz")
    assert status == 400 and "mindestens 8 Zeichen" in html
    status, html = await change(PASSWORDS["paul"], PASSWORDS["paul"])
    assert status == 400 and "unterscheiden" in html
    status, html = await change(PASSWORDS["paul"], NEW_PASSWORD, "anders-als-oben-123")
    assert status == 400 and "nicht gleich" in html
    status, html = await change(PASSWORDS["paul"], NEW_PASSWORD)
    assert status == 200 and "Das Passwort wurde geändert." in html

    assert await asyncio.to_thread(imap_login, school, "paul", NEW_PASSWORD)
    assert not await asyncio.to_thread(imap_login, school, "paul", PASSWORDS["paul"])
    async with browser.get("/settings") as response:  # this session stays logged in
        assert response.status == 200 and "Passwort ändern" in await response.text()


async def test_signature_goes_under_new_mail(school_with_people: School,
                                            browser: aiohttp.ClientSession) -> None:
    await log_in(browser, "anna")
    async with browser.post("/settings/signature", data={
            "csrf": await token(browser), "signature": "Anna Lehrerin\nKlasse 5a"}) as response:
        assert response.status == 200
    async with browser.get("/compose") as response:
        assert "\n-- \nAnna Lehrerin\nKlasse 5a" in await response.text()


async def outbound_messages(school: School) -> list[tuple[str, EmailMessage]]:
    async with school.db.read() as session:
        rows = (await session.execute(
            select(OutboundRow.recipient, MessageBlobRow.data)
            .join(MessageBlobRow, MessageBlobRow.id == OutboundRow.blob_id)
            .order_by(OutboundRow.id))).all()
    return [(recipient, email.message_from_bytes(bytes(data), policy=email.policy.default))
            for recipient, data in rows]  # type: ignore[misc]


def mail(subject: str, *extra: tuple[str, str], to: str = "anna@schule.test") -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Eva Eltern <{OUTSIDE}>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '.')}@outside.example>"
    for name, value in extra:
        message[name] = value
    message.set_content("Hallo Anna")
    return message


async def test_vacation_reply_once_per_sender_never_to_lists(
        school_with_people: School, browser: aiohttp.ClientSession) -> None:
    school = school_with_people
    await log_in(browser, "anna")
    async with browser.post("/settings/vacation", data={
            "csrf": await token(browser), "enabled": "on", "subject": "",
            "body": "Ich bin bis Montag nicht da.", "days": "7", "until": ""}) as response:
        assert response.status == 200
        assert "Abwesenheitsnotiz wurde gespeichert" in await response.text()

    await deliver(school, mail("Frage zum Ausflug"))
    await deliver(school, mail("Noch eine Frage"))  # same sender, same period: no reply
    await deliver(school, mail("Newsletter", ("List-Id", "<news.outside.example>")))
    await deliver(school, mail("Robot", ("Auto-Submitted", "auto-generated")))
    await deliver(school, mail("Massen", ("Precedence", "bulk")))
    for _ in range(100):
        replies = await outbound_messages(school)
        if replies:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # any wrong second reply would be queued by now
    replies = await outbound_messages(school)
    assert len(replies) == 1, [r[1]["Subject"] for r in replies]
    recipient, reply = replies[0]
    assert recipient == OUTSIDE
    assert reply["Subject"] == "Abwesend: Frage zum Ausflug"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<Frage.zum.Ausflug@outside.example>"
    assert reply.get_content().strip() == "Ich bin bis Montag nicht da."

    # A colleague inside the school gets the reply in the INBOX.
    browser.cookie_jar.clear()
    await log_in(browser, "paul")
    async with browser.get("/compose") as response:
        csrf = csrf_of(await response.text())
    async with browser.post("/compose", data={"csrf": csrf, "to": "anna", "subject": "Referat",
                                              "body": "Frage"}, allow_redirects=False) as r:
        assert r.status == 303
    paul = await school.directory.get_account("paul")
    for _ in range(100):
        inbox = await school.mail_store.read_mailbox(paul.id)
        if inbox:
            break
        await asyncio.sleep(0.05)
    (received,) = await school.mail_store.read_mailbox(paul.id)
    assert b"Subject: Abwesend: Referat" in received.body


async def test_forwarding_to_a_school_address(school_with_people: School,
                                              browser: aiohttp.ClientSession) -> None:
    school = school_with_people
    await log_in(browser, "anna")
    csrf = await token(browser)
    async with browser.post("/settings/forwarding", data={
            "csrf": csrf, "forward_to": "someone@gmail.example"}) as response:
        assert response.status == 400
        assert "nur an eine Adresse der Schule" in await response.text()
    async with browser.post("/settings/forwarding", data={
            "csrf": csrf, "forward_to": "paul"}) as response:
        assert response.status == 200
        assert "Die Weiterleitung wurde gespeichert." in await response.text()
    await deliver(school, mail("Elternsprechtag"))
    paul = await school.directory.get_account("paul")
    await school.mail_store.ensure_default_mailboxes(paul.id)
    for _ in range(100):
        if await school.mail_store.read_mailbox(paul.id):
            break
        await asyncio.sleep(0.05)
    (copy,) = await school.mail_store.read_mailbox(paul.id)
    forwarded = email.message_from_bytes(copy.body, policy=email.policy.default)
    assert forwarded["Subject"] == "Elternsprechtag"
    assert forwarded["From"] == f"Eva Eltern <{OUTSIDE}>"  # as sent, like a redirect
    assert forwarded["X-Schulhof-Forwarded-By"] == "anna@schule.test"
    anna = await school.directory.get_account("anna")
    assert len(await school.mail_store.read_mailbox(anna.id)) == 1  # Anna keeps hers
    async with browser.post("/settings/forwarding", data={"csrf": csrf,
                                                          "forward_to": ""}) as response:
        assert response.status == 200
    assert (await school.mail_store.settings.get(anna.id)).forward_to is None


async def test_settings_page_links_to_the_own_data_export(
        school_with_people: School, browser: aiohttp.ClientSession) -> None:
    """GDPR Art. 15/20: the settings page leads to ``/datenauskunft``, whose button
    answers a ZIP of the logged-in person's own data (German, and English by catalog)."""
    await log_in(browser, "paul")
    async with browser.get("/settings") as response:
        html = await response.text()
    (href,) = re.findall(r'<a href="([^"]+)">Meine Daten herunterladen \(Datenauskunft\)</a>',
                         html)
    assert href == "/datenauskunft"
    async with browser.get(href) as response:
        assert response.status == 200
        csrf = csrf_of(await response.text())
    async with browser.post(href, data={"csrf": csrf}) as response:
        assert response.status == 200 and response.content_type == "application/zip"
        with zipfile.ZipFile(io.BytesIO(await response.read())) as archive:
            assert json.loads(archive.read("konto.json"))["login"] == "paul"
    async with browser.get("/settings", headers={"Accept-Language": "en"}) as response:
        english = await response.text()
    assert '<a href="/datenauskunft">Download my data (data access request)</a>' in english


def _managesieve(school: School, login: str, monkeypatch: pytest.MonkeyPatch
                 ) -> SieveClient:
    """sievelib's ManageSieve client over STARTTLS (RFC 5804), as Thunderbird's
    Sieve add-on or Roundcube's managesieve plugin would log in."""
    monkeypatch.setenv("SSL_CERT_FILE", str(school.settings.path(school.settings.tls.certificate)))
    SieveClient.read_timeout = 20
    client = SieveClient("127.0.0.1", school.settings.listen.managesieve,
                         srvhostname="localhost")
    assert client.connect(login, PASSWORDS[login], starttls=True, authmech="PLAIN"), \
        client.errmsg
    return client


OWN_RULES = """require ["fileinto"];
# Elternpost in einen eigenen Ordner
if address :contains "from" "outside.example" {
    fileinto "Eltern";
}
"""


async def test_vacation_form_writes_a_sieve_script_seen_over_managesieve(
        school_with_people: School, browser: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16.2: the form's reply is a Sieve script a ManageSieve client reads;
    added to a script of the person's own without touching its rules; a vacation
    uploaded over ManageSieve shows in the form (and is not overwritten)."""
    school = school_with_people
    await log_in(browser, "anna")

    async def save(enabled: bool, body: str, until: str = "") -> tuple[int, str]:
        async with browser.post("/settings/vacation", data={
                "csrf": await token(browser), **({"enabled": "on"} if enabled else {}),
                "subject": "Auf Klassenfahrt", "body": body, "days": "3",
                "until": until}) as response:
            return response.status, await response.text()

    status, _html = await save(True, 'Ich bin bis Montag weg.\nGrüße, "Anna"')
    assert status == 200

    def scripts() -> tuple[str, list[str], str]:
        client = _managesieve(school, "anna", monkeypatch)
        try:
            active, others = client.listscripts()
            return active, others, client.getscript(active) if active else ""
        finally:
            client.logout()

    active, others, text = await asyncio.to_thread(scripts)
    assert (active, others) == ("Abwesenheitsnotiz", [])
    assert 'vacation :days 3 :subject "Auf Klassenfahrt"' in text
    assert 'Grüße, \\"Anna\\"' in text

    # Anna's own rules over ManageSieve, made active: the form adds its block to
    # them, and a parent's mail is filed by her rule and answered by the form's.
    def upload_own_rules() -> None:
        client = _managesieve(school, "anna", monkeypatch)
        try:
            assert client.putscript("meine-regeln", OWN_RULES), client.errmsg
            assert client.setactive("meine-regeln"), client.errmsg
        finally:
            client.logout()

    await asyncio.to_thread(upload_own_rules)
    async with browser.get("/settings") as response:
        html = await response.text()
    assert 'name="enabled" checked' not in html  # the active script has no vacation
    status, _html = await save(True, "Bis Montag auf Klassenfahrt.", until="2099-12-31")
    assert status == 200
    active, _others, text = await asyncio.to_thread(scripts)
    assert active == "meine-regeln"
    assert OWN_RULES.split("\n", 1)[1].strip() in text  # her rules, unchanged, after the block
    assert 'if currentdate :value "le" "date" "2099-12-31"' in text
    anna = await school.directory.get_account("anna")
    await school.mail_store.create_mailbox(anna.id, "Eltern")
    await deliver(school, mail("Frage zur Fahrt"))
    for _ in range(100):
        replies = await outbound_messages(school)
        if replies:
            break
        await asyncio.sleep(0.05)
    ((recipient, reply),) = await outbound_messages(school)
    assert recipient == OUTSIDE and reply["Subject"] == "Auf Klassenfahrt"
    assert reply.get_content().strip() == "Bis Montag auf Klassenfahrt."
    assert len(await school.mail_store.read_mailbox(anna.id, "Eltern")) == 1

    # Switched off: exactly her script again.
    status, _html = await save(False, "Bis Montag auf Klassenfahrt.")
    assert status == 200
    _active, _others, text = await asyncio.to_thread(scripts)
    assert text.strip() == OWN_RULES.strip()
    async with browser.get("/settings") as response:
        html = await response.text()
    assert "Bis Montag auf Klassenfahrt." in html  # the text is kept for next time
    assert 'name="enabled" checked' not in html

    # A vacation of her own, uploaded over ManageSieve: shown, not overwritten.
    def upload_own_vacation() -> None:
        client = _managesieve(school, "anna", monkeypatch)
        try:
            assert client.putscript("meine-regeln", 'require "vacation";\r\n'
                                    'vacation :days 2 "Im Urlaub bis Freitag.";\r\n'), \
                client.errmsg
        finally:
            client.logout()

    await asyncio.to_thread(upload_own_vacation)
    async with browser.get("/settings") as response:
        html = await response.text()
    assert 'name="enabled" checked' in html and "Im Urlaub bis Freitag." in html
    assert "in Ihrem eigenen Sieve-Skript „meine-regeln“" in html
    status, html = await save(True, "Anderer Text")
    assert status == 409 and "Bitte ändern Sie sie dort" in html
    _active, _others, text = await asyncio.to_thread(scripts)
    assert "Anderer Text" not in text and "Im Urlaub bis Freitag." in text
