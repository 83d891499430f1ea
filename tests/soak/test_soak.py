"""Durability soak: ``schulhof serve`` SIGKILLed N times under mail and chat load.

Each cycle starts the server, lets SMTP clients (MX without login, and
submission with STARTTLS + AUTH) and Matrix clients (PUT /send with a fresh
transaction id each) work against it for a random moment, and SIGKILLs it
mid-stream.  A mail counts as acknowledged when the server said 250 after
DATA, an event when /send answered 200 with an event_id.  After the last
cycle the server starts once more and every acknowledged mail must be in its
recipient's INBOX exactly once (read over IMAPS), every acknowledged event in
the room exactly once (read through /messages), nothing at all may be there
twice, and SQLite's ``PRAGMA integrity_check`` must say ``ok``.

``SOAK_CYCLES`` (default 100), ``SOAK_SEED`` (printed), ``SOAK_LOAD_SECONDS``
(the longest load phase, default 3.0).
"""

from __future__ import annotations

import asyncio
import collections
import email
import imaplib
import os
import random
import re
import sqlite3
import ssl
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp
import aiosmtplib
import pytest
from sqlalchemy.engine import make_url

from conf.settings import Settings
from directory.model import Role
from tests.support.schools import make_settings
from tests.support.serve_process import ServeProcess, create_accounts
from tests.support.smtp_clients import make_message

CYCLES = int(os.environ.get("SOAK_CYCLES", "100") or 100)
LOAD_SECONDS = float(os.environ.get("SOAK_LOAD_SECONDS", "3.0") or 3.0)
PASSWORD = "Soak-Passwort-1"
RECIPIENTS = ("anna", "ben", "carla")
SENDER = "lehrer"  # submits mail to the recipients
CHATTERS = ("chat1", "chat2")
MX_CLIENTS, SUBMISSION_CLIENTS = 4, 2

pytestmark = [pytest.mark.soak, pytest.mark.timeout(CYCLES * 60 + 600)]


@dataclass
class Acknowledged:
    mails: list[tuple[str, str]] = field(default_factory=list)  # (recipient, X-Test-Id)
    events: list[str] = field(default_factory=list)  # soak ids in the event body


def tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.path(settings.tls.certificate)))
    context.check_hostname = False
    return context


async def smtp_sender(settings: Settings, rng: random.Random, acked: Acknowledged,
                      submission: bool) -> None:
    """Send until the server goes away; remember every 250."""
    port = settings.listen.submission if submission else settings.listen.smtp
    smtp = aiosmtplib.SMTP(hostname=settings.listen.bind, port=port, start_tls=True,
                           tls_context=tls_context(settings), timeout=10)
    try:
        await smtp.connect()
        if submission:
            await smtp.login(SENDER, PASSWORD)
        while True:
            recipient = rng.choice(RECIPIENTS)
            sender = f"{SENDER}@schule.test" if submission else "jemand@outside.example"
            marker, message = make_message(sender=sender, to=[f"{recipient}@schule.test"],
                                           body=("x" * 70 + "\r\n") * rng.randint(1, 40))
            await smtp.sendmail(sender, [f"{recipient}@schule.test"], message)
            acked.mails.append((recipient, marker))  # sendmail returned: 250
    except (TimeoutError, aiosmtplib.SMTPException, OSError):
        return  # the server was killed
    finally:
        smtp.close()


@dataclass
class ChatUser:
    login: str
    token: str = ""
    room_id: str = ""


async def chat_sender(base: str, user: ChatUser, acked: Acknowledged) -> None:
    """PUT /send with a new transaction id each time until the server goes away."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        while True:
            soak_id = uuid.uuid4().hex
            url = (f"{base}/_matrix/client/v3/rooms/{quote(user.room_id)}/send/"
                   f"m.room.message/{soak_id}")
            try:
                async with http.put(url, json={"msgtype": "m.text", "body": f"soak {soak_id}"},
                                    headers={"Authorization": f"Bearer {user.token}"}) as r:
                    data = await r.json(content_type=None)
                    if r.status == 429:
                        await asyncio.sleep(data.get("retry_after_ms", 100) / 1000)
                        continue
                    if r.status == 200 and data.get("event_id"):
                        acked.events.append(soak_id)
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
                return


async def login_and_room(base: str, users: list[ChatUser]) -> None:
    async with aiohttp.ClientSession() as http:
        for user in users:
            async with http.post(f"{base}/_matrix/client/v3/login", json={
                    "type": "m.login.password", "password": PASSWORD,
                    "identifier": {"type": "m.id.user", "user": user.login}}) as r:
                data = await r.json()
                assert r.status == 200, data
                user.token = data["access_token"]
        headers = {"Authorization": f"Bearer {users[0].token}"}
        async with http.post(f"{base}/_matrix/client/v3/createRoom", headers=headers, json={
                "preset": "private_chat", "invite": [f"@{u.login}:schule.test"
                                                     for u in users[1:]]}) as r:
            room_id = (await r.json())["room_id"]
        for user in users[1:]:
            async with http.post(f"{base}/_matrix/client/v3/join/{quote(room_id)}",
                                 headers={"Authorization": f"Bearer {user.token}"},
                                 json={}) as r:
                assert r.status == 200, await r.text()
        for user in users:
            user.room_id = room_id


async def stored_events(base: str, user: ChatUser) -> collections.Counter[str]:
    """Every soak id in the room's timeline, read back through /messages (dir=b)."""
    found: collections.Counter[str] = collections.Counter()
    params = {"dir": "b", "limit": "1000"}
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{base}/_matrix/client/v3/rooms/{quote(user.room_id)}/messages",
                                params=params,
                                headers={"Authorization": f"Bearer {user.token}"}) as r:
                data = await r.json()
                assert r.status == 200, data
            for event in data.get("chunk", []):
                body = event.get("content", {}).get("body", "")
                if event.get("type") == "m.room.message" and body.startswith("soak "):
                    found[body[5:]] += 1
            if not data.get("chunk") or not data.get("end"):
                return found
            params["from"] = data["end"]


def stored_mails(settings: Settings) -> dict[str, collections.Counter[str]]:
    """Every X-Test-Id in each recipient's INBOX, over IMAPS (RFC 9051 6.4.5)."""
    result = {}
    for login in RECIPIENTS:
        with imaplib.IMAP4_SSL(settings.listen.bind, settings.listen.imaps,
                               ssl_context=tls_context(settings), timeout=60) as imap:
            imap.login(login, PASSWORD)
            imap.select("INBOX", readonly=True)
            _, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (X-Test-Id)])")
            counter: collections.Counter[str] = collections.Counter()
            for part in data:
                if isinstance(part, tuple):
                    value = email.message_from_bytes(part[1])["X-Test-Id"]
                    if value:
                        counter[value.strip()] += 1
            result[login] = counter
            imap.logout()
    return result


def sqlite_integrity(url: str) -> str:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return "n/a (PostgreSQL)"
    with sqlite3.connect(parsed.database) as db:
        return ", ".join(row[0] for row in db.execute("PRAGMA integrity_check"))


async def test_nothing_acknowledged_is_lost_over_kill_cycles(tmp_path: Path,
                                                             database_url: str) -> None:
    seed = int(os.environ.get("SOAK_SEED", "") or random.SystemRandom().getrandbits(32))
    rng = random.Random(seed)
    print(f"\nsoak: SOAK_SEED={seed} SOAK_CYCLES={CYCLES} SOAK_LOAD_SECONDS={LOAD_SECONDS}",
          flush=True)
    settings = make_settings(tmp_path / "schule", database_url)
    await create_accounts(settings, {
        **{login: (Role.TEACHER, PASSWORD) for login in (*RECIPIENTS, SENDER)},
        **{login: (Role.TEACHER, PASSWORD) for login in CHATTERS}})
    server = ServeProcess.for_settings(settings)
    base = f"http://{settings.listen.bind}:{settings.listen.matrix}"
    users = [ChatUser(login) for login in CHATTERS]
    acked = Acknowledged()
    started = time.monotonic()
    try:
        await server.start()
        await login_and_room(base, users)
        for cycle in range(CYCLES):
            if cycle:
                await server.start()
            load = [asyncio.create_task(smtp_sender(settings, random.Random(rng.random()),
                                                    acked, submission=False))
                    for _ in range(MX_CLIENTS)]
            load += [asyncio.create_task(smtp_sender(settings, random.Random(rng.random()),
                                                     acked, submission=True))
                     for _ in range(SUBMISSION_CLIENTS)]
            load += [asyncio.create_task(chat_sender(base, user, acked)) for user in users]
            await asyncio.sleep(rng.uniform(0.2, LOAD_SECONDS))
            server.kill()  # mid-stream: some clients are inside DATA or a PUT right now
            await asyncio.wait_for(asyncio.gather(*load), timeout=60)
        await server.start()
        mails = await asyncio.to_thread(stored_mails, settings)
        events = await stored_events(base, users[0])
    finally:
        code = await server.stop()
    integrity = sqlite_integrity(settings.database.url)
    elapsed = time.monotonic() - started

    missing_mails = [(r, m) for r, m in acked.mails if mails[r][m] == 0]
    missing_events = [e for e in acked.events if events[e] == 0]
    duplicated_mails = [(r, m, n) for r in RECIPIENTS for m, n in mails[r].items() if n > 1]
    duplicated_events = [(e, n) for e, n in events.items() if n > 1]
    stored = sum(sum(c.values()) for c in mails.values())
    print(f"soak: cycles={CYCLES} seconds={elapsed:.0f} "
          f"mails acknowledged={len(acked.mails)} stored={stored} "
          f"missing={len(missing_mails)} duplicated={len(duplicated_mails)} | "
          f"events acknowledged={len(acked.events)} stored={sum(events.values())} "
          f"missing={len(missing_events)} duplicated={len(duplicated_events)} | "
          f"integrity_check={integrity} starts={server.starts}", flush=True)
    assert code == 0, server.log_text()[-3000:]
    assert acked.mails and acked.events, "the load never got through"
    assert not missing_mails, missing_mails[:10]
    assert not missing_events, missing_events[:10]
    assert not duplicated_mails, duplicated_mails[:10]
    assert not duplicated_events, duplicated_events[:10]
    assert re.fullmatch(r"ok|n/a.*", integrity), integrity
