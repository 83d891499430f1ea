"""``schulhof init``, ``serve``, ``migrate`` and ``purge``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import gc
import ipaddress
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from conf.settings import (
    DatabaseSettings,
    ListenSettings,
    SchoolSettings,
    Settings,
    SettingsError,
    load_settings,
    render_settings_toml,
)
from directory.broadcast import Broadcast, LocalBroadcast

if TYPE_CHECKING:
    from conf.app import School

# Each handler imports what it needs: a command loads only its own packages
# (``schulhof export`` stays small; ``serve`` loads everything).
KEYS_DIR = "keys"
log = logging.getLogger("schulhof")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="create a new school: settings, database, TLS and keys")
    p.add_argument("directory", type=Path)
    p.add_argument("--domain", required=True, help="the school's mail domain")
    p.add_argument("--name", default="", help="the school's name")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument("--database", default="", help="database URL (default: SQLite in DIR)")
    p.add_argument("--force", action="store_true", help="overwrite an existing school")
    p.set_defaults(handler=init_school, needs_school=False)

    p = sub.add_parser("serve", help="run every service until SIGINT/SIGTERM")
    p.add_argument("--workers", type=int, default=None,
                   help="processes sharing the ports (default: server.workers, "
                        "whose default 0 is one per core; always 1 on SQLite)")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=serve)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.set_defaults(handler=migrate, needs_school=False)

    p = sub.add_parser("purge", help="run the retention clean-up now: leavers past their "
                                     "deletion date, old Trash and Junk, class chat, logs")
    p.add_argument("--today", type=dt.date.fromisoformat, default=None,
                   help="treat this date (YYYY-MM-DD) as today")
    p.set_defaults(handler=purge)


def _is_specific_ip(text: str) -> bool:
    """An IP literal other than the wildcard (a hostname such as localhost is not one)."""
    try:
        return not ipaddress.ip_address(text).is_unspecified
    except ValueError:
        return False


async def init_school(args: argparse.Namespace) -> int:
    from conf.migrate import upgrade
    from directory.db import Database
    from federation.keys import SchoolKeyPaths, generate_school_keys, make_self_signed_certificate

    target: Path = args.directory.resolve()
    config_path = target / "schulhof.toml"
    if config_path.exists() and not args.force:
        print(f"schulhof: {config_path} exists; use --force to overwrite it", file=sys.stderr)
        return 1
    target.mkdir(parents=True, exist_ok=True)
    domain = args.domain.strip().lower().rstrip(".")
    settings = Settings(
        base_dir=target,
        school=SchoolSettings(domain=domain, name=args.name or f"Schule {domain}"),
        database=DatabaseSettings(url=args.database or "sqlite+aiosqlite:///schulhof.db"),
        listen=ListenSettings(bind=args.bind),
    )
    if args.force and settings.database_url.startswith("sqlite"):
        db_file = settings.database_url.split("///", 1)[1]
        for suffix in ("", "-wal", "-shm"):
            Path(db_file + suffix).unlink(missing_ok=True)
    make_self_signed_certificate(
        settings.path(settings.tls.certificate), settings.path(settings.tls.key),
        [settings.smtp_hostname, domain, f"matrix.{domain}", "localhost"],
        ip_addresses=[args.bind] if _is_specific_ip(args.bind) else [])
    generate_school_keys(SchoolKeyPaths.in_dir(target / KEYS_DIR))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(render_settings_toml(settings), encoding="utf-8")
    db = Database(settings.database_url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()
    print(f"created school {domain} in {target}")
    print(f"  settings: {config_path}")
    print(f"  next: schulhof --config {config_path} user add admin --role admin")
    return 0


async def serve(args: argparse.Namespace, school: School) -> int:
    from conf.memory import return_large_blocks_to_os
    from conf.workers import Supervisor, worker_count
    from federation.tls import CertificateProblem

    return_large_blocks_to_os()  # argon2's 19 MiB per login stays out of the arenas
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = school.settings
    requested = args.workers if args.workers is not None else settings.server.workers
    count = worker_count(requested, school.db.is_sqlite)
    if args.worker is None and count > 1:
        log.info("event=starting workers=%d", count)
        await school.db.dispose()  # the supervisor itself never uses the database
        argv = [sys.executable, "-m", "conf.cli", "--config", str(args.config.resolve()),
                *(["--verbose"] if args.verbose else []), "serve", "--workers", str(count)]
        supervisor = Supervisor(argv, count)
        loop.add_signal_handler(signal.SIGHUP, lambda: supervisor.signal_all(signal.SIGHUP))
        return await supervisor.run(stop)
    if school.db.is_sqlite and requested != 1:
        # Asked for several (a warning), or the default (one per core): say why one.
        log.log(logging.WARNING if requested > 1 else logging.INFO,
                "event=one_process reason=sqlite: SQLite has one writer; "
                "use PostgreSQL for several workers")
    loop.add_signal_handler(signal.SIGHUP, lambda: reload_certificate(school))
    school.broadcast = choose_broadcast(settings, count, school.db.is_sqlite)
    try:
        if args.worker is None:
            await school.serve_until(stop, on_ready=settle_heap)
        else:
            await serve_as_worker(school, args.worker, count, stop)
    except CertificateProblem as problem:
        print(f"schulhof: cannot start: {problem}", file=sys.stderr)
        return 2
    return 0


async def serve_as_worker(school: School, worker: int, count: int,
                          stop: asyncio.Event) -> None:
    """One of ``serve --workers N``'s processes: ports shared with SO_REUSEPORT,
    the once-per-school services in worker 0 only (conf.workers)."""
    from conf.workers import announce_ready

    school.settings = dataclasses.replace(school.settings, listen=dataclasses.replace(
        school.settings.listen, reuse_port=True))
    school.singletons = worker == 0
    school.worker_index = worker
    try:
        await school.start()
        settle_heap()
        log.info("event=worker_ready worker=%d of=%d singletons=%s services=%d", worker,
                 count, school.singletons, len(school.services))
        announce_ready()
        await stop.wait()
    finally:
        await school.close()


FULL_COLLECTION_EVERY = 100  # collections of the middle generation (CPython's default: 10)


def settle_heap() -> None:
    """Started: what is allocated so far (modules, settings, compiled statements,
    caches) lives as long as the process.  ``gc.freeze`` takes it out of the
    collector's generations, so a full collection walks only what serving allocates
    since.  Under smtp-source one full collection over the start-up heap took 0.4 s
    of CPU, every connection stalled meanwhile (issue 15).  A process-wide setting,
    so here in the command, not in ``School`` (several schools share test processes).

    What serving allocates still fills the oldest generation (sync caches, room
    heads, connections' snapshots): with CPython's default a full collection
    follows every 10 collections of the middle one, and under the sliding sync
    bench (200 long-polls, 30 msgs/s) four came in 20 s at 29-105 ms of CPU each,
    the event loop stalled meanwhile.  Young garbage is collected as often as
    before (the first two thresholds); full collections come a tenth as often."""
    gc.collect()
    gc.freeze()
    young, middle, _old = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def reload_certificate(school: School) -> None:
    """SIGHUP: the renewed certificate for new connections; open ones are kept."""
    from federation.tls import CertificateProblem

    try:
        leaf = school.tls.reload()
    except CertificateProblem as problem:
        log.error("event=tls_reload_refused reason=%s", problem)
        return
    log.info("event=tls_reloaded not_after=%s", leaf.not_valid_after_utc.isoformat())


def choose_broadcast(settings: Settings, workers: int, sqlite: bool) -> Broadcast:
    """``server.cross_process``: LISTEN/NOTIFY between processes, or nothing."""
    mode = settings.server.cross_process
    if mode not in ("auto", "postgres", "none"):
        raise SettingsError(f"server.cross_process: expected auto, postgres or none, "
                            f"got {mode!r}")
    if mode == "none" or sqlite or (mode == "auto" and workers <= 1):
        return LocalBroadcast()
    from directory.pg_broadcast import PostgresBroadcast

    return PostgresBroadcast(settings.database_url)


async def migrate(args: argparse.Namespace) -> int:
    from conf.migrate import upgrade
    from directory.db import Database

    settings = load_settings(args.config)
    db = Database(settings.database_url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()
    print("database schema is up to date")
    return 0


async def purge(args: argparse.Namespace, school: School) -> int:
    from conf.admin.retention import run_retention
    from conf.commands.output import cli_actor

    now = dt.datetime.now(dt.UTC)
    if args.today is not None:
        now = dt.datetime.combine(args.today, now.timetz())
    report = await run_retention(school, now, cli_actor())
    for login in report.leavers:
        print(f"purged {login}")
    print(f"{len(report.leavers)} leaver(s) purged")
    print(" ".join(f"{name}={count}" for name, count in report.counts().items()))
    return 0


