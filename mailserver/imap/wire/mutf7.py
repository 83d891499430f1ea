"""Modified UTF-7 mailbox names (RFC 3501 5.1.3, kept by RFC 9051 5.1.3)."""

from __future__ import annotations

import base64
import binascii

from mailserver.imap.wire.errors import ParseError


def _is_direct(char: str) -> bool:
    # Printable US-ASCII except "&" represents itself (RFC 3501 5.1.3).
    return 0x20 <= ord(char) <= 0x7E and char != "&"


def encode_mutf7(name: str) -> bytes:
    """Encode a mailbox name to modified UTF-7."""
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be", "surrogatepass")
            out.extend(b"&" + base64.b64encode(utf16).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for char in name:
        if _is_direct(char):
            flush()
            out.extend(char.encode("ascii"))
        elif char == "&":
            flush()
            out.extend(b"&-")
        else:
            pending.append(char)
    flush()
    return bytes(out)


def decode_mutf7(raw: bytes) -> str:
    """Decode a modified UTF-7 mailbox name; ParseError when malformed."""
    out: list[str] = []
    index = 0
    while index < len(raw):
        byte = raw[index]
        if byte != 0x26:  # "&"
            if not 0x20 <= byte <= 0x7E:
                raise ParseError("mailbox name is not modified UTF-7")
            out.append(chr(byte))
            index += 1
            continue
        end = raw.find(b"-", index + 1)
        if end < 0:
            raise ParseError("unterminated modified UTF-7 sequence")
        chunk = raw[index + 1:end]
        index = end + 1
        if not chunk:
            out.append("&")
            continue
        padded = chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4)
        try:
            utf16 = base64.b64decode(padded, validate=True)
            if len(utf16) % 2:
                raise ValueError("odd length")
            out.append(utf16.decode("utf-16-be"))
        except (binascii.Error, ValueError) as error:
            raise ParseError("invalid modified UTF-7 sequence") from error
    return "".join(out)
