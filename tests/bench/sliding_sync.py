"""Benchmark: simplified sliding sync (MSC4186) delivery under load, an initial
sliding sync of a user in many rooms, and the memory of idle connections.

    python -m tests.bench.sliding_sync [--users 200] [--room-size 10] [--rate 100]
        [--seconds 20] [--idle 2000] [--big-rooms 50] [--database-url URL]
        [--no-load] [--initial-during-load] [--initial-runs 20] [--profile-initial FILE]

The server is a real ``schulhof serve`` subprocess (Matrix only) on a fresh
SQLite file or ``--database-url``; accounts, school rooms and tokens are made
as in ``tests.bench.matrix_sync``.

1. Every user keeps a sliding sync connection long-polling (one list, ranges
   [0, 19], Element X's required_state, timeline_limit 10); messages are sent
   at ``--rate`` for ``--seconds`` by random users into their room.  Prints
   the latency from the start of the send request to the moment a sliding sync
   response carrying the message reached each other member: p50 / p99 / max.
2. One user joins ``--big-rooms`` rooms (created over the API, a message in
   each); then the time of an initial sliding sync (no pos) of the room list
   with the rooms in range: p50 / p99 over ``--initial-runs`` runs, after
   part 1 (``--no-load``: without it; ``--initial-during-load``: while part 1
   sends, its rooms made before, and then again after part 1).
3. ``--idle`` further devices each open a connection (initial request) and
   then a long-poll with its pos; the server's RSS delta divided by the count
   is the memory per idle sliding sync connection.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.bench.matrix_sync import (
    API,
    _free_port,
    _ms,
    _prepare,
    _rss_kib,
    _wait_until_up,
    _write_config,
)
from tests.support.processes import stop_processes

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
REQUIRED_STATE = [["m.room.encryption", ""], ["m.room.member", "$LAZY"],
                  ["m.room.member", "$ME"], ["m.room.name", ""], ["m.room.avatar", ""],
                  ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
                  ["m.room.join_rules", ""], ["m.room.create", ""]]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def room_list(limit: int, end: int = 19) -> dict[str, Any]:
    return {"lists": {"all": {"ranges": [[0, end]], "timeline_limit": limit,
                              "required_state": REQUIRED_STATE}},
            "extensions": {"e2ee": {"enabled": True}, "to_device": {"enabled": True},
                           "account_data": {"enabled": True},
                           "receipts": {"enabled": True}, "typing": {"enabled": True}}}


class Load:
    def __init__(self, base: str, tokens: dict[str, str], room_of: dict[str, str]) -> None:
        self.base = base
        self.tokens = tokens
        self.room_of = room_of
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.send_latencies: list[float] = []
        self.sent = 0
        self.errors = 0
        self.running = True

    async def sliding_loop(self, http: aiohttp.ClientSession, user: str,
                           first: asyncio.Event) -> None:
        auth = {"Authorization": f"Bearer {self.tokens[user]}"}
        body = room_list(10)
        async with http.post(f"{self.base}{SS}", json=body, headers=auth) as r:
            pos = (await r.json())["pos"]
        first.set()
        while self.running:
            try:
                async with http.post(f"{self.base}{SS}", json=body, headers=auth, params={
                        "pos": pos, "timeout": "30000"}) as r:
                    data = await r.json()
            except (TimeoutError, aiohttp.ClientError):
                self.errors += 1
                continue
            now = time.perf_counter()
            if "pos" not in data:
                self.errors += 1
                continue
            pos = data["pos"]
            for room in data.get("rooms", {}).values():
                for event in room.get("timeline", []):
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
            while n < int(elapsed * rate):
                pending.add(asyncio.create_task(self._send(http, random.choice(users), n)))
                n += 1
            await asyncio.sleep(0.002)
        if pending:
            await asyncio.wait(pending)
        return time.perf_counter() - started

    async def _send(self, http: aiohttp.ClientSession, user: str, n: int) -> None:
        marker = f"bench {n}"
        self.sent_at[marker] = time.perf_counter()
        url = f"{self.base}{API}/rooms/{self.room_of[user]}/send/m.room.message/s{n}"
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


async def _big_rooms(http: aiohttp.ClientSession, base: str, tokens: dict[str, str],
                     rooms: int) -> None:
    """The first user joins ``rooms`` rooms, each with two other members and a message."""
    users = list(tokens)
    me, others = users[0], users[1:4]

    async def call(method: str, path: str, token: str, body: Any) -> Any:
        while True:  # the server's rate limits apply to this setup too: wait them out
            async with http.request(method, f"{base}{API}{path}", json=body, headers={
                    "Authorization": f"Bearer {token}"}) as r:
                data = await r.json()
            if r.status != 429:
                assert r.status == 200, (path, r.status, data)
                return data
            await asyncio.sleep(data.get("retry_after_ms", 500) / 1000)

    for n in range(rooms):
        room_id = (await call("POST", "/createRoom", tokens[me], {
            "name": f"Raum {n}", "invite": others}))["room_id"]
        for other in others[:2]:
            await call("POST", f"/join/{room_id}", tokens[other], {})
        await call("PUT", f"/rooms/{room_id}/send/m.room.message/big{n}", tokens[me],
                   {"msgtype": "m.text", "body": f"m{n}"})


async def _big_initial_sync(http: aiohttp.ClientSession, base: str, tokens: dict[str, str],
                            rooms: int, runs: int, pid: int, during: str = "") -> None:
    """The time of an initial sliding sync of the first user's ``rooms`` rooms, and
    the server's CPU time per sync (all of the server's: alone only without load;
    less sensitive than the time to other processes on a loaded machine)."""
    auth = {"Authorization": f"Bearer {tokens[next(iter(tokens))]}"}
    body = room_list(1, end=rooms - 1)
    times = []
    count = 0
    cpu_start = _cpu_seconds(pid)
    for _ in range(runs):
        started = time.perf_counter()
        async with http.post(f"{base}{SS}", json={**body, "conn_id": "big"},
                             headers=auth) as r:
            data = await r.json()
        times.append(time.perf_counter() - started)
        count = len(data["rooms"])
    cpu = (_cpu_seconds(pid) - cpu_start) / runs
    print(f"initial sliding sync of a user in {count} rooms{during} (timeline_limit 1, "
          f"Element X's required_state, five extensions): p50 {_ms(times, 0.5):.1f} ms, "
          f"p99 {_ms(times, 0.99):.1f} ms, mean {statistics.mean(times) * 1000:.1f} ms "
          f"({runs} runs); server CPU {cpu * 1000:.1f} ms per sync")


async def _idle_connections(base: str, tokens: list[str], pid: int) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=None)) as http:
        positions: dict[str, str] = {}
        body = room_list(1)
        await asyncio.sleep(2)
        before = _rss_kib(pid)

        async def initial(token: str) -> None:
            async with http.post(f"{base}{SS}", json=body, headers={
                    "Authorization": f"Bearer {token}"}) as r:
                positions[token] = (await r.json())["pos"]

        for first in range(0, len(tokens), 100):
            await asyncio.gather(*(initial(t) for t in tokens[first:first + 100]))

        async def poll(token: str) -> None:
            async with http.post(f"{base}{SS}", json=body, headers={
                    "Authorization": f"Bearer {token}"}, params={
                    "pos": positions[token], "timeout": "60000"}) as r:
                await r.read()

        await asyncio.sleep(2)
        connected = _rss_kib(pid)
        polls = [asyncio.create_task(poll(t)) for t in tokens]
        await asyncio.sleep(15)  # every poll connected and waiting
        after = _rss_kib(pid)
        done = sum(p.done() for p in polls)
        n = len(tokens)
        print(f"idle: {n} sliding sync connections long-polling ({done} returned early), "
              f"server RSS {before / 1024:.1f} MiB -> {connected / 1024:.1f} MiB after the "
              f"initial requests -> {after / 1024:.1f} MiB with the long-polls open: "
              f"{(after - before) / n:.1f} KiB per idle connection "
              f"({(connected - before) / n:.1f} KiB connection state and first response, "
              f"{(after - connected) / n:.1f} KiB the waiting request)")
        for p in polls:
            p.cancel()
        await asyncio.gather(*polls, return_exceptions=True)


def _spy(output: str, pid: int, seconds: float | None) -> subprocess.Popen[bytes] | None:
    """py-spy recording the server's collapsed stacks into ``output`` ("": none)."""
    if not output:
        return None
    command = [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid),
               "-o", output, "-f", "raw", "-r", "100"]
    if seconds is not None:
        command += ["-d", str(int(seconds))]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    time.sleep(1)  # attached before the work starts
    return spy


async def _load_phase(http: aiohttp.ClientSession, load: Load, args: argparse.Namespace,
                      server: subprocess.Popen[bytes], tokens: dict[str, str],
                      during: bool) -> None:
    """Part 1 (and with ``during``, part 2 at the same time)."""
    pid = server.pid
    ready = [asyncio.Event() for _ in load.room_of]
    loops = [asyncio.create_task(load.sliding_loop(http, user, event))
             for user, event in zip(load.room_of, ready, strict=True)]
    everyone = asyncio.ensure_future(asyncio.gather(*(e.wait() for e in ready)))
    while not everyone.done():  # a server that died or a failed poll ends the run
        await asyncio.wait([everyone, *loops], timeout=1,
                           return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in loops if t.done()]
        if server.poll() is not None or failed:
            everyone.cancel()
            raise SystemExit(f"the server exited ({server.poll()}) or a poll "
                             f"failed: {failed[0].exception() if failed else ''}")
    await asyncio.sleep(1)
    # collapsed stacks of the server during the load phase
    spy = _spy(args.profile, pid, args.seconds)
    cpu_start = _cpu_seconds(pid)
    initial = None
    if during:
        initial = asyncio.create_task(_big_initial_sync(
            http, load.base, tokens, args.big_rooms, args.initial_runs, pid,
            f" during the load ({args.rate:g} msgs/s)"))
    elapsed = await load.send_loop(http, args.rate, args.seconds)
    cpu = _cpu_seconds(pid) - cpu_start
    if spy is not None:
        await asyncio.to_thread(spy.wait)
    if initial is not None:
        await initial
    await asyncio.sleep(2)
    load.running = False
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    expected = load.sent * (args.room_size - 1)
    print(f"load: {len(load.room_of)} users in {len(load.room_of) // args.room_size} rooms "
          f"on sliding sync, {load.sent} messages in {elapsed:.1f} s = "
          f"{load.sent / elapsed:.1f} msg/s (target {args.rate}/s), "
          f"{len(load.latencies)}/{expected} deliveries, errors {load.errors}")
    print(f"server CPU during the load: {cpu:.1f} s in {elapsed:.1f} s "
          f"({100 * cpu / elapsed:.0f}% of one core)")
    if load.latencies:
        print(f"send -> sliding sync delivery: p50 {_ms(load.latencies, 0.5):.1f} "
              f"ms, p99 {_ms(load.latencies, 0.99):.1f} ms, max "
              f"{max(load.latencies) * 1000:.1f} ms")
    if load.send_latencies:
        print(f"send request alone: p50 {_ms(load.send_latencies, 0.5):.1f} ms, "
              f"p99 {_ms(load.send_latencies, 0.99):.1f} ms")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        port = _free_port()
        config = _write_config(folder, url, port)
        text = config.read_text(encoding="utf-8")
        with config.open("a", encoding="utf-8") as toml:
            # (matrix_sync's config sets federation = -1 and [metrics] port = -1)
            if "[http]" not in text:  # thousands of connections from this one address
                toml.write("[http]\nmax_connections_per_ip = 0\n")
        tokens, room_of, idle_tokens = await _prepare(config, args.users, args.room_size,
                                                      args.idle)
        # The port is chosen again now: in the setup's seconds another process on
        # this machine may have taken the first (the server then exits, and the
        # other process's server answered instead).
        port = _free_port()
        config.write_text(re.sub(r"^matrix = \d+$", f"matrix = {port}",
                                 config.read_text(encoding="utf-8"), flags=re.M),
                          encoding="utf-8")
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
                during = args.initial_during_load and args.big_rooms and not args.no_load
                if during:  # the rooms first: part 2 then runs while part 1's messages flow
                    await _big_rooms(http, base, tokens, args.big_rooms)
                if not args.no_load:
                    await _load_phase(http, load, args, server, tokens, during)
                if args.big_rooms:  # (again) on a quiet server
                    if not during:
                        await _big_rooms(http, base, tokens, args.big_rooms)
                    spy = _spy(args.profile_initial, pid, None)
                    await _big_initial_sync(http, base, tokens, args.big_rooms,
                                            args.initial_runs, pid,
                                            " (no load)" if during else "")
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)  # py-spy then writes its output
                        await asyncio.to_thread(spy.wait)
            if idle_tokens:
                await _idle_connections(base, idle_tokens, pid)
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
    parser.add_argument("--big-rooms", type=int, default=50)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--profile", default="", help="py-spy collapsed stacks to write")
    parser.add_argument("--no-load", action="store_true",
                        help="skip part 1 (no long-polls, no messages)")
    parser.add_argument("--initial-during-load", action="store_true",
                        help="part 2's initial syncs while part 1's messages are sent "
                             "(its rooms made before the load), and again after it")
    parser.add_argument("--initial-runs", type=int, default=20,
                        help="initial syncs timed in part 2")
    parser.add_argument("--profile-initial", default="",
                        help="py-spy collapsed stacks of part 2 to write")
    parser.add_argument("--verbose", action="store_true", help="show the server's log")
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
