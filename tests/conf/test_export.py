"""The data export (GDPR Art. 15/20) compared with what the same user sees through
real clients: every IMAP folder (imaplib over TLS) against its mbox in the ZIP, every
room's events (the Matrix client API's /messages) against the ZIP's JSON, the uploaded
file, the devices; and ``schulhof export`` writes a new 0600 file and an audit entry."""

from __future__ import annotations

import asyncio
import imaplib
import io
import json
import mailbox
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from conf.admin.export import export_account, folder_path, safe_name
from conf.app import School
from conf.settings import Settings, render_settings_toml
from directory.audit import Actor
from directory.model import Role
from mailserver import mbox
from messenger.server import MatrixServer
from tests.e2e.test_matrix_api import V3, Client
from tests.mailserver.imap.session.helpers import client_tls, imap_ports

PASSWORD = "correct horse battery"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def imap_view(school: School) -> dict[str, list[bytes]]:
    """folder -> every message's bytes, as imaplib sees them."""
    out: dict[str, list[bytes]] = {}
    with imaplib.IMAP4_SSL("127.0.0.1", imap_ports(school)[1],
                           ssl_context=client_tls(school.settings), timeout=20) as m:
        m.login("anna", PASSWORD)
        _, listing = m.list()
        for line in listing:
            assert isinstance(line, bytes)
            name = line.rsplit(b' "/" ', 1)[1].strip(b'"').decode()
            m.select(f'"{name}"', readonly=True)
            _, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
            out[name] = [part[1] for part in data if isinstance(part, tuple)]
    return out


async def test_export_matches_imap_and_the_matrix_api(running_school: School,
                                                      http: aiohttp.ClientSession,
                                                      tmp_path: Path) -> None:
    school = running_school
    d = school.directory
    anna = await d.create_account(role=Role.TEACHER, login="anna", password=PASSWORD,
                                  first_name="Anna", last_name="Schmidt")
    await d.create_account(role=Role.PUPIL, login="ben", password=PASSWORD)
    await d.create_group("klasse7a")
    await d.add_member("klasse7a", "anna")
    store = school.mail_store
    await store.ensure_default_mailboxes(anna.id)
    await store.create_mailbox(anna.id, "Archiv/2025")
    for n in range(3):
        await store.append(anna.id, "INBOX", (
            f"From: x@example.org\r\nSubject: Nr {n}\r\n\r\nZeile\r\nFrom here on\r\n"
            f">From quoted\r\n").encode(), flags=["\\Seen"] if n else [])
    await store.append(anna.id, "Archiv/2025", b"Subject: alt\r\n\r\nArchiv\r\n")
    await school.sieve_scripts.put(anna.id, "ferien", "keep;\n")
    await school.sieve_scripts.activate(anna.id, "ferien")

    server = next(s for s in school.services if isinstance(s, MatrixServer))
    a = await Client(http, server.base_url).login("anna", PASSWORD)
    b = await Client(http, server.base_url).login("ben", PASSWORD)
    room = (await a.ok("POST", f"{V3}/createRoom", {"name": "Projekt <Mond>",
                                                    "invite": [b.user_id]}))["room_id"]
    await b.ok("POST", f"{V3}/join/{quote(room)}", {})
    for n in range(3):
        await a.ok("PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/a{n}",
                   {"msgtype": "m.text", "body": f"Hallo <b>{n}</b>"})
    await b.ok("PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/b1",
               {"msgtype": "m.text", "body": "Antwort"})
    status, uploaded = await a.call("POST", "/_matrix/media/v3/upload", raw=b"Tabelle",
                                    params={"filename": "../liste.csv"})
    assert status == 200

    target = tmp_path / "anna.zip"
    with target.open("wb") as out:
        summary = await export_account(school, "anna", out, Actor("chefin", "192.0.2.1"))
    assert (summary.messages, summary.rooms, summary.media) == (4, 1, 1)

    seen = await asyncio.to_thread(imap_view, school)
    page = await a.ok("GET", f"{V3}/rooms/{quote(room)}/messages",
                      params={"dir": "f", "limit": "100"})
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        for folder, bodies in seen.items():
            raw = archive.read(f"mail/{folder_path(folder)}.mbox")
            (tmp_path / "f.mbox").write_bytes(raw)
            box = mailbox.mbox(tmp_path / "f.mbox")
            exported = [mbox.unquote(m.as_bytes().split(b"\n\n", 1)[1]) for m in box]
            box.close()
            wanted = [b.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1] for b in bodies]
            assert exported == wanted, folder
        assert b"Status: RO" in archive.read("mail/INBOX.mbox")
        assert archive.read("mail/sieve/ferien _aktiv_.sieve") == b"keep;\n"
        account = json.loads(archive.read("konto.json"))
        assert account["login"] == "anna" and account["last_name"] == "Schmidt"
        assert [g["name"] for g in account["groups"]] == ["klasse7a"]
        rooms = [n for n in names if n.endswith("/ereignisse.json")]
        assert len(rooms) == 1
        events = json.loads(archive.read(rooms[0]))
        assert [e["event_id"] for e in events] == [e["event_id"] for e in page["chunk"]]
        assert [e["content"] for e in events] == [e["content"] for e in page["chunk"]]
        transcript = archive.read(rooms[0].replace("ereignisse.json", "verlauf.html")).decode()
        assert "Projekt &lt;Mond&gt;" in transcript and "Hallo &lt;b&gt;2&lt;/b&gt;" in transcript
        assert "Antwort" in transcript
        media_id = uploaded["content_uri"].rsplit("/", 1)[1]
        assert archive.read(f"chat/dateien/{media_id}-{safe_name('../liste.csv')}") == b"Tabelle"
        devices = json.loads(archive.read("chat/geraete.json"))
        assert {dev["device_id"] for dev in devices} == {a.device_id}
        assert not any(".." in n.split("/") for n in names)
    entries = await school.audit.entries(action="account.export")
    assert [(e.actor, e.target) for e in entries] == [("chefin", "anna")]


def test_mboxrd_quoting_round_trips() -> None:
    body = b"a\r\nFrom x\r\n>From y\r\n>>From z\r\nFromage\r\n"
    entry = mbox.entry(body, sender="a b@c", when=__import__("datetime").datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=__import__("datetime").UTC), flags={"\\Seen", "$Label1"})
    assert entry.startswith(b"From ab@c Fri Jan 02 03:04:05 2026\n")
    assert b"\n>From x\n>>From y\n>>>From z\nFromage\n" in entry
    assert b"X-Keywords: $Label1\n" in entry
    quoted = entry.split(b"\n", 3)[3]  # after separator, Status and X-Keywords
    assert mbox.unquote(quoted) == body.replace(b"\r\n", b"\n") + b"\n"
    assert io.BytesIO(entry).read().endswith(b"\n\n")


async def test_the_export_command_loads_no_network_or_pdf_packages(
        settings: Settings, tmp_path: Path) -> None:
    """``schulhof export`` imports what it uses (issue 17: under 100 MiB): not the
    network stack, metrics, migrations, the PDF library or the federation client."""
    school = await School.open(settings, migrate=False)
    try:
        await school.directory.create_account(role=Role.TEACHER, login="anna")
    finally:
        await school.close()
    config = settings.base_dir / "schulhof.toml"
    config.write_text(render_settings_toml(settings), encoding="utf-8")
    script = ("import sys\n"
              "from conf.cli import main\n"
              f"assert main(['--config', {str(config)!r}, 'export', 'anna', '-o', "
              f"{str(tmp_path / 'anna.zip')!r}]) == 0\n"
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'dns', "
              "'alembic', 'reportlab', 'prometheus_client', 'jinja2'}))\n")
    result = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script],
                                     capture_output=True, text=True, check=True,
                                     cwd=Path(__file__).parents[2])
    assert result.stdout.splitlines()[-1] == "[]", result.stdout
