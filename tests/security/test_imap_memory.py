"""Issue 19.8: what an idle IMAP connection over TLS costs the server.

The server's resident memory (``/proc/PID/status`` VmRSS) is read before and
after opening many idle connections; the growth per connection is the figure.
asyncio gives every TLS connection a 256 KiB read buffer, zero-filled and so
resident; mailserver.imap.server shrinks it to one TLS record (16 KiB) and
lets all connections of a server share that one buffer (it only carries a
recv() into the TLS object within one event-loop callback).
Measured on this machine (300 connections, Python 3.11, loaded): 28 KiB for
a TLS connection before login and 36 KiB for one logged in with INBOX
selected in IDLE (44 and 53 KiB with a buffer per connection; issue 14's
target is 50 KiB).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.security.conftest import ServedSchool

CONNECTIONS = 300


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match
    return int(match.group(1))


def _context(served: ServedSchool) -> ssl.SSLContext:
    return ssl.create_default_context(
        cafile=str(served.settings.path(served.settings.tls.certificate)))


async def _tls(served: ServedSchool, writers: list[asyncio.StreamWriter],
               *, idle: bool) -> None:
    reader, writer = await asyncio.open_connection(
        served.host, served.settings.listen.imaps, ssl=_context(served),
        server_hostname=served.host)
    writers.append(writer)
    await reader.readline()
    if idle:
        user, password = served.address("schueler"), served.password("schueler")
        writer.write(f'l LOGIN "{user}" "{password}"\r\ns SELECT INBOX\r\ni IDLE\r\n'.encode())
        while not (await reader.readline()).startswith(b"+"):
            pass


async def per_connection(served: ServedSchool,
                         open_one: Callable[[list[asyncio.StreamWriter]], Awaitable[None]]
                         ) -> float:
    writers: list[asyncio.StreamWriter] = []
    try:
        for _ in range(2):  # warm up: the allocator's arenas, caches, first imports
            await asyncio.gather(*(open_one(writers) for _ in range(25)))
        await asyncio.sleep(1.0)
        before = rss_kib(served.proc.pid)
        for _ in range(CONNECTIONS // 25):
            await asyncio.gather(*(open_one(writers) for _ in range(25)))
        await asyncio.sleep(1.5)
        after = rss_kib(served.proc.pid)
    finally:
        for writer in writers:
            writer.close()
    return (after - before) / CONNECTIONS


async def test_an_idle_tls_connection_costs_under_50_kib(served: ServedSchool) -> None:
    cost = await per_connection(served, lambda w: _tls(served, w, idle=False))
    print(f"idle TLS connection before login: {cost:.1f} KiB")
    assert cost < 50


async def test_a_logged_in_idle_tls_connection_costs_under_50_kib(
        served: ServedSchool) -> None:
    cost = await per_connection(served, lambda w: _tls(served, w, idle=True))
    print(f"TLS connection in IDLE: {cost:.1f} KiB")
    assert cost < 50
