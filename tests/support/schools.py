"""Building test schools: settings on free loopback ports, a fresh database, TLS and keys."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import random
import socket
import time
from pathlib import Path

from conf.settings import (
    ChatSettings,
    DatabaseSettings,
    FederationSettings,
    ListenSettings,
    MetricsSettings,
    PartnerSchool,
    QuietHoursSettings,
    SchoolSettings,
    ServerSettings,
    Settings,
    SmtpSettings,
)
from federation.keys import SchoolKeyPaths, generate_school_keys, make_self_signed_certificate
from tests.support.dns_server import quiet_dns

_PORTS_LOW, _PORTS_HIGH = 20000, 32768
ALL_ROLES = ("pupil", "teacher", "parent", "staff", "admin")


def _port_cursor() -> itertools.cycle[int]:
    """This process's own slice of the port range, walked from a random start.

    Each pytest-xdist worker gets a disjoint slice, and inside a process a port
    is not handed out again until the slice has been walked through, so two
    schools (or two listeners of one school) never get the same port between
    the check here and the server's bind.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = (_PORTS_HIGH - _PORTS_LOW) // max(workers, 1)
    low = _PORTS_LOW + index * size
    ports = list(range(low, low + size))
    start = random.SystemRandom().randrange(size)
    return itertools.cycle(ports[start:] + ports[:start])


_cursor: itertools.cycle[int] | None = None
#: How long a handed-out port stays held: longer than a ``serve`` takes to bind
#: its listeners on a loaded machine (tests/security/conftest.py waits 60 s).
HOLD_SECONDS = 120.0
#: At most this many held at once (the oldest go first): fast tests that make a
#: school each (ten ports) would otherwise hold this process's whole slice of the
#: range within HOLD_SECONDS, and free_port would find no port.  Tests run one
#: after another in a process, so only the running test's ports need holding.
HOLD_MAX = 1000
#: (when, socket) of the ports handed out in the last HOLD_SECONDS, oldest first.
_held: collections.deque[tuple[float, socket.socket]] = collections.deque()


def _hold(host: str, port: int) -> socket.socket | None:
    """A socket bound to ``port`` that keeps it from every other pytest run until
    our server binds it, or None if the port is taken.

    The bind is made without SO_REUSEADDR, so it fails on a port that anything
    holds, listens on or has a connection in TIME_WAIT on; SO_REUSEADDR is set
    only afterwards, so a server (every listener of ours binds with it, as do
    Synapse, rspamd, redis and clamd) can still bind the port while this
    socket, bound but not listening, keeps any other check from handing it out.
    """
    s = socket.socket()
    try:
        s.bind((host, port))
    except OSError:
        s.close()
        return None
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def _release_old(now: float) -> None:
    while _held and (now - _held[0][0] > HOLD_SECONDS or len(_held) >= HOLD_MAX):
        _held.popleft()[1].close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now, held for us until our server has bound it.

    From below the kernel's ephemeral range: picking with bind(0) hands out
    ephemeral ports, which an outgoing client connection can take between our
    check and the server's bind ("address already in use"); ports from
    20000-32767 are never handed out that way.  The xdist workers of one run
    walk disjoint slices of the range, but two pytest runs on one machine (two
    engineers) walk the same slices: a port one run has checked but not yet
    bound (a ``serve`` can take many seconds to start) would pass the other
    run's check too.  So the checking socket stays bound, not listening, for
    HOLD_SECONDS (``_hold``): another run's check fails on it, old code's too.
    """
    global _cursor
    if _cursor is None:
        _cursor = _port_cursor()
    now = time.monotonic()
    _release_old(now)
    for _ in range(500):
        port = next(_cursor)
        held = _hold(host, port)
        if held is not None:
            _held.append((now, held))
            return port
    raise RuntimeError(f"no free port on {host}")


def make_settings(base_dir: Path, database_url: str, *, domain: str = "schule.test",
                  bind: str = "127.0.0.1", partners: tuple[str, ...] = (),
                  **sections: object) -> Settings:
    """Settings for a test school with TLS material and keys made in ``base_dir``."""
    base_dir.mkdir(parents=True, exist_ok=True)
    dns_host, dns_port = quiet_dns()
    listen = ListenSettings(
        bind=bind, smtp=free_port(bind), submission=free_port(bind),
        submissions=free_port(bind), imap=free_port(bind), imaps=free_port(bind),
        matrix=free_port(bind), web=free_port(bind),
        federation=free_port(bind), managesieve=free_port(bind))
    settings = Settings(
        base_dir=base_dir,
        school=SchoolSettings(domain=domain, name=f"Test {domain}"),
        database=DatabaseSettings(url=database_url),
        listen=listen,
        smtp=SmtpSettings(idle_timeout_seconds=30.0),
        # No DNS cache: tests change zone records and expect the change to be seen.
        federation=FederationSettings(dns_nameservers=(dns_host,), dns_port=dns_port,
                                      dns_cache=False),
        partners=tuple(PartnerSchool(domain=p) for p in partners),
        metrics=MetricsSettings(port=free_port(bind)),
        # The protocol tests let everyone open rooms and chats and push at any hour;
        # the school's defaults (pupils open no rooms, parents only answer, quiet
        # hours at night and weekends) have their own tests (tests/messenger/test_chat_rights.py).
        chat=ChatSettings(create_rooms=ALL_ROLES, start_direct=ALL_ROLES),
        quiet_hours=QuietHoursSettings(enabled=False),
        # One process unless a test (or benchmark) asks for more with --workers: the
        # default (one per core on PostgreSQL) would make every served test school a
        # supervisor with workers.
        server=ServerSettings(workers=1),
    )
    if sections:
        settings = dataclasses.replace(settings, **sections)
    cert, key = settings.path(settings.tls.certificate), settings.path(settings.tls.key)
    if not cert.exists():
        make_self_signed_certificate(cert, key, [settings.smtp_hostname, domain, "localhost"],
                                     ip_addresses=[bind])
        generate_school_keys(SchoolKeyPaths.in_dir(base_dir / "keys"))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings
