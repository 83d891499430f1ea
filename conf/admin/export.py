"""Subject access and portability (GDPR Art. 15 and 20): one account's data as a ZIP.

Streamed: each part is written into the archive as it is read (mail a page of
messages at a time, chat events a page at a time), so an account with 20,000
mails and 50,000 events never sits in memory; the archive goes to any
writable binary file, seekable or not (``zipfile`` then writes data
descriptors).  Contents:

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

from conf.admin.parts import mail_data, messenger_data, server_name
from directory.audit import Actor
from mailserver import mbox
from messenger import transcript
from messenger.events.client_format import client_event
from messenger.identity import user_id_for

if TYPE_CHECKING:
    from conf.app import School

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


def _write_json(archive: zipfile.ZipFile, name: str, value: object) -> None:
    archive.writestr(name, json.dumps(value, ensure_ascii=False, indent=2,
                                      default=_json_default))


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
    """Write ``login``'s data to ``out`` as a ZIP archive (see the module docstring)."""
    account = await school.directory.get_account(login)
    user_id = user_id_for(account.login, server_name(school))
    mail, chat = mail_data(school), messenger_data(school)
    messages = events = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                         allowZip64=True) as archive:
        archive.writestr("LIESMICH.txt", README)
        _write_json(archive, "konto.json", await _account_part(school, account.login))

        boxes = await mail.mailboxes(account.id)
        for box in boxes:
            with archive.open(f"mail/{folder_path(box.name)}.mbox", "w",
                              force_zip64=True) as part:
                async for message in mail.messages(box.id):
                    part.write(mbox.entry(message.data, sender=account.login,
                                          when=message.internal_date, flags=message.flags))
                    messages += 1
        settings = await school.mail_store.settings.get(account.id)
        _write_json(archive, "mail/einstellungen.json", dataclasses.asdict(settings))
        scripts = school.sieve_scripts
        for name, active in await scripts.names(account.id):
            suffix = "" if not active else " (aktiv)"
            archive.writestr(f"mail/sieve/{safe_name(name + suffix)}.sieve",
                             await scripts.get(account.id, name))

        rooms = await chat.rooms_of(user_id)
        now_ms = int(time.time() * 1000)
        for number, room in enumerate(rooms, start=1):
            folder = f"chat/{number:04d}-{safe_name(room.room_id)}"
            names: dict[str, str] = {}
            title = await chat.room_name(room.room_id, room.upto)
            # One write handle at a time in a ZIP: the transcript waits in a spooled
            # file (on disk past 1 MiB) while the JSON streams, then is copied in.
            with tempfile.SpooledTemporaryFile(max_size=1 << 20) as page:
                page.write(transcript.begin(room.room_id, title).encode("utf-8"))
                with archive.open(f"{folder}/ereignisse.json", "w", force_zip64=True) as raw:
                    raw.write(b"[\n")
                    first = True
                    async for event in chat.events(room.room_id, room.upto):
                        item = client_event(event.pdu, now_ms=now_ms)
                        raw.write((b"" if first else b",\n") + json.dumps(
                            item, ensure_ascii=False).encode("utf-8"))
                        first = False
                        page.write(transcript.event(event.pdu, names).encode("utf-8"))
                        events += 1
                    raw.write(b"\n]\n")
                page.write(transcript.end().encode("utf-8"))
                page.seek(0)
                with archive.open(f"{folder}/verlauf.html", "w", force_zip64=True) as html:
                    shutil.copyfileobj(page, html)

        media = await chat.media_of(account.id)
        for upload in media:
            name = safe_name(upload.upload_name or "datei")
            try:
                archive.write(upload.path, f"chat/dateien/{upload.media_id}-{name}")
            except FileNotFoundError:
                continue
        _write_json(archive, "chat/geraete.json",
                    [dataclasses.asdict(d) for d in await chat.devices_of(account.id)])
    summary = ExportSummary(len(boxes), messages, len(rooms), events, len(media))
    await school.audit.record(actor, "account.export", account.login, {
        "messages": messages, "events": events, "rooms": len(rooms), "media": len(media)})
    return summary
