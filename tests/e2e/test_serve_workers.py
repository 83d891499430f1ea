"""``schulhof serve --workers 2`` on PostgreSQL, with real clients (issue 15).

The server runs as real processes (a supervisor and two workers sharing the
ports with SO_REUSEPORT).  The kernel chooses the worker of each connection;
the tests open connections until they have one on each worker and then check
that what happens on one is seen on the other: an IMAP IDLE (imaplib) woken by
a delivery (smtplib) through the other worker, a Matrix /sync long-poll woken
by a message sent through the other worker (plain HTTP), login failures
counted across workers and a password change seen by both at once, a directory
change seen by every worker's MX at once, the outbound queue worked by one
worker only, and a worker killed with SIGKILL under SMTP load: every 250
stored exactly once, the worker restarted.  On SQLite ``--workers 2`` runs one process and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import imaplib
import json
import os
import re
import signal
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from conf.app import School
from conf.settings import MetricsSettings, ServerSettings, Settings
from directory.directory_relay import DirectoryRelay
from directory.model import Role, Status
from directory.pg_broadcast import APPLICATION_NAME, PostgresBroadcast, connect_arguments
from mailserver.smtp import SmtpConfig
from tests.support.schools import make_settings
from tests.support.serve_process import ServeProcess, create_accounts
from tests.support.worker_sockets import owning_pid, serving_pid, worker_pids

# Two worker processes start, import everything and stop per test: minutes on a
# loaded 2-core machine, beyond the suite's default per-test timeout.
pytestmark = pytest.mark.timeout(900)

PASSWORD = "Geheim-Passwort-42"
# The bound for a wake-up across workers is 1 s (0.02-0.2 s measured on a
# quiet machine); a shared machine at load average 30 took 3-5 s.  Mail has no
# polling fallback: without the broadcast the IDLE would not wake at all.
WAKE_SECONDS = 8.0
DOMAIN = "schule.test"
T = TypeVar("T")


@pytest.fixture
def pg_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL")
    return database_url


@pytest.fixture
async def served(tmp_path: Path, pg_url: str) -> AsyncIterator[ServeProcess]:
    settings = make_settings(tmp_path / "school", pg_url, domain=DOMAIN,
                             metrics=MetricsSettings(port=0))  # a free port per worker
    await create_accounts(settings, {"anna": (Role.TEACHER, PASSWORD),
                                     "ben": (Role.TEACHER, PASSWORD)})
    serve = ServeProcess.for_settings(settings)
    serve.extra_args = ["--workers", "2"]
    serve.startup_seconds = 240.0  # two workers importing everything on a loaded machine
    serve.stop_seconds = 90.0  # the supervisor gives its workers 30 s, then kills them
    await serve.start()
    try:
        yield serve
    finally:
        assert await serve.stop() == 0
        assert not serve.alive()


def pids(serve: ServeProcess) -> dict[int, int]:
    found = worker_pids(serve.log_text())
    assert len(found) == 2, serve.log_text()[-2000:]
    return found


def on_each_worker(serve: ServeProcess, port: int, connect: Callable[[], T],
                   local_port: Callable[[T], int], close: Callable[[T], None]) -> list[T]:
    """One connection per worker (index order), opening and closing others until found."""
    workers = pids(serve)
    found: dict[int, T] = {}
    spare: list[T] = []
    for _ in range(60):
        connection = connect()
        pid = None
        for _ in range(50):
            pid = serving_pid(port, local_port(connection), workers.values())
            if pid is not None:
                break
            time.sleep(0.02)
        index = next((i for i, p in workers.items() if p == pid), None)
        if index is not None and index not in found:
            found[index] = connection
            if len(found) == len(workers):
                break
        else:
            spare.append(connection)
    for connection in spare:
        close(connection)
    assert len(found) == len(workers), "the kernel never chose one of the workers"
    return [found[i] for i in sorted(found)]


def tls_client(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.path(settings.tls.certificate)))
    context.check_hostname = False
    return context


def imap_connect(settings: Settings) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL("127.0.0.1", settings.listen.imaps,
                             ssl_context=tls_client(settings), timeout=30)


def imap_port(client: imaplib.IMAP4_SSL) -> int:
    return int(client.sock.getsockname()[1])


def message(subject: str) -> str:
    return (f"From: someone@outside.example\r\nTo: anna@{DOMAIN}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@outside.example>\r\n\r\nHallo.\r\n")


def smtp_connect(settings: Settings) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", settings.listen.smtp, timeout=30)
    client.ehlo("client.outside.example")
    return client


def smtp_port(client: smtplib.SMTP) -> int:
    assert client.sock is not None
    return int(client.sock.getsockname()[1])


def idle_until_exists(client: imaplib.IMAP4_SSL, seconds: float) -> tuple[bytes, float]:
    """Wait in IDLE (RFC 2177) for an untagged EXISTS; the line and when it came."""
    client.sock.settimeout(seconds)
    line = client.readline()
    return line, time.monotonic()


def start_idle(client: imaplib.IMAP4_SSL) -> None:
    client.select("INBOX")
    client.send(b"i1 IDLE\r\n")
    assert client.readline().startswith(b"+")


async def test_delivery_through_one_worker_wakes_idle_on_the_other(
        served: ServeProcess) -> None:
    settings = served.settings
    spare, idle_on = await asyncio.to_thread(
        on_each_worker, served, settings.listen.imaps, lambda: imap_connect(settings),
        imap_port, lambda c: c.shutdown())
    spare.shutdown()
    idle_on.login("anna", PASSWORD)
    start_idle(idle_on)  # on worker 1
    sender, spare_smtp = await asyncio.to_thread(
        on_each_worker, served, settings.listen.smtp, lambda: smtp_connect(settings),
        smtp_port, lambda c: c.close())
    spare_smtp.close()
    waiting = asyncio.create_task(asyncio.to_thread(idle_until_exists, idle_on, 10))
    await asyncio.sleep(0.2)
    sent_at = time.monotonic()
    sender.sendmail("someone@outside.example", [f"anna@{DOMAIN}"], message("ueber worker 0"))
    line, woken_at = await waiting
    assert line.startswith(b"* 1 EXISTS"), line
    print(f"IDLE woken across workers after {woken_at - sent_at:.3f} s")
    assert woken_at - sent_at < WAKE_SECONDS
    sender.quit()
    idle_on.send(b"DONE\r\n")
    idle_on.shutdown()


async def test_a_lost_notification_is_caught_up(served: ServeProcess, pg_url: str) -> None:
    """The IDLE's worker loses its LISTEN connection; the delivery's NOTIFY is lost
    to it; its catch-up after reconnecting still wakes the IDLE."""
    settings = served.settings
    _, idle_on = await asyncio.to_thread(
        on_each_worker, served, settings.listen.imaps, lambda: imap_connect(settings),
        imap_port, lambda c: c.shutdown())
    idle_on.login("anna", PASSWORD)
    start_idle(idle_on)
    sender, spare = await asyncio.to_thread(
        on_each_worker, served, settings.listen.smtp, lambda: smtp_connect(settings),
        smtp_port, lambda c: c.close())
    spare.close()
    waiting = asyncio.create_task(asyncio.to_thread(idle_until_exists, idle_on, 15))
    admin = await asyncpg.connect(**{**connect_arguments(pg_url), "server_settings": {}})
    try:
        rows = await admin.fetch(
            "SELECT pid, client_port FROM pg_stat_activity WHERE application_name = $1 "
            "AND datname = $2", APPLICATION_NAME, make_url(pg_url).database)
        worker_1 = pids(served)[1]
        listening = [r["pid"] for r in rows
                     if owning_pid(r["client_port"], 5432, [worker_1]) == worker_1]
        assert len(listening) == 1, rows
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", listening[0])
    finally:
        await admin.close()
    sender.sendmail("someone@outside.example", [f"anna@{DOMAIN}"], message("verloren?"))
    line, _ = await waiting
    assert line.startswith(b"* 1 EXISTS"), line
    assert "event=broadcast_reconnected" in served.log_text()
    sender.quit()
    idle_on.send(b"DONE\r\n")
    idle_on.shutdown()


def rcpt_code(client: smtplib.SMTP, recipient: str) -> int:
    client.rset()
    client.mail("someone@outside.example")
    code, _ = client.rcpt(recipient)
    return int(code)


async def test_a_directory_change_elsewhere_reaches_both_workers_mx_at_once(
        served: ServeProcess, pg_url: str) -> None:
    """Issue 18 across workers: both MX workers cached anna's address (250); she is
    suspended by another process of the school (this test, on the school's broadcast,
    as the admin pages in another worker would); both refuse her at once (550 5.2.1),
    well before their cache's own expiry (``directory_cache_seconds``)."""
    settings = served.settings
    on_0, on_1 = await asyncio.to_thread(
        on_each_worker, served, settings.listen.smtp, lambda: smtp_connect(settings),
        smtp_port, lambda c: c.close())
    recipient = f"anna@{DOMAIN}"
    school = await School.open(settings, migrate=False)
    broadcast = PostgresBroadcast(pg_url)
    DirectoryRelay(school.directory.changes, broadcast)
    await broadcast.start()
    try:
        primed_at = time.monotonic()  # from here each worker's answer is cached for 5 s
        for client in (on_0, on_1):
            assert await asyncio.to_thread(rcpt_code, client, recipient) == 250
        changed_at = time.monotonic()
        await school.directory.set_status("anna", Status.SUSPENDED)
        seen: list[float] = []
        for client in (on_0, on_1):
            while await asyncio.to_thread(rcpt_code, client, recipient) == 250:
                assert time.monotonic() - primed_at < SmtpConfig.directory_cache_seconds, \
                    "the worker's MX waited for its cache to expire"
                await asyncio.sleep(0.05)
            seen.append(time.monotonic() - changed_at)
        assert time.monotonic() - primed_at < SmtpConfig.directory_cache_seconds, \
            "too slow to tell a relayed change from the cache's expiry"
        print(f"suspension refused by the workers after {seen[0]:.3f} s and {seen[1]:.3f} s")
        assert await asyncio.to_thread(rcpt_code, on_1, recipient) == 550
    finally:
        await broadcast.stop()
        await school.close()
    on_0.quit()
    on_1.quit()


def login_fails(client: imaplib.IMAP4_SSL, password: str, user: str = "ben") -> str:
    try:
        client.login(user, password)
    except imaplib.IMAP4.error as exc:
        return str(exc)
    return "OK"


async def test_login_failures_and_password_changes_count_across_workers(
        served: ServeProcess) -> None:
    settings = served.settings
    on_0, on_1 = await asyncio.to_thread(
        on_each_worker, served, settings.listen.imaps, lambda: imap_connect(settings),
        imap_port, lambda c: c.shutdown())
    # free_failures (3) and one more, all on worker 0: the pair is locked for 1 s.
    for n in range(4):
        assert "AUTHENTICATIONFAILED" in login_fails(on_0, "falsch"), n
    await asyncio.sleep(0.2)  # the NOTIFY on its way
    # Worker 1 never saw a failure itself; even the right password is refused now.
    assert "UNAVAILABLE" in login_fails(on_1, PASSWORD)
    on_0.shutdown()
    on_1.shutdown()

    # Both workers remember anna's verified password (directory.verified_logins); a new
    # one set by a process outside the school's broadcast (as `schulhof user passwd`
    # on the command line) ends that at once on both: the entry is bound to the hash.
    def anna_logs_in(password: str) -> list[str]:
        clients = on_each_worker(served, settings.listen.imaps, lambda: imap_connect(settings),
                                 imap_port, lambda c: c.shutdown())
        outcomes = [login_fails(client, password, "anna") for client in clients]
        for client in clients:
            client.shutdown()
        return outcomes

    for _ in range(2):
        assert await asyncio.to_thread(anna_logs_in, PASSWORD) == ["OK", "OK"]
    school = await School.open(settings, migrate=False)
    try:
        await school.directory.set_password("anna", "Neues-Passwort-43")
    finally:
        await school.close()
    for outcome in await asyncio.to_thread(anna_logs_in, PASSWORD):
        assert "AUTHENTICATIONFAILED" in outcome
    assert await asyncio.to_thread(anna_logs_in, "Neues-Passwort-43") == ["OK", "OK"]


def matrix(settings: Settings) -> http.client.HTTPConnection:
    connection = http.client.HTTPConnection("127.0.0.1", settings.listen.matrix, timeout=30)
    connection.connect()
    return connection


def call(connection: http.client.HTTPConnection, method: str, path: str,
         body: dict[str, Any] | None = None, token: str = "") -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, json.dumps(body).encode() if body is not None else None,
                       headers)
    response = connection.getresponse()
    data = json.loads(response.read() or b"{}")
    assert response.status == 200, (response.status, data)
    return data  # type: ignore[no-any-return]


def matrix_login(connection: http.client.HTTPConnection, user: str) -> str:
    return str(call(connection, "POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
        "password": PASSWORD})["access_token"])


def http_port(connection: http.client.HTTPConnection) -> int:
    assert connection.sock is not None
    return int(connection.sock.getsockname()[1])


async def test_matrix_message_through_one_worker_reaches_sync_on_the_other(
        served: ServeProcess) -> None:
    settings = served.settings
    on_0, on_1 = await asyncio.to_thread(
        on_each_worker, served, settings.listen.matrix, lambda: matrix(settings),
        http_port, lambda c: c.close())
    anna, ben = matrix_login(on_0, "anna"), matrix_login(on_1, "ben")
    room = call(on_0, "POST", "/_matrix/client/v3/createRoom",
                {"invite": [f"@ben:{DOMAIN}"], "preset": "private_chat"}, anna)["room_id"]
    call(on_1, "POST", f"/_matrix/client/v3/join/{room}", {}, ben)
    since = call(on_1, "GET", "/_matrix/client/v3/sync?timeout=0", None, ben)["next_batch"]

    def long_poll() -> tuple[dict[str, Any], float]:
        result = call(on_1, "GET", f"/_matrix/client/v3/sync?timeout=20000&since={since}",
                      None, ben)
        return result, time.monotonic()

    polling = asyncio.create_task(asyncio.to_thread(long_poll))
    await asyncio.sleep(0.5)
    sent_at = time.monotonic()
    call(on_0, "PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t1",
         {"msgtype": "m.text", "body": "Hallo über Worker 0"}, anna)
    result, woken_at = await polling
    timeline = result["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"].get("body") for e in timeline] == ["Hallo über Worker 0"]
    assert woken_at - sent_at < WAKE_SECONDS
    # Both workers write the same room: positions stay unique, the order is the same.
    call(on_1, "PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t2",
         {"msgtype": "m.text", "body": "Antwort über Worker 1"}, ben)
    again = call(on_0, "GET", f"/_matrix/client/v3/sync?timeout=5000&since={since}", None,
                 anna)
    bodies = [e["content"].get("body") for e in
              again["rooms"]["join"][room]["timeline"]["events"]]
    assert bodies == ["Hallo über Worker 0", "Antwort über Worker 1"]
    on_0.close()
    on_1.close()


async def test_only_worker_0_runs_the_outbound_queue_and_group_rooms(
        served: ServeProcess) -> None:
    log = served.log_text()
    assert log.count("service=outbound-queue") == 1
    assert "event=worker_ready worker=0 of=2 singletons=True" in log
    assert "event=worker_ready worker=1 of=2 singletons=False" in log


def send_load(settings: Settings, count: int, accepted: list[str],
              stop: threading.Event) -> None:
    """Messages on fresh connections; the subjects of those answered 250."""
    for n in range(count):
        if stop.is_set():
            return
        subject = f"last-{n}-{uuid.uuid4().hex[:8]}"
        try:
            with smtplib.SMTP("127.0.0.1", settings.listen.smtp, timeout=30) as client:
                client.sendmail("someone@outside.example", [f"anna@{DOMAIN}"],
                                message(subject))
        except (OSError, smtplib.SMTPException):
            continue  # the killed worker's connection: the client would retry
        accepted.append(subject)


async def stored_subjects(pg_url: str) -> list[str]:
    connection = await asyncpg.connect(**{**connect_arguments(pg_url), "server_settings": {}})
    try:
        rows = await connection.fetch(
            "SELECT b.data FROM messages m JOIN message_blobs b ON b.id = m.blob_id")
    finally:
        await connection.close()
    subjects = []
    for row in rows:
        found = re.search(rb"^Subject: (.*?)\r?$", bytes(row["data"]), re.MULTILINE)
        subjects.append(found.group(1).decode() if found else "")
    return subjects


async def test_kill_9_of_a_worker_under_smtp_load(served: ServeProcess, pg_url: str) -> None:
    settings = served.settings
    before = pids(served)
    accepted: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=send_load, args=(settings, 60, accepted, stop))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        await asyncio.sleep(1.5)
        os.kill(before[1], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while pids(served)[1] == before[1]:
            assert time.monotonic() < deadline, served.log_text()[-3000:]
            await asyncio.sleep(0.1)
    finally:
        for thread in threads:
            await asyncio.to_thread(thread.join, 120)
        stop.set()
    assert "event=worker_died worker=1" in served.log_text()
    assert pids(served)[0] == before[0]  # the other worker kept serving
    assert len(accepted) > 100
    stored = await stored_subjects(pg_url)
    assert sorted(s for s in stored if s in set(accepted)) == sorted(accepted)
    assert len(stored) == len(set(stored))  # nothing twice
    # The restarted worker serves: mail on a connection it took is stored.
    with contextlib.closing(smtp_connect(settings)) as client:
        client.sendmail("someone@outside.example", [f"anna@{DOMAIN}"], message("danach"))
    assert "danach" in await stored_subjects(pg_url)


@pytest.mark.parametrize("asked", [["--workers", "2"], []], ids=["workers-2", "default"])
async def test_sqlite_runs_one_process_and_says_so(tmp_path: Path, database_url: str,
                                                   asked: list[str]) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the SQLite case")
    settings = make_settings(tmp_path / "school", database_url, domain=DOMAIN,
                             server=ServerSettings())  # the default: one per core
    serve = ServeProcess.for_settings(settings)
    serve.extra_args = asked
    serve.startup_seconds = 240.0  # a loaded machine
    await serve.start()
    try:
        log = serve.log_text()
        # A warning when several were asked for; the default only says why one.
        level = "WARNING" if asked else "INFO"
        assert re.search(rf"level={level} .*event=one_process reason=sqlite", log), log[-2000:]
        assert "event=worker_ready" not in log
    finally:
        assert await serve.stop() == 0


async def test_postgres_default_is_one_worker_per_core(tmp_path: Path, pg_url: str) -> None:
    """No --workers and no server.workers: one worker per core (issue 15)."""
    settings = make_settings(tmp_path / "school", pg_url, domain=DOMAIN,
                             metrics=MetricsSettings(port=0), server=ServerSettings())
    serve = ServeProcess.for_settings(settings)
    serve.startup_seconds = 240.0
    serve.stop_seconds = 90.0
    await serve.start()
    try:
        cores = os.cpu_count() or 1
        log = serve.log_text()
        if cores > 1:
            assert f"event=ready workers={cores} " in log, log[-2000:]
            assert len(worker_pids(log)) == cores
        else:
            assert "event=worker_ready" not in log
    finally:
        assert await serve.stop() == 0
