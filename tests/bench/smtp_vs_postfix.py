"""Benchmark: ``schulhof serve`` against Postfix + Dovecot under Postfix's own load
generator, side by side in one run (issue 15).

    python -m tests.bench.smtp_vs_postfix [--rounds 3] [--messages 2000] [--sessions 10]
        [--size 10240] [--workers N] [--database-url postgresql+asyncpg://...]

Starts, under a temporary folder:

* the peer: a throwaway Postfix (tests.bench.postfix) on a spare loopback
  port, ``virtual_mailbox_domains`` = the test domain, delivering over LMTP
  into a throwaway Dovecot (tests.bench.dovecot) maildir, ``mail_fsync =
  optimized``;
* Schulhof: the real ``schulhof --config FILE serve`` process (every service
  it runs beside SMTP; ``--workers N`` passed on), SQLite in the folder or a
  fresh PostgreSQL database made from the admin URL ``--database-url``.  Its
  DNS (SPF/DMARC of the sender's domain) is an empty test zone in this
  process, as a resolver is another process in production.

Then runs ``smtp-source -s SESSIONS -m MESSAGES -l SIZE`` (Debian ``postfix``)
against each in alternation, ``--rounds`` times, for both workloads: one
message per connection (smtp-source's default) and persistent connections
(``-d``).  A message counts only when it is durably delivered: for the peer
when Dovecot has written (fsynced and renamed) its maildir file, for Schulhof
when its row is committed (Schulhof answers 250 only after that).  The clock
runs from the start of smtp-source until the last message counted.

Prints messages/s per round, the median per server and workload, the ratio
Schulhof / peer, each side's CPU seconds per message and the machine's load
average (the machine is shared: only the ratio of one run means something).
Needs root (Postfix's master starts its daemons as ``postfix``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.bench.dovecot import process_tree_cpu, throwaway_dovecot
from tests.bench.postfix import SMTP_SOURCE, throwaway_postfix

if TYPE_CHECKING:
    from conf.settings import Settings
    from tests.support.serve_process import ServeProcess

DOMAIN = "schule.test"
RECIPIENT = "bench0"
SENDER = "sender@outside.example"
PASSWORD = "Bench-Lehrkraft-1"
WORKLOADS = {"one per connection": [], "persistent (-d)": ["-d"]}


@dataclass
class Target:
    """One server under test: where smtp-source connects, how delivered mail is counted."""

    name: str
    port: int
    delivered: Callable[[], int]
    pid: Callable[[], list[int]]


def smtp_source(port: int, args: argparse.Namespace, extra: list[str]) -> float:
    """Run smtp-source once; its wall time (it exits after the last 250)."""
    command = [SMTP_SOURCE, "-s", str(args.sessions), "-m", str(args.messages),
               "-l", str(args.size), "-f", SENDER, "-t", f"{RECIPIENT}@{DOMAIN}",
               "-M", "client.bench.invalid", *extra, f"127.0.0.1:{port}"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - started


def measure(target: Target, args: argparse.Namespace, extra: list[str]) -> tuple[float, float]:
    """messages/s durably delivered, and the server's CPU seconds per message."""
    before = target.delivered()
    cpu_before = sum(process_tree_cpu(pid) for pid in target.pid())
    started = time.perf_counter()
    smtp_source(target.port, args, extra)
    deadline = time.perf_counter() + 120
    while target.delivered() < before + args.messages:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{target.name}: only {target.delivered() - before} of "
                               f"{args.messages} delivered after 120 s")
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    cpu = sum(process_tree_cpu(pid) for pid in target.pid()) - cpu_before
    return args.messages / elapsed, cpu / args.messages


def maildir_count(home: Path) -> Callable[[], int]:
    def count() -> int:
        total = 0
        for sub in ("new", "cur"):
            try:
                total += len(os.listdir(home / "Maildir" / sub))
            except FileNotFoundError:
                pass
        return total
    return count


def schulhof_target(settings: Settings, database_url: str, serve: ServeProcess) -> Target:
    """Counts committed message rows (the store answers 250 only after the commit)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        import sqlite3

        def count() -> int:
            with contextlib.closing(sqlite3.connect(str(url.database), timeout=30)) as conn:
                return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    else:
        async def count_async() -> int:
            import asyncpg

            conn = await asyncpg.connect(host=url.host, port=url.port or 5432,
                                         user=url.username, password=url.password,
                                         database=url.database)
            try:
                return int(await conn.fetchval("SELECT count(*) FROM messages"))
            finally:
                await conn.close()

        def count() -> int:
            return asyncio.run(count_async())

    def pids() -> list[int]:
        return [serve.proc.pid] if serve.proc is not None else []

    return Target("schulhof", settings.listen.smtp, count, pids)


def run(args: argparse.Namespace) -> int:
    from conf.settings import MetricsSettings
    from directory.model import Role
    from tests.support.schools import make_settings
    from tests.support.serve_process import ServeProcess, create_accounts

    work = Path(tempfile.mkdtemp(prefix="smtp-vs-postfix-"))
    work.chmod(0o755)
    databases = None
    if args.database_url:
        from tests.support.databases import PostgresDatabases

        databases = PostgresDatabases(args.database_url)
        database_url = databases.fresh(work)
    else:
        database_url = f"sqlite+aiosqlite:///{work / 'school' / 'schulhof.db'}"
    try:
        settings = make_settings(work / "school", database_url, domain=DOMAIN,
                                 metrics=MetricsSettings(port=0))  # a free port per worker
        # Production's DNS answer cache (the test default turns it off).
        settings = dataclasses.replace(settings, federation=dataclasses.replace(
            settings.federation, dns_cache=True))
        if not args.database_url:
            from tests.support.databases import _migrate

            asyncio.run(_migrate(database_url))
        asyncio.run(create_accounts(settings, {RECIPIENT: (Role.TEACHER, PASSWORD)}))
        serve = ServeProcess.for_settings(settings)
        serve.extra_args = ["--workers", str(args.workers)] if args.workers else []
        serve.startup_seconds, serve.stop_seconds = 300.0, 90.0  # a loaded machine
        asyncio.run(serve.start())
        lmtp = work / "dovecot" / "lmtp.sock"
        dovecot_ctx = throwaway_dovecot(work / "dovecot", {RECIPIENT: PASSWORD},
                                        settings.path(settings.tls.certificate),
                                        settings.path(settings.tls.key), lmtp_socket=lmtp)
        try:
            with dovecot_ctx as dovecot, throwaway_postfix(work / "postfix", DOMAIN,
                                                           lmtp) as postfix:
                peer = Target("postfix+dovecot", postfix.port,
                              maildir_count(work / "dovecot" / "home" / RECIPIENT),
                              lambda: [p for p in (_postfix_master(work / "postfix"),
                                                   dovecot.pid) if p])
                ours = schulhof_target(settings, database_url, serve)
                results = compare(args, [peer, ours])
        finally:
            asyncio.run(serve.stop())
        report(args, results, database_url)
        bad = serve.new_bad_log_lines()
        if bad:
            print(f"schulhof logged {len(bad)} error(s); first:\n{bad[0]}", file=sys.stderr)
    finally:
        if databases is not None:
            databases.close()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    return 0


def _postfix_master(base: Path) -> int | None:
    try:
        return int((base / "data" / "master.lock").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        try:
            return int((base / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


Results = dict[tuple[str, str], list[tuple[float, float]]]


def compare(args: argparse.Namespace, targets: list[Target]) -> Results:
    results: Results = {}
    # A warm-up of each (first connections, caches, Dovecot's index of the new maildir).
    warm = argparse.Namespace(**{**vars(args), "messages": min(200, args.messages)})
    for target in targets:
        measure(target, warm, [])
    for round_number in range(1, args.rounds + 1):
        for workload, extra in WORKLOADS.items():
            for target in targets:
                rate, cpu = measure(target, args, extra)
                results.setdefault((target.name, workload), []).append((rate, cpu))
                print(f"round {round_number} {workload:20s} {target.name:16s} "
                      f"{rate:7.0f} msgs/s  cpu {cpu * 1000:5.2f} ms/msg  "
                      f"load {os.getloadavg()[0]:.2f}", flush=True)
    return results


def report(args: argparse.Namespace, results: Results, database_url: str) -> None:
    backend = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    workers = args.workers or "default"
    print(f"\nsmtp-source -s {args.sessions} -m {args.messages} -l {args.size}, "
          f"{args.rounds} rounds; schulhof serve --workers {workers} on {backend}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{os.cpu_count()} cores")
    for workload in WORKLOADS:
        peer = [r for r, _ in results[("postfix+dovecot", workload)]]
        ours = [r for r, _ in results[("schulhof", workload)]]
        ratios = [o / p for o, p in zip(ours, peer, strict=True)]
        print(f"{workload:20s} postfix+dovecot {min(peer):.0f}-{max(peer):.0f} msgs/s, "
              f"schulhof {min(ours):.0f}-{max(ours):.0f} msgs/s, ratio per round "
              f"{' '.join(f'{r:.2f}' for r in ratios)} (median "
              f"{statistics.median(ratios):.2f}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--workers", type=int, default=0,
                        help="schulhof serve --workers N (0: serve's default)")
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL admin URL: a fresh database is made from it")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
