"""Benchmark: Matrix /sync delivery under load, and the memory of idle long-polls.

    python -m tests.bench.matrix_sync [--users 200] [--room-size 10] [--rate 100]
        [--seconds 20] [--idle 2000] [--database-url URL]

The server is a real ``schulhof serve`` subprocess (Matrix only; SMTP and IMAP
off) on a fresh SQLite file, or on ``--database-url`` (an empty PostgreSQL
database).  Before it starts, this process creates the accounts, groups and
access tokens directly in the database, and the school rooms (one per group of
``--room-size``) through ``messenger.school_rooms`` (so the rooms are exactly
what the server would make).

1. Every user keeps a /sync long-poll open (aiohttp, not nio, for lightness);
   messages are sent at a steady ``--rate`` for ``--seconds`` by random users
   into their room.  Prints messages/s sent, deliveries/s, and the latency
   from the start of the send request to the moment a /sync response carrying
   the message reached each other member: p50 / p99 / max.
2. ``--idle`` further devices open a long-poll each and wait; the server's RSS
   delta divided by the count is the memory per idle /sync.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.support.processes import stop_processes

DOMAIN = "bench.test"
API = "/_matrix/client/v3"


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_config(folder: Path, database_url: str, port: int) -> Path:
    config = folder / "schulhof.toml"
    config.write_text(f"""
[school]
domain = "{DOMAIN}"
data_dir = "data"

[database]
url = "{database_url}"

[listen]
bind = "127.0.0.1"
smtp = -1
submission = -1
submissions = -1
imap = -1
imaps = -1
managesieve = -1
matrix = {port}
web = -1
federation = -1

[metrics]
# its default port (9464) is fixed: another running server may hold it
port = -1
""", encoding="utf-8")
    return config


async def _prepare(config: Path, users: int, room_size: int, idle: int,
                   ) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Accounts, groups, rooms and tokens: (user -> token, user -> room, idle tokens)."""
    from conf.app import School
    from conf.settings import load_settings
    from conf.wiring.matrix import school_rooms
    from directory.model import GroupKind, Role
    from messenger.storage import devices as device_store

    school = await School.open(load_settings(config))
    tokens: dict[str, str] = {}
    idle_tokens: list[str] = []
    try:
        d = school.directory
        logins = [f"u{n:04d}" for n in range(users)]
        accounts = {}
        for login in logins:
            accounts[login] = await d.create_account(role=Role.TEACHER, login=login)
        for g in range(users // room_size):
            name = f"room{g:03d}"
            await d.create_group(name, kind=GroupKind.CUSTOM, members_may_post=True)
            for login in logins[g * room_size:(g + 1) * room_size]:
                await d.add_member(name, login)
        started = time.perf_counter()
        report = await school_rooms(school).sync_group_rooms()
        print(f"school rooms: {report} in {time.perf_counter() - started:.1f} s")
        keeper = school_rooms(school)
        room_of = {}
        for g in range(users // room_size):
            room_id = await keeper.room_of_group(f"room{g:03d}")
            for login in logins[g * room_size:(g + 1) * room_size]:
                room_of[f"@{login}:{DOMAIN}"] = room_id
        async with school.db.write() as session:
            for login in logins:
                account_id = accounts[login].id
                await device_store.ensure_device(session, account_id, "BENCH", None)
                token = f"bench_{login}"
                await device_store.add_token(session, account_id, "BENCH", token)
                tokens[f"@{login}:{DOMAIN}"] = token
            for n in range(idle):  # idle long-polls: more devices of the same users
                login = logins[n % len(logins)]
                device = f"IDLE{n:05d}"
                await device_store.ensure_device(session, accounts[login].id, device, None)
                await device_store.add_token(session, accounts[login].id, device, f"idle_{n}")
                idle_tokens.append(f"idle_{n}")
        return tokens, {u: room_of[u] for u in tokens if u in room_of}, idle_tokens
    finally:
        await school.close()


async def _wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if process.poll() is not None:
                raise SystemExit("the server exited; see its output above")
            try:
                async with http.get(f"{base}/_matrix/client/versions") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the server did not come up")


class Load:
    def __init__(self, base: str, tokens: dict[str, str], room_of: dict[str, str]) -> None:
        self.base = base
        self.tokens = tokens
        self.room_of = room_of
        self.sent_at: dict[str, float] = {}  # body marker -> send start
        self.latencies: list[float] = []
        self.send_latencies: list[float] = []
        self.sent = 0
        self.errors = 0
        self.running = True

    async def sync_loop(self, http: aiohttp.ClientSession, user: str,
                        first: asyncio.Event) -> None:
        auth = {"Authorization": f"Bearer {self.tokens[user]}"}
        filter_ = json.dumps({"room": {"timeline": {"limit": 50}}})
        async with http.get(f"{self.base}{API}/sync", params={"filter": filter_},
                            headers=auth) as r:
            since = (await r.json())["next_batch"]
        first.set()
        while self.running:
            try:
                async with http.get(f"{self.base}{API}/sync", headers=auth, params={
                        "since": since, "timeout": "30000", "filter": filter_}) as r:
                    body = await r.json()
            except (TimeoutError, aiohttp.ClientError):
                self.errors += 1
                continue
            now = time.perf_counter()
            since = body.get("next_batch", since)
            for room in body.get("rooms", {}).get("join", {}).values():
                for event in room["timeline"]["events"]:
                    marker = event.get("content", {}).get("body", "")
                    if event.get("sender") != user and marker in self.sent_at:
                        self.latencies.append(now - self.sent_at[marker])

    async def send_loop(self, http: aiohttp.ClientSession, rate: float,
                        seconds: float) -> float:
        users = list(self.room_of)
        started = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()
        n = 0
        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(elapsed * rate)
            while n < due:
                pending.add(asyncio.create_task(self._send(http, random.choice(users), n)))
                n += 1
            await asyncio.sleep(0.002)
        if pending:
            await asyncio.wait(pending)
        return time.perf_counter() - started

    async def _send(self, http: aiohttp.ClientSession, user: str, n: int) -> None:
        marker = f"bench {n}"
        self.sent_at[marker] = time.perf_counter()
        url = f"{self.base}{API}/rooms/{self.room_of[user]}/send/m.room.message/t{n}"
        try:
            async with http.put(url, json={"msgtype": "m.text", "body": marker},
                                headers={"Authorization": f"Bearer {self.tokens[user]}"}) as r:
                if r.status == 200:
                    self.sent += 1
                    self.send_latencies.append(time.perf_counter() - self.sent_at[marker])
                else:
                    self.errors += 1
        except aiohttp.ClientError:
            self.errors += 1


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _idle_polls(base: str, tokens: list[str], pid: int) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=None)) as http:
        sinces: dict[str, str] = {}

        async def initial(token: str) -> None:
            async with http.get(f"{base}{API}/sync", headers={
                    "Authorization": f"Bearer {token}"}) as r:
                sinces[token] = (await r.json())["next_batch"]

        for first in range(0, len(tokens), 200):
            await asyncio.gather(*(initial(t) for t in tokens[first:first + 200]))
        await asyncio.sleep(2)
        before = _rss_kib(pid)

        async def poll(token: str) -> None:
            async with http.get(f"{base}{API}/sync", headers={
                    "Authorization": f"Bearer {token}"}, params={
                    "since": sinces[token], "timeout": "60000"}) as r:
                await r.read()

        polls = [asyncio.create_task(poll(t)) for t in tokens]
        await asyncio.sleep(15)  # every poll connected and waiting
        after = _rss_kib(pid)
        done = sum(p.done() for p in polls)
        print(f"idle: {len(tokens)} long-polls open ({done} returned early), server RSS "
              f"{before / 1024:.1f} MiB -> {after / 1024:.1f} MiB: "
              f"{(after - before) / len(tokens):.1f} KiB per idle /sync")
        for p in polls:
            p.cancel()
        await asyncio.gather(*polls, return_exceptions=True)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        port = _free_port()
        config = _write_config(folder, url, port)
        tokens, room_of, idle_tokens = await _prepare(config, args.users, args.room_size,
                                                      args.idle)
        command = [sys.executable, "-m", "conf.cli", "--config", str(config), "serve"]
        server = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                  stderr=subprocess.DEVNULL if not args.verbose else None)
        base = f"http://127.0.0.1:{port}"
        try:
            await _wait_until_up(base, server)
            pid = server.pid
            load = Load(base, tokens, room_of)
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(
                    total=None)) as http:
                ready = [asyncio.Event() for _ in room_of]
                loops = [asyncio.create_task(load.sync_loop(http, user, event))
                         for user, event in zip(room_of, ready, strict=True)]
                await asyncio.gather(*(e.wait() for e in ready))
                await asyncio.sleep(1)
                rss_start = _rss_kib(pid)
                spy = None
                if args.profile:  # attached for the load phase only
                    fmt = "raw" if args.profile.endswith(".txt") else "flamegraph"
                    spy = subprocess.Popen([
                        str(Path(sys.executable).with_name("py-spy")), "record", "-p",
                        str(pid), "-o", args.profile, "-f", fmt, "-r", "200", "-d",
                        str(int(args.seconds))], stdout=subprocess.DEVNULL)
                elapsed = await load.send_loop(http, args.rate, args.seconds)
                if spy is not None:
                    await asyncio.to_thread(spy.wait)
                await asyncio.sleep(2)  # the last deliveries
                load.running = False
                for loop in loops:
                    loop.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
            expected = load.sent * (args.room_size - 1)
            print(f"load: {len(room_of)} users in {len(room_of) // args.room_size} rooms, "
                  f"{load.sent} messages in {elapsed:.1f} s = {load.sent / elapsed:.1f} msg/s "
                  f"(target {args.rate}/s), {len(load.latencies)}/{expected} deliveries = "
                  f"{len(load.latencies) / elapsed:.0f}/s, errors {load.errors}")
            if load.latencies:
                print(f"send -> /sync delivery: p50 {_ms(load.latencies, 0.5):.1f} ms, "
                      f"p99 {_ms(load.latencies, 0.99):.1f} ms, max "
                      f"{max(load.latencies) * 1000:.1f} ms, mean "
                      f"{statistics.mean(load.latencies) * 1000:.1f} ms")
            if load.send_latencies:
                print(f"send request: p50 {_ms(load.send_latencies, 0.5):.1f} ms, p99 "
                      f"{_ms(load.send_latencies, 0.99):.1f} ms")
            print(f"server RSS during load: {rss_start / 1024:.1f} MiB -> "
                  f"{_rss_kib(pid) / 1024:.1f} MiB")
            if idle_tokens:
                await _idle_polls(base, idle_tokens, pid)
        finally:
            stop_processes(server, timeout=30)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--profile", default="",
                        help="py-spy profile of the server to write (.svg, or .txt for "
                             "collapsed stacks)")
    parser.add_argument("--verbose", action="store_true", help="show the server's log")
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
