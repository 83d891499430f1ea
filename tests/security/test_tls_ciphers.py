"""Issue 19 point 10: no CBC cipher suite on any TLS listener, TLS 1.2 AEAD and TLS 1.3 work."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from tests.security.conftest import ServedSchool

# The school's certificate has an EC key (federation.keys): the ECDSA suites are the
# ones a client could otherwise get; the first two were on by default.
CBC_SUITES = ["ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384",
              "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA"]
AEAD_SUITES = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
               "ECDHE-ECDSA-CHACHA20-POLY1305"]


def _client(cafile: str, ciphers: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    if ciphers is not None:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers)
    return context


def _starttls_preamble(sock: socket.socket, kind: str) -> None:
    """Bring a plaintext SMTP/IMAP connection to the point where TLS starts."""
    sock.settimeout(10)
    file = sock.makefile("rb")
    if kind == "smtp":
        assert file.readline().startswith(b"220")
        sock.sendall(b"EHLO client.example\r\n")
        while file.readline()[3:4] == b"-":
            pass
        sock.sendall(b"STARTTLS\r\n")
        assert file.readline().startswith(b"220")
    else:
        assert file.readline().startswith(b"* OK")
        sock.sendall(b"a STARTTLS\r\n")
        assert file.readline().startswith(b"a OK")


def _handshake(host: str, port: int, starttls: str | None, context: ssl.SSLContext) -> str:
    """The negotiated cipher's name, or the SSL error's reason."""
    with socket.create_connection((host, port), timeout=10) as raw:
        if starttls:
            _starttls_preamble(raw, starttls)
        try:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                cipher = tls.cipher()
                assert cipher is not None
                return cipher[0]
        except ssl.SSLError as error:
            return f"refused:{error.reason}"


def _listeners(served: ServedSchool) -> dict[str, tuple[int, str | None]]:
    listen = served.settings.listen
    return {"smtp": (listen.smtp, "smtp"), "submission": (listen.submission, "smtp"),
            "submissions": (listen.submissions, None), "imap": (listen.imap, "imap"),
            "imaps": (listen.imaps, None), "webmail": (listen.web, None),
            "matrix-federation": (listen.federation, None)}


async def test_no_cbc_suite_on_any_listener(served: ServedSchool) -> None:
    cafile = str(served.settings.path(served.settings.tls.certificate))
    for name, (port, starttls) in _listeners(served).items():
        for suite in CBC_SUITES:
            try:
                context = _client(cafile, suite)
            except ssl.SSLError:
                continue  # this OpenSSL does not even offer it
            result = await asyncio.to_thread(_handshake, served.host, port, starttls, context)
            assert result.startswith("refused:"), (name, suite, result)
        for suite in AEAD_SUITES:
            result = await asyncio.to_thread(_handshake, served.host, port, starttls,
                                             _client(cafile, suite))
            assert result == suite, (name, suite, result)
        result = await asyncio.to_thread(_handshake, served.host, port, starttls,
                                         _client(cafile, None))
        assert result.startswith("TLS_"), (name, result)  # TLS 1.3
    assert served.bad_log_lines() == [], served.log()[-3000:]


@pytest.mark.parametrize("suite", CBC_SUITES[:2])
def test_the_server_context_offers_no_cbc(suite: str, tmp_path: Path) -> None:
    """The one place the listeners' context is built (federation.tls)."""
    from federation.keys import make_self_signed_certificate
    from federation.tls import server_tls_context

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed_certificate(cert, key, ["localhost"])
    names = {c["name"] for c in server_tls_context(str(cert), str(key)).get_ciphers()}
    assert suite not in names
    assert set(AEAD_SUITES) <= names
