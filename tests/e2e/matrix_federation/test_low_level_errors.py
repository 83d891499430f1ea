"""Malformed HTTP at the Matrix client and federation listeners, over raw TLS
sockets (no HTTP client in between): a Matrix error object (Client-Server API 3.4),
no ``Server: Python/... aiohttp/...`` banner and no aiohttp default page quoting the
request; ordinary responses carry no banner either."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import ssl

import yarl

from tests.e2e.matrix_federation.conftest import ChatSchool

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /\x00<script>zitat</script> HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nBroken Header\r\n\r\n",
]


async def exchange(host: str, port: int, request: bytes, tls: bool) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(host, port,
                                                   ssl=context if tls else None)
    try:
        writer.write(request)
        await writer.drain()
        answer = b""
        while chunk := await asyncio.wait_for(reader.read(65536), 10):
            answer += chunk
        return answer
    finally:
        writer.close()


def split(answer: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    headers = {line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip()
               for line in head.split(b"\r\n")[1:] if b":" in line}
    return head, headers, body


def listeners(school: ChatSchool) -> list[tuple[str, int, bool]]:
    """The client API (TLS as configured) and the federation listener (always TLS)."""
    client = yarl.URL(school.base_url)
    return [(str(client.host), int(client.port or 0), client.scheme == "https"),
            (school.ip, school.listener.port, True)]


async def test_malformed_requests_get_a_matrix_error_and_no_banner(
        chat_schools: dict[str, ChatSchool]) -> None:
    # One pair of schools for all the requests (a set-up costs seconds); each
    # assertion names the listener's port and shows the answer.
    for request_bytes, (host, port, tls) in itertools.product(
            MALFORMED, listeners(chat_schools["a"])):
        answer = await exchange(host, port, request_bytes, tls)
        head, headers, body = split(answer)
        assert re.match(rb"HTTP/1\.[01] 4\d\d ", head), (port, answer[:300])
        lowered = answer.lower()
        assert b"aiohttp" not in lowered and b"python" not in lowered, (port, answer[:400])
        assert b"zitat" not in lowered and b"garbage" not in lowered, (port, answer[:400])
        assert headers.get(b"server") == b"Schulhof", (port, head)
        assert headers.get(b"content-type", b"").startswith(b"application/json"), head
        error = json.loads(body)
        assert error["errcode"] in {"M_UNRECOGNIZED", "M_TOO_LARGE"}, error


async def test_ordinary_responses_carry_no_version_banner(
        chat_schools: dict[str, ChatSchool]) -> None:
    client, federation = listeners(chat_schools["a"])
    for (host, port, tls), path in ((client, b"/_matrix/client/versions"),
                                    (federation, b"/_matrix/federation/v1/version"),
                                    (client, b"/gibt/es/nicht")):
        answer = await exchange(host, port, b"GET " + path + b" HTTP/1.1\r\nHost: a.test\r\n"
                                b"Connection: close\r\n\r\n", tls)
        head, headers, _ = split(answer)
        assert headers.get(b"server") == b"Schulhof", (path, head)
        assert b"aiohttp" not in answer.lower(), (path, answer[:400])
