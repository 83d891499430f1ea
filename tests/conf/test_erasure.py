"""Erasure (GDPR Art. 17) end to end: an account's mail, chat, files, devices and keys
made through the real Matrix API and the mail store, then ``erase_account``; afterwards
no row of any table (every table the database has, FTS shadow tables included) and no
file in the media store contains the account's unique marker, while what belongs to
other people (their messages, their copy of a shared mail) stays."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from sqlalchemy import inspect, select, text

from conf.admin.erasure import erase_account
from conf.app import School
from directory.audit import Actor
from directory.model import NotFound, Role
from mailserver.store.account_settings import MailSettings
from mailserver.store.search import SearchQuery
from messenger.server import MatrixServer
from messenger.storage.push_tables import PushActionRow
from tests.e2e.test_matrix_api import V3, Client

PASSWORD = "correct horse battery"
ADMIN = Actor("chefin", "192.0.2.7")


def mail(sender: str, to: str, subject: str, body: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(body)
    return bytes(message)


async def rows_containing(school: School, marker: str) -> list[tuple[str, str]]:
    """(table, column) of every value in the whole database that contains ``marker``."""
    needle = marker.encode()
    found: list[tuple[str, str]] = []
    async with school.db.write_engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert "accounts" in tables and "matrix_events" in tables and "audit_log" in tables
        for table in tables:
            result = await conn.execute(text(f'SELECT * FROM "{table}"'))
            for row in result:
                for column, value in row._mapping.items():
                    raw = value if isinstance(value, bytes | memoryview) else \
                        str(value).encode()
                    if needle in bytes(raw):
                        found.append((table, str(column)))
    return found


def files_containing(root: Path, marker: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and marker.encode() in p.read_bytes()]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_erasure_leaves_no_trace_of_the_account(running_school: School,
                                                      http: aiohttp.ClientSession) -> None:
    school = running_school
    marker = "zq" + secrets.token_hex(8)  # lower case: an alias is lower case
    d = school.directory
    anna = await d.create_account(role=Role.TEACHER, login="anna", password=PASSWORD,
                                  first_name=marker, last_name="Muster",
                                  display_name=f"Anna {marker}")
    ben = await d.create_account(role=Role.PUPIL, login="ben", password=PASSWORD,
                                 display_name="Ben")
    await d.create_group("klasse7a", display_name="Klasse 7a")
    await d.add_member("klasse7a", "anna")
    await d.add_alias(f"a{marker}", "anna")
    server = next(s for s in school.services if isinstance(s, MatrixServer))

    # --- chat through the real client API ---------------------------------------------
    a = Client(http, server.base_url)
    data = await a.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "anna"},
        "password": PASSWORD, "initial_device_display_name": f"Handy {marker}"})
    a.token, a.user_id, a.device_id = data["access_token"], data["user_id"], data["device_id"]
    b = await Client(http, server.base_url).login("ben", PASSWORD)
    room = (await a.ok("POST", f"{V3}/createRoom", {
        "name": f"Raum {marker}", "invite": [b.user_id]}))["room_id"]
    await b.ok("POST", f"{V3}/join/{quote(room)}", {})
    sent = await a.ok("PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/t1",
                      {"msgtype": "m.text", "body": f"Geheimnis {marker}"})
    await b.ok("PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/t2",
               {"msgtype": "m.text", "body": "Antwort von Ben"})
    await a.ok("PUT", f"{V3}/user/{quote(a.user_id)}/account_data/org.example.notiz",
               {"text": marker})
    status, uploaded = await a.call("POST", "/_matrix/media/v3/upload",
                                    raw=f"Datei {marker}".encode(),
                                    params={"filename": f"{marker}.txt"})
    assert status == 200, uploaded
    await a.ok("PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/t3", {
        "msgtype": "m.file", "body": f"{marker}.txt", "url": uploaded["content_uri"]})
    await a.ok("POST", f"{V3}/rooms/{quote(room)}/report/{quote(sent['event_id'])}",
               {"reason": f"Meldung {marker}"})
    media_root = school.settings.data_dir / "media"
    assert files_containing(media_root, marker)

    # --- mail --------------------------------------------------------------------------
    store = school.mail_store
    await store.ensure_default_mailboxes(anna.id)
    await store.append(anna.id, "INBOX", mail("x@example.org", "anna@schule.test",
                                              f"Betreff {marker}", f"Text {marker}"))
    await store.append(anna.id, "Trash", mail("y@example.org", "anna@schule.test",
                                              "alt", f"Papierkorb {marker}"))
    shared = mail("anna@schule.test", "ben@schule.test", "Elternabend", "Am Montag")
    await store.ensure_default_mailboxes(ben.id)
    await store.append(anna.id, "Sent", shared)
    await store.append(ben.id, "INBOX", shared)
    found = await store.search(anna.id, "INBOX", SearchQuery(text=marker))
    assert found.total == 1  # the search index holds the marker now
    await store.settings.save(anna.id, MailSettings(signature=f"Gruß {marker}",
                                                    vacation_body=f"Urlaub {marker}"))
    await school.sieve_scripts.put(anna.id, "filter", f'# {marker}\nkeep;\n')
    await school.audit.record(ADMIN, "account.password", "anna")

    assert {t for t, _ in await rows_containing(school, marker)} >= {
        "accounts", "matrix_events", "message_blobs", "message_search", "matrix_devices",
        "matrix_account_data", "matrix_media", "matrix_reports", "mail_settings", "addresses",
        "sieve_scripts"}

    async def her_notifications() -> list[str]:
        async with school.db.read() as session:
            return list((await session.scalars(select(PushActionRow.event_id).where(
                PushActionRow.user_id == a.user_id))).all())

    assert await her_notifications()  # ben's answer notified her

    report = await erase_account(school, "anna", ADMIN)

    assert (report.mail.messages, report.mail.bodies, report.messenger.media) == (3, 2, 1)
    assert report.messenger.rooms_left == 1 and report.messenger.devices == 1
    assert report.messenger.events_redacted >= 4
    assert await rows_containing(school, marker) == []
    assert await her_notifications() == []
    assert files_containing(media_root, marker) == []
    with pytest.raises(NotFound):
        await d.get_account("anna")

    # Other people's data stays: ben's copy of the shared mail, his own message, the
    # room with anna's events as skeletons (same ids, no content).
    assert [m.body for m in await store.read_mailbox(ben.id)] == [shared]
    page = await b.ok("GET", f"{V3}/rooms/{quote(room)}/messages",
                      params={"dir": "b", "limit": "50"})
    by_id = {e["event_id"]: e for e in page["chunk"]}
    assert by_id[sent["event_id"]]["content"] == {}
    assert any(e.get("content", {}).get("body") == "Antwort von Ben" for e in page["chunk"])
    members = await b.ok("GET", f"{V3}/rooms/{quote(room)}/joined_members")
    assert list(members["joined"]) == [b.user_id]
    # anna's token died with her devices.
    status, _ = await a.call("GET", f"{V3}/account/whoami")
    assert status == 401

    entries = await school.audit.entries(action="account.erase")
    assert len(entries) == 1 and entries[0].actor == "chefin"
    assert entries[0].client_address == "192.0.2.7" and "messages=3" in entries[0].details
    assert dt.datetime.now(dt.UTC) - entries[0].at < dt.timedelta(minutes=5)
