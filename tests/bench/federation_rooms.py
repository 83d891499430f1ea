"""Benchmark: chat from one school to another through Matrix federation.

    python -m tests.bench.federation_rooms [--messages 400] [--rate 20]
        [--catch-up 1000]

Two schools run in this process as in tests/e2e/matrix_federation (A = a.test
on 127.0.0.31, B = b.test on 127.0.0.32, SQLite files in a temporary
directory, SRV records from a loopback DNS server, TLS with each school's own
certificate).  A teacher at A makes a room and invites a teacher at B, who
joins over federation (make_join/send_join).  Then:

* ``--messages`` messages at ``--rate`` per second from A: the delay from
  A's send call to the commit of the event at B (A's writer, outbox,
  transaction over TLS, B's checks and storage), p50 and p99;
* ``--catch-up`` messages sent while B's federation listener is down, then
  B starts again: the time from B's start to the last of them stored at B.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

from conf.app import School
from conf.settings import FederationSettings
from conf.wiring.matrix import build as build_matrix
from conf.wiring.matrix import federation_listener
from directory.model import Role
from messenger.federation_listener import FederationListener
from messenger.identity import Requester
from messenger.rooms.presets import CreateRoomRequest
from messenger.server import MatrixServer
from messenger.storage.events import StoredEvent
from tests.support.dns_server import DnsServer
from tests.support.schools import make_settings

PASSWORD = "Bench-Lehrkraft-1"
IPS = {"a": "127.0.0.31", "b": "127.0.0.32"}


@dataclasses.dataclass
class Side:
    school: School
    matrix: MatrixServer
    listener: FederationListener


async def open_side(name: str, base: Path, dns: DnsServer, bundle: Path) -> Side:
    s = make_settings(base / name, f"sqlite+aiosqlite:///{base / name}.sqlite",
                      domain=f"{name}.test", bind=IPS[name],
                      partners=tuple(f"{o}.test" for o in IPS if o != name))
    s = dataclasses.replace(
        s, federation=FederationSettings(dns_nameservers=(dns.host,), dns_port=dns.port,
                                         dns_cache=False, tls_ca_file=str(bundle)),
        matrix=dataclasses.replace(s.matrix, group_sync_interval_seconds=3600.0,
                                   send_messages_per_second=1000.0, send_burst=1000))
    dns.add(f"_matrix-fed._tcp.{name}.test", "SRV",
            f"10 5 {s.listen.federation} matrix.{name}.test.")
    dns.add(f"matrix.{name}.test", "A", IPS[name])
    school = await School.open(s)
    await school.directory.create_account(role=Role.TEACHER, login=f"lehrer{name}",
                                          password=PASSWORD)
    services = build_matrix(school)
    side = Side(school, next(x for x in services if isinstance(x, MatrixServer)),
                next(x for x in services if isinstance(x, FederationListener)))
    await side.matrix.start()
    await side.listener.start()
    return side


async def requester(side: Side, login: str) -> Requester:
    result = await side.matrix.sessions.login(login, PASSWORD, device_id=None,
                                              display_name=None, client_ip="127.0.0.1")
    return await side.matrix.sessions.requester(result.access_token)


async def run(args: argparse.Namespace) -> None:
    dns = DnsServer()
    await dns.start()
    with tempfile.TemporaryDirectory() as work:
        base = Path(work)
        for name in IPS:  # certificates first: each trusts both
            make_settings(base / name, "sqlite+aiosqlite://", domain=f"{name}.test",
                          bind=IPS[name])
        bundle = base / "ca.pem"
        bundle.write_bytes(b"".join((base / n / "tls" / "cert.pem").read_bytes()
                                    for n in IPS if (base / n / "tls" / "cert.pem").exists()))
        a = await open_side("a", base, dns, bundle)
        b = await open_side("b", base, dns, bundle)
        arrived: dict[str, float] = {}
        chained = b.matrix.rooms.writer.after_commit

        def seen(events: list[StoredEvent]) -> None:
            now = time.perf_counter()
            for event in events:
                body = (event.pdu.get("content") or {}).get("body")
                if isinstance(body, str):
                    arrived.setdefault(body, now)
            if chained is not None:
                chained(events)
        b.matrix.rooms.writer.after_commit = seen

        teacher_a = await requester(a, "lehrera")
        teacher_b = await requester(b, "lehrerb")
        room_id = await a.matrix.rooms.create_room(teacher_a, CreateRoomRequest(
            name="Bench", invite=("@lehrerb:b.test",)))
        await b.matrix.rooms.join(teacher_b, room_id)

        sent: dict[str, float] = {}
        for n in range(args.messages):
            body = f"live {n}"
            sent[body] = time.perf_counter()
            await a.matrix.rooms.send(teacher_a, room_id, "m.room.message",
                                      {"msgtype": "m.text", "body": body})
            await asyncio.sleep(max(0.0, sent[body] + 1 / args.rate - time.perf_counter()))
        deadline = time.perf_counter() + 60
        while len([k for k in sent if k in arrived]) < len(sent) and \
                time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        delays = sorted((arrived[k] - sent[k]) * 1000 for k in sent if k in arrived)
        print(f"live: {len(delays)}/{len(sent)} delivered at {args.rate}/s; "
              f"p50 {statistics.median(delays):.1f} ms, "
              f"p99 {delays[int(len(delays) * 0.99) - 1]:.1f} ms")

        await b.listener.stop()
        started = time.perf_counter()
        for n in range(args.catch_up):
            await a.matrix.rooms.send(teacher_a, room_id, "m.room.message",
                                      {"msgtype": "m.text", "body": f"missed {n}"})
        print(f"catch-up: {args.catch_up} sent at A while B was down in "
              f"{time.perf_counter() - started:.1f} s")
        # A new listener on B's running rooms (as a restarted process would wire it).
        b.listener = federation_listener(b.school, b.matrix)
        await b.listener.start()
        started = time.perf_counter()
        a.listener.sender.wake()
        last = f"missed {args.catch_up - 1}"
        while last not in arrived and time.perf_counter() - started < 600:
            await asyncio.sleep(0.05)
        first = min((arrived[f"missed {n}"] for n in range(args.catch_up)
                     if f"missed {n}" in arrived), default=started)
        print(f"catch-up: {args.catch_up} events stored at B "
              f"{time.perf_counter() - started:.1f} s after its restart"
              f" ({'all' if last in arrived else 'NOT all'}; A's backoff for B ended after "
              f"{first - started:.1f} s, then {time.perf_counter() - first:.1f} s to store "
              "them)")
        await a.listener.stop()
        await b.listener.stop()
        await a.matrix.stop()
        await b.matrix.stop()
        await a.school.close()
        await b.school.close()
    await dns.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--catch-up", type=int, default=1000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
