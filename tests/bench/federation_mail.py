"""Benchmark: mail from one school to another, submission to the partner's mailbox.

    python -m tests.bench.federation_mail [--messages 2000] [--connections 8]
        [--size 10240] [--database-url URL] [--poll SECONDS]

Two schools, as in tests/e2e/test_federation_mail.py: A (a.test) on
127.0.0.2 in this process and B (b.test) on 127.0.0.3 in a child process, as
another school's server would be (``--one-process``: both in this process,
sharing one GIL, as the benchmark used to run them), each with its own
database (SQLite files in a temporary directory, or fresh PostgreSQL
databases made from the admin URL ``--database-url``), a loopback DNS
server publishing MX, SPF, DKIM and DMARC.  A *separate client process*
(the one of tests.bench.smtp_throughput) submits ``--messages`` messages of
``--size`` bytes from a teacher at A to a teacher at B over ``--connections``
submission connections (STARTTLS + AUTH).  A's outbound worker signs them
and delivers them to B's MX over STARTTLS; B checks SPF/DKIM/DMARC and
stores them.

Prints:

* end-to-end messages/s: from the first submission to the moment all are
  stored in B's INBOX;
* the queue's p50 / p99 time from a row's creation (A's commit) to the
  remote 250 (the worker's ``event=outbound_sent``);
* submission p50 / p99 as the clients saw them, and CPU per message of
  each school's process (all threads) and of the client.

``--profile FILE`` records py-spy (raw format, for flamegraph.pl or a
grep) of the measured part: school A into FILE.a, school B into FILE.b.

``--poll`` sets the worker's idle poll interval (default: the production
value).  Both schools' certificates are signed by a test CA that A trusts
through ``federation.tls_ca_file``, so each outbound connection needs one
verified handshake; ``--no-ca`` keeps self-signed certificates, which
makes the client try verified TLS, fail and reconnect for unverified TLS
(RFC 7435 opportunistic fallback) on every connection.  The outbound
service is built from the settings, as ``schulhof serve`` builds it.

``--dns-cache`` measures a proposed change outside the mail packages: a
TTL-honouring answer cache (``dns.resolver.LRUCache``) on each school's
resolver in federation/resolver.py; the flag sets it on this process's two
resolvers only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import multiprocessing
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from conf.settings import Settings

PASSWORD = "Bench-Lehrkraft-1"
A_IP, B_IP = "127.0.0.2", "127.0.0.3"


class SentTimes(logging.Handler):
    """Remembers when each queue row got its remote 250 (from the worker's log)."""

    _IDS = re.compile(r"event=outbound_sent ids=([\d,]+)")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.at: dict[int, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = self._IDS.search(record.getMessage())
        if match:
            now = time.time()
            for entry_id in match.group(1).split(","):
                self.at[int(entry_id)] = now


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _start_profiler(out: str, pid: int) -> Any:
    """py-spy on one process for the measured part only: the thread holding the GIL
    (CPU in Python), not threads waiting on a queue or a socket."""
    if not out:
        return None
    import subprocess

    return subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-r", "100",
                             "--threads", "--gil", "--nonblocking", "-f", "raw", "-o", out,
                             "--pid", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _stop_profiler(profiler: Any) -> None:
    if profiler is not None:
        import signal

        profiler.send_signal(signal.SIGINT)
        await asyncio.to_thread(profiler.wait, 30)


# --- school B: the receiving side, in its own process (default) or in this one ---------
class _SchoolB(Protocol):
    async def ready(self) -> None: ...
    async def go(self, messages: int, timeout: float) -> None: ...
    async def done(self) -> tuple[int, float, float]: ...  # stored, time.time(), CPU s
    async def close(self) -> None: ...


class _SameProcess:
    """B in this process: its SMTP listeners on this event loop."""

    def __init__(self, school: Any, services: list[Any]) -> None:
        self.school, self.services = school, services
        self._target, self._deadline = 0, 0.0

    @classmethod
    async def open(cls, settings: Settings, migrate: bool,
                   args: argparse.Namespace) -> _SameProcess:
        school, services = await _open_b(settings, migrate, args.dns_cache)
        return cls(school, services)

    async def ready(self) -> None:
        pass

    async def go(self, messages: int, timeout: float) -> None:
        self._target, self._deadline = messages, time.time() + timeout

    async def done(self) -> tuple[int, float, float]:
        count = await _wait_stored(self.school, self._target, self._deadline)
        return count, time.time(), 0.0

    async def close(self) -> None:
        await _close_b(self.school, self.services)


class _OtherProcess:
    """B in a child process, as another school's server is: its own core and GIL."""

    def __init__(self, settings: Settings, migrate: bool, args: argparse.Namespace) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=school_b_process,
            args=(settings, migrate, args.dns_cache,
                  args.profile + ".b" if args.profile else "", child))
        self._process.start()

    async def _receive(self) -> Any:
        answer = await asyncio.to_thread(self._pipe.recv)
        if isinstance(answer, str) and answer.startswith("failed"):
            raise SystemExit(f"school B: {answer}")
        return answer

    async def ready(self) -> None:
        await self._receive()

    async def go(self, messages: int, timeout: float) -> None:
        self._pipe.send((messages, timeout))
        await self._receive()

    async def done(self) -> tuple[int, float, float]:
        count, finished, cpu = await self._receive()
        return int(count), float(finished), float(cpu)

    async def close(self) -> None:
        self._pipe.send("stop")
        await asyncio.to_thread(self._process.join, 60)


async def _open_b(settings: Settings, migrate: bool, dns_cache: bool) -> tuple[Any, list[Any]]:
    from conf.app import School
    from conf.wiring import smtp as smtp_wiring
    from directory.model import Role

    school = await School.open(settings, migrate=migrate)
    if dns_cache:
        from dns.resolver import LRUCache

        school.resolver._resolver.cache = LRUCache()
    await school.directory.create_account(role=Role.TEACHER, login="anna")
    services = []
    for service in smtp_wiring.build(school):
        await service.start()
        services.append(service)
    return school, services


async def _close_b(school: Any, services: list[Any]) -> None:
    for service in reversed(services):
        await service.stop()
    await school.close()


async def _wait_stored(school: Any, target: int, deadline: float) -> int:
    from sqlalchemy import func, select

    from mailserver.schema import MessageRow  # the store's model, read-only here

    async def stored() -> int:
        async with school.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(MessageRow)) or 0)

    # Counting every 100 ms cost B a tenth of its CPU near the end of a run; the
    # highest id (an index lookup) says when counting is worth it (ids only grow).
    # It is read with read_rows_small: on SQLite on this thread, without the
    # session's hops to aiosqlite's thread, which cost B another 6-15% of its
    # CPU samples (py-spy) under load.
    while time.time() < deadline:
        await asyncio.sleep(0.1)
        [(highest,)] = await school.db.read_rows_small("SELECT max(id) FROM messages")
        if int(highest or 0) >= target and await stored() >= target:
            break
    return await stored()


def school_b_process(settings: Settings, migrate: bool, dns_cache: bool, profile: str,
                     pipe: Any) -> None:
    async def serve() -> None:
        school, services = await _open_b(settings, migrate, dns_cache)
        try:
            pipe.send("ready")
            messages, timeout = await asyncio.to_thread(pipe.recv)
            before = resource.getrusage(resource.RUSAGE_SELF)
            profiler = _start_profiler(profile, os.getpid())
            pipe.send("going")
            count = await _wait_stored(school, messages, time.time() + timeout)
            finished = time.time()
            await _stop_profiler(profiler)
            after = resource.getrusage(resource.RUSAGE_SELF)
            pipe.send((count, finished, (after.ru_utime + after.ru_stime)
                       - (before.ru_utime + before.ru_stime)))
            await asyncio.to_thread(pipe.recv)  # "stop"
        finally:
            await _close_b(school, services)

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        asyncio.run(serve())
    except BaseException as exc:
        pipe.send(f"failed: {exc!r}")
        raise


async def _database_urls(admin_url: str, work: Path) -> tuple[list[str], Any]:
    if not admin_url:
        return [f"sqlite+aiosqlite:///{work / name}.sqlite" for name in ("a", "b")], None
    from tests.support.databases import PostgresDatabases

    factory = await asyncio.to_thread(PostgresDatabases, admin_url)
    urls = [await asyncio.to_thread(factory.fresh, work) for _ in range(2)]
    return urls, factory


async def run(args: argparse.Namespace) -> dict[str, float]:
    from sqlalchemy import func, select

    from conf.app import School
    from conf.settings import FederationSettings, SmtpSettings
    from conf.wiring import outbound as outbound_wiring
    from conf.wiring import smtp as smtp_wiring
    from directory.model import Role
    from mailserver.outbound.queue import OutboundQueue, queue
    from tests.bench.smtp_throughput import client_process
    from tests.e2e.test_federation_mail import common_free_port, publish
    from tests.mailserver.outbound.pki import TestCa
    from tests.support.dns_server import DnsServer
    from tests.support.schools import make_settings

    sent = SentTimes()
    outbound_log = logging.getLogger("schulhof.outbound")
    outbound_log.addHandler(sent)
    outbound_log.setLevel(logging.INFO)
    outbound_log.propagate = False

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dns = DnsServer()
        await dns.start()
        urls, factory = await _database_urls(args.database_url, work)
        mx_port = common_free_port(A_IP, B_IP)
        ca = None if args.no_ca else TestCa(work / "ca")
        fed = FederationSettings(dns_nameservers=(dns.host,), dns_port=dns.port,
                                 remote_smtp_port=mx_port,
                                 tls_ca_file=str(ca.path) if ca is not None else "")
        schools: list[School] = []
        every: list[Settings] = []
        for name, ip, url, partner in (("a", A_IP, urls[0], "b.test"),
                                       ("b", B_IP, urls[1], "a.test")):
            settings = make_settings(
                work / name, url, domain=f"{name}.test", bind=ip, partners=(partner,),
                federation=fed, smtp=SmtpSettings(max_connections_per_ip=1000,
                                                  max_message_size=50 * 1024 * 1024))
            settings = dataclasses.replace(
                settings, listen=dataclasses.replace(settings.listen, smtp=mx_port))
            if ca is not None:
                issued = ca.issue([settings.smtp_hostname, settings.school.domain], ips=(ip,))
                settings.path(settings.tls.certificate).write_bytes(
                    issued.chain_file.read_bytes())
                settings.path(settings.tls.key).write_bytes(issued.key_file.read_bytes())
            publish(dns, settings, ip)
            every.append(settings)
        b_side: _SchoolB = (_OtherProcess(every[1], factory is None, args) if args.processes
                            else await _SameProcess.open(every[1], factory is None, args))
        a = await School.open(every[0], migrate=factory is None)
        if args.dns_cache:
            from dns.resolver import LRUCache

            a.resolver._resolver.cache = LRUCache()
        schools.append(a)
        await a.directory.create_account(role=Role.TEACHER, login="paul", password=PASSWORD)
        await b_side.ready()

        services: list[Any] = []
        for service in smtp_wiring.build(a):
            await service.start()
            services.append(service)
        [outbound] = outbound_wiring.build(a)
        assert isinstance(outbound, outbound_wiring.OutboundService)
        await outbound.start()
        services.append(outbound)
        assert outbound.worker is not None
        config = outbound.worker.config
        if args.poll is not None:
            config = dataclasses.replace(config, poll_seconds=args.poll)
        if args.lanes is not None:
            config = dataclasses.replace(config, per_domain_connections=args.lanes)
        outbound.worker.config = config

        plan = {"host": A_IP, "port": a.settings.listen.submission,
                "cafile": str(ca.path if ca is not None
                              else a.settings.path(a.settings.tls.certificate)),
                "implicit_tls": False, "starttls": True, "login": "paul",
                "recipients": ["anna@b.test"], "sender": "paul@a.test",
                "size": args.size, "messages": args.messages,
                "connections": args.connections}
        results: Any = multiprocessing.get_context("spawn").Queue()
        queries_before = len(dns.queries)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        await b_side.go(args.messages, args.timeout)
        started = time.time()
        client = multiprocessing.get_context("spawn").Process(
            target=client_process, args=(plan, results))
        client.start()
        profiler = _start_profiler(args.profile + ".a" if args.profile else "", os.getpid())
        count, finished, cpu_b = await b_side.done()
        elapsed = finished - started
        await _stop_profiler(profiler)
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        dns_queries = len(dns.queries) - queries_before
        outcome = await asyncio.to_thread(results.get, True, 60)
        client.join(30)
        if isinstance(outcome, str):
            raise SystemExit(outcome)
        latencies, failures, client_seconds, client_cpu = outcome[:4]

        connections = outbound.client.connections_opened if outbound.client else 0
        rows = await OutboundQueue(a.db).entries(("sent",), limit=args.messages + 10)
        queue_times = [sent.at[r.id] - r.created_at.timestamp() for r in rows if r.id in sent.at]
        async with a.db.read() as session:
            waiting = await session.scalar(select(func.count()).select_from(queue)
                                           .where(queue.c.state != "sent"))
        for service in reversed(services):
            await service.stop()
        for school in schools:
            await school.close()
        await b_side.close()
        await dns.stop()
        if factory is not None:
            await asyncio.to_thread(factory.close)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    cpu_a = cpu - cpu_b if not args.processes else cpu
    if not args.processes:
        cpu_b = 0.0  # inside cpu: one process
    return {
        "stored": count, "messages": args.messages, "failures": failures,
        "not_sent": int(waiting or 0), "seconds": elapsed,
        "per_second": count / elapsed if elapsed else 0.0,
        "submit_per_second": len(latencies) / client_seconds if client_seconds else 0.0,
        "submit_p50_ms": percentile(latencies, 0.5) * 1000,
        "submit_p99_ms": percentile(latencies, 0.99) * 1000,
        "queue_p50_ms": percentile(queue_times, 0.5) * 1000,
        "queue_p99_ms": percentile(queue_times, 0.99) * 1000,
        "queue_mean_ms": statistics.fmean(queue_times) * 1000 if queue_times else 0.0,
        "cpu_ms_per_message": (cpu_a + cpu_b) / max(count, 1) * 1000,
        "cpu_a_ms": cpu_a / max(count, 1) * 1000,
        "cpu_b_ms": cpu_b / max(count, 1) * 1000,
        "client_ms": client_cpu / max(len(latencies), 1) * 1000,
        "connections": connections,
        "dns_queries": dns_queries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--poll", type=float, default=None,
                        help="the outbound worker's idle poll interval in seconds")
    parser.add_argument("--lanes", type=int, default=None,
                        help="SMTP connections per recipient domain (worker default if unset)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--dns-cache", action="store_true",
                        help="cache DNS answers in the resolvers (a proposed change, see above)")
    parser.add_argument("--profile", default="", metavar="FILE",
                        help="py-spy (raw format) of the measured part into FILE.a and FILE.b")
    parser.add_argument("--one-process", dest="processes", action="store_false",
                        help="both schools in this process (one GIL), as before")
    parser.add_argument("--no-ca", action="store_true",
                        help="self-signed certificates: outbound TLS falls back to unverified")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    figures = asyncio.run(run(args))
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"backend={backend} messages={figures['messages']} stored={figures['stored']} "
          f"failures={figures['failures']} not_sent={figures['not_sent']}")
    print(f"end_to_end: {figures['per_second']:.1f} messages/s "
          f"({figures['seconds']:.2f} s)")
    print(f"submission: {figures['submit_per_second']:.1f} messages/s "
          f"p50={figures['submit_p50_ms']:.1f} ms p99={figures['submit_p99_ms']:.1f} ms")
    print(f"queue (row created -> remote 250): p50={figures['queue_p50_ms']:.1f} ms "
          f"p99={figures['queue_p99_ms']:.1f} ms mean={figures['queue_mean_ms']:.1f} ms")
    if args.processes:
        print(f"server cpu: {figures['cpu_ms_per_message']:.2f} ms/message (both schools: "
              f"A {figures['cpu_a_ms']:.2f}, B {figures['cpu_b_ms']:.2f}); "
              f"client {figures['client_ms']:.2f} ms/message")
    else:
        print(f"server cpu: {figures['cpu_ms_per_message']:.2f} ms/message (both schools); "
              f"client {figures['client_ms']:.2f} ms/message")
    print(f"outbound connections opened: {figures['connections']}; DNS queries during the "
          f"run (both schools: MX, SPF, DKIM keys, DMARC, MTA-STS, TLSA): "
          f"{figures['dns_queries']}")
    return 0 if figures["stored"] == figures["messages"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
