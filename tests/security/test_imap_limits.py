"""Issue 19.6, IMAP side: nobody holds a connection open before login, and literals
are bounded (RFC 7888 4, RFC 7889), against a running school."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import pytest

from conf.settings import ImapSettings, Settings
from tests.security.conftest import ServedSchool
from tests.support.schools import make_settings

PRELOGIN_TIMEOUT = 2.0
APPENDLIMIT = 256 * 1024


@pytest.fixture(scope="module")
def served_settings(tmp_path_factory: pytest.TempPathFactory,
                    module_database_url: str) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("served") / "schule", module_database_url, imap=ImapSettings(
            prelogin_timeout_seconds=PRELOGIN_TIMEOUT, max_literal_size=APPENDLIMIT))


class Raw:
    """A plaintext IMAP connection driven byte by byte."""

    def __init__(self, served: ServedSchool, *, tls: bool = False) -> None:
        listen = served.settings.listen
        sock = socket.create_connection((served.host, listen.imaps if tls else listen.imap),
                                        timeout=15)
        if tls:
            cafile = str(served.settings.path(served.settings.tls.certificate))
            sock = ssl.create_default_context(cafile=cafile).wrap_socket(
                sock, server_hostname=served.host)
        self.sock = sock
        self.buffer = b""
        assert self.line().startswith(b"* OK")

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buffer)
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def until_tagged(self, tag: bytes) -> list[bytes]:
        lines = []
        while not (lines and lines[-1].startswith(tag + b" ")):
            lines.append(self.line())
        return lines

    def closed(self, timeout: float = 15.0) -> tuple[bool, bytes]:
        """Whether the server closes the connection, and what it said before."""
        self.sock.settimeout(timeout)
        said = self.buffer
        try:
            while chunk := self.sock.recv(65536):
                said += chunk
        except TimeoutError:
            return False, said
        except ConnectionResetError:
            pass
        return True, said

    def close(self) -> None:
        self.sock.close()


def _silent_client(served: ServedSchool) -> tuple[bool, bytes, float]:
    raw = Raw(served)
    start = time.monotonic()
    closed, said = raw.closed(timeout=PRELOGIN_TIMEOUT * 5)
    raw.close()
    return closed, said, time.monotonic() - start


async def test_a_silent_client_before_login_is_closed(served: ServedSchool) -> None:
    closed, said, waited = await asyncio.to_thread(_silent_client, served)
    assert closed and b"* BYE" in said
    assert PRELOGIN_TIMEOUT - 0.5 <= waited < PRELOGIN_TIMEOUT * 4


def _huge_literal_plus(served: ServedSchool) -> tuple[bool, bytes, float]:
    raw = Raw(served)
    start = time.monotonic()
    raw.sock.sendall(b"a1 LOGIN {2147483648+}\r\n" + b"x" * 65536)
    closed, said = raw.closed(timeout=10)
    raw.close()
    return closed, said, time.monotonic() - start


async def test_a_huge_literal_plus_before_login_is_refused_at_once_and_closed(
        served: ServedSchool) -> None:
    closed, said, waited = await asyncio.to_thread(_huge_literal_plus, served)
    assert closed and waited < 5
    assert b"a1 NO [TOOBIG]" in said and b"* BYE" in said


def _synchronizing_too_big(served: ServedSchool) -> list[bytes]:
    raw = Raw(served)
    raw.sock.sendall(b"a1 LOGIN {100000}\r\n")
    reply = raw.until_tagged(b"a1")
    raw.sock.sendall(b"a2 NOOP\r\n")
    reply += raw.until_tagged(b"a2")
    raw.close()
    return reply


async def test_a_synchronizing_literal_too_big_before_login_gets_no_continuation(
        served: ServedSchool) -> None:
    reply = await asyncio.to_thread(_synchronizing_too_big, served)
    assert not any(line.startswith(b"+") for line in reply), reply
    assert reply[0].startswith(b"a1 NO [TOOBIG]") and reply[-1].startswith(b"a2 OK")


def _after_login(served: ServedSchool) -> list[bytes]:
    raw = Raw(served, tls=True)
    user, password = served.address("schueler"), served.password("schueler")
    raw.sock.sendall(f'l LOGIN "{user}" "{password}"\r\n'.encode())
    lines = raw.until_tagged(b"l")
    assert lines[-1].startswith(b"l OK"), lines
    raw.sock.sendall(b"c CAPABILITY\r\n")
    lines += raw.until_tagged(b"c")
    # Over the APPENDLIMIT: refused without a continuation; the session goes on.
    raw.sock.sendall(b"a1 APPEND INBOX {%d}\r\n" % (APPENDLIMIT + 1))
    lines += raw.until_tagged(b"a1")
    # A literal bigger than the pre-login limit is fine now.
    message = b"Subject: gross\r\n\r\n" + b"x" * 20000 + b"\r\n"
    raw.sock.sendall(b"a2 APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    lines += raw.until_tagged(b"a2")
    # After login the pre-login timeout no longer applies.
    time.sleep(PRELOGIN_TIMEOUT * 1.5)
    raw.sock.sendall(b"n NOOP\r\n")
    lines += raw.until_tagged(b"n")
    # And a LITERAL+ over the limit closes the connection.
    raw.sock.sendall(b"a3 APPEND INBOX {%d+}\r\n" % (APPENDLIMIT * 4) + b"y" * 1000)
    closed, said = raw.closed(timeout=10)
    raw.close()
    return [*lines, said, b"closed" if closed else b"open"]


async def test_literal_limits_after_login(served: ServedSchool) -> None:
    lines = await asyncio.to_thread(_after_login, served)
    assert any(b"APPENDLIMIT=%d" % APPENDLIMIT in line for line in lines), lines
    (a1,) = [line for line in lines if line.startswith(b"a1 ")]
    assert a1.startswith(b"a1 NO [TOOBIG]")
    assert not any(line.startswith(b"+") for line in lines)
    (a2,) = [line for line in lines if line.startswith(b"a2 ")]
    assert a2.startswith(b"a2 OK"), lines
    (n,) = [line for line in lines if line.startswith(b"n ")]
    assert n.startswith(b"n OK")
    assert b"a3 NO [TOOBIG]" in lines[-2] and b"* BYE" in lines[-2]
    assert lines[-1] == b"closed"
    assert served.bad_log_lines() == []
