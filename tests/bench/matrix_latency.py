"""Benchmark: latency of one message at low load, as a chat app sees it (matrix-nio).

    python -m tests.bench.matrix_latency [--messages 200] [--pause 0.05] [--send-rate 10]
        [--database-url URL]

A real ``schulhof serve`` subprocess (Matrix only) on a fresh SQLite file (or an
empty PostgreSQL database); two users share a room.  One nio client sends
messages one after another (``--pause`` seconds apart), the other runs nio's
``sync_forever`` long-poll.  Prints the latency from the start of each send to
the moment the other member's /sync delivered it: p50 / p90 / p99 / max, and a
histogram in 10 ms buckets (a timer or batch window in the path shows up as a
second mode), and how many sends the server answered 429 (nio waits
``retry_after_ms`` and resends without telling the caller).

Finding (issue 12): sending back to back, half the messages took ~100 ms.
That mode was the per-user send limit (a token bucket: burst 100, then 10/s,
``matrix.send_messages_per_second``): beyond it every other send got 429 with
``retry_after_ms`` ~90 ms.  Below the limit there is no second mode.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nio import AsyncClient, RoomMessageText

from tests.bench.matrix_sync import _free_port, _ms, _prepare, _wait_until_up, _write_config


class _Count429(logging.Handler):
    """nio logs each 429 it waits out; count them."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "429" in record.getMessage():
            self.count += 1


def _write_rate(config: Path, per_second: float) -> None:
    with config.open("a", encoding="utf-8") as out:
        out.write(f"\n[matrix]\nsend_messages_per_second = {per_second}\n")


async def measure(base: str, tokens: dict[str, str], room_of: dict[str, str],
                  messages: int, pause: float) -> list[float]:
    sender_id, receiver_id = sorted(tokens)[:2]
    room_id = room_of[sender_id]
    assert room_of[receiver_id] == room_id
    sender = AsyncClient(base, sender_id, device_id="BENCH")
    sender.access_token = tokens[sender_id]
    receiver = AsyncClient(base, receiver_id, device_id="BENCH")
    receiver.access_token = tokens[receiver_id]
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    arrived = asyncio.Event()

    async def on_message(room: object, event: RoomMessageText) -> None:
        if event.sender == sender_id and event.body in sent_at:
            latencies.append(time.perf_counter() - sent_at.pop(event.body))
            arrived.set()

    receiver.add_event_callback(on_message, RoomMessageText)
    try:
        await receiver.sync(timeout=0)
        syncing = asyncio.create_task(receiver.sync_forever(timeout=30_000))
        await asyncio.sleep(0.5)
        for n in range(messages):
            body = f"latency {n}"
            arrived.clear()
            sent_at[body] = time.perf_counter()
            await sender.room_send(room_id, "m.room.message", {"msgtype": "m.text",
                                                               "body": body})
            try:
                await asyncio.wait_for(arrived.wait(), 5)
            except TimeoutError:
                print(f"message {n} did not arrive within 5 s")
            await asyncio.sleep(pause)
        syncing.cancel()
        await asyncio.gather(syncing, return_exceptions=True)
    finally:
        await sender.close()
        await receiver.close()
    return latencies


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        port = _free_port()
        config = _write_config(folder, url, port)
        _write_rate(config, args.send_rate)
        tokens, room_of, _ = await _prepare(config, 2, 2, 0)
        command = [sys.executable, "-m", "conf.cli", "--config", str(config), "serve"]
        server = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                  stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            await _wait_until_up(base, server)
            counter = _Count429()
            logging.getLogger("nio").addHandler(counter)
            logging.getLogger("nio").propagate = False
            latencies = await measure(base, tokens, room_of, args.messages, args.pause)
        finally:
            server.terminate()
            server.wait(timeout=30)
    if not latencies:
        raise SystemExit("no message arrived")
    print(f"{len(latencies)} messages, send -> other member's /sync: p50 "
          f"{_ms(latencies, 0.5):.1f} ms, p90 {_ms(latencies, 0.9):.1f} ms, p99 "
          f"{_ms(latencies, 0.99):.1f} ms, max {max(latencies) * 1000:.1f} ms; "
          f"sends answered 429: {counter.count}")
    buckets = collections.Counter(min(int(v * 100), 20) for v in latencies)
    for bucket in sorted(buckets):
        label = f"{bucket * 10:>4}-{bucket * 10 + 9} ms" if bucket < 20 else " >=200 ms"
        print(f"  {label}: {'#' * buckets[bucket]}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--pause", type=float, default=0.05)
    parser.add_argument("--send-rate", type=float, default=10.0,
                        help="the server's matrix.send_messages_per_second")
    parser.add_argument("--database-url", default="")
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
