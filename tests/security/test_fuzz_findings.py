"""What the fuzz suite (tests/fuzz) found, each reduced to its input, against ``schulhof serve``.

Every test sends the minimal input the fuzzer reported and asserts a clear
protocol answer and a clean log (no ERROR record, no traceback).
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import json
import socket
import ssl
from urllib.parse import quote

from tests.security.conftest import ServedSchool


def _imap(served: ServedSchool) -> imaplib.IMAP4_SSL:
    context = ssl.create_default_context(
        cafile=str(served.settings.path(served.settings.tls.certificate)))
    context.check_hostname = False
    imap = imaplib.IMAP4_SSL(served.host, served.settings.listen.imaps, ssl_context=context,
                             timeout=15)
    imap.login("lehrerin", served.password("lehrerin"))
    return imap


def _fetch_unsupported_items(served: ServedSchool) -> list[tuple[str, bytes]]:
    imap = _imap(served)
    imap.append("INBOX", None, None, b"Subject: x\r\n\r\nHallo\r\n")
    imap.select("INBOX")
    answers = []
    for item in ("EMAILID", "THREADID", "SAVEDATE", "(FLAGS EMAILID)"):
        try:
            typ, data = imap.fetch("1", item)
            answers.append((typ, b" ".join(d for d in data if isinstance(d, bytes))))
        except imaplib.IMAP4.error as error:  # BAD
            answers.append(("BAD", str(error).encode()))
    imap.logout()
    return answers


async def test_fetch_of_parsed_but_unserved_items_is_refused(served: ServedSchool) -> None:
    """Fuzz finding: ``FETCH 1 EMAILID`` (RFC 8474, not advertised) was a NO [SERVERBUG]
    with an ERROR and a traceback in the log; now a plain refusal."""
    answers = await asyncio.to_thread(_fetch_unsupported_items, served)
    for typ, text in answers:
        assert typ in ("NO", "BAD"), answers
        assert b"SERVERBUG" not in text, answers
    assert served.bad_log_lines() == [], served.log()[-4000:]


def _smtp_lines(served: ServedSchool, lines: list[bytes]) -> list[bytes]:
    with socket.create_connection((served.host, served.settings.listen.smtp), timeout=10) as s:
        reader = s.makefile("rb")
        replies = [reader.readline()]
        s.sendall(b"EHLO fuzz.example\r\n")
        while (line := reader.readline())[3:4] == b"-":
            pass
        for line in lines:
            s.sendall(line + b"\r\n")
            replies.append(reader.readline())
        return replies


async def test_smtp_reply_echoing_undecodable_bytes(served: ServedSchool) -> None:
    """Fuzz finding: ``VRFY fuzz1\\xff`` made aiosmtpd echo a surrogate in its reply:
    UnicodeEncodeError, an ERROR with a traceback, and "500 5.5.2 (UnicodeEncodeError)"."""
    replies = await asyncio.to_thread(
        _smtp_lines, served, [b"VRFY fuzz1\xff", b"VRFY a\x00b", b"NOOP"])
    assert replies[1].startswith(b"502 "), replies
    assert b"Error" not in replies[1] and b"\x00" not in replies[2], replies
    assert replies[3].startswith(b"250"), replies
    assert served.bad_log_lines() == [], served.log()[-4000:]


async def _abort_during_rcpt(served: ServedSchool, delay: float) -> None:
    context = ssl.create_default_context(
        cafile=str(served.settings.path(served.settings.tls.certificate)))
    context.check_hostname = False
    reader, writer = await asyncio.open_connection(
        served.host, served.settings.listen.submissions, ssl=context)
    await reader.readline()
    writer.write(b"EHLO fuzz.example\r\n")
    while (await reader.readline())[3:4] == b"-":
        pass
    token = base64.b64encode(f"\0lehrerin\0{served.password('lehrerin')}".encode())
    writer.write(b"AUTH PLAIN " + token + b"\r\n")
    assert (await reader.readline()).startswith(b"235")
    writer.write(b"MAIL FROM:<lehrerin@schule.test>\r\n"
                 + b"".join(b"RCPT TO:<nobody%d@schule.test>\r\n" % i for i in range(3)))
    await writer.drain()
    await asyncio.sleep(delay)
    writer.transport.abort()  # gone while the server looks the recipients up


async def test_client_gone_during_recipient_lookup_logs_no_error(
        served: ServedSchool) -> None:
    """Fuzz finding: a client that disconnects while RCPT is being looked up made
    aiosmtpd cancel the session twice (EOF, then connection lost), cutting off
    SQLAlchemy's close of the interrupted connection: "Task was destroyed but it is
    pending!" (45 ERROR records in 150 such sessions)."""
    for round_ in range(12):
        await asyncio.gather(*(_abort_during_rcpt(served, ((round_ * 3 + k) % 10 + 1) / 1000)
                               for k in range(5)), return_exceptions=True)
    await asyncio.sleep(1.0)
    assert served.bad_log_lines() == [], served.log()[-4000:]


BAD_HTTP_REQUESTS = {
    "too_many_headers": b"GET /_matrix/client/versions HTTP/1.1\r\n" + b"X-A: b\r\n" * 200
    + b"\r\n",
    "bad_chunk": b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n3\r\n{}x\r\nzz\r\n\r\n",
    "bad_content_length": b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: -1\r\n\r\n",
}


async def _raw_http(host: str, port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), 10)
    finally:
        writer.close()


async def test_malformed_http_requests_are_4xx_and_one_info_line(
        served: ServedSchool) -> None:
    """Fuzz finding: aiohttp answered a malformed request with 400 but logged it as
    "ERROR Error handling request" with a traceback (200 headers, a broken chunk)."""
    for name, request in BAD_HTTP_REQUESTS.items():
        answer = await _raw_http(served.host, served.settings.listen.matrix, request)
        assert answer.startswith(b"HTTP/1.") and answer[9:10] == b"4", (name, answer)
    await asyncio.sleep(0.5)
    assert served.bad_log_lines() == [], served.log()[-4000:]
    assert "event=http_bad_request status=400" in served.log()


async def test_matrix_token_that_is_not_ascii_is_unknown(served: ServedSchool) -> None:
    """Fuzz finding: ``Authorization: Bearer \\xff`` was a 500 (UnicodeEncodeError while
    hashing the token); now 401 M_UNKNOWN_TOKEN, as for any token that is not ours."""
    for header in (b"Bearer \xff", b"Bearer \xc3\xbc"):
        answer = await _raw_http(
            served.host, served.settings.listen.matrix,
            b"GET /_matrix/client/v3/account/whoami HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: " + header + b"\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 401"), (header, answer)
        assert b"M_UNKNOWN_TOKEN" in answer, answer
    assert served.bad_log_lines() == [], served.log()[-4000:]


async def test_nul_in_matrix_path_or_query_is_invalid_param(served: ServedSchool) -> None:
    """Fuzz finding (PostgreSQL): ``GET /rooms/{room}/event/%00`` reached the database,
    which cannot hold NUL in text: asyncpg CharacterNotInRepertoireError, a 500."""
    token = await _matrix_login(served, "lehrerin")
    room = quote(await _create_room(served, token), safe="")
    for target in (f"/_matrix/client/v3/rooms/{room}/event/%00",
                   "/_matrix/client/v3/profile/%40a%00b%3Aschule.test",
                   f"/_matrix/client/v3/rooms/{room}/messages?from=%00"):
        answer = await _raw_http(
            served.host, served.settings.listen.matrix,
            f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 400"), (target, answer)
        assert b"M_INVALID_PARAM" in answer, answer
    assert served.bad_log_lines() == [], served.log()[-4000:]


async def _create_room(served: ServedSchool, token: str) -> str:
    answer = await _raw_http(
        served.host, served.settings.listen.matrix,
        b"POST /_matrix/client/v3/createRoom HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nConnection: close\r\n\r\n{}")
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["room_id"]


async def _matrix_login(served: ServedSchool, login: str) -> str:
    body = json.dumps({"type": "m.login.password", "password": served.password(login),
                       "identifier": {"type": "m.id.user", "user": login}}).encode()
    answer = await _raw_http(
        served.host, served.settings.listen.matrix,
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        b"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["access_token"]


async def test_unstorable_json_strings_are_bad_json(served: ServedSchool) -> None:
    """Fuzz finding: ``PUT .../tags/m.favourite`` with ``{"\\ud800": 1}`` was a 500
    (a lone surrogate cannot be encoded); ``"\\u0000"`` cannot be stored in PostgreSQL."""
    token = await _matrix_login(served, "lehrerin")
    room = quote(await _create_room(served, token), safe="")
    user = quote("@lehrerin:schule.test", safe="")
    for target, body in (
            (f"/_matrix/client/v3/user/{user}/rooms/{room}/tags/m.favourite", b'{"\\ud800": 1}'),
            (f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t1",
             b'{"msgtype": "m.text", "body": "a\\u0000b"}'),
            (f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t2",
             b'{"msgtype": "m.text", "body": "\\udc00"}')):
        answer = await _raw_http(
            served.host, served.settings.listen.matrix,
            f"PUT {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        assert answer.startswith(b"HTTP/1.1 400"), (target, answer)
        assert b"M_BAD_JSON" in answer, answer
    assert served.bad_log_lines() == [], served.log()[-4000:]


async def test_filter_ids_beyond_the_column_are_not_a_500(served: ServedSchool) -> None:
    """Fuzz finding (PostgreSQL): ``GET /user/{me}/filter/9223372036854775807`` passed the
    64-bit range check but the filter column is 32-bit: asyncpg refused the parameter, a
    500.  No such filter can exist: 404, and ``/sync?filter=`` with it is 400."""
    token = await _matrix_login(served, "lehrerin")
    user = quote("@lehrerin:schule.test", safe="")
    for target, status, errcode in (
            (f"/_matrix/client/v3/user/{user}/filter/9223372036854775807", b"404",
             b"M_NOT_FOUND"),
            (f"/_matrix/client/v3/user/{user}/filter/2147483648", b"404", b"M_NOT_FOUND"),
            ("/_matrix/client/v3/sync?filter=2147483648", b"400", b"M_INVALID_PARAM")):
        answer = await _raw_http(
            served.host, served.settings.listen.matrix,
            f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 " + status), (target, answer)
        assert errcode in answer, answer
    assert served.bad_log_lines() == [], served.log()[-4000:]


async def test_send_racing_a_logout_is_refused_not_a_500(served: ServedSchool) -> None:
    """Fuzz finding: a ``PUT /send/...`` committed while ``/logout`` deleted its device
    failed on the transaction id's foreign key (IntegrityError, a 500 for the whole
    batch).  Each racing send is either stored or 401 M_UNKNOWN_TOKEN."""
    creator = await _matrix_login(served, "lehrerin")
    room = quote(await _create_room(served, creator), safe="")
    statuses: list[bytes] = []
    for round_ in range(15):
        token = await _matrix_login(served, "lehrerin")

        async def send(n: int, token: str = token, round_: int = round_) -> bytes:
            body = b'{"msgtype": "m.text", "body": "x"}'
            answer = await _raw_http(
                served.host, served.settings.listen.matrix,
                f"PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/r{round_}-{n} "
                f"HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            return answer[9:12]

        async def logout(token: str = token, round_: int = round_) -> bytes:
            await asyncio.sleep(0.001 * (round_ % 5))
            answer = await _raw_http(
                served.host, served.settings.listen.matrix,
                f"POST /_matrix/client/v3/logout HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {token}\r\nContent-Length: 2\r\n"
                "Connection: close\r\n\r\n{}".encode())
            return answer[9:12]

        statuses += await asyncio.gather(*(send(n) for n in range(5)), logout())
    assert set(statuses) <= {b"200", b"401"}, statuses
    assert served.bad_log_lines() == [], served.log()[-4000:]
