"""The admin pages over HTTPS with the webmail's login: only admins get in, every form
needs the session's CSRF token, every action lands in the audit log with the admin's
login and address; accounts, roles, suspension, password letters (once), parents'
children, groups, aliases, partner schools, export and erasure."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import io
import re
import threading
import time
import urllib.request
import zipfile
from collections.abc import AsyncIterator

import aiohttp
import pytest

from conf.app import School
from conf.settings import ChatSettings, QuietHoursSettings, Settings
from directory.model import NotFound, Role, Status
from mailserver import mbox
from tests.e2e.test_webmail import base_url, csrf_of
from tests.mailserver.imap.session.helpers import client_tls

PASSWORDS = {"chefin": "Chefin-Passwort-1", "paul": "Paul-Schueler-1"}


@pytest.fixture
async def school(running_school: School) -> School:
    d = running_school.directory
    await d.create_account(role=Role.ADMIN, login="chefin", password=PASSWORDS["chefin"])
    await d.create_account(role=Role.PUPIL, login="paul", password=PASSWORDS["paul"],
                           first_name="Paul", last_name="Klein")
    return running_school


async def session_for(school: School, login: str) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(ssl=client_tls(school.settings))
    browser = aiohttp.ClientSession(base_url(school), connector=connector,
                                    cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with browser.get("/login") as response:
        token = csrf_of(await response.text())
    async with browser.post("/login", allow_redirects=False, data={
            "csrf": token, "login": login, "password": PASSWORDS[login]}) as response:
        assert response.status == 303
    return browser


@pytest.fixture
async def admin(school: School) -> AsyncIterator[aiohttp.ClientSession]:
    browser = await session_for(school, "chefin")
    yield browser
    await browser.close()


async def form_post(browser: aiohttp.ClientSession, page: str, action: str,
                    **fields: str) -> aiohttp.ClientResponse:
    async with browser.get(page) as response:
        assert response.status == 200, page
        token = csrf_of(await response.text())
    return await browser.post(action, data={"csrf": token, **fields}, allow_redirects=False)


async def test_only_admins_and_only_with_the_token(school: School,
                                                   admin: aiohttp.ClientSession) -> None:
    connector = aiohttp.TCPConnector(ssl=client_tls(school.settings))
    async with aiohttp.ClientSession(base_url(school), connector=connector) as anonymous, \
            anonymous.get("/admin/konten", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/login"
    pupil = await session_for(school, "paul")
    try:
        async with pupil.get("/admin/konten") as response:
            assert response.status == 403 and "Schulverwaltung" in await response.text()
        async with pupil.post("/admin/konten/paul/rolle", data={"role": "admin"}) as response:
            assert response.status == 403
    finally:
        await pupil.close()
    async with admin.post("/admin/konten/paul/rolle", data={"role": "admin",
                                                            "csrf": "falsch"}) as response:
        assert response.status == 403
    assert (await school.directory.get_account("paul")).role is Role.PUPIL
    for path in ("/admin/konten", "/admin/konten/paul", "/admin/gruppen", "/admin/aliase",
                 "/admin/partner", "/admin/import", "/admin/protokoll"):
        async with admin.get(path) as response:
            assert response.status == 200, path
            assert "script-src" not in response.headers["Content-Security-Policy"]
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    async with admin.get("/admin/konten", headers={"Accept-Language": "en"}) as response:
        text = await response.text()
        assert "<h1>Accounts</h1>" in text and 'lang="en"' in text
    async with admin.get("/admin/konten?q=klein") as response:
        assert "/admin/konten/paul" in await response.text()
    async with admin.get("/admin/konten?q=niemand") as response:
        assert "/admin/konten/paul" not in await response.text()


async def test_account_actions_are_audited(school: School,
                                           admin: aiohttp.ClientSession) -> None:
    d = school.directory
    response = await form_post(admin, "/admin/konten", "/admin/konten", role="parent",
                               first_name="Eva", last_name="Klein")
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith("/admin/konten/eva.klein?brief=")
    token = location.split("brief=")[1]
    async with admin.get(f"/admin/briefe/{token}") as response:
        assert response.status == 200 and response.content_type == "application/pdf"
        assert (await response.read()).startswith(b"%PDF")
    async with admin.get(f"/admin/briefe/{token}") as response:
        assert response.status == 410  # once only

    page = "/admin/konten/eva.klein"
    assert (await form_post(admin, page, f"{page}/kind", child="paul")).status == 303
    assert [c.login for c in await d.children_of("eva.klein")] == ["paul"]
    assert (await form_post(admin, page, f"{page}/kind-entfernen", child="paul")).status == 303
    assert await d.children_of("eva.klein") == []
    response = await form_post(admin, page, f"{page}/kind", child="niemand")
    assert response.status == 400 and "niemand" in await response.text()

    page = "/admin/konten/paul"
    assert (await form_post(admin, page, f"{page}/sperren")).status == 303
    assert (await d.get_account("paul")).status is Status.SUSPENDED
    assert (await form_post(admin, page, f"{page}/entsperren")).status == 303
    assert (await form_post(admin, page, f"{page}/rolle", role="teacher")).status == 303
    assert (await d.get_account("paul")).role is Role.TEACHER
    response = await form_post(admin, page, f"{page}/passwort")
    assert response.status == 303 and "brief=" in response.headers["Location"]

    response = await form_post(admin, "/admin/gruppen", "/admin/gruppen", name="5a",
                               kind="class", display_name="Klasse 5a")
    assert response.status == 303
    assert (await form_post(admin, "/admin/gruppen/5a", "/admin/gruppen/5a/mitglied",
                            login="paul")).status == 303
    assert [m.account.login for m in await d.group_members("5a")] == ["paul"]
    assert (await form_post(admin, "/admin/aliase", "/admin/aliase/anlegen",
                            alias="sekretariat", target="chefin")).status == 303
    response = await form_post(admin, "/admin/aliase", "/admin/aliase/anlegen",
                               alias="sekretariat", target="paul")
    assert response.status == 400

    response = await form_post(admin, page, f"{page}/export")
    assert response.status == 200 and response.content_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(await response.read())) as archive:
        assert "konto.json" in archive.namelist()
    response = await form_post(admin, page, f"{page}/loeschen", confirm="falsch")
    assert response.status == 400
    response = await form_post(admin, page, f"{page}/loeschen", confirm="paul")
    assert response.status == 303
    with pytest.raises(NotFound):
        await d.get_account("paul")

    entries = await school.audit.entries()
    assert [e.action for e in reversed(entries)] == [
        "account.create", "letters.download", "account.link_child", "account.unlink_child",
        "account.suspend", "account.unsuspend", "account.role", "account.password_reset",
        "group.create", "group.add_member", "alias.create", "account.export", "account.erase"]
    assert {e.actor for e in entries} == {"chefin"}
    assert {e.client_address for e in entries} == {"127.0.0.1"}
    async with admin.get("/admin/protokoll") as response:
        text = await response.text()
    assert re.search(r"account\.erase</td><td>paul</td>", text)


async def test_everyone_can_download_their_own_data(school: School) -> None:
    pupil = await session_for(school, "paul")
    try:
        async with pupil.get("/datenauskunft") as response:
            assert response.status == 200 and "Meine Daten" in await response.text()
        async with pupil.post("/datenauskunft", data={"csrf": "falsch"}) as response:
            assert response.status == 403
        response = await form_post(pupil, "/datenauskunft", "/datenauskunft")
        assert response.status == 200 and response.content_type == "application/zip"
        with zipfile.ZipFile(io.BytesIO(await response.read())) as archive:
            account = __import__("json").loads(archive.read("konto.json"))
        assert account["login"] == "paul"  # only ever the own account
    finally:
        await pupil.close()
    entries = await school.audit.entries(action="account.export")
    assert [(e.actor, e.target) for e in entries] == [("paul", "paul")]


async def test_other_requests_are_answered_while_an_export_runs(
        school: School, admin: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """The export's encoding and compression run beside the event loop: while the
    admin's download of a big account is being made (each mail here takes 0.4 s, as
    a big mailbox on a busy machine would), another person's page is answered.  The
    other person is a client in a thread of its own (urllib), so a blocked loop
    cannot hide behind the test's own waiting."""
    account = await school.directory.get_account("paul")
    await school.mail_store.ensure_default_mailboxes(account.id)
    for n in range(10):
        await school.mail_store.append(account.id, "INBOX",
                                       f"Subject: Nr {n}\r\n\r\nHallo\r\n".encode())
    encoded: list[int] = []
    encoding = threading.Event()
    real_entry = mbox.entry

    def slow_entry(*args: object, **kwargs: object) -> bytes:
        encoding.set()
        time.sleep(0.4)
        encoded.append(1)
        return real_entry(*args, **kwargs)  # type: ignore[arg-type]

    def other_person() -> tuple[int, float, int]:
        assert encoding.wait(30)
        started = time.monotonic()
        with urllib.request.urlopen(base_url(school) + "/login", timeout=30,
                                    context=client_tls(school.settings)) as page:
            status = page.status
        return status, time.monotonic() - started, len(encoded)

    monkeypatch.setattr(mbox, "entry", slow_entry)
    async with admin.get("/admin/konten/paul") as response:
        token = csrf_of(await response.text())
    other = asyncio.create_task(asyncio.to_thread(other_person))
    async with admin.post("/admin/konten/paul/export", data={"csrf": token}) as response:
        assert response.status == 200
        body = await response.read()
    status, waited, mails_done = await other
    assert status == 200
    assert mails_done < 10, f"the login page waited {waited:.1f} s, until the export's end"
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.read("mail/INBOX.mbox").count(b"\nFrom ") == 9


async def upload(admin: aiohttp.ClientSession, name: str, data: bytes
                 ) -> tuple[int, str]:
    async with admin.get("/admin/import") as response:
        token = csrf_of(await response.text())
    form = aiohttp.FormData()
    form.add_field("csrf", token)
    form.add_field("file", data, filename=name, content_type="text/csv")
    async with admin.post("/admin/import", data=form) as response:
        return response.status, await response.text()


async def test_import_of_a_huge_or_garbage_file_is_refused_briefly(
        school: School, admin: aiohttp.ClientSession) -> None:
    """A wrong file (a whole database dump, random bytes) is refused with a short page
    naming lines, never a page of a million rows, a 500 or a blocked server."""
    header = "external_id;first_name;last_name;role;class\r\n"
    # Every line bad (an unknown role), cp1252 bytes in it: each line named, at most 200.
    bad = (header + "".join(f"S{n};J\xfcrgen;M\xfc\xdfig;Hausmeister;5a\r\n"
                            for n in range(1000))).encode("cp1252")
    status, text = await upload(admin, "kaputt.csv", bad)
    assert status == 400, text[:500]
    assert "1000 fehlerhafte Zeilen" in text
    assert "<td>2</td>" in text  # the first bad line, by its number
    assert text.count("<tr><td>") <= 200
    assert "800 weitere" in text
    # Over the line limit: refused before any line is checked.
    huge = (header + "x;J\xfcrgen;y;z;5a\r\n" * 60_000).encode("cp1252")
    status, text = await upload(admin, "dump.csv", huge)
    assert status == 400, text[:500]
    assert "50000" in text and len(text) < 50_000
    # Bytes that are no text at all: a reason, not a 500.
    for name, junk in (("bild.csv", b"\x89PNG\r\n\x1a\n\x00\x00" * 100),
                       ("kein-text.csv", header.encode() + b"x;\x81\x8d\xff;y;z;5a\r\n")):
        status, text = await upload(admin, name, junk)
        assert status == 400 and name in text, text[:500]
    assert [e.action for e in await school.audit.entries()] == []


async def test_import_errors_in_german_and_english(
        school: School, admin: aiohttp.ClientSession) -> None:
    """Each bad line's reason in the admin's language: German by default, English with
    the language cookie (the catalog); the whole-file reason too."""
    bad = ("external_id;first_name;last_name;role;class;courses;email;parent_of\r\n"
           "S1;J\xfcrgen;M\xfc\xdfig;Sch\xfcler;5a\r\n"
           "S2;;Leer;Sch\xfcler;5a\r\n"
           "S3;Ida;Iks;Hausmeister;5a\r\n"
           "S1;Doppelt;Da;Sch\xfcler;5b\r\n"
           "E1;Uwe;Ost;Eltern;;;;S9\r\n").encode("cp1252")
    status, text = await upload(admin, "kaputt.csv", bad)
    assert status == 400
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td></tr>", text)
    assert [(int(line), html.unescape(reason)) for line, reason in rows] == [
        (3, "first_name ist leer."),
        (4, "Unbekannte Rolle „Hausmeister“ (bekannt: parent, pupil, staff, teacher)."),
        (5, "Die external_id „S1“ kommt doppelt vor (zuerst in Zeile 2)."),
        (6, "parent_of „S9“: Keine Zeile hat diese external_id.")]
    status, text = await upload(admin, "leer.csv", b"  \r\n")
    assert status == 400 and "leer.csv lässt sich nicht importieren: Die Datei ist leer." \
        in html.unescape(text)

    admin.cookie_jar.update_cookies({"__Host-schulhof-lang": "en"})
    status, text = await upload(admin, "kaputt.csv", bad)
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td></tr>", text)
    assert [(int(line), html.unescape(reason)) for line, reason in rows] == [
        (3, "first_name is empty."),
        (4, "Unknown role 'Hausmeister' (known: parent, pupil, staff, teacher)."),
        (5, "The external_id 'S1' appears twice (first on line 2)."),
        (6, "parent_of 'S9': no row has this external_id.")]
    status, text = await upload(admin, "leer.csv", b"  \r\n")
    assert "leer.csv cannot be imported: The file is empty." in html.unescape(text)


async def test_names_no_account_or_group_can_have_are_not_found(
        school: School, admin: aiohttp.ClientSession) -> None:
    """Ids from the path as an attacker writes them (NUL, over-long, other schools'
    addresses): 404 or 400, never a 500 (a NUL is an error in PostgreSQL's text)."""
    odd = ["%00paul", "paul%00", "a" * 300, "paul@andere-schule.test", "..%2F..%2Fetc",
           "%C3%28"]
    for name in odd:
        for path in (f"/admin/konten/{name}", f"/admin/gruppen/{name}"):
            async with admin.get(path) as response:
                assert response.status in (400, 404), (path, response.status)
        async with admin.get("/admin/konten") as response:
            token = csrf_of(await response.text())
        for path in (f"/admin/konten/{name}/sperren", f"/admin/gruppen/{name}/mitglied"):
            async with admin.post(path, data={"csrf": token, "login": name},
                                  allow_redirects=False) as response:
                assert response.status in (400, 404), (path, response.status)
    for field in ("child", "login"):
        async with admin.get("/admin/konten/paul") as response:
            token = csrf_of(await response.text())
        async with admin.post("/admin/konten/paul/kind" if field == "child"
                              else "/admin/gruppen", data={
                                  "csrf": token, field: "x\x00y", "name": "a\x00b"},
                              allow_redirects=False) as response:
            assert response.status in (400, 404), (field, response.status)
    for query in ("aktion=%00", "ziel=a%00b", "ziel=" + "z" * 300):
        async with admin.get(f"/admin/protokoll?{query}") as response:
            assert response.status in (200, 400, 404), (query, response.status)
    assert (await school.directory.get_account("paul")).status is Status.ACTIVE


async def test_messenger_rules_page_shows_quiet_hours_and_rights(settings: Settings) -> None:
    """``/admin/messenger``: the quiet hours per role as ``[quiet_hours]`` sets them (the
    school's window, a role without, a role with its own), the rights of ``[chat]``, and
    how many people set their own quiet hours (through the Matrix API)."""
    ruled = dataclasses.replace(
        settings, chat=ChatSettings(create_rooms_groups=("fachschaft-mathe",)),
        quiet_hours=QuietHoursSettings(enabled=True, window="20:00-07:00", weekends=True,
                                       roles=("teacher=off", "pupil=19:00-07:00")))
    school = await School.open(ruled, migrate=False)
    await school.start()
    try:
        d = school.directory
        await d.create_account(role=Role.ADMIN, login="chefin", password=PASSWORDS["chefin"])
        await d.create_account(role=Role.PUPIL, login="paul", password=PASSWORDS["paul"])
        base = f"http://127.0.0.1:{ruled.listen.matrix}/_matrix/client/v3"
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/login", json={
                    "type": "m.login.password", "password": PASSWORDS["paul"],
                    "identifier": {"type": "m.id.user", "user": "paul"}}) as response:
                token = (await response.json())["access_token"]
            async with http.put(
                    f"{base}/user/@paul:schule.test/account_data/de.schulhof.quiet_hours",
                    json={"enabled": False},
                    headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status == 200
        admin = await session_for(school, "chefin")
        try:
            async with admin.get("/admin/messenger") as response:
                assert response.status == 200
                page = html.unescape(await response.text())
            admin.cookie_jar.update_cookies({"__Host-schulhof-lang": "en"})
            async with admin.get("/admin/messenger") as response:
                english = html.unescape(await response.text())
        finally:
            await admin.close()
        paul = await session_for(school, "paul")
        try:
            async with paul.get("/admin/messenger") as response:
                assert response.status == 403
        finally:
            await paul.close()
    finally:
        await school.close()
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td>", page))
    assert rows["Schülerin/Schüler"] == "19:00–07:00, Samstag und Sonntag ganztags"
    assert rows["Lehrkraft"] == "keine"
    assert rows["Elternteil"] == "20:00–07:00, Samstag und Sonntag ganztags"
    # Parents start no direct chats and pupils open no rooms (the ByCS defaults).
    assert re.search(r"<td>Elternteil</td><td>[^<]+</td><td>nein</td><td>nein</td>", page)
    assert re.search(r"<td>Lehrkraft</td><td>keine</td><td>ja</td><td>ja</td>", page)
    assert "1 Personen haben eine eigene Ruhezeit eingestellt." in page
    assert "fachschaft-mathe" in page and "Zeitzone: Europe/Berlin." in page
    assert "<td>pupil</td><td>19:00–07:00, all of Saturday and Sunday</td>" in english
