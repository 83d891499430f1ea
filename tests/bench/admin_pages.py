"""Benchmarks of issue 17: the import of a school through the admin pages with password
letters, and the data export of a big account.

    python -m tests.bench.admin_pages import [--users 2000] [--database-url URL]
    python -m tests.bench.admin_pages export [--mails 20000] [--events 50000] [--database-url URL]
        [--baseline-tree OLD_CHECKOUT]

``import``: a running school (HTTPS webmail with the admin pages), an admin logged in
with aiohttp over TLS; uploads a generated CSV (Windows-1252, 75 % pupils, 5 %
teachers, 20 % parents), waits for the preview, applies it and downloads the letters
PDF.  Target: under 30 s end to end for 2,000 users.

``export``: fills one account with ``--mails`` messages in 4 folders and ``--events``
chat events in 10 rooms (rows written directly: the fill is not what is measured),
then runs ``schulhof export`` in a fresh process and reports its time and peak RSS
(VmHWM); with ``--baseline-tree`` the same export from an older checkout first.
Target: under 60 s and under 100 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from conf.app import School
from conf.settings import render_settings_toml
from directory.model import Role
from tests.bench.import_school import school_of
from tests.support.csv_factory import make_school, to_csv
from tests.support.schools import make_settings

PASSWORD = "Chefin-Passwort-1"


def _database(url: str, work: Path) -> tuple[str, object | None]:
    """A fresh database (outside the event loop: the PostgreSQL helper runs its own)."""
    if not url:
        return f"sqlite+aiosqlite:///{work / 'bench.db'}", None
    from tests.support.databases import PostgresDatabases

    factory = PostgresDatabases(url)
    return factory.fresh(work), factory


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


async def bench_import(users: int, url: str, work: Path) -> None:
    from conf.migrate import upgrade
    from directory.db import Database
    from tests.mailserver.imap.session.helpers import client_tls

    settings = make_settings(work / "school", url)
    db = Database(settings.database_url)
    await upgrade(db)
    await db.dispose()
    school = await School.open(settings, migrate=False)
    await school.start()
    try:
        await school.directory.create_account(role=Role.ADMIN, login="chefin",
                                              password=PASSWORD)
        web = next(s for s in school.services if type(s).__name__ == "WebmailServer")
        data = to_csv(make_school(*school_of(users)))
        connector = aiohttp.TCPConnector(ssl=client_tls(settings))
        async with aiohttp.ClientSession(web.base_url, connector=connector,  # type: ignore[attr-defined]
                                         cookie_jar=aiohttp.CookieJar(unsafe=True),
                                         timeout=aiohttp.ClientTimeout(total=600)) as http:
            async with http.get("/login") as r:
                token = _csrf(await r.text())
            async with http.post("/login", data={"csrf": token, "login": "chefin",
                                                 "password": PASSWORD}) as r:
                assert r.status == 200
            start = time.perf_counter()
            async with http.get("/admin/import") as r:
                token = _csrf(await r.text())
            form = aiohttp.FormData()
            form.add_field("csrf", token)
            form.add_field("file", data, filename="export.csv", content_type="text/csv")
            async with http.post("/admin/import", data=form) as r:
                page = await r.text()
                assert r.status == 200, page[:2000]
            preview = time.perf_counter()
            held = re.search(r'name="token" value="([^"]+)"', page)
            assert held
            async with http.post("/admin/import/anwenden", data={
                    "csrf": _csrf(page), "token": held.group(1)}) as r:
                done = await r.text()
                assert r.status == 200, done[:2000]
            applied = time.perf_counter()
            link = re.search(r'href="(/admin/briefe/[^"]+)"', done)
            assert link
            async with http.get(link.group(1)) as r:
                pdf = await r.read()
            end = time.perf_counter()
        print(f"import of {users} users through the admin pages: {end - start:.1f} s "
              f"(preview {preview - start:.1f} s, apply with letters {applied - preview:.1f} s, "
              f"download {end - applied:.1f} s; letters {len(pdf) / 1e6:.1f} MB); "
              f"target < 30 s")
    finally:
        await school.close()


async def fill_account(settings_path: Path, mails: int, events: int) -> None:
    """One teacher with ``mails`` messages and ``events`` chat events, written as rows."""
    from conf.settings import load_settings
    from mailserver.schema import MessageBlobRow, MessageRow
    from mailserver.store import queries as q
    from mailserver.store.account_data import MailAccountData
    from messenger.storage.tables import EventRow, MembershipRow, RoomRow

    school = await School.open(load_settings(settings_path))
    try:
        await school.directory.create_account(role=Role.TEACHER, login="leer")
        account = await school.directory.create_account(role=Role.TEACHER, login="lehrer",
                                                        first_name="Viel", last_name="Post")
        store = school.mail_store
        await store.ensure_default_mailboxes(account.id)
        boxes = (await MailAccountData(store).mailboxes(account.id))[:4]
        now = time.time()
        body = ("Liebe Eltern,\r\n\r\n" + "der Ausflug findet statt. " * 60 + "\r\n").encode()
        per_box = mails // len(boxes)
        for box in boxes:
            for start in range(0, per_box, 1000):
                blobs, rows = [], []
                for n in range(start, min(per_box, start + 1000)):
                    message = (f"From: eltern{n}@example.org\r\nSubject: Nachricht {n}\r\n"
                               f"Message-ID: <{box.name}.{n}@bench>\r\n\r\n").encode() + body
                    digest = hashlib.sha256(message).hexdigest()
                    blobs.append({"id": digest, "size": len(message), "data": message})
                    rows.append({"mailbox_id": box.id, "uid": n + 1, "blob_id": digest,
                                 "size": len(message), "modseq": 1, "system_flags": 1,
                                 "keywords": "", "internal_date": __import__(
                                     "datetime").datetime.fromtimestamp(now, __import__(
                                         "datetime").UTC)})
                async with school.db.write() as session:
                    await session.execute(q.insert_ignoring_conflict(
                        session, MessageBlobRow.__table__), blobs)  # type: ignore[arg-type]
                    await session.execute(MessageRow.__table__.insert(), rows)  # type: ignore[attr-defined]
        user = f"@lehrer:{school.settings.school.domain}"
        position = 0
        async with school.db.write() as session:
            for r in range(10):
                room = f"!bench{r}:{school.settings.school.domain}"
                session.add(RoomRow(room_id=room, room_version="10", creator=user))
            await session.flush()
            for r in range(10):
                room = f"!bench{r}:{school.settings.school.domain}"
                session.add(MembershipRow(room_id=room, user_id=user, membership="join",
                                          event_id=f"$join{r}", stream_ordering=r + 1))
        for start in range(0, events, 2000):
            rows = []
            for n in range(start, min(events, start + 2000)):
                position += 1
                room = f"!bench{n % 10}:{school.settings.school.domain}"
                pdu = {"type": "m.room.message", "room_id": room, "sender": user,
                       "origin_server_ts": int(now * 1000) + n, "depth": n + 1,
                       "content": {"msgtype": "m.text", "body": f"Nachricht Nummer {n}"},
                       "prev_events": [], "auth_events": []}
                rows.append({"event_id": f"$bench{n}", "stream_ordering": 100 + position,
                             "room_id": room, "type": "m.room.message", "state_key": None,
                             "sender": user, "depth": n + 1,
                             "origin_server_ts": pdu["origin_server_ts"],
                             "json": json.dumps(pdu), "redacted": False})
            async with school.db.write() as session:
                await session.execute(EventRow.__table__.insert(), rows)  # type: ignore[attr-defined]
    finally:
        await school.close()


def bench_export(mails: int, events: int, url: str, work: Path,
                 baseline_tree: Path | None = None) -> None:
    settings = make_settings(work / "school", url)
    config = work / "school" / "schulhof.toml"
    config.write_text(render_settings_toml(settings), encoding="utf-8")
    asyncio.run(fill_account(config, mails, events))
    trees = [("this tree", Path.cwd())]
    if baseline_tree is not None:
        trees.insert(0, (f"baseline {baseline_tree}", baseline_tree.resolve()))
    for name, tree in trees:
        empty = _export_process(config, "leer", work / f"leer-{len(name)}.zip", tree)
        seconds, rss = _export_process(config, "lehrer", work / f"lehrer-{len(name)}.zip",
                                       tree)
        size = (work / f"lehrer-{len(name)}.zip").stat().st_size
        print(f"{name}: export of {mails} mails and {events} chat events: {seconds:.1f} s, "
              f"peak RSS {rss:.0f} MiB (an empty account's export: {empty[1]:.0f} MiB, so "
              f"{rss - empty[1]:.0f} MiB for the data), ZIP {size / 1e6:.0f} MB; "
              f"target < 60 s, < 100 MiB")


def _export_process(config: Path, login: str, target: Path, tree: Path
                    ) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of ``schulhof export`` run from ``tree`` in a process
    of its own.  The peak is the process's VmHWM: ``getrusage``'s ru_maxrss survives
    exec on Linux and would report this (parent) process's size, which filled the
    database with every package imported."""
    script = ("import sys, time\n"
              "from conf.cli import main\n"
              "start = time.perf_counter()\n"
              f"code = main(['--config', {str(config)!r}, 'export', {login!r}, '-o', "
              f"{str(target)!r}])\n"
              "print('seconds', time.perf_counter() - start)\n"
              "status = open('/proc/self/status').read().split('\\n')\n"
              "print('hwm_kib', next(l.split()[1] for l in status if l.startswith('VmHWM')))\n"
              "sys.exit(code)\n")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=tree, env=env)
    figures = dict(line.split() for line in result.stdout.splitlines()
                   if line.startswith(("seconds", "hwm_kib")))
    print(result.stdout.splitlines()[0])
    return float(figures["seconds"]), int(figures["hwm_kib"]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["import", "export"])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--mails", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="export: also run the export from this checkout (e.g. an "
                             "older commit's `git worktree`) in the same run; it must know "
                             "every migration of this tree (else Alembic stops it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, factory = _database(args.database_url, Path(tmp))
        try:
            if args.what == "import":
                asyncio.run(bench_import(args.users, url, Path(tmp)))
            else:
                bench_export(args.mails, args.events, url, Path(tmp), args.baseline_tree)
        finally:
            if factory is not None:
                factory.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
