"""Issue 19 point 8: a failed TLS handshake is one INFO line, never an ERROR or a traceback."""

from __future__ import annotations

import asyncio
import socket
import ssl
import warnings

import pytest

from tests.security.conftest import ServedSchool


def _tls10_client_hello() -> bytes:
    """A TLS 1.0-only ClientHello record: the server (TLS 1.2+) must refuse it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1
    try:
        context.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    tls = context.wrap_bio(incoming, outgoing)
    try:
        tls.do_handshake()
    except (ssl.SSLWantReadError, ssl.SSLError):
        pass
    hello = outgoing.read()
    # The local OpenSSL may refuse to speak TLS 1.0 at all: then write the record by hand.
    return hello or bytes.fromhex(
        "160301002f0100002b0301" + "00" * 32 + "00" + "0004002f00ff" + "0100")


GARBAGE = {
    "garbage": b"GET / HTTP/1.0\r\n\r\n" + bytes(range(256)) * 4,
    "tls10_hello": _tls10_client_hello(),
    "close_at_once": b"",
}


def _read_reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _starttls_then(host: str, port: int, payload: bytes) -> None:
    with socket.create_connection((host, port), timeout=10) as sock:
        assert _read_reply(sock).startswith(b"220")
        sock.sendall(b"EHLO angreifer.example\r\n")
        assert _read_reply(sock).startswith(b"250")
        sock.sendall(b"STARTTLS\r\n")
        assert _read_reply(sock).startswith(b"220")
        if payload:
            sock.sendall(payload)
            try:
                while sock.recv(4096):
                    pass
            except OSError:
                pass


@pytest.mark.parametrize("payload", list(GARBAGE.values()), ids=list(GARBAGE))
async def test_failed_starttls_handshake_logs_no_error(served: ServedSchool,
                                                       payload: bytes) -> None:
    listen = served.settings.listen
    for port in (listen.smtp, listen.submission):
        for _ in range(3):
            await asyncio.to_thread(_starttls_then, served.host, port, payload)
    await asyncio.sleep(1.0)
    assert served.bad_log_lines() == [], served.log()[-4000:]
    assert "Traceback" not in served.log()


def _starttls_inside_tls(host: str, port: int, cafile: str, payload: bytes) -> bytes:
    """STARTTLS, then STARTTLS again inside TLS, then ``payload``; the second reply."""
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((host, port), timeout=10) as raw:
        assert _read_reply(raw).startswith(b"220")
        raw.sendall(b"EHLO angreifer.example\r\n")
        assert _read_reply(raw).startswith(b"250")
        raw.sendall(b"STARTTLS\r\n")
        assert _read_reply(raw).startswith(b"220")
        with context.wrap_socket(raw, server_hostname=host) as sock:
            sock.sendall(b"EHLO angreifer.example\r\n")
            assert _read_reply(sock).startswith(b"250")
            sock.sendall(b"STARTTLS\r\n")
            reply = _read_reply(sock)
            if reply.startswith(b"220"):
                sock.sendall(payload)
                try:
                    sock.recv(4096)
                except OSError:
                    pass
            return reply


async def test_starttls_inside_tls_is_refused(served: ServedSchool) -> None:
    """A second STARTTLS used to nest TLS and fail with asyncio's ``_abort`` TypeError."""
    cafile = str(served.settings.path(served.settings.tls.certificate))
    listen = served.settings.listen
    for port in (listen.smtp, listen.submission):
        for payload in GARBAGE.values():
            reply = await asyncio.to_thread(_starttls_inside_tls, served.host, port, cafile,
                                            payload or b"x")
            assert reply.startswith(b"554 5.5.1"), reply
    await asyncio.sleep(0.5)
    assert served.bad_log_lines() == [], served.log()[-4000:]


def _imap_starttls_then(host: str, port: int, payload: bytes) -> None:
    with socket.create_connection((host, port), timeout=10) as sock:
        file = sock.makefile("rb")
        assert file.readline().startswith(b"* OK")
        sock.sendall(b"a STARTTLS\r\n")
        assert file.readline().startswith(b"a OK")
        if payload:
            sock.sendall(payload)
            try:
                while sock.recv(4096):
                    pass
            except OSError:
                pass


async def test_failed_imap_starttls_handshake_logs_no_error(served: ServedSchool) -> None:
    for payload in GARBAGE.values():
        await asyncio.to_thread(_imap_starttls_then, served.host, served.settings.listen.imap,
                                payload)
    await asyncio.sleep(0.5)
    assert served.bad_log_lines() == [], served.log()[-4000:]
    assert "event=imap_tls_handshake_failed" in served.log()


def _garbage_to(host: str, port: int, payload: bytes) -> None:
    with socket.create_connection((host, port), timeout=10) as sock:
        if payload:
            sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # nothing more comes: the server sees EOF
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass


async def test_failed_handshakes_on_implicit_tls_ports_log_no_error(
        served: ServedSchool) -> None:
    listen = served.settings.listen
    for port in (listen.submissions, listen.imaps, listen.web, listen.federation):
        for payload in GARBAGE.values():
            await asyncio.to_thread(_garbage_to, served.host, port, payload)
    await asyncio.sleep(0.5)
    assert served.bad_log_lines() == [], served.log()[-4000:]
    assert "Traceback" not in served.log()
