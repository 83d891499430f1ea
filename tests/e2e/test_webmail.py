"""Webmail end to end: a browser-like HTTPS client against a running school.

Mail arrives over SMTP, is read, answered, downloaded and deleted over
HTTPS; what the pages show is checked in the HTML, what they did in the
mail store and the outbound queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import aiosmtplib
import pytest

from conf.app import School
from conf.settings import HttpSettings, Settings, SmtpSettings
from directory.model import Role, Status
from mailserver.smtp import ListenerKind
from mailserver.store import MailboxNotFound
from tests.support.schools import free_port, make_settings
from tests.support.smtp_clients import client_tls_context, stored_counts

PASSWORDS = {"anna": "Anna-Lehrerin-1", "paul": "Paul-Schueler-1"}
OUTSIDE = "someone@outside.example"
MAX_MESSAGE = 300_000


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "school", database_url,
                         smtp=SmtpSettings(max_message_size=MAX_MESSAGE))


@pytest.fixture
async def school_with_people(running_school: School) -> School:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="anna", password=PASSWORDS["anna"],
                           display_name="Anna Lehrerin")
    await d.create_account(role=Role.PUPIL, login="paul", password=PASSWORDS["paul"])
    return running_school


def base_url(school: School) -> str:
    (server,) = [s for s in school.services if type(s).__name__ == "WebmailServer"]
    return server.base_url  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
async def browser(school_with_people: School) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=client_tls_context(school_with_people.settings))
    async with aiohttp.ClientSession(base_url(school_with_people), connector=connector,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def login_form(browser: aiohttp.ClientSession, login: str,
                     password: str | None = None) -> dict[str, str]:
    """The login form filled in, with the token the login page hands out (and sets
    in its cookie: the login form is CSRF-protected like every other form)."""
    async with browser.get("/login") as response:
        token = csrf_of(await response.text())
    return {"csrf": token, "login": login,
            "password": PASSWORDS[login] if password is None else password}


async def log_in(browser: aiohttp.ClientSession, login: str) -> None:
    async with browser.post("/login", data=await login_form(browser, login),
                            allow_redirects=False) as response:
        assert response.status == 303, await response.text()
        assert response.headers["Location"] == "/mail"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def deliver(school: School, message: EmailMessage) -> None:
    host, port = school.services[0].addresses[ListenerKind.MX]  # type: ignore[attr-defined]
    await aiosmtplib.send(message, hostname=host, port=port, start_tls=False,
                          sender=OUTSIDE, recipients=["anna@schule.test"])


def incoming(subject: str, *, html: str | None = None, text: str | None = None,
             attachment: bytes | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Someone <{OUTSIDE}>"
    message["To"] = "anna@schule.test"
    message["Subject"] = subject
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="pdf",
                               filename="Zeugnis <1>.pdf")
    return message


async def flags_of(school: School, login: str, mailbox: str) -> list[frozenset[str]]:
    account = await school.directory.get_account(login)
    try:
        return [m.flags for m in await school.mail_store.read_mailbox(account.id, mailbox)]
    except MailboxNotFound:
        return []


async def test_wrong_password_sets_no_session(browser: aiohttp.ClientSession) -> None:
    async with browser.post("/login", data=await login_form(browser, "anna", "falsch"),
                            allow_redirects=False) as response:
        assert response.status == 401
        assert "stimmt nicht" in await response.text()
        assert not any(c.startswith("__Host-schulhof=")
                       for c in response.headers.getall("Set-Cookie", []))
    async with browser.get("/mail", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/login"


async def test_read_download_delete_and_log_out(school_with_people: School,
                                                browser: aiohttp.ClientSession) -> None:
    school = school_with_people
    await deliver(school, incoming("<script>alert(1)</script> Elternabend",
                                   text="Liebe Eltern,\n<b>bitte</b> kommen.",
                                   attachment=b"%PDF-1.4 fake"))
    await deliver(school, incoming("Nur HTML", html=(
        "<html><head><style>p{color:red}</style><script>steal()</script></head>"
        "<body><p>Hallo&nbsp;Anna</p><img src=https://tracker.example/x.gif></body></html>")))
    async with browser.post("/login", data=await login_form(browser, "anna"),
                            allow_redirects=False) as response:
        (cookie,) = [c for c in response.headers.getall("Set-Cookie")
                     if c.startswith("__Host-schulhof=")]
        for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
            assert attribute in cookie, cookie

    async with browser.get("/mail") as response:
        html = await response.text()
        assert response.status == 200
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
        # Chromium posts forms as "Origin: null" under no-referrer: the login broke.
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert not re.search(r"\d", response.headers.get("Server", ""))  # no versions
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Elternabend" in html
    assert "<script>" not in html
    uids = [int(u) for u in re.findall(r"uid=(\d+)", html)]
    assert sorted(uids) == [1, 2] and uids[0] == 2  # newest first

    async with browser.get("/message?box=INBOX&uid=2") as response:
        shown = await response.text()
    assert 'src="/message/frame?box=INBOX&amp;uid=2"' in shown  # HTML is framed, sanitised
    async with browser.get("/message/frame?box=INBOX&uid=2") as response:
        shown += await response.text()
    assert "Hallo&nbsp;Anna" in shown or "Hallo\xa0Anna" in shown
    assert "steal()" not in shown and "color:red" not in shown and "tracker" not in shown
    assert await flags_of(school, "anna", "INBOX") == [frozenset(), {"\\Seen"}]

    async with browser.get("/message?box=INBOX&uid=1") as response:
        shown = await response.text()
    assert "&lt;b&gt;bitte&lt;/b&gt; kommen." in shown
    assert "Zeugnis &lt;1&gt;.pdf" in shown
    async with browser.get("/attachment?box=INBOX&uid=1&part=0") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith('attachment; filename="')
        assert await response.read() == b"%PDF-1.4 fake"

    async with browser.post("/delete", data={"csrf": csrf_of(shown), "box": "INBOX",
                                             "uid": "1"}, allow_redirects=False) as response:
        assert response.status == 303
    assert len(await flags_of(school, "anna", "INBOX")) == 1
    assert len(await flags_of(school, "anna", "Trash")) == 1

    async with browser.get("/mail") as response:
        token = csrf_of(await response.text())
    async with browser.post("/logout", data={"csrf": token}, allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/login"
    async with browser.get("/mail", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/login"


async def test_send_reply_and_policy_refusal(school_with_people: School,
                                             browser: aiohttp.ClientSession) -> None:
    school = school_with_people
    await log_in(browser, "anna")
    async with browser.get("/compose") as response:
        token = csrf_of(await response.text())
    form = {"csrf": token, "to": "paul@schule.test", "cc": OUTSIDE,
            "subject": "Hausaufgaben für Montag", "body": "Seite 42, Aufgabe 3.\n"}
    async with browser.post("/compose", data=form, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
    paul = await school.directory.get_account("paul")
    (received,) = await school.mail_store.read_mailbox(paul.id)
    parsed = email.message_from_bytes(received.body, policy=email.policy.default)
    assert parsed["From"] == "Anna Lehrerin <anna@schule.test>"
    assert parsed["Subject"] == "Hausaufgaben für Montag"
    assert parsed["Cc"] == OUTSIDE and parsed["Message-ID"] and parsed["Date"]
    assert "with HTTPS id" in parsed["Received"]
    assert parsed.get_content().splitlines() == ["Seite 42, Aufgabe 3."]
    assert len(await flags_of(school, "anna", "Sent")) == 1
    assert (await stored_counts(school))["outbound"] == 1  # the Cc to outside

    # The pupil answers; a pupil may not write outside the school (role policy).
    await browser.post("/logout", data={"csrf": token})
    browser.cookie_jar.clear()
    await log_in(browser, "paul")
    async with browser.get("/compose?reply_box=INBOX&reply_uid=1") as response:
        reply_form = await response.text()
    assert "Re: Hausaufgaben für Montag" in reply_form
    assert "&gt; Seite 42, Aufgabe 3." in reply_form
    form = {"csrf": csrf_of(reply_form), "to": f"anna@schule.test, {OUTSIDE}",
            "subject": "Re: Hausaufgaben", "body": "Danke!"}
    async with browser.post("/compose", data=form) as response:
        assert response.status == 400
        refusal = await response.text()
    assert "Nicht gesendet" in refusal and OUTSIDE in refusal
    # The role policy speaks SMTP English; people read it in German.
    assert "dürfen nicht an Adressen außerhalb der Schule" in refusal
    # All or nothing: Anna got no reply (her INBOX may hold the bounce of the Cc to
    # outside.example, which the outbound queue cannot deliver in the test).
    anna = await school.directory.get_account("anna")
    try:
        inbox = await school.mail_store.read_mailbox(anna.id)
    except MailboxNotFound:
        inbox = []
    assert not [m for m in inbox if b"Re: Hausaufgaben" in m.body]
    assert (await stored_counts(school))["outbound"] == 1
    assert len(await flags_of(school, "paul", "Sent")) == 0


async def test_forms_need_the_session_token_and_other_origins_cannot_log_in(
        school_with_people: School, browser: aiohttp.ClientSession) -> None:
    school = school_with_people
    # Another site's page posting the login form (login CSRF), however it shows itself.
    form = await login_form(browser, "anna")
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site", "Origin": "null"}):
        async with browser.post("/login", data=form, headers=headers,
                                allow_redirects=False) as response:
            assert response.status == 403, headers
    # Without the token of the login page (a foreign page cannot read the cookie).
    for token in ("", "forged-but-long-enough-to-look-real"):
        async with browser.post("/login", data={**form, "csrf": token},
                                allow_redirects=False) as response:
            assert response.status == 403
            assert "abgelaufen" in await response.text()
    connector = aiohttp.TCPConnector(ssl=client_tls_context(school.settings))
    async with aiohttp.ClientSession(base_url(school), connector=connector) as stranger, \
            stranger.post("/login", data=form, allow_redirects=False) as response:
        assert response.status == 403  # no login cookie at all
    # Chromium's own form post under a no-referrer page: Origin null, same-origin fetch.
    async with browser.post("/login", data=form, allow_redirects=False,
                            headers={"Origin": "null",
                                     "Sec-Fetch-Site": "same-origin"}) as response:
        assert response.status == 303
    form = {"to": "paul@schule.test", "subject": "x", "body": "y"}
    for token in (None, "forged"):
        data = form if token is None else {**form, "csrf": token}
        async with browser.post("/compose", data=data) as response:
            assert response.status == 403
    async with browser.get("/compose") as response:
        token = csrf_of(await response.text())
    async with browser.post("/compose", data={**form, "csrf": token},  # the right token
                            headers={"Sec-Fetch-Site": "cross-site"}) as response:
        assert response.status == 403
    # A header injection attempt in the subject: refused, nothing sent.
    async with browser.get("/compose") as response:
        token = csrf_of(await response.text())
    async with browser.post("/compose", data={**form, "csrf": token,
                                              "subject": "x\r\nBcc: all@schule.test"}) as response:
        assert response.status == 400
        assert "ungültige Eingabe" in await response.text()
    paul = await school.directory.get_account("paul")
    with pytest.raises(MailboxNotFound):
        await school.mail_store.read_mailbox(paul.id)


async def test_no_reach_into_another_account_and_suspension_ends_the_session(
        school_with_people: School, browser: aiohttp.ClientSession) -> None:
    school = school_with_people
    await deliver(school, incoming("Nur für Anna", text="geheim"))
    await log_in(browser, "paul")
    async with browser.get("/message?box=INBOX&uid=1") as response:
        assert response.status == 404
        assert "geheim" not in await response.text()
    async with browser.get("/mail?box=../anna/INBOX") as response:
        assert response.status == 404
    await school.directory.set_status("paul", Status.SUSPENDED)
    async with browser.get("/mail", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/login"


async def test_attachments_are_sent_and_the_size_limit_holds(school_with_people: School,
                                                             browser: aiohttp.ClientSession
                                                             ) -> None:
    school = school_with_people
    await log_in(browser, "anna")
    async with browser.get("/compose") as response:
        token = csrf_of(await response.text())
    worksheet = bytes(range(256)) * 200  # binary, 51 KB

    def form(*files: tuple[str, bytes, str]) -> aiohttp.FormData:
        data = aiohttp.FormData()
        for name, value in (("csrf", token), ("to", "paul@schule.test"),
                            ("subject", "Arbeitsblatt"), ("body", "Im Anhang.")):
            data.add_field(name, value)
        for filename, content, kind in files:
            data.add_field("attachments", content, filename=filename, content_type=kind)
        return data

    async with browser.post("/compose", data=form(
            ("Übung 1.pdf", worksheet, "application/pdf"),
            ("notes.txt", b"Seite 3\n", "text/plain")), allow_redirects=False) as response:
        assert response.status == 303, await response.text()
    paul = await school.directory.get_account("paul")
    (received,) = await school.mail_store.read_mailbox(paul.id)
    parsed = email.message_from_bytes(received.body, policy=email.policy.default)
    found = {part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
             for part in parsed.iter_attachments()}
    assert found == {"Übung 1.pdf": ("application/pdf", worksheet),
                     "notes.txt": ("text/plain", b"Seite 3\n")}

    too_big = b"x" * (MAX_MESSAGE * 3 // 4)  # fits the form, not the message once encoded
    async with browser.post("/compose", data=form(("big.bin", too_big, "bad type")),
                            allow_redirects=False) as response:
        assert response.status == 400
        assert "größer als" in await response.text()
    assert len(await school.mail_store.read_mailbox(paul.id)) == 1


async def test_folders_are_made_and_mail_moved_into_them(school_with_people: School,
                                                         browser: aiohttp.ClientSession
                                                         ) -> None:
    school = school_with_people
    await deliver(school, incoming("Protokoll", text="TOP 1"))
    await log_in(browser, "anna")
    async with browser.get("/mail") as response:
        token = csrf_of(await response.text())
    async with browser.post("/folders", data={"csrf": token, "name": "Klasse 5a/Eltern"},
                            allow_redirects=False) as response:
        assert response.status == 303
    for name, status in (("Klasse 5a/Eltern", 409), ("   ", 400)):
        async with browser.post("/folders", data={"csrf": token, "name": name}) as response:
            assert response.status == status
    async with browser.get("/message?box=INBOX&uid=1") as response:
        page = await response.text()
    assert '<option value="Klasse 5a/Eltern">' in page
    async with browser.post("/move", data={"csrf": token, "box": "INBOX", "uid": "1",
                                           "target": "Klasse 5a/Eltern"},
                            allow_redirects=False) as response:
        assert response.status == 303
    assert await flags_of(school, "anna", "INBOX") == []
    assert len(await flags_of(school, "anna", "Klasse 5a/Eltern")) == 1
    async with browser.post("/move", data={"csrf": token, "box": "INBOX", "uid": "1",
                                           "target": "Archive"}) as response:
        assert response.status == 404  # moved already
    async with browser.get("/mail?box=Klasse%205a%2FEltern") as response:
        assert "Protokoll" in await response.text()


async def test_plain_http_is_redirected_to_https(tmp_path: Path, database_url: str) -> None:
    """``listen.web_http_redirect``: http:// answers only with a redirect to https://
    (same host and path, the HTTPS port); nothing of the webmail over plain HTTP."""
    settings = make_settings(tmp_path / "school", database_url)
    settings = dataclasses.replace(settings, listen=dataclasses.replace(
        settings.listen, web_http_redirect=free_port()))
    school = await School.open(settings, migrate=False)
    await school.start()
    try:
        https = base_url(school)
        port = settings.listen.web_http_redirect
        async with aiohttp.ClientSession() as plain:
            async with plain.get(f"http://127.0.0.1:{port}/message?box=INBOX&uid=1",
                                 allow_redirects=False) as response:
                assert response.status == 308
                assert response.headers["Location"] == f"{https}/message?box=INBOX&uid=1"
                assert not re.search(r"\d", response.headers.get("Server", ""))
            async with plain.post(f"http://127.0.0.1:{port}/login", data={"password": "x"},
                                  headers={"Host": "evil.example/@x"},
                                  allow_redirects=False) as response:
                assert response.status == 400  # no redirect built from a bad Host
                assert "https://" in await response.text()
    finally:
        await school.close()


async def test_german_first_english_by_browser_or_by_choice(
        browser: aiohttp.ClientSession) -> None:
    await log_in(browser, "anna")
    async with browser.get("/mail") as response:
        german = await response.text()
    assert '<html lang="de">' in german
    for label, box in (("Posteingang", "INBOX"), ("Gesendet", "Sent"), ("Entwürfe", "Drafts"),
                       ("Papierkorb", "Trash"), ("Spam", "Junk"), ("Archiv", "Archive")):
        assert f'href="/mail?box={box}"' in german  # the IMAP names stay
        assert re.search(f'box={box}"[^>]*>{label}<', german), label
    english_browser = {"Accept-Language": "en-GB,en;q=0.9,de;q=0.5"}
    async with browser.get("/mail", headers=english_browser) as response:
        english = await response.text()
    assert '<html lang="en">' in english and ">Inbox<" in english and "Log out" in english
    async with browser.get("/message?box=INBOX&uid=77", headers=english_browser) as response:
        assert response.status == 404 and "Message not found" in await response.text()

    # The choice on the page wins over the browser's wish, and only leads back to us.
    async with browser.get("/sprache?lang=en&next=/mail%3Fbox%3DTrash",
                           allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/mail?box=Trash"
    async with browser.get("/mail?box=Trash", headers={"Accept-Language": "de"}) as response:
        assert "<h1>Trash" in await response.text()
    async with browser.get("/sprache?lang=de&next=//evil.example/x",
                           allow_redirects=False) as response:
        assert response.headers["Location"] == "/mail"
    async with browser.get("/mail?box=Trash") as response:
        assert "<h1>Papierkorb" in await response.text()


async def test_dates_in_the_readers_language(school_with_people: School,
                                             browser: aiohttp.ClientSession) -> None:
    message = incoming("Elternabend", text="Am Dienstag.")
    message["Date"] = "Sat, 05 Dec 2026 18:30:00 +0100"
    await deliver(school_with_people, message)
    await log_in(browser, "anna")
    for url in ("/mail", "/message?box=INBOX&uid=1"):
        async with browser.get(url) as response:
            assert "05.12.2026 18:30" in await response.text(), url
        async with browser.get(url, headers={"Accept-Language": "en"}) as response:
            text = (await response.text()).replace("\u202f", " ")
            assert "Dec 5, 2026, 6:30 PM" in text and "05.12.2026" not in text, url


async def test_over_long_login_fields_are_a_wrong_login(browser: aiohttp.ClientSession) -> None:
    """A megabyte "password" is not hashed, a long name not echoed whole."""
    for login, password in (("anna", "x" * 1_000_000), ("a" * 100_000, "Anna-Lehrerin-1"),
                            ("anna\r\nX-Injected: 1", "Anna-Lehrerin-1"), ("", "")):
        form = await login_form(browser, "anna")
        async with browser.post("/login", data={**form, "login": login, "password": password},
                                allow_redirects=False) as response:
            text = await response.text()
            assert response.status == 401, login[:20]
            assert "stimmt nicht" in text and len(text) < 20_000
            assert "X-Injected" not in response.headers
    await log_in(browser, "anna")  # and Anna can still log in


async def test_slow_clients_cannot_hold_the_webmail(tmp_path: Path, database_url: str) -> None:
    """The webmail listener has the HTTP guard of the Matrix one (issue 19.6): half a
    header section over TLS is answered 408 and closed after ``http.header_timeout``."""
    settings = make_settings(tmp_path / "school", database_url, http=HttpSettings(
        header_timeout_seconds=1.0, max_connections_per_ip=3))
    school = await School.open(settings, migrate=False)
    await school.start()
    try:
        host, port = base_url(school).removeprefix("https://").rsplit(":", 1)
        context = client_tls_context(settings)
        reader, writer = await asyncio.open_connection(host, int(port), ssl=context)
        writer.write(b"GET /login HTTP/1.1\r\nHost: schule.test\r\nX-Half: ")
        await writer.drain()
        started = asyncio.get_running_loop().time()
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:60]
        assert asyncio.get_running_loop().time() - started < 6
        writer.close()
    finally:
        await school.close()
