"""Benchmark: the IMAP server under load, over loopback TLS.

    python -m tests.bench.imap_load [--clients 100] [--messages 10000] [--seconds 20]
        [--big 100000] [--idle 2000] [--database-url URL]

The server runs in its own process (a real school on a fresh SQLite file,
or a fresh PostgreSQL database made from the admin URL ``--database-url``);
mailboxes are filled through the store's delivery API in bulk (concurrent
delivery transactions, group-committed by the store), not through SMTP.

1. ``--clients`` concurrent clients for ``--seconds``, each a random mix of
   SELECT, FETCH headers, FETCH body, STORE flags, SEARCH and a short IDLE,
   on one mailbox of ``--messages`` messages: operations/s, p50/p99 latency.
2. SELECT and ``FETCH 1:* (UID FLAGS)`` on a mailbox of ``--big`` messages
   (target under 1 s each).
3. Memory per idle IDLE connection with ``--idle`` open: the server's RSS
   delta divided by the count (target under 100 KiB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import re
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from conf.settings import Settings

LOGINS = ("bench.last", "bench.gross")


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _serve(settings: Settings, ready: multiprocessing.Queue, stop: multiprocessing.Event
           ) -> None:
    from tests.mailserver.imap.session.helpers import imap_ports, imap_school

    async def main() -> None:
        async with imap_school(settings) as school:
            ready.put(imap_ports(school))
            while not stop.is_set():
                await asyncio.sleep(0.2)
    asyncio.run(main())


async def _fill(settings: Settings, counts: dict[str, int]) -> None:
    """Bulk fill: one store write transaction per 2,000 messages, through the
    store's own row API (``mailserver.store.messages.insert_messages``, the
    function APPEND and delivery use), so UIDs, MODSEQs and the quota counter
    are kept exactly as in production."""
    import datetime as dt
    import hashlib

    from conf.app import School
    from mailserver.store import messages as store_messages
    from mailserver.store import queries
    from tests.mailserver.imap.session.helpers import make_account, sample_message

    school = await School.open(settings, migrate=False)
    store = school.mail_store
    try:
        for login, count in counts.items():
            account_id = await make_account(school, login)
            box = (await store.mailbox_status(account_id, "INBOX")).mailbox
            started = time.perf_counter()
            for first in range(0, count, 2000):
                rows = []
                async with store.db.write() as session:
                    for n in range(first, min(first + 2000, count)):
                        # Big mailboxes reuse 1,000 bodies (content-addressed blobs).
                        k = n % 1000 if count > 20_000 else n
                        body = sample_message(
                            f"Nachricht {k}", to=f"{login}@schule.test",
                            body=f"Text {k} " * (5 + k % 200) + "\r\n")
                        blob_id = hashlib.sha256(body).hexdigest()
                        if n == k:
                            await queries.put_blob(session, blob_id, body)
                        rows.append({"blob_id": blob_id, "size": len(body),
                                     "internal_date": dt.datetime.now(dt.UTC),
                                     "system_flags": 1 if n % 3 else 0, "keywords": ""})
                    await store_messages.insert_messages(session, box.id, account_id, rows)
            print(f"filled {login}: {count} messages in {time.perf_counter() - started:.1f} s")
    finally:
        await school.close()


async def _connect(port: int, tls: object) -> LoadClient:
    from tests.mailserver.imap.session.helpers import RawClient

    c = await RawClient.connect(port, tls=tls)  # type: ignore[arg-type]
    await c.login(LOGINS[0])
    await c.command("SELECT INBOX")
    return LoadClient(c.reader, c.writer)


_LITERAL = re.compile(rb"\{(\d+)\}$")


@dataclass
class LoadReply:
    status: str
    text: str


class LoadClient:
    """The load phase's client: reads replies in bulk from its buffer and
    skips untagged data (literals included) without building a line object
    per response.  The tests' ``RawClient`` (a timeout task and a regex per
    line) spent more CPU than the server, so the figure measured the client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.counter = 0
        self.buf = bytearray()
        self.pos = 0

    async def _fill(self) -> None:
        data = await asyncio.wait_for(self.reader.read(1 << 16), 60)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    async def read_line(self) -> bytes:
        """One response line; literals it carries are skipped over."""
        if self.pos > 1 << 16:
            del self.buf[:self.pos]
            self.pos = 0
        start = scan = self.pos
        while True:
            end = self.buf.find(b"\r\n", scan)
            if end < 0:
                await self._fill()
                continue
            literal = _LITERAL.search(self.buf, max(scan, end - 24), end)
            if literal is None:
                self.pos = end + 2
                return bytes(self.buf[start:min(end, start + 200)])
            scan = end + 2 + int(literal.group(1))
            while len(self.buf) < scan:
                await self._fill()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def finish(self, tag: bytes) -> LoadReply:
        prefix = tag + b" "
        while True:
            line = await self.read_line()
            if line.startswith(prefix):
                status, _, text = line[len(prefix):].decode().partition(" ")
                return LoadReply(status, text)

    async def command(self, text: str) -> LoadReply:
        self.counter += 1
        tag = b"t%d" % self.counter
        await self.send_raw(tag + b" " + text.encode() + b"\r\n")
        return await self.finish(tag)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def _client_loop(c: LoadClient, messages: int, until: float,
                       latencies: dict[str, list[float]]) -> None:
    operations = ["select", "fetch_headers", "fetch_headers", "fetch_body", "store",
                  "store", "search", "idle"]
    while time.perf_counter() < until:
        op = random.choice(operations)
        n = random.randint(1, messages)
        started = time.perf_counter()
        if op == "select":
            reply = await c.command("SELECT INBOX")
        elif op == "fetch_headers":
            reply = await c.command(f"FETCH {n}:{min(n + 19, messages)} "
                                    "(UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])")
        elif op == "fetch_body":
            reply = await c.command(f"FETCH {n} (BODYSTRUCTURE BODY.PEEK[])")
        elif op == "store":
            reply = await c.command(f"STORE {n} {random.choice('+-')}FLAGS.SILENT (\\Flagged)")
        elif op == "search":
            reply = await c.command("UID SEARCH RETURN (COUNT) FLAGGED UNSEEN")
        else:
            c.counter += 1
            tag = f"t{c.counter}".encode()
            await c.send_raw(tag + b" IDLE\r\n")
            while not (await c.read_line()).startswith(b"+"):
                pass
            await asyncio.sleep(0.05)
            await c.send_raw(b"DONE\r\n")
            reply = await c.finish(tag)
        if reply.status != "OK":
            raise RuntimeError(f"{op}: {reply.status} {reply.text}")
        latencies[op].append(time.perf_counter() - started)
    await c.command("LOGOUT")
    await c.close()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


async def _load(port: int, tls: object, clients: int, messages: int, seconds: float) -> None:
    latencies: dict[str, list[float]] = defaultdict(list)
    # Log everyone in first (an argon2 hash each): the clock runs for the mix only.
    connected = []
    for first in range(0, clients, 25):
        connected += await asyncio.gather(*(_connect(port, tls)
                                            for _ in range(first, min(first + 25, clients))))
    until = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(_client_loop(c, messages, until, latencies) for c in connected))
    elapsed = time.perf_counter() - started
    everything = [v for values in latencies.values() for v in values]
    print(f"\nload: {clients} clients, {messages} messages, {elapsed:.1f} s: "
          f"{len(everything) / elapsed:.0f} operations/s, "
          f"p50 {_percentile(everything, 0.5) * 1000:.1f} ms, "
          f"p99 {_percentile(everything, 0.99) * 1000:.1f} ms")
    for op, values in sorted(latencies.items()):
        print(f"  {op:14s} n={len(values):6d} p50 {statistics.median(values) * 1000:7.1f} ms"
              f"  p99 {_percentile(values, 0.99) * 1000:7.1f} ms")


async def _big(port: int, tls: object, count: int) -> None:
    from tests.mailserver.imap.session.helpers import RawClient

    c = await RawClient.connect(port, tls=tls)  # type: ignore[arg-type]
    await c.login(LOGINS[1])
    started = time.perf_counter()
    reply = await c.command("SELECT INBOX")
    select = time.perf_counter() - started
    # Read the answer in bulk: a line-by-line client would time itself.
    started = time.perf_counter()
    await c.send_raw(b"big FETCH 1:* (UID FLAGS)\r\n")
    data = bytearray()
    while not data.endswith(b"FETCH completed\r\n"):
        chunk = await c.reader.read(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    fetch = time.perf_counter() - started
    assert reply.status == "OK" and data.count(b" FETCH (UID ") == count
    print(f"\n{count} messages: SELECT {select:.2f} s, FETCH 1:* (UID FLAGS) {fetch:.2f} s "
          f"(target < 1 s each)")
    await c.close()


async def _idle_memory(port: int, tls: object, count: int, server_pid: int) -> None:
    """RSS of the server with ``count`` sessions in IDLE. A first tenth warms
    up what does not grow with connections (thread pool and malloc arenas of
    the password hashing, TLS context caches); the figure is the growth from
    there to ``count`` divided by the connections added, and the plain
    total delta is printed too."""
    start = _rss_kib(server_pid)
    warm = max(1, count // 10)
    clients = await _open_idle(port, tls, warm)
    await asyncio.sleep(1)
    before = _rss_kib(server_pid)
    clients += await _open_idle(port, tls, count - warm)
    await asyncio.sleep(2)
    after = _rss_kib(server_pid)
    print(f"\n{count} idle IDLE connections: server RSS {start / 1024:.1f} -> "
          f"{before / 1024:.1f} MiB after {warm} -> {after / 1024:.1f} MiB; "
          f"{(after - before) / (count - warm):.1f} KiB per added connection "
          f"(target < 100 KiB), {(after - start) / count:.1f} KiB overall")
    for c in clients:
        await c.close()


async def _open_idle(port: int, tls: object, count: int) -> list[object]:
    from tests.mailserver.imap.session.helpers import RawClient

    clients: list[object] = []
    for first in range(0, count, 100):
        clients.extend(await asyncio.gather(*(RawClient.connect(port, tls=tls)  # type: ignore
                                              for _ in range(first, min(first + 100, count)))))
    # Logging in costs an argon2 hash per client: do it in modest waves.
    for first in range(0, count, 50):
        await asyncio.gather(*(_login_select_idle(c) for c in clients[first:first + 50]))
    return clients


async def _login_select_idle(c: object) -> None:
    await c.login(LOGINS[0])  # type: ignore[attr-defined]
    await c.command("EXAMINE INBOX")  # type: ignore[attr-defined]
    await c.send_raw(b"i IDLE\r\n")  # type: ignore[attr-defined]
    await c.read_line()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--database-url", default=os.environ.get("SCHULHOF_TEST_DATABASE_URL",
                                                                 ""))
    args = parser.parse_args(argv)
    from tests.mailserver.imap.session.helpers import client_tls, imap_settings
    from tests.support.databases import PostgresDatabases, SqliteDatabases

    with tempfile.TemporaryDirectory() as work:
        base = Path(work)
        databases = (PostgresDatabases(args.database_url) if args.database_url
                     else SqliteDatabases(base))
        url = databases.fresh(base)
        # All clients come from 127.0.0.1: no per-IP cap here.
        settings = imap_settings(base / "school", url, idle_timeout_seconds=600.0,
                                 max_connections_per_ip=0)
        asyncio.run(_fill(settings, {LOGINS[0]: args.messages, LOGINS[1]: args.big}))
        context = multiprocessing.get_context("spawn")
        ready, stop = context.Queue(), context.Event()
        server = context.Process(target=_serve, args=(settings, ready, stop))
        server.start()
        try:
            port = ready.get(timeout=60)[1]
            tls = client_tls(settings)
            print(f"server pid {server.pid}, backend "
                  f"{'postgresql' if args.database_url else 'sqlite'}")
            asyncio.run(_load(port, tls, args.clients, args.messages, args.seconds))
            if args.big:
                asyncio.run(_big(port, tls, args.big))
            if args.idle:
                asyncio.run(_idle_memory(port, tls, args.idle, server.pid))  # type: ignore
        finally:
            stop.set()
            server.join(30)
            if server.is_alive():
                server.terminate()
            databases.drop(url)
            databases.close()


if __name__ == "__main__":
    main()
