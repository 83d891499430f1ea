"""Header work on accepted messages: trace fields, submission fix-ups, From addresses.

Pure functions over bytes (no I/O), so they are tested on their own:

* ``trace_headers``: ``Return-Path`` (RFC 5321 4.4, RFC 5322 3.6.7) and
  ``Received`` with the protocol keyword of RFC 3848 / RFC 6531 3.7.3
  (ESMTP, ESMTPS, ESMTPSA, UTF8SMTPS, ...) and the TLS version and cipher in
  a comment (as RFC 8314 section 7.4 suggests);
* ``submission_fixups``: ``Message-ID`` and ``Date`` for submitted messages
  that lack them (RFC 6409 8.2 and 8.3);
* ``from_addresses``: the addresses of the From header field(s), to check
  that a submitting user sends as themselves;
* ``bad_bytes``: NUL, bare CR or bare LF in a message (RFC 5321 2.3.8 and
  4.5.2), which we refuse so nothing we relay can be read two ways (SMTP
  smuggling).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from dataclasses import dataclass

# A header block ends at the first empty line (RFC 5322 2.1).
_HEADER_END = re.compile(rb"\r\n\r\n")
_SAFE_HELO = re.compile(r"[^A-Za-z0-9.:\[\]_-]")
MAX_HEADER_SCAN = 256 * 1024  # header blocks beyond this are not looked at


@dataclass(frozen=True)
class TlsInfo:
    version: str  # "TLSv1.3"
    cipher: str  # "TLS_AES_256_GCM_SHA384"
    bits: int


@dataclass(frozen=True)
class TraceInfo:
    """What the Received field says about one SMTP transaction."""

    helo: str
    client_ip: str
    by_host: str
    queue_id: str
    received_at: dt.datetime
    extended: bool = True
    authenticated: bool = False
    utf8: bool = False
    tls: TlsInfo | None = None
    for_recipient: str | None = None  # only for a single recipient (privacy of Bcc)


def protocol_keyword(*, extended: bool, tls: bool, authenticated: bool, utf8: bool) -> str:
    """The WITH keyword: RFC 3848 (ESMTP/ESMTPS/ESMTPA/ESMTPSA), RFC 6531 3.7.3 (UTF8*)."""
    if not extended:
        return "SMTP"
    base = "UTF8SMTP" if utf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def received_header(info: TraceInfo) -> bytes:
    """``Received:`` per RFC 5321 4.4 (From-domain, TCP-info, By-domain, With, ID, For)."""
    helo = _SAFE_HELO.sub("?", info.helo)[:255] or "unknown"
    lines = [f"Received: from {helo} ([{info.client_ip}])"]
    if info.tls is not None:
        lines.append(f"\t(using {info.tls.version} with cipher {info.tls.cipher} "
                     f"({info.tls.bits} bits))")
    keyword = protocol_keyword(extended=info.extended, tls=info.tls is not None,
                               authenticated=info.authenticated, utf8=info.utf8)
    lines.append(f"\tby {info.by_host} (Schulhof) with {keyword} id {info.queue_id}")
    if info.for_recipient:
        lines.append(f"\tfor <{info.for_recipient}>")
    lines[-1] += ";"
    lines.append("\t" + email.utils.format_datetime(info.received_at))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def return_path_header(reverse_path: str) -> bytes:
    """``Return-Path: <reverse-path>`` (empty brackets for the null sender)."""
    return f"Return-Path: <{reverse_path}>\r\n".encode()


def trace_headers(reverse_path: str, info: TraceInfo) -> bytes:
    """Return-Path then Received, to put in front of the message (RFC 5321 4.4)."""
    return return_path_header(reverse_path) + received_header(info)


def header_block(message: bytes) -> bytes:
    """The header section including its final CRLF (the whole message if it has no body)."""
    match = _HEADER_END.search(message, 0, MAX_HEADER_SCAN)
    if message.startswith(b"\r\n"):
        return b""
    return message[: match.start() + 2] if match else message[:MAX_HEADER_SCAN]


def header_values(block: bytes, name: str) -> list[str]:
    """Unfolded values of every field ``name`` in a header block (RFC 5322 2.2.3)."""
    wanted = name.lower().encode("ascii") + b":"
    values: list[str] = []
    current: list[bytes] | None = None
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)
            continue
        if current is not None:
            values.append(b"".join(current).decode("utf-8", "replace").strip())
            current = None
        if line[: len(wanted)].lower() == wanted:
            current = [line[len(wanted):]]
    if current is not None:
        values.append(b"".join(current).decode("utf-8", "replace").strip())
    return values


def submission_fixups(message: bytes, *, hostname: str, now: dt.datetime,
                      unique: str) -> bytes:
    """Header fields to add to a submitted message: Message-ID and Date if absent."""
    block = header_block(message)
    added = b""
    if not header_values(block, "Message-ID"):
        added += f"Message-ID: <{unique}@{hostname}>\r\n".encode()
    if not header_values(block, "Date"):
        added += f"Date: {email.utils.format_datetime(now)}\r\n".encode()
    return added


def from_addresses(message: bytes) -> list[str] | None:
    """The addr-specs of the From field(s); None when there is no usable From field."""
    values = header_values(header_block(message), "From")
    if not values:
        return None
    pairs = email.utils.getaddresses(values)
    addresses = [address for _name, address in pairs]
    if not addresses or any("@" not in address for address in addresses):
        return None
    return addresses


def bad_bytes(message: bytes) -> str | None:
    """What makes ``message`` unacceptable as SMTP DATA content, or None."""
    if b"\x00" in message:
        return "a NUL byte"
    crlf = message.count(b"\r\n")
    if message.count(b"\n") != crlf:
        return "a bare LF"
    if message.count(b"\r") != crlf:
        return "a bare CR"
    return None
