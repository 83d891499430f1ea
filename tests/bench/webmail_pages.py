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
import os
import pickle
import random
import re
import statistics
import subprocess
import sys
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
                                 submission=-1, submissions=-1, matrix=-1, managesieve=-1,
                                 federation=-1)
    return dataclasses.replace(settings, listen=listen,
                               metrics=dataclasses.replace(settings.metrics, port=-1))


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


# The school's webmail in its own process, running the code of a directory
# (this checkout, or an older one for --compare): settings come pickled in a file,
# the base URL goes out on stdout, and the server ends when its stdin closes.
SERVE = """
import asyncio, pickle, sys
with open(sys.argv[1], "rb") as f:
    settings = pickle.load(f)
from conf.app import School

async def main():
    school = await School.open(settings, migrate=False)
    try:
        await school.start()
        (server,) = [s for s in school.services if type(s).__name__ == "WebmailServer"]
        print(server.base_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await school.close()
asyncio.run(main())
"""


@dataclasses.dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    address: str

    @classmethod
    def start(cls, name: str, code: Path, settings: Settings, work: Path) -> Server:
        pickled = work / f"settings-{name}.pickle"
        pickled.write_bytes(pickle.dumps(settings))
        env = {**os.environ, "PYTHONPATH": str(code)}
        process = subprocess.Popen([sys.executable, "-c", SERVE, str(pickled)], cwd=code,
                                   env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True)
        assert process.stdout is not None
        address = process.stdout.readline().strip()
        if not address.startswith("https://"):
            process.kill()
            raise RuntimeError(f"the {name} server did not start")
        return cls(name, process, address)

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


_TIMING = re.compile(r"app;dur=([0-9.]+)")
_PART = re.compile(r"([a-z]+);dur=([0-9.]+)")
Samples = dict[str, list[tuple[float, float]]]
# Server-Timing parts of each request (ms by name), per kind, beside Samples.
Parts = dict[str, list[dict[str, float]]]
# Where the time of a page goes (the webmail's Server-Timing parts): the
# handler's phases, and inside them the database pool and statements.
PHASES = ("auth", "folders", "page", "render")


async def log_in(session: Any, base: str) -> None:
    async with session.get(f"{base}/login") as response:
        token = re.search(r'name="csrf" value="([^"]+)"', await response.text())
    assert token
    async with session.post(f"{base}/login", allow_redirects=False, data={
            "csrf": token.group(1), "login": LOGIN, "password": PASSWORD}) as response:
        assert response.status == 303, response.status


async def timed(session: Any, url: str, params: dict[str, str], into: Samples,
                kind: str, parts: Parts | None = None) -> None:
    """One GET; (server time from Server-Timing, wall time at the client) in ms,
    and the Server-Timing parts into ``parts``."""
    started = time.perf_counter()
    async with session.get(url, params=params) as response:
        await response.read()
        assert response.status == 200, (response.status, url, params)
        header = response.headers.get("Server-Timing", "")
        server = _TIMING.search(header)
    wall = (time.perf_counter() - started) * 1000
    into.setdefault(kind, []).append((float(server.group(1)) if server else wall, wall))
    if parts is not None:
        parts.setdefault(kind, []).append({name: float(ms) for name, ms in
                                           _PART.findall(header)})


def breakdown(parts: list[dict[str, float]]) -> str:
    """Median of each part over all requests, and mean over the slowest 2 %:
    where a page's time goes, and where the tail's goes."""
    def split(sample: dict[str, float]) -> dict[str, float]:
        out = {name: sample.get(name, 0.0) for name in ("app", *PHASES, "pool", "sql")}
        out["other"] = out["app"] - sum(out[name] for name in PHASES)
        return out
    rows = sorted((split(p) for p in parts), key=lambda row: row["app"])
    tail = rows[-max(1, len(rows) // 50):]
    names = list(rows[0])
    median = " ".join(f"{n} {statistics.median(r[n] for r in rows):.1f}" for n in names)
    slow = " ".join(f"{n} {statistics.mean(r[n] for r in tail):.1f}" for n in names)
    return f"median: {median}\n    slowest 2 % ({len(tail)}): {slow}"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def database_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the bench database
    (its connections' processes, from /proc: same machine); {} on SQLite (the
    statements run in the server process and count there)."""
    if not url.startswith("postgresql"):
        return {}
    import asyncpg

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        pids = [row[0] for row in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")]
    finally:
        await conn.close()
    out = {}
    for backend in pids:
        try:
            out[backend] = cpu_seconds(backend)
        except OSError:  # ended meanwhile
            pass
    return out


def database_cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """Backend CPU between two samples (backends that ended in between are lost:
    a lower bound)."""
    return sum(cpu - before.get(backend, 0.0) for backend, cpu in after.items())


async def one_at_a_time(base: str, pid: int, count: int = 100) -> None:
    """One user, one request at a time: server time and CPU of each kind alone."""
    import ssl

    import aiohttp

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    rng = random.Random(7)
    # No time limit: on a loaded machine the first search (the index of 50,000
    # mails) takes longer than aiohttp's default five minutes.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        await log_in(session, base)
        warm: Samples = {}
        await timed(session, f"{base}/search", {"box": "INBOX", "q": "wandertag"}, warm, "first")
        print(f"first search (the index of the mailbox is built): "
              f"{warm['first'][0][0] / 1000:.1f} s server time", flush=True)
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
                  f"p99 {_p99(server):.1f} ms; {cpu:.1f} ms CPU per request", flush=True)


@dataclasses.dataclass
class Result:
    """What one or more timed windows of one server measured."""

    seconds: float = 0.0
    samples: Samples = dataclasses.field(default_factory=dict)
    parts: Parts = dataclasses.field(default_factory=dict)
    cpu: float = 0.0
    database_cpu: float = 0.0

    def add(self, other: Result) -> None:
        self.seconds += other.seconds
        for kind, values in other.samples.items():
            self.samples.setdefault(kind, []).extend(values)
        for kind, parts in other.parts.items():
            self.parts.setdefault(kind, []).extend(parts)
        self.cpu += other.cpu
        self.database_cpu += other.database_cpu


async def run(base: str, users: int, seconds: float, messages: int, think: float,
              pid: int, database_url: str) -> Result:
    import ssl

    import aiohttp

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the bench school's self-signed certificate
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context),
                                      cookie_jar=aiohttp.CookieJar(unsafe=True))
                for _ in range(users)]
    result = Result(seconds=seconds)
    try:
        for session in sessions:
            await log_in(session, base)
        deadline = time.perf_counter() + seconds
        pages = max(1, messages // 50)
        cpu_before = cpu_seconds(pid)
        database_before = await database_cpu(database_url)

        async def user(session: Any, rng: random.Random) -> None:
            while time.perf_counter() < deadline:
                await timed(session, f"{base}/mail",
                            {"box": "INBOX", "page": str(rng.randint(1, pages))},
                            result.samples, "folder", result.parts)
                await asyncio.sleep(rng.uniform(0, 2 * think))
                await timed(session, f"{base}/search", {"box": "INBOX", **searches(rng)},
                            result.samples, "search", result.parts)
                await asyncio.sleep(rng.uniform(0, 2 * think))
        await asyncio.gather(*(user(s, random.Random(i)) for i, s in enumerate(sessions)))
        result.cpu = cpu_seconds(pid) - cpu_before
        result.database_cpu = database_cpu_spent(database_before,
                                                 await database_cpu(database_url))
    finally:
        for session in sessions:
            await session.close()
    return result


def report(result: Result, think: float, database: bool) -> None:
    seconds = result.seconds
    for kind, samples in result.samples.items():
        server = sorted(s for s, _ in samples)
        wall = sorted(w for _, w in samples)
        print(f"think {think:.1f} s, {kind:6}: {len(samples)} requests, "
              f"{len(samples) / seconds:.0f}/s; server "
              f"p50 {statistics.median(server):.1f} ms, p99 {_p99(server):.1f} ms; "
              f"at the client p50 {statistics.median(wall):.1f} ms, p99 {_p99(wall):.1f} ms")
        if any(len(parts) > 1 for parts in result.parts[kind]):  # code with the parts
            print(f"  ms {breakdown(result.parts[kind])}")
    done = sum(len(samples) for samples in result.samples.values())
    cpu, database_cpu = result.cpu, result.database_cpu
    print(f"server CPU: {cpu * 1000 / max(done, 1):.1f} ms per request "
          f"(folder and search mixed; {cpu / seconds * 100:.0f} % of one core)"
          + (f"; PostgreSQL backends at least {database_cpu * 1000 / max(done, 1):.1f} ms per "
             f"request ({database_cpu / seconds * 100:.0f} % of one core)" if database else ""))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


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
    parser.add_argument("--compare", type=Path, default=None, metavar="DIR",
                        help="a checkout of other code (e.g. `git worktree add DIR main`): "
                             "both servers on the same database, timed windows alternating "
                             "(A B B A ...), so the machine's load hits both alike")
    parser.add_argument("--rounds", type=int, default=2,
                        help="with --compare: pairs of windows per server")
    args = parser.parse_args()
    from tests.support.databases import PostgresDatabases, SqliteDatabases

    here = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as work:
        base = Path(work)
        databases = (PostgresDatabases(args.database_url) if args.database_url
                     else SqliteDatabases(base))
        url = databases.fresh(base)
        settings = bench_settings(base / "school", url)
        asyncio.run(fill(settings, args.messages))
        codes = [("this", here)] + ([("compared", args.compare.resolve())] if args.compare
                                    else [])
        servers: list[Server] = []
        database = url if args.database_url else ""
        try:
            for name, code in codes:
                servers.append(Server.start(name, code, settings, base))
                server = servers[-1]
                print(f"{name} code ({code}): webmail at {server.address}, {args.users} users, "
                      f"{args.seconds:.0f} s, {'PostgreSQL' if database else 'SQLite'}, "
                      f"server pid {server.process.pid}", flush=True)
                asyncio.run(one_at_a_time(server.address, server.process.pid))
            for think in ([args.think, 0.0] if args.think else [0.0]):
                results = {server.name: Result() for server in servers}
                order = servers if len(servers) == 1 else [
                    s for r in range(args.rounds)
                    for s in (servers if r % 2 == 0 else servers[::-1])]
                for server in order:
                    results[server.name].add(asyncio.run(run(
                        server.address, args.users, args.seconds, args.messages, think,
                        server.process.pid, database)))
                for server in servers:
                    print(f"== {server.name} code, think {think:.1f} s "
                          f"({results[server.name].seconds:.0f} s timed):")
                    report(results[server.name], think, bool(database))
        finally:
            for server in servers:
                server.stop()
            databases.drop(url)
            databases.close()


if __name__ == "__main__":
    main()
