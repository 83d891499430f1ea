"""Issue 19 point 6 (HTTP side): slow clients cannot hold Matrix connections.

Raw sockets against a running school whose ``[http]`` limits are short: a
connection that sends nothing, half a header section, a trickle of header
bytes or half a body is closed within the configured timeout; a client
address gets only ``max_connections_per_ip`` connections; a long-poll /sync,
where the *server* waits, is not cut.  The federation listener (TLS) has the
same guard."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from conf.app import School
from conf.settings import HttpSettings, Settings
from directory.model import Role
from messenger.federation_listener import FederationListener
from tests.security.matrix_client import PASSWORD, V3, RawClient, matrix_server
from tests.support.schools import make_settings

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
PER_IP = 4
SLACK = 2.0  # scheduling on a busy test machine


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "school", database_url, http=HttpSettings(
        header_timeout_seconds=HEADER_TIMEOUT, body_timeout_seconds=BODY_TIMEOUT,
        min_body_bytes_per_second=16, keepalive_timeout_seconds=5.0,
        max_connections_per_ip=PER_IP))


@pytest.fixture
async def address(running_school: School) -> AsyncIterator[tuple[str, int]]:
    server = matrix_server(running_school)
    assert server.bound_port is not None
    yield server.bind, server.bound_port


async def _closed_after(reader: asyncio.StreamReader, within: float) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent before."""
    start = time.monotonic()
    received = await asyncio.wait_for(reader.read(), within)  # read() ends at EOF
    return time.monotonic() - start, received


async def _connect(address: tuple[str, int]) -> tuple[asyncio.StreamReader,
                                                       asyncio.StreamWriter]:
    return await asyncio.open_connection(*address)


async def test_a_silent_connection_is_closed(address: tuple[str, int]) -> None:
    reader, writer = await _connect(address)
    took, sent = await _closed_after(reader, HEADER_TIMEOUT + SLACK)
    assert took >= HEADER_TIMEOUT * 0.8 and sent.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_partial_headers_are_closed_with_408(address: tuple[str, int]) -> None:
    reader, writer = await _connect(address)
    writer.write(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: schule.test\r\nX-A: b\r\n")
    _, sent = await _closed_after(reader, HEADER_TIMEOUT + SLACK)
    assert sent.startswith(b"HTTP/1.1 408"), sent
    writer.close()


async def test_trickled_headers_do_not_extend_the_deadline(address: tuple[str, int]) -> None:
    reader, writer = await _connect(address)
    start = time.monotonic()
    writer.write(b"GET /_matrix/client/versions HTTP/1.1\r\n")

    async def trickle() -> None:
        for _ in range(40):
            await asyncio.sleep(0.2)
            writer.write(b"X")  # one more byte of a never-ending header line

    feeder = asyncio.create_task(trickle())
    try:
        await asyncio.wait_for(reader.read(), HEADER_TIMEOUT + SLACK)
    finally:
        feeder.cancel()
    assert time.monotonic() - start < HEADER_TIMEOUT + SLACK
    writer.close()


async def test_a_partial_body_is_closed(address: tuple[str, int]) -> None:
    reader, writer = await _connect(address)
    writer.write(b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: schule.test\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"type\":")
    took, _ = await _closed_after(reader, BODY_TIMEOUT + SLACK)
    assert took >= BODY_TIMEOUT * 0.8
    writer.close()


async def test_one_address_gets_only_its_share_of_connections(
        address: tuple[str, int]) -> None:
    held = [await _connect(address) for _ in range(PER_IP)]
    for _, writer in held:
        writer.write(b"GET /_matrix/client/versions HTTP/1.1\r\n")  # busy, not silent
    await asyncio.sleep(0.1)
    reader, writer = await _connect(address)
    refused = await asyncio.wait_for(reader.read(), SLACK)
    assert refused.startswith(b"HTTP/1.1 503"), refused
    writer.close()
    for _, w in held:
        w.close()
    await asyncio.sleep(HEADER_TIMEOUT / 2)
    # Their slots are free again once they are gone.
    reader, writer = await _connect(address)
    writer.write(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n"
                 b"Connection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), SLACK)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    writer.close()


async def test_long_polls_and_steady_clients_are_not_cut(running_school: School,
                                                         address: tuple[str, int]) -> None:
    await running_school.directory.create_account(role=Role.PUPIL, login="anna",
                                                  password=PASSWORD)
    base = matrix_server(running_school).base_url
    async with aiohttp.ClientSession() as http:
        anna = await RawClient(http, base).login("anna")
        since = (await anna.ok("GET", f"{V3}/sync", params={"timeout": "0"}))["next_batch"]
        start = time.monotonic()
        wait_ms = int((HEADER_TIMEOUT + BODY_TIMEOUT + 0.5) * 1000)
        await anna.ok("GET", f"{V3}/sync", params={"since": since, "timeout": str(wait_ms)})
        assert time.monotonic() - start >= wait_ms / 1000 * 0.9  # the server waited
        # A body that arrives steadily, longer than the idle timeout in total (but
        # within body_timeout + length / min_body_bytes_per_second).
        reader, writer = await _connect(address)
        body = b'{"theme": "dunkel", "font": "gross"}'
        writer.write(f"PUT {V3}/user/{anna.user_id}/account_data/x.settings HTTP/1.1\r\n"
                     f"Host: x\r\nAuthorization: Bearer {anna.token}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        for i in range(0, len(body), 8):
            await asyncio.sleep(BODY_TIMEOUT / 3)
            writer.write(body[i:i + 8])
        answer = await asyncio.wait_for(reader.read(), SLACK)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        writer.close()


async def test_the_federation_listener_times_out_partial_headers_over_tls(
        running_school: School) -> None:
    """The Server-Server port (TLS, raw socket): same guard, same timeout."""
    listener = next(s for s in running_school.services if isinstance(s, FederationListener))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(listener.bind, listener.port, ssl=context)
    writer.write(b"GET /_matrix/key/v2/server HTTP/1.1\r\nHost: schule.test\r\n")
    took, sent = await _closed_after(reader, HEADER_TIMEOUT + SLACK)
    assert sent.startswith(b"HTTP/1.1 408") and took < HEADER_TIMEOUT + SLACK
    writer.close()
