"""Benchmark: CPU the messenger spends, in-process and without HTTP, on (1) the
send path of a message and (2) each idle sliding sync long-poll's Python memory.

    python -m tests.bench.matrix_cpu [send|idle] [--count N]

Figures a busy shared machine distorts little (CPU time and allocation sizes,
not latency), so they compare two checkouts run one after the other:

* ``send``: 200 users in 20 school rooms of 10; messages sent two at a time
  (the writer's batches) through the room service, with the unread counts,
  push-rule evaluation and the push sender as ``schulhof serve`` wires them.
  Prints the process CPU (all threads) per message for three rounds of 600.
* ``idle``: ``--count`` devices open a sliding sync connection and then a
  long-poll against a server on loopback in this process; tracemalloc's
  difference before and after the long-polls, server-side tracebacks only,
  per waiting long-poll, with the largest allocation sites.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import os
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

import aiohttp

from conf.app import School
from messenger.server import MatrixServer
from tests.bench.matrix_sync import DOMAIN, _free_port, _prepare, _write_config
from tests.bench.sliding_sync import SS, room_list


async def _server(config: Path) -> tuple[School, MatrixServer]:
    from conf.settings import load_settings
    from federation.http_guard import HttpLimits
    from messenger.limits import MessengerLimits

    school = await School.open(load_settings(config))
    server = MatrixServer(db=school.db, directory=school.directory,
                          authenticator=school.authenticator, server_name=DOMAIN,
                          bind="127.0.0.1", port=0, limits=MessengerLimits(),
                          group_sync_interval=None,
                          http_limits=HttpLimits(max_connections_per_ip=0))
    return school, server


async def send_path(folder: Path) -> None:
    config = _write_config(folder, f"sqlite+aiosqlite:///{folder / 'bench.db'}", _free_port())
    tokens, room_of, _ = await _prepare(config, 200, 10, 0)
    school, server = await _server(config)
    await server.push.start()
    try:
        who = {user: await server.sessions.requester(token) for user, token in tokens.items()}
        users = list(room_of)
        rng = random.Random(1)
        sent = 0

        async def two() -> None:
            nonlocal sent
            sends = []
            for _ in range(2):
                user = rng.choice(users)
                sent += 1
                sends.append(server.rooms.send(who[user], room_of[user], "m.room.message", {
                    "msgtype": "m.text", "body": f"bench {sent}"}, txn_id=f"t{sent}"))
            await asyncio.gather(*sends)

        for _ in range(50):  # warm-up: caches, rulesets, room heads
            await two()
        rounds = []
        for _ in range(3):
            started = time.process_time()
            for _ in range(300):
                await two()
            await asyncio.sleep(0.05)  # the push sender's workers
            rounds.append((time.process_time() - started) / 600 * 1000)
        print(f"send path CPU per message (three rounds of 600): "
              f"{' / '.join(f'{r:.2f}' for r in rounds)} ms, lowest {min(rounds):.2f} ms; "
              f"load average {os.getloadavg()[0]:.1f}")
    finally:
        await server.push.stop()
        await school.close()


def _server_side(traceback: tracemalloc.Traceback, client_lines: range) -> bool:
    for frame in traceback:
        name = frame.filename
        if ("aiohttp" in name and "client" in name) or name.endswith("connector.py"):
            return False
        if name == __file__ and frame.lineno in client_lines:
            return False  # the load generator's own coroutines (inside idle_memory)
    return True


async def idle_memory(folder: Path, count: int) -> None:
    config = _write_config(folder, f"sqlite+aiosqlite:///{folder / 'bench.db'}", _free_port())
    _, _, idle = await _prepare(config, 20, 10, count)
    source, first = inspect.getsourcelines(idle_memory)
    client_lines = range(first, first + len(source))
    school, server = await _server(config)
    await server.start()
    body = room_list(1)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=None)) as http:
            positions: dict[str, str] = {}

            async def initial(token: str) -> None:
                async with http.post(f"{server.base_url}{SS}", json=body, headers={
                        "Authorization": f"Bearer {token}"}) as r:
                    positions[token] = (await r.json())["pos"]

            async def poll(token: str) -> None:
                async with http.post(f"{server.base_url}{SS}", json=body, headers={
                        "Authorization": f"Bearer {token}"}, params={
                        "pos": positions[token], "timeout": "120000"}) as r:
                    await r.read()

            for first in range(0, count, 50):
                await asyncio.gather(*(initial(t) for t in idle[first:first + 50]))
            await asyncio.sleep(1)
            gc.collect()
            tracemalloc.start(25)
            before = tracemalloc.take_snapshot()
            polls = [asyncio.create_task(poll(t)) for t in idle]
            for _ in range(120):
                await asyncio.sleep(1)
                if server.notifier.waiting_count >= count:
                    break
            await asyncio.sleep(2)
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            waiting = server.notifier.waiting_count
            total = 0
            sites: dict[str, int] = {}
            for stat in after.compare_to(before, "traceback"):
                if stat.size_diff <= 0 or not _server_side(stat.traceback, client_lines):
                    continue
                total += stat.size_diff
                frame = stat.traceback[-1]
                site = f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
                sites[site] = sites.get(site, 0) + stat.size_diff
            print(f"idle: {waiting}/{count} long-polls waiting; server-side Python allocations "
                  f"per waiting long-poll {total / count / 1024:.2f} KiB (tracemalloc; RSS "
                  f"adds the allocator's overhead); load average {os.getloadavg()[0]:.1f}")
            for site, size in sorted(sites.items(), key=lambda kv: -kv[1])[:12]:
                print(f"  {size / count:7.0f} B  {site}")
            for task in polls:
                task.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
    finally:
        await server.stop()
        await school.close()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if args.part == "send":
            await send_path(Path(tmp))
        else:
            await idle_memory(Path(tmp), args.count)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["send", "idle"])
    parser.add_argument("--count", type=int, default=200, help="idle: long-polls")
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
