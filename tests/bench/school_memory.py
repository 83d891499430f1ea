"""Benchmark: the memory of a whole school at rest with every device connected.

    python -m tests.bench.school_memory [--users 2000] [--imap 2000] [--sync 2000]
        [--workers N] [--database-url URL] [--hold SECONDS]

Makes a school (free loopback ports, TLS certificate, keys; SQLite, or a
fresh PostgreSQL database made from the admin URL ``--database-url``),
imports ``--users`` people with the real ``schulhof import`` (75 % pupils,
5 % teachers, 20 % parents, their classes as groups, one generated password
each, written by ``--passwords-out``), gives every user a Matrix device with
an access token, and starts the real ``schulhof serve`` (``--workers`` is
passed through), and waits until its first start has made the group rooms
(``event=group_rooms_synced``).  Then a client process of its own (this one):

1. opens ``--imap`` IMAP connections with implicit TLS (IMAPS), each logged in
   as a different user (the imported passwords), ``SELECT INBOX`` and ``IDLE``;
2. holds ``--sync`` ``/sync`` long-polls (``timeout=30000``, polled again when
   one returns), one per user, after each user's initial sync.

It prints the resident memory of all serve processes together (the parent and
every worker; RSS summed, and PSS, which counts pages the workers share once)
at each step, and per connection.  The target of issue 15 is under 500 MiB
RSS for 2,000 users with 2,000 IDLE connections and 2,000 held long-polls.

Both sides need about ``imap + sync`` file descriptors: the soft limit of
this process is raised to the hard limit (the server inherits it) and the
run stops early if that is not enough.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import os
import re
import resource
import ssl
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.bench.import_school import school_of
from tests.support.csv_factory import make_school, to_csv

API = "/_matrix/client/v3"
TARGET_MIB = 500.0


# --- the server's processes ---------------------------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def _kib(pid: int, path: str, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/{path}").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


@dataclasses.dataclass(frozen=True)
class Memory:
    processes: int
    rss_kib: int
    pss_kib: int

    def text(self) -> str:
        return (f"{self.rss_kib / 1024:.1f} MiB RSS ({self.pss_kib / 1024:.1f} MiB PSS) in "
                f"{self.processes} process{'es' if self.processes > 1 else ''}")


def memory(pid: int) -> Memory:
    pids = _tree(pid)
    return Memory(len(pids), sum(_kib(p, "status", "VmRSS") for p in pids),
                  sum(_kib(p, "smaps_rollup", "Pss") for p in pids))


def _cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# --- the school -------------------------------------------------------------------------------

async def prepare(work: Path, users: int, database_url: str) -> tuple[object, dict[str, str],
                                                                        dict[str, str]]:
    """(settings, login -> password, login -> access token)."""
    from conf import cli
    from conf.app import School
    from conf.settings import render_settings_toml
    from messenger.storage import devices as device_store
    from tests.support.schools import make_settings

    settings = make_settings(work / "school", database_url, domain="schule.test")
    # Thousands of connections from this one address (a school behind one NAT).
    settings = dataclasses.replace(
        settings, imap=dataclasses.replace(settings.imap, max_connections_per_ip=0),
        http=dataclasses.replace(settings.http, max_connections_per_ip=0))
    config = settings.base_dir / "schulhof.toml"
    config.write_text(render_settings_toml(settings), encoding="utf-8")

    pupils, teachers, parents = school_of(users)
    export = work / "export.csv"
    export.write_bytes(to_csv(make_school(pupils, teachers, parents)))
    passwords_file = work / "passwords.csv"
    started = time.perf_counter()
    code = await asyncio.to_thread(cli.main, ["--config", str(config), "import", str(export),
                                              "--passwords-out", str(passwords_file)])
    if code != 0:
        raise SystemExit(f"schulhof import failed ({code})")
    with passwords_file.open(encoding="utf-8", newline="") as f:
        passwords = {row["login"]: row["initial_password"] for row in csv.DictReader(f)}
    print(f"imported {len(passwords)} users in {time.perf_counter() - started:.1f} s")

    tokens: dict[str, str] = {}
    school = await School.open(settings, migrate=False)
    try:
        accounts = {a.login: a.id for a in await school.directory.list_accounts()}
        async with school.db.write() as session:
            for n, login in enumerate(passwords):
                await device_store.ensure_device(session, accounts[login], "MEMBENCH", None)
                token = f"membench_{n}"
                await device_store.add_token(session, accounts[login], "MEMBENCH", token)
                tokens[login] = token
    finally:
        await school.close()
    return settings, passwords, tokens


# --- IMAP ---------------------------------------------------------------------------------------

def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class IdleClient:
    """One IMAPS connection: LOGIN, SELECT INBOX, IDLE; then it only holds the socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int, context: ssl.SSLContext) -> IdleClient:
        reader, writer = await asyncio.open_connection(host, port, ssl=context,
                                                       server_hostname="localhost")
        client = cls(reader, writer)
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            raise RuntimeError(f"IMAP greeting: {greeting!r}")
        return client

    async def _tagged(self, tag: bytes) -> bytes:
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 120)
            if not line:
                raise RuntimeError("IMAP connection closed")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"IMAP: {line!r}")
                return line

    async def login_select_idle(self, login: str, password: str) -> None:
        self.writer.write(f"a LOGIN {_quoted(login)} {_quoted(password)}\r\n".encode())
        await self._tagged(b"a")
        self.writer.write(b"b SELECT INBOX\r\n")
        await self._tagged(b"b")
        self.writer.write(b"c IDLE\r\n")
        line = await asyncio.wait_for(self.reader.readline(), 120)
        if not line.startswith(b"+"):
            raise RuntimeError(f"IDLE: {line!r}")

    def close(self) -> None:
        self.writer.close()


async def open_idle(host: str, port: int, context: ssl.SSLContext,
                    passwords: list[tuple[str, str]]) -> list[IdleClient]:
    clients: list[IdleClient] = []
    for first in range(0, len(passwords), 50):  # a wave: TLS handshakes and argon2 checks
        wave = passwords[first:first + 50]
        opened = await asyncio.gather(*(IdleClient.open(host, port, context) for _ in wave))
        await asyncio.gather(*(c.login_select_idle(login, password)
                               for c, (login, password) in zip(opened, wave, strict=True)))
        clients.extend(opened)
    return clients


# --- Matrix /sync --------------------------------------------------------------------------------

class LongPolls:
    """One held /sync per token; a poll that returns (timeout, new data) is made again."""

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base, self.http = base, http
        self.tasks: list[asyncio.Task[None]] = []
        self.returned = 0
        self.errors = 0

    async def initial(self, token: str) -> str:
        async with self.http.get(f"{self.base}{API}/sync", params={"timeout": "0"},
                                 headers={"Authorization": f"Bearer {token}"}) as r:
            data = await r.json()
            if r.status != 200:
                raise RuntimeError(f"initial sync: {r.status} {data}")
        return str(data["next_batch"])

    async def hold(self, token: str, since: str) -> None:
        while True:
            try:
                async with self.http.get(f"{self.base}{API}/sync", params={
                        "since": since, "timeout": "30000"},
                        headers={"Authorization": f"Bearer {token}"}) as r:
                    data = await r.json()
                since = str(data.get("next_batch", since))
                self.returned += 1
            except (aiohttp.ClientError, TimeoutError):
                self.errors += 1
                await asyncio.sleep(1)


# --- the run --------------------------------------------------------------------------------------

def _raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit < wanted:
        raise SystemExit(f"file descriptor limit {limit} < {wanted} needed (ulimit -n)")
    return limit


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def run(args: argparse.Namespace) -> int:
    from tests.support.databases import PostgresDatabases, SqliteDatabases
    from tests.support.serve_process import ServeProcess

    limit = _raise_fd_limit(args.imap + args.sync + 500)
    print(f"file descriptors: limit {limit}; {_load()}")
    with tempfile.TemporaryDirectory(prefix="schulhof-memory-") as tmp:
        work = Path(tmp)
        factory: SqliteDatabases | PostgresDatabases = (
            await asyncio.to_thread(PostgresDatabases, args.database_url) if args.database_url
            else await asyncio.to_thread(SqliteDatabases, work))
        url = await asyncio.to_thread(factory.fresh, work)
        settings, passwords, tokens = await prepare(work, args.users, url)
        server = ServeProcess.for_settings(settings)  # type: ignore[arg-type]
        if args.workers is not None:
            server.extra_args = ["--workers", str(args.workers)]
        server.startup_seconds = 300.0
        figures: list[tuple[str, Memory]] = []
        try:
            started = time.perf_counter()
            await server.start()
            assert server.proc is not None
            pid = server.proc.pid
            # The first start makes a room per group (classes, teachers, parents) and
            # joins the members: wait for it, the connections come to a school at rest.
            while "event=group_rooms_synced" not in server.log_text():
                if not server.alive():
                    raise SystemExit(f"serve exited:\n{server.log_text()[-3000:]}")
                await asyncio.sleep(1)
            print(f"serve up with its group rooms in {time.perf_counter() - started:.0f} s; "
                  f"server CPU {_cpu_seconds(pid):.0f} s; {_load()}")
            await asyncio.sleep(args.settle)
            figures.append(("started", memory(pid)))
            print(f"serve started: {figures[-1][1].text()}; {_load()}")

            listen = settings.listen  # type: ignore[attr-defined]
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            logins = list(passwords.items())[:args.imap]
            started = time.perf_counter()
            cpu = _cpu_seconds(pid)
            clients = await open_idle(listen.bind, listen.imaps, context, logins)
            await asyncio.sleep(args.settle)
            figures.append((f"{len(clients)} IMAP IDLE", memory(pid)))
            print(f"{len(clients)} IMAP connections in IDLE (TLS, one user each) in "
                  f"{time.perf_counter() - started:.1f} s, server CPU "
                  f"{_cpu_seconds(pid) - cpu:.1f} s: {figures[-1][1].text()}; {_load()}")

            base = f"http://{listen.bind}:{listen.matrix}"
            connector = aiohttp.TCPConnector(limit=0, force_close=False)
            async with aiohttp.ClientSession(
                    connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as http:
                polls = LongPolls(base, http)
                chosen = list(tokens.values())[:args.sync]
                started = time.perf_counter()
                cpu = _cpu_seconds(pid)
                since: list[str] = []
                for first in range(0, len(chosen), 100):
                    since += await asyncio.gather(*(polls.initial(t)
                                                    for t in chosen[first:first + 100]))
                polls.tasks = [asyncio.create_task(polls.hold(t, s))
                               for t, s in zip(chosen, since, strict=True)]
                await asyncio.sleep(args.settle)
                figures.append((f"+ {len(chosen)} /sync long-polls", memory(pid)))
                print(f"{len(chosen)} /sync long-polls held (initial syncs in "
                      f"{time.perf_counter() - started:.1f} s, server CPU "
                      f"{_cpu_seconds(pid) - cpu:.1f} s): {figures[-1][1].text()}; "
                      f"{_load()}")
                await asyncio.sleep(args.hold)
                figures.append(("after holding", memory(pid)))
                print(f"after {args.hold:.0f} s more: {figures[-1][1].text()}; "
                      f"{polls.returned} polls returned, {polls.errors} errors; {_load()}")
                for task in polls.tasks:
                    task.cancel()
                await asyncio.gather(*polls.tasks, return_exceptions=True)
            for client in clients:
                client.close()
        finally:
            await server.stop()
            await asyncio.to_thread(factory.close)
    base_memory = figures[0][1]
    final = max(m.rss_kib for _, m in figures[1:]) if len(figures) > 1 else 0
    imap_memory = figures[1][1] if len(figures) > 1 else base_memory
    if len(figures) > 2:
        sync_memory = figures[2][1]
        per_idle = (imap_memory.rss_kib - base_memory.rss_kib) / max(1, args.imap)
        per_poll = (sync_memory.rss_kib - imap_memory.rss_kib) / max(1, args.sync)
        print(f"per IMAP IDLE connection {per_idle:.1f} KiB, per /sync long-poll "
              f"{per_poll:.1f} KiB (RSS growth of all serve processes)")
    print(f"school of {args.users} users, {args.imap} IDLE + {args.sync} long-polls: "
          f"{final / 1024:.1f} MiB RSS at most, target < {TARGET_MIB:.0f} MiB: "
          + ("met" if final / 1024 < TARGET_MIB else "MISSED"))
    return 0 if final / 1024 < TARGET_MIB else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--imap", type=int, default=2000)
    parser.add_argument("--sync", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=None,
                        help="passed to serve --workers (default: serve's own default)")
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL admin URL; a fresh database is made and dropped")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds to wait before each reading")
    parser.add_argument("--hold", type=float, default=40.0,
                        help="seconds the long-polls are held (some return and poll again)")
    args = parser.parse_args(argv)
    if args.imap > args.users or args.sync > args.users:
        parser.error("--imap and --sync are at most --users (one connection per user)")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
