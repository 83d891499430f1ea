"""Benchmark: a desktop-client-like IMAP mix on Schulhof and on Dovecot, in one run.

    python -m tests.bench.imap_mixed [--clients 20] [--seconds 30] [--messages 200]
        [--commands-per-session 0] [--verify-every-login] [--no-dovecot]
        [--database-url URL] [--workers N]
        [--profile DIR]

1. A generated mbox of ``--messages`` real MIME messages, 2-200 KB (text,
   text+HTML alternative, PDF / image / document attachments in base64),
   from a fixed random seed.
2. Schulhof (the real ``schulhof --config FILE serve`` process, IMAPS only,
   on a fresh SQLite file or PostgreSQL database) and,
   unless ``--no-dovecot``, a throwaway Dovecot (``tests.bench.dovecot``:
   Debian's dovecot-imapd, maildir in a temp folder, IMAPS with the same test
   certificate): ``--clients`` accounts on each, every INBOX filled with the
   mbox (Schulhof through the store's row API, Dovecot as maildir files).
3. ``--clients`` clients, each logged in to its own account on a persistent
   TLS session (``--commands-per-session N``: log out and in again every N
   commands; a login repeated within ``auth.verified_login_seconds`` skips
   argon2id, ``--verify-every-login`` turns that off: Dovecot here keeps
   ``{PLAIN}`` passwords and verifies nothing costly), run a weighted mix
   for ``--seconds``: LIST, STATUS, SELECT,
   FETCH of all flags, of envelopes, of whole bodies, of BODYSTRUCTURE plus
   the first part, STORE, EXPUNGE (after a STORE \\Deleted) and APPEND of a
   message from the mbox.
4. Per server: commands/s overall and per command type with p50/p99, and the
   server's CPU seconds per command (its process tree: utime + stime); then
   the ratio Schulhof / Dovecot of commands/s and of CPU per command.

``--workers N`` (PostgreSQL only) runs ``serve --workers N``: N processes
sharing the IMAPS port (SO_REUSEPORT); server CPU is then the whole process
tree's (supervisor and workers), as for Dovecot.

``--profile DIR`` records the Schulhof server with py-spy (in the ``test``
extra) into DIR/schulhof.txt (collapsed stacks, for flamegraph tools) and
prints the functions with the most samples, own and cumulative (with
``--workers``, all worker processes together).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import os
import random
import re
import ssl
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from conf.settings import Settings

PASSWORD = "Geheim-Passwort-123"

# (command type, weight): roughly what a desktop client sends on a busy day.
MIX: tuple[tuple[str, int], ...] = (
    ("LIST", 4), ("STATUS", 6), ("SELECT", 6), ("FETCH_FLAGS", 14),
    ("FETCH_ENVELOPE", 16), ("FETCH_BODY", 14), ("FETCH_STRUCTURE", 10),
    ("STORE", 18), ("EXPUNGE", 4), ("APPEND", 4), ("NOOP", 4),
)

_WORDS = ("Schule", "Klasse", "Hausaufgabe", "Elternabend", "Ausflug", "Mathematik", "Deutsch",
          "Englisch", "Termin", "bitte", "morgen", "heute", "Grüße", "Lehrerin", "Stundenplan",
          "Vertretung", "Zeugnis", "Projekt", "Arbeitsblatt", "Seite", "lesen", "rechnen",
          "schreiben", "Sportfest", "Bücherei", "Mensa")


def generate_messages(count: int, seed: int = 14) -> list[bytes]:
    """``count`` MIME messages of 2-200 KB (log-uniform), deterministic."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        target = int(2000 * (100 ** rng.random()))  # 2 KB .. 200 KB
        message = EmailMessage(policy=SMTP)
        message["From"] = f'"Lehrkraft {n % 17}" <lehrer{n % 17}@schule.test>'
        message["To"] = f"klasse{n % 9}@schule.test"
        if n % 4 == 0:
            message["Cc"] = "Eltern: mama@example.net, papa@example.net;"
        message["Subject"] = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} Nr. {n}"
        message["Date"] = f"Mon, {1 + n % 28} Jan 2026 {8 + n % 10:02d}:{n % 60:02d}:00 +0100"
        message["Message-ID"] = f"<bench{n}.{seed}@schule.test>"
        text_size = min(target, rng.randint(300, 6000))
        text = " ".join(rng.choice(_WORDS) for _ in range(text_size // 8)) + "\n"
        message.set_content(text)
        if n % 3 == 0:
            message.add_alternative(f"<html><body><p>{text}</p></body></html>", subtype="html")
        remaining = target - text_size
        kinds = (("application", "pdf", "blatt.pdf"), ("image", "png", "bild.png"),
                 ("application", "vnd.oasis.opendocument.text", "aufgabe.odt"))
        while remaining > 1000:
            size = min(remaining, rng.randint(1000, 120_000))
            maintype, subtype, name = kinds[rng.randrange(len(kinds))]
            message.add_attachment(rng.randbytes(size * 3 // 4), maintype=maintype,
                                   subtype=subtype, filename=name)
            remaining -= size
        out.append(message.as_bytes())
    return out


# --- servers ------------------------------------------------------------------

async def _fill_schulhof(settings: Settings, logins: list[str], messages: list[bytes]) -> None:
    """Accounts and full INBOXes through the store's row API (as delivery
    and APPEND store them; one blob per distinct message)."""
    import datetime as dt

    from conf.app import School
    from mailserver.store import messages as store_messages
    from mailserver.store import queries
    from tests.mailserver.imap.session.helpers import make_account

    school = await School.open(settings, migrate=False)
    store = school.mail_store
    try:
        ids = [hashlib.sha256(m).hexdigest() for m in messages]
        async with store.db.write() as session:
            for blob_id, body in zip(ids, messages, strict=True):
                await queries.put_blob(session, blob_id, body)
        for login in logins:
            account_id = await make_account(school, login)
            box = (await store.mailbox_status(account_id, "INBOX")).mailbox
            async with store.db.write() as session:
                rows = [{"blob_id": blob_id, "size": len(body),
                         "internal_date": dt.datetime.now(dt.UTC),
                         "system_flags": 1 if n % 3 else 0, "keywords": ""}
                        for n, (blob_id, body) in enumerate(zip(ids, messages, strict=True))]
                await store_messages.insert_messages(session, box.id, account_id, rows)
    finally:
        await school.close()


def _cpu_of_process(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the client -----------------------------------------------------------------

_LITERAL = re.compile(rb"\{(\d+)\}$")


class MixClient:
    """A lean IMAP client: reads replies in bulk, skips literals, and keeps
    only what the mix needs (EXISTS / EXPUNGE counts)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = bytearray()
        self.pos = 0
        self.counter = 0
        self.exists = 0

    @classmethod
    async def connect(cls, port: int, tls: ssl.SSLContext, login: str) -> MixClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls,
                                                       limit=1 << 22)
        client = cls(reader, writer)
        await client.read_line()  # greeting
        status, text = await client.command(f'LOGIN "{login}" "{PASSWORD}"')
        if status != "OK":
            raise RuntimeError(f"login {login}: {status} {text}")
        return client

    async def _fill(self) -> None:
        data = await asyncio.wait_for(self.reader.read(1 << 17), 120)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    async def read_line(self) -> bytes:
        if self.pos > 1 << 17:
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
                return bytes(self.buf[start:min(end, start + 120)])
            scan = end + 2 + int(literal.group(1))
            while len(self.buf) < scan:
                await self._fill()

    async def command(self, text: str, literal: bytes | None = None) -> tuple[str, str]:
        self.counter += 1
        tag = b"m%d" % self.counter
        if literal is None:
            self.writer.write(tag + b" " + text.encode() + b"\r\n")
        else:  # LITERAL+ (RFC 7888): both servers offer it
            self.writer.write(tag + b" " + text.encode() + b" {%d+}\r\n" % len(literal)
                              + literal + b"\r\n")
        await self.writer.drain()
        prefix = tag + b" "
        while True:
            line = await self.read_line()
            if line.startswith(prefix):
                status, _, rest = line[len(prefix):].decode().partition(" ")
                return status, rest
            if line.endswith(b" EXISTS"):
                self.exists = int(line.split(b" ")[1])
            elif line.endswith(b" EXPUNGE"):
                self.exists -= 1

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.command("LOGOUT"), 5)
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))


async def _one(c: MixClient, kind: str, rng: random.Random, messages: list[bytes]) -> str:
    n = rng.randint(1, max(c.exists, 1))
    if kind == "LIST":
        return (await c.command('LIST "" "*"'))[0]
    if kind == "STATUS":
        return (await c.command("STATUS INBOX (MESSAGES UNSEEN UIDNEXT)"))[0]
    if kind == "SELECT":
        return (await c.command("SELECT INBOX"))[0]
    if kind == "NOOP":
        return (await c.command("NOOP"))[0]
    if kind == "APPEND":
        return (await c.command("APPEND INBOX (\\Seen)", rng.choice(messages)))[0]
    if c.exists == 0:
        return (await c.command("NOOP"))[0]
    if kind == "FETCH_FLAGS":
        return (await c.command("FETCH 1:* (UID FLAGS)"))[0]
    if kind == "FETCH_ENVELOPE":
        last = min(c.exists, n + 24)
        return (await c.command(f"FETCH {n}:{last} (UID RFC822.SIZE FLAGS INTERNALDATE "
                                "ENVELOPE)"))[0]
    if kind == "FETCH_BODY":
        return (await c.command(f"FETCH {n} (UID BODY.PEEK[])"))[0]
    if kind == "FETCH_STRUCTURE":
        return (await c.command(f"FETCH {n} (UID BODYSTRUCTURE BODY.PEEK[1])"))[0]
    if kind == "STORE":
        flag = rng.choice(("\\Seen", "\\Flagged", "$Hausaufgabe"))
        return (await c.command(f"STORE {n} {rng.choice('+-')}FLAGS.SILENT ({flag})"))[0]
    if kind == "EXPUNGE":
        if c.exists < len(messages) // 2:
            return (await c.command("NOOP"))[0]  # keep the mailbox from emptying
        await c.command(f"STORE {n} +FLAGS.SILENT (\\Deleted)")
        return (await c.command("EXPUNGE"))[0]
    raise ValueError(kind)


async def _client_loop(port: int, tls: ssl.SSLContext, login: str, until: float,
                       messages: list[bytes], per_session: int, seed: int,
                       results: Results, first: MixClient) -> None:
    rng = random.Random(seed)
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    c = first
    await c.command("SELECT INBOX")
    done = 0
    while time.perf_counter() < until:
        if per_session and done and done % per_session == 0:
            await c.close()
            started = time.perf_counter()
            c = await MixClient.connect(port, tls, login)
            await c.command("SELECT INBOX")
            results.latencies["LOGIN+SELECT"].append(time.perf_counter() - started)
        kind = rng.choice(kinds)
        started = time.perf_counter()
        status = await _one(c, kind, rng, messages)
        results.latencies[kind].append(time.perf_counter() - started)
        if status != "OK":
            results.failures[kind] += 1
        done += 1
    await c.close()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


@dataclass
class Measured:
    name: str
    commands: int
    seconds: float
    cpu: float
    results: Results

    @property
    def rate(self) -> float:
        return self.commands / self.seconds

    @property
    def cpu_per_command_ms(self) -> float:
        return 1000 * self.cpu / max(self.commands, 1)


async def run_mix(name: str, port: int, tls: ssl.SSLContext, logins: list[str],
                  messages: list[bytes], seconds: float, per_session: int,
                  cpu: Callable[[], float]) -> Measured:
    """Log every client in (not timed), then run the mix for ``seconds``."""
    clients = []
    for first in range(0, len(logins), 10):
        clients += await asyncio.gather(*(MixClient.connect(port, tls, login)
                                          for login in logins[first:first + 10]))
    results = Results()
    cpu_before = cpu()
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(_client_loop(port, tls, login, until, messages, per_session,
                                        1000 + i, results, client)
                           for i, (login, client) in enumerate(zip(logins, clients,
                                                                   strict=True))))
    elapsed = time.perf_counter() - started
    used = cpu() - cpu_before
    total = sum(len(v) for k, v in results.latencies.items() if k != "LOGIN+SELECT")
    measured = Measured(name, total, elapsed, used, results)
    _report(measured)
    return measured


def _report(m: Measured) -> None:
    everything = [v for k, values in m.results.latencies.items() for v in values
                  if k != "LOGIN+SELECT"]
    print(f"\n{m.name}: {m.commands} commands in {m.seconds:.1f} s = {m.rate:.0f} commands/s, "
          f"p50 {_percentile(everything, 0.5) * 1000:.1f} ms, "
          f"p99 {_percentile(everything, 0.99) * 1000:.1f} ms, server CPU "
          f"{m.cpu:.1f} s = {m.cpu_per_command_ms:.2f} ms/command")
    for kind, values in sorted(m.results.latencies.items()):
        failed = m.results.failures.get(kind, 0)
        print(f"  {kind:16s} n={len(values):6d} {len(values) / m.seconds:8.1f}/s  "
              f"p50 {_percentile(values, 0.5) * 1000:7.1f} ms  "
              f"p99 {_percentile(values, 0.99) * 1000:7.1f} ms"
              + (f"  failed {failed}" if failed else ""))


def summarise_profile(path: Path, top: int = 25) -> None:
    """The functions with most py-spy samples in a collapsed-stack file:
    own (the innermost frame) and cumulative (anywhere on the stack)."""
    if not path.exists():
        print(f"no profile at {path}")
        return
    own: dict[str, int] = defaultdict(int)
    cumulative: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [re.sub(r" \(.*/(?=[^/]+\.py)", " (", frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            cumulative[frame] += samples
    print(f"\nprofile: {total} samples (py-spy, Schulhof server process)")
    for title, table in (("own", own), ("cumulative", cumulative)):
        print(f"  top {title}:")
        for frame, samples in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {100 * samples / max(total, 1):5.1f}%  {frame[:110]}")


def _client_tls(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.path(settings.tls.certificate)))
    context.check_hostname = False
    return context


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--commands-per-session", type=int, default=0)
    parser.add_argument("--verify-every-login", action="store_true",
                        help="auth.verified_login_seconds = 0: argon2id on every login "
                             "(the benchmark's Dovecot stores {PLAIN} passwords)")
    parser.add_argument("--no-dovecot", action="store_true")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--database-url", default=os.environ.get("SCHULHOF_TEST_DATABASE_URL",
                                                                 ""))
    parser.add_argument("--workers", type=int, default=0,
                        help="serve --workers N (PostgreSQL only); 0 = one process")
    args = parser.parse_args(argv)
    if args.workers and not args.database_url:
        parser.error("--workers needs --database-url (several workers need PostgreSQL)")
    from tests.bench.dovecot import maildir_put, process_tree_cpu, throwaway_dovecot
    from tests.mailserver.imap.session.helpers import imap_settings
    from tests.support.databases import PostgresDatabases, SqliteDatabases
    from tests.support.schools import free_port
    from tests.support.serve_process import ServeProcess

    messages = generate_messages(args.messages)
    sizes = sorted(len(m) for m in messages)
    sessions = ("persistent sessions" if not args.commands_per_session
                else f"a login every {args.commands_per_session} commands")
    print(f"{len(messages)} messages, {sizes[0] // 1024}-{sizes[-1] // 1024} KB, "
          f"median {sizes[len(sizes) // 2] // 1024} KB; {args.clients} clients, {sessions}")
    logins = [f"bench{n}" for n in range(args.clients)]
    measured: dict[str, Measured] = {}
    with tempfile.TemporaryDirectory() as work:
        base = Path(work)
        databases = (PostgresDatabases(args.database_url) if args.database_url
                     else SqliteDatabases(base))
        url = databases.fresh(base)
        settings = imap_settings(base / "school", url, idle_timeout_seconds=600.0,
                                 max_connections_per_ip=0, max_literal_size=50_000_000)
        # The real server: ``schulhof --config FILE serve`` in its own process,
        # IMAPS on a free port, every other listener off.
        # Metrics off: with --workers, worker I would take metrics.port + I, which
        # a free port does not promise to be.
        settings = dataclasses.replace(settings, listen=dataclasses.replace(
            settings.listen, imap=-1, imaps=free_port()),
            metrics=dataclasses.replace(settings.metrics, port=-1))
        if args.verify_every_login:
            settings = dataclasses.replace(settings, auth=dataclasses.replace(
                settings.auth, verified_login_seconds=0.0))
        asyncio.run(_fill_schulhof(settings, logins, messages))
        server = ServeProcess.for_settings(settings)
        server.startup_seconds, server.stop_seconds = 300.0, 90.0  # a loaded machine
        if args.workers:
            server.extra_args = ["--workers", str(args.workers)]
        profiler = None
        try:
            asyncio.run(server.start())
            assert server.proc is not None
            pid = server.proc.pid
            port = settings.listen.imaps
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                # --gil: only the thread running Python counts (CPU, not waits).
                profiler = subprocess.Popen(
                    [str(Path(sys.executable).with_name("py-spy")), "record", "--gil",
                     *(["--subprocesses"] if args.workers else []),
                     "--pid", str(pid), "--rate", "200",
                     "--duration", str(int(args.seconds) + 5), "--format", "raw",
                     "--output", str(args.profile / "schulhof.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            backend = "postgresql" if args.database_url else "sqlite"
            if args.workers:
                backend += f", {args.workers} workers"
            measured["schulhof"] = asyncio.run(run_mix(
                f"Schulhof ({backend}, TLS)", port,
                _client_tls(settings), logins, messages, args.seconds,
                args.commands_per_session,
                (lambda: process_tree_cpu(pid)) if args.workers
                else (lambda: _cpu_of_process(pid))))
        finally:
            if profiler is not None:
                profiler.wait(60)
            asyncio.run(server.stop())
            bad = server.new_bad_log_lines()
            if bad:
                print(f"schulhof logged {len(bad)} error(s); first:\n{bad[0]}", file=sys.stderr)
            databases.drop(url)
            databases.close()
        if not args.no_dovecot:
            with throwaway_dovecot(base / "dovecot", dict.fromkeys(logins, PASSWORD),
                                   settings.path(settings.tls.certificate),
                                   settings.path(settings.tls.key)) as dovecot:
                for login in logins:
                    maildir_put(dovecot.base, login, messages)
                measured["dovecot"] = asyncio.run(run_mix(
                    "Dovecot 2.3 (maildir, TLS)", dovecot.port, _client_tls(settings), logins,
                    messages, args.seconds, args.commands_per_session,
                    lambda: process_tree_cpu(dovecot.pid)))
    if args.profile is not None:
        summarise_profile(args.profile / "schulhof.txt")
    if "dovecot" in measured:
        ours, theirs = measured["schulhof"], measured["dovecot"]
        cpu_ratio = ours.cpu_per_command_ms / max(theirs.cpu_per_command_ms, 1e-9)
        print(f"\nratio Schulhof / Dovecot: commands/s {ours.rate / theirs.rate:.2f}x, "
              f"server CPU per command {cpu_ratio:.1f}x")


if __name__ == "__main__":
    main()
