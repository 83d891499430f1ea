"""Backup while the school serves SMTP load, restore into a new folder, and find
every account, message and room again; damaged and foreign backups refused."""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib
import smtplib
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select, text

from conf.app import School
from conf.backup import BackupError, make_backup, restore_backup
from conf.cli import main
from conf.settings import Settings, load_settings
from directory.model import Role
from tests.support.schools import make_settings
from tests.support.serve_process import ServeProcess

PASSWORD = "ein-sicheres-passwort"


def _settings_file(school: School) -> Path:
    path = school.settings.base_dir / "schulhof.toml"
    path.write_text(f'[school]\ndomain = "schule.test"\nname = "Testschule"\n\n'
                    f'[database]\nurl = "{school.settings.database_url}"\n')
    return path


def _send(school: School, subjects: list[str], stop: threading.Event | None = None) -> None:
    context = ssl.create_default_context(
        cafile=str(school.settings.path(school.settings.tls.certificate)))
    context.check_hostname = False
    with smtplib.SMTP("127.0.0.1", school.settings.listen.submission, timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.login("lehrer", PASSWORD)
        i = 0
        while True:
            subject = f"Nachricht {len(subjects)}"
            smtp.sendmail("lehrer@schule.test", ["anna@schule.test"],
                          f"From: lehrer@schule.test\r\nTo: anna@schule.test\r\n"
                          f"Subject: {subject}\r\n\r\nText {i}\r\n".encode())
            subjects.append(subject)
            i += 1
            if stop is None and i >= 5:
                return
            if stop is not None and stop.is_set():
                return


async def _create_room(school: School) -> str:
    base = f"http://127.0.0.1:{school.settings.listen.matrix}/_matrix/client/v3"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/login", json={
                "type": "m.login.password", "password": PASSWORD,
                "identifier": {"type": "m.id.user", "user": "lehrer"}}) as response:
            token = (await response.json())["access_token"]
        async with http.post(f"{base}/createRoom", json={"name": "Fachschaft Mathe"},
                             headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200
            return str((await response.json())["room_id"])


async def test_backup_under_load_restores_to_a_working_school(
        running_school: School, tmp_path: Path,
        fresh_database_url: Callable[[], str]) -> None:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)
    config = _settings_file(running_school)
    before: list[str] = []
    await asyncio.to_thread(_send, running_school, before)
    room_id = await _create_room(running_school)

    during: list[str] = []
    stop = threading.Event()
    load = asyncio.create_task(asyncio.to_thread(_send, running_school, during, stop))
    await asyncio.sleep(0.3)
    backup = tmp_path / "sicherung"
    summary = await asyncio.to_thread(make_backup, running_school.settings, config, backup)
    stop.set()
    await load
    assert summary.files >= 4 and during  # mail kept flowing while the backup ran

    target = tmp_path / "wiederhergestellt"
    url = running_school.settings.database_url
    restored_url = (await asyncio.to_thread(fresh_database_url) if url.startswith("postgresql")
                    else f"sqlite+aiosqlite:///{target / 'schulhof.db'}")
    settings_file = await asyncio.to_thread(restore_backup, backup, target,
                                            database_url=restored_url)
    restored_settings = dataclasses.replace(
        load_settings(settings_file),
        database=dataclasses.replace(load_settings(settings_file).database, url=restored_url))
    assert (target / "keys").is_dir() and any((target / "keys").iterdir())
    restored = await School.open(restored_settings, migrate=True)
    try:
        logins = {a.login for a in await restored.directory.list_accounts()}
        assert {"lehrer", "anna"} <= logins
        anna = await restored.directory.get_account("anna")
        status = await restored.mail_store.mailbox_status(anna.id, "INBOX")
        assert len(before) <= status.messages <= len(before) + len(during)
        async with restored.db.read() as session:
            rooms = (await session.execute(text(
                "SELECT room_id FROM matrix_rooms"))).scalars().all()
            count = (await session.execute(select(func.count()).select_from(
                text("accounts")))).scalar_one()
        assert room_id in rooms and count >= 2
    finally:
        await restored.close()

    # The restored school serves: ``schulhof serve`` on the restored folder (its
    # database, certificate and keys; ports of this test run) and Anna logs in over
    # IMAPS and finds her mail.
    served = ServeProcess.for_settings(make_settings(target, restored_url))
    await served.start()
    try:
        found = await asyncio.to_thread(_imap_subjects, served.settings)
    finally:
        assert await served.stop() == 0
    assert set(before) <= set(found) and len(found) <= len(before) + len(during)
    assert not served.new_bad_log_lines(), served.log_text()[-2000:]


def _imap_subjects(settings: Settings) -> list[str]:
    context = ssl.create_default_context(cafile=str(settings.path(settings.tls.certificate)))
    context.check_hostname = False
    with imaplib.IMAP4_SSL("127.0.0.1", settings.listen.imaps, ssl_context=context,
                           timeout=30) as imap:
        imap.login("anna", PASSWORD)
        imap.select("INBOX", readonly=True)
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return [part[1].decode().split(":", 1)[1].strip() for part in data
            if isinstance(part, tuple)]


async def test_damaged_foreign_and_incomplete_backups_are_refused(
        running_school: School, tmp_path: Path) -> None:
    config = _settings_file(running_school)
    backup = tmp_path / "sicherung"
    await asyncio.to_thread(make_backup, running_school.settings, config, backup)
    with pytest.raises(BackupError, match="not empty"):
        make_backup(running_school.settings, config, backup)

    foreign = tmp_path / "andere"
    foreign.mkdir()
    (foreign / "schulhof.toml").write_text('[school]\ndomain = "andere-schule.test"\n')
    with pytest.raises(BackupError, match="foreign backup"):
        restore_backup(backup, foreign)

    keys = next(p for p in (backup / "files" / "keys").rglob("*") if p.is_file())
    original = keys.read_bytes()
    keys.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(BackupError, match="checksum"):
        restore_backup(backup, tmp_path / "neu")
    keys.write_bytes(original)
    (backup / "files" / "fremd.txt").write_text("x")
    with pytest.raises(BackupError, match="unexpected"):
        restore_backup(backup, tmp_path / "neu")
    (backup / "manifest.json").unlink()
    with pytest.raises(BackupError, match=r"no manifest\.json"):
        restore_backup(backup, tmp_path / "neu")
    assert not (tmp_path / "neu").exists()  # nothing written for a refused backup
    assert await asyncio.to_thread(
        main, ["--config", str(config), "restore", str(backup), str(tmp_path / "x")]) == 1
