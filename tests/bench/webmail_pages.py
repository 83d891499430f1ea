"""Benchmark: webmail folder pages and search on a 50,000-message INBOX.

    python -m tests.bench.webmail_pages [--messages 50000] [--users 20] [--seconds 20]
        [--database-url URL]

The school runs in its own process (HTTPS webmail only, a fresh SQLite file
or a fresh PostgreSQL database made from the admin URL ``--database-url``).
The INBOX is filled through the store's row API in bulk (every message a
body of its own, subjects and texts from a small vocabulary so searches find
a few or thousands).  ``--users`` logged-in sessions then loop for
``--seconds``: a random folder page (50 messages of the 50,000), then a
search on the same INBOX (a word anywhere, sender plus subject, subject and
date, a reference number), pausing ``--think`` seconds on average between
clicks as a person does; then once more back to back.

Server time is what the webmail's ``Server-Timing`` header reports (request
in, response out, in the server); wall time at the client is printed beside
it.  The first search builds the search index of the mailbox (it is kept,
and later searches only index new mail): that one-off time is printed apart.
Targets (issue 11): p50 < 100 ms, p99 < 300 ms server time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import random
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from conf.settings import Settings

LOGIN, PASSWORD = "bench.webmail", "Bench-Webmail-2026"
WORDS = ("Elternabend", "Ausflug", "Zeugnis", "Vertretung", "Klassenfahrt", "Sportfest",
         "Mensa", "Bibliothek", "Hausaufgaben", "Projektwoche", "Theater", "Schulkonzert",
         "Laternenumzug", "Wandertag", "Praktikum", "Busfahrplan", "Fundsachen", "Impfung")
SENDERS = tuple(f"{name}@{domain}" for name in ("eva.eltern", "sekretariat", "hausmeister",
                                                "k.schaefer", "foerderverein", "m.yilmaz")
                for domain in ("schule.test", "eltern.example"))
# 3,000 words of 5-10 random letters: each is in about 2 % of the mails.
VOCABULARY = tuple(sorted({
    "".join(random.Random(i).choices("abcdefghijklmnopqrstuvwxyzäöüß", k=5 + i % 6))
    for i in range(3000)}))


def searches(rng: random.Random) -> dict[str, str]:
    """What people look for: a word anywhere, a sender and a subject, a subject
    word since a date, a mail's own code (one hit)."""
    kind = rng.randrange(4)
    if kind == 0:
        return {"q": rng.choice(VOCABULARY)}
    if kind == 1:
        return {"from": rng.choice(("foerderverein", "hausmeister", "k.schaefer")),
                "subject": rng.choice(WORDS).lower()}
    if kind == 2:
        return {"subject": rng.choice(WORDS).lower(), "since": "2026-06-20"}
    return {"q": code(rng.randrange(1000))}


def code(n: int) -> str:
    """A reference number only one mail carries ("Vorgang K7Q2XZ")."""
    rng = random.Random(f"code{n}")
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))


def bench_settings(base: Path, database_url: str) -> Settings:
    from tests.support.schools import make_settings

    settings = make_settings(base, database_url)
    listen = dataclasses.replace(settings.listen, web=0, imap=-1, imaps=-1, smtp=-1,
                                 submission=-1, submissions=-1, matrix=-1)
    return dataclasses.replace(settings, listen=listen)


def message(n: int) -> bytes:
    rng = random.Random(n)
    subject = f"{rng.choice(WORDS)} {rng.choice(WORDS)} (Vorgang {code(n)})"
    text = " ".join(rng.choice(VOCABULARY) for _ in range(60))
    day = 1 + n % 28
    return (f"From: {SENDERS[n % len(SENDERS)]}\r\nTo: {LOGIN}@schule.test\r\n"
            f"Subject: {subject}\r\nDate: Mon, {day:02d} Jun 2026 08:00:00 +0000\r\n"
            f"Message-ID: <{n}@bench.schule.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Liebe Eltern,\r\n\r\n{text}\r\n").encode()


async def fill(settings: Settings, count: int) -> None:
    """One write transaction per 2,000 messages through the store's row API
    (``mailserver.store.messages.insert_messages``, which APPEND and delivery use)."""
    import datetime as dt
    import hashlib

    from conf.app import School
    from directory.model import Role
    from mailserver.store import messages as store_messages
    from mailserver.store import queries

    school = await School.open(settings, migrate=False)
    store = school.mail_store
    try:
        account = await school.directory.create_account(role=Role.TEACHER, login=LOGIN,
                                                        password=PASSWORD)
        await store.ensure_default_mailboxes(account.id)
        box = (await store.mailbox_status(account.id, "INBOX")).mailbox
        started = time.perf_counter()
        for first in range(0, count, 2000):
            rows = []
            async with store.db.write() as session:
                for n in range(first, min(first + 2000, count)):
                    body = message(n)
                    blob_id = hashlib.sha256(body).hexdigest()
                    await queries.put_blob(session, blob_id, body)
                    rows.append({"blob_id": blob_id, "size": len(body),
                                 "internal_date": dt.datetime.now(dt.UTC),
                                 "system_flags": 1 if n % 3 else 0, "keywords": ""})
                await store_messages.insert_messages(session, box.id, account.id, rows)
        print(f"filled INBOX: {count} messages in {time.perf_counter() - started:.1f} s")
    finally:
        await school.close()


def serve(settings: Settings, ready: multiprocessing.Queue, stop: multiprocessing.Event
          ) -> None:
    from conf.app import School


    async def serving() -> None:
        school = await School.open(settings, migrate=False)
        try:
            await school.start()
            (server,) = [s for s in school.services if type(s).__name__ == "WebmailServer"]
            ready.put(server.base_url)  # type: ignore[attr-defined]
            while not stop.is_set():
                await asyncio.sleep(0.2)
        finally:
            await school.close()
    asyncio.run(serving())


_TIMING = re.compile(r"app;dur=([0-9.]+)")
Samples = dict[str, list[tuple[float, float]]]


async def log_in(session: Any, base: str) -> None:
    async with session.get(f"{base}/login") as response:
        token = re.search(r'name="csrf" value="([^"]+)"', await response.text())
    assert token
    async with session.post(f"{base}/login", allow_redirects=False, data={
            "csrf": token.group(1), "login": LOGIN, "password": PASSWORD}) as response:
        assert response.status == 303, response.status


async def timed(session: Any, url: str, params: dict[str, str], into: Samples,
                kind: str) -> None:
    """One GET; (server time from Server-Timing, wall time at the client) in ms."""
    started = time.perf_counter()
    async with session.get(url, params=params) as response:
        await response.read()
        assert response.status == 200, (response.status, url, params)
        server = _TIMING.search(response.headers.get("Server-Timing", ""))
    wall = (time.perf_counter() - started) * 1000
    into.setdefault(kind, []).append((float(server.group(1)) if server else wall, wall))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_at_a_time(base: str, pid: int, count: int = 100) -> None:
    """One user, one request at a time: server time and CPU of each kind alone."""
    import ssl

    import aiohttp

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    rng = random.Random(7)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await log_in(session, base)
        warm: Samples = {}
        await timed(session, f"{base}/search", {"box": "INBOX", "q": "wandertag"}, warm, "first")
        print(f"first search (the index of the mailbox is built): "
              f"{warm['first'][0][0] / 1000:.1f} s server time")
        for kind in ("folder", "search"):
            samples: Samples = {}
            before = cpu_seconds(pid)
            for _ in range(count):
                if kind == "folder":
                    await timed(session, f"{base}/mail",
                                {"box": "INBOX", "page": str(rng.randint(1, 1000))}, samples,
                                kind)
                else:
                    await timed(session, f"{base}/search", {"box": "INBOX", **searches(rng)},
                                samples, kind)
            cpu = (cpu_seconds(pid) - before) * 1000 / count
            server = sorted(s for s, _ in samples[kind])
            print(f"one at a time, {kind:6}: server p50 {statistics.median(server):.1f} ms, "
                  f"p99 {_p99(server):.1f} ms; {cpu:.1f} ms CPU per request")


async def run(base: str, users: int, seconds: float, messages: int, think: float,
              pid: int) -> None:
    import ssl

    import aiohttp

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the bench school's self-signed certificate
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context),
                                      cookie_jar=aiohttp.CookieJar(unsafe=True))
                for _ in range(users)]
    results: Samples = {}
    try:
        for session in sessions:
            await log_in(session, base)
        deadline = time.perf_counter() + seconds
        pages = max(1, messages // 50)
        cpu_before = cpu_seconds(pid)

        async def user(session: Any, rng: random.Random) -> None:
            while time.perf_counter() < deadline:
                await timed(session, f"{base}/mail",
                            {"box": "INBOX", "page": str(rng.randint(1, pages))},
                            results, "folder")
                await asyncio.sleep(rng.uniform(0, 2 * think))
                await timed(session, f"{base}/search",
                            {"box": "INBOX", **searches(rng)}, results, "search")
                await asyncio.sleep(rng.uniform(0, 2 * think))
        await asyncio.gather(*(user(s, random.Random(i)) for i, s in enumerate(sessions)))
        cpu = cpu_seconds(pid) - cpu_before
    finally:
        for session in sessions:
            await session.close()
    for kind, samples in results.items():
        server = sorted(s for s, _ in samples)
        wall = sorted(w for _, w in samples)
        print(f"think {think:.1f} s, {kind:6}: {len(samples)} requests, "
              f"{len(samples) / seconds:.0f}/s; server "
              f"p50 {statistics.median(server):.1f} ms, p99 {_p99(server):.1f} ms; "
              f"at the client p50 {statistics.median(wall):.1f} ms, p99 {_p99(wall):.1f} ms")


    done = sum(len(samples) for samples in results.values())
    print(f"server CPU: {cpu * 1000 / max(done, 1):.1f} ms per request "
          f"(folder and search mixed; {cpu / seconds * 100:.0f} % of one core)")


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean seconds a user waits between clicks (0: back to back)")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    from tests.support.databases import PostgresDatabases, SqliteDatabases

    with tempfile.TemporaryDirectory() as work:
        base = Path(work)
        databases = (PostgresDatabases(args.database_url) if args.database_url
                     else SqliteDatabases(base))
        url = databases.fresh(base)
        settings = bench_settings(base / "school", url)
        asyncio.run(fill(settings, args.messages))
        context = multiprocessing.get_context("spawn")
        ready, stop = context.Queue(), context.Event()
        server = context.Process(target=serve, args=(settings, ready, stop))
        server.start()
        try:
            address = ready.get(timeout=120)
            print(f"webmail at {address}, {args.users} users, {args.seconds:.0f} s, "
                  f"{'PostgreSQL' if args.database_url else 'SQLite'}, server pid {server.pid}")
            pid = server.pid or 0
            asyncio.run(one_at_a_time(address, pid))
            asyncio.run(run(address, args.users, args.seconds, args.messages, args.think, pid))
            if args.think:
                print("and back to back (no pause between clicks):")
                asyncio.run(run(address, args.users, args.seconds, args.messages, 0.0, pid))
        finally:
            stop.set()
            server.join(30)
            if server.is_alive():
                server.terminate()
            databases.drop(url)
            databases.close()


if __name__ == "__main__":
    main()
