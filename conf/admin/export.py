"""Subject access and portability (GDPR Art. 15 and 20): one account's data as a ZIP.

Streamed: each part is written into the archive as it is read (mail a page of
messages at a time, chat events a page at a time), so an account with 20,000
mails and 50,000 events never sits in memory; the archive goes to any
writable binary file, seekable or not (``zipfile`` then writes data
descriptors).  Compressing and writing happen in a thread of their own
(``conf.admin.archive_writer``): the export button of a running server does
not hold up other people's requests.  Contents:

- ``LIESMICH.txt``: what the archive holds (German);
- ``konto.json``: the directory entry (names, role, groups, aliases, children);
- ``mail/<Ordner>.mbox``: each mail folder as mboxrd (RFC 4155), with flags;
- ``mail/einstellungen.json``: signature, vacation reply, forwarding;
- ``mail/sieve/<Name>.sieve``: the Sieve filter scripts (RFC 5228);
- ``chat/<n>/ereignisse.json``: each room's events the person sent or could
  see, in the Matrix client event format (Client-Server API 9.1), and
  ``chat/<n>/verlauf.html``, the same as a readable transcript;
- ``chat/dateien/``: the files the person uploaded;
- ``chat/geraete.json``: devices and sessions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from conf.admin.archive_writer import ThreadedArchive
from conf.admin.parts import mail_data, messenger_data, server_name
from directory.audit import Actor
from mailserver import mbox
from messenger import transcript
from messenger.events.client_format import client_event
from messenger.identity import user_id_for

if TYPE_CHECKING:
    from conf.app import School
    from mailserver.store.account_data import ExportedMessage
    from messenger.storage.events import StoredEvent

README = """Datenauskunft (Art. 15 DSGVO) und Datenkopie (Art. 20 DSGVO)

Dieses Archiv enthält alle Daten, die der Schulserver zu diesem Konto speichert:

konto.json               Name, Rolle, Gruppen, weitere Adressen, Kinder (bei Eltern)
mail/*.mbox              jeder E-Mail-Ordner im mbox-Format (z. B. in Thunderbird
                         mit dem Add-on "ImportExportTools NG" zu öffnen)
mail/einstellungen.json  Signatur, Abwesenheitsnotiz, Weiterleitung
mail/sieve/*.sieve       Filterregeln (Sieve, RFC 5228); "(aktiv)": die eingeschaltete
chat/*/ereignisse.json   jeder Chat-Raum im Matrix-Format (maschinenlesbar)
chat/*/verlauf.html      derselbe Raum als lesbarer Verlauf (im Browser öffnen)
chat/dateien/            die hochgeladenen Dateien
chat/geraete.json        angemeldete Geräte und Sitzungen

Data access (GDPR Art. 15) and portability (Art. 20): mail as mbox, chat as
Matrix client events (JSON) and HTML, uploaded files, devices.
"""

_UNSAFE = re.compile(r"[^\w.\- ]+")


def safe_name(name: str) -> str:
    """A path segment with no separators, no dot-dot and no control characters."""
    cleaned = _UNSAFE.sub("_", name).strip(" .") or "_"
    return cleaned[:120]


def folder_path(mailbox: str) -> str:
    """``Archiv/2024`` -> ``Archiv/2024`` as nested folders, each segment made safe."""
    return "/".join(safe_name(part) for part in mailbox.split("/"))


@dataclass(frozen=True)
class ExportSummary:
    mailboxes: int
    messages: int
    rooms: int
    events: int
    media: int


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=_json_default)


# The steps below run in the archive's worker thread (conf.admin.archive_writer),
# one after the other; the event loop only reads the database.
BATCH_BYTES = 1 << 20  # a batch of mail handed to the thread (at most depth+1 wait)
BATCH_EVENTS = 500


def _write_text(archive: zipfile.ZipFile, name: str, text: str | bytes) -> None:
    archive.writestr(name, text)


def _write_json(archive: zipfile.ZipFile, name: str, value: object) -> None:
    archive.writestr(name, _json(value))


def _add_file(archive: zipfile.ZipFile, path: str, name: str) -> None:
    try:
        archive.write(path, name)
    except FileNotFoundError:
        pass  # removed since it was listed (an erasure of the same bytes)


class _Part:
    """One member of the archive written in pieces (mbox, events JSON)."""

    def __init__(self) -> None:
        self.handle: IO[bytes] | None = None

    def open(self, archive: zipfile.ZipFile, name: str) -> None:
        self.handle = archive.open(name, "w", force_zip64=True)

    def write_mbox(self, _: zipfile.ZipFile, sender: str, batch: list[ExportedMessage]
                   ) -> None:
        assert self.handle is not None
        for message in batch:
            self.handle.write(mbox.entry(message.data, sender=sender,
                                         when=message.internal_date, flags=message.flags))

    def close(self, _: zipfile.ZipFile) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class _Room:
    """A room's ``ereignisse.json`` streamed into the archive and its transcript in a
    spooled file (one write handle at a time in a ZIP; on disk past 1 MiB), copied
    in at the end."""

    def __init__(self, folder: str, room_id: str, title: str, now_ms: int) -> None:
        self.folder, self.room_id, self.title, self.now_ms = folder, room_id, title, now_ms
        self.names: dict[str, str] = {}
        self.first = True
        self.raw = _Part()
        self.page: IO[bytes] | None = None

    def begin(self, archive: zipfile.ZipFile) -> None:
        self.page = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115
        self.page.write(transcript.begin(self.room_id, self.title).encode("utf-8"))
        self.raw.open(archive, f"{self.folder}/ereignisse.json")
        assert self.raw.handle is not None
        self.raw.handle.write(b"[\n")

    def events(self, _: zipfile.ZipFile, batch: list[StoredEvent]) -> None:
        assert self.raw.handle is not None and self.page is not None
        for event in batch:
            item = client_event(event.pdu, now_ms=self.now_ms)
            self.raw.handle.write((b"" if self.first else b",\n") + json.dumps(
                item, ensure_ascii=False).encode("utf-8"))
            self.first = False
            self.page.write(transcript.event(event.pdu, self.names).encode("utf-8"))

    def end(self, archive: zipfile.ZipFile) -> None:
        assert self.raw.handle is not None and self.page is not None
        self.raw.handle.write(b"\n]\n")
        self.raw.close(archive)
        with self.page:
            self.page.write(transcript.end().encode("utf-8"))
            self.page.seek(0)
            with archive.open(f"{self.folder}/verlauf.html", "w", force_zip64=True) as html:
                shutil.copyfileobj(self.page, html)


async def _account_part(school: School, login: str) -> dict[str, Any]:
    directory = school.directory
    account = await directory.get_account(login)
    groups = await directory.groups_of(login)
    aliases = sorted(await directory.addresses_of(login) - {login})
    out: dict[str, Any] = {
        "login": account.login, "address": directory.address_of(account.login),
        "matrix_id": user_id_for(account.login, server_name(school)),
        "display_name": account.display_name, "first_name": account.first_name,
        "last_name": account.last_name, "role": account.role.value,
        "status": account.status.value, "deletion_date": account.deletion_date,
        "external_id": account.external_id, "created_at": account.created_at,
        "updated_at": account.updated_at,
        "groups": [{"name": g.name, "display_name": g.display_name, "kind": g.kind.value,
                    "role": role.value} for g, role in groups],
        "aliases": [directory.address_of(a) for a in aliases],
    }
    if account.role.value == "parent":
        out["children"] = [c.login for c in await directory.children_of(login)]
    return out


async def export_account(school: School, login: str, out: IO[bytes], actor: Actor
                         ) -> ExportSummary:
    """Write ``login``'s data to ``out`` as a ZIP archive (see the module docstring).

    ``out`` belongs to the archive's worker thread until this returns."""
    account = await school.directory.get_account(login)
    user_id = user_id_for(account.login, server_name(school))
    mail, chat = mail_data(school), messenger_data(school, federate=False)  # reads only
    messages = events = 0
    async with ThreadedArchive(out) as zw:
        await zw.run(_write_text, "LIESMICH.txt", README)
        await zw.run(_write_json, "konto.json", await _account_part(school, account.login))

        boxes = await mail.mailboxes(account.id)
        for box in boxes:
            part = _Part()
            await zw.run(part.open, f"mail/{folder_path(box.name)}.mbox")
            batch: list[ExportedMessage] = []
            size = 0
            async for message in mail.messages(box.id):
                batch.append(message)
                size += len(message.data)
                messages += 1
                if size >= BATCH_BYTES:
                    await zw.run(part.write_mbox, account.login, batch)
                    batch, size = [], 0
            if batch:
                await zw.run(part.write_mbox, account.login, batch)
            await zw.run(part.close)
        settings = await school.mail_store.settings.get(account.id)
        await zw.run(_write_json, "mail/einstellungen.json", dataclasses.asdict(settings))
        scripts = school.sieve_scripts
        for name, active in await scripts.names(account.id):
            suffix = "" if not active else " (aktiv)"
            await zw.run(_write_text, f"mail/sieve/{safe_name(name + suffix)}.sieve",
                         await scripts.get(account.id, name))

        rooms = await chat.rooms_of(user_id)
        now_ms = int(time.time() * 1000)
        for number, room in enumerate(rooms, start=1):
            writer = _Room(f"chat/{number:04d}-{safe_name(room.room_id)}", room.room_id,
                           await chat.room_name(room.room_id, room.upto), now_ms)
            await zw.run(writer.begin)
            page: list[StoredEvent] = []
            async for event in chat.events(room.room_id, room.upto):
                page.append(event)
                events += 1
                if len(page) >= BATCH_EVENTS:
                    await zw.run(writer.events, page)
                    page = []
            if page:
                await zw.run(writer.events, page)
            await zw.run(writer.end)

        media = await chat.media_of(account.id)
        for upload in media:
            name = safe_name(upload.upload_name or "datei")
            await zw.run(_add_file, str(upload.path), f"chat/dateien/{upload.media_id}-{name}")
        await zw.run(_write_json, "chat/geraete.json",
                     [dataclasses.asdict(d) for d in await chat.devices_of(account.id)])
    summary = ExportSummary(len(boxes), messages, len(rooms), events, len(media))
    await school.audit.record(actor, "account.export", account.login, {
        "messages": messages, "events": events, "rooms": len(rooms), "media": len(media)})
    return summary
