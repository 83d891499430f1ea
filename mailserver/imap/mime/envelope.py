"""ENVELOPE (RFC 3501 7.4.2, RFC 9051 7.5.2) from raw message bytes."""

from __future__ import annotations

from mailserver.imap.mime.addresses import parse_address_list
from mailserver.imap.mime.entity import header_value, split_header
from mailserver.imap.mime.types import Envelope


def envelope_of_header(header: bytes) -> Envelope:
    """The envelope of a raw header block. Values are raw (encoded-words are
    not decoded) and unfolded; a missing or empty field is NIL, and Sender and
    Reply-To default to From (RFC 3501 7.4.2)."""

    def value(name: bytes) -> bytes | None:
        found = header_value(header, name)
        return found if found else None

    from_ = parse_address_list(value(b"From"))
    sender = parse_address_list(value(b"Sender")) or from_
    reply_to = parse_address_list(value(b"Reply-To")) or from_
    return Envelope(
        date=value(b"Date"),
        subject=value(b"Subject"),
        from_=from_,
        sender=sender,
        reply_to=reply_to,
        to=parse_address_list(value(b"To")),
        cc=parse_address_list(value(b"Cc")),
        bcc=parse_address_list(value(b"Bcc")),
        in_reply_to=value(b"In-Reply-To"),
        message_id=value(b"Message-ID"),
    )


def envelope(message: bytes) -> Envelope:
    """ENVELOPE of a whole message."""
    return envelope_of_header(split_header(message)[0])
