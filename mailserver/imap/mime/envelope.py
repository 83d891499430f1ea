"""ENVELOPE (RFC 3501 7.4.2, RFC 9051 7.5.2) from raw message bytes."""

from __future__ import annotations

from mailserver.imap.mime.addresses import parse_address_list
from mailserver.imap.mime.entity import header_fields, split_header, unfold
from mailserver.imap.mime.types import Envelope

_ENVELOPE_FIELDS = frozenset({b"date", b"subject", b"from", b"sender", b"reply-to", b"to",
                              b"cc", b"bcc", b"in-reply-to", b"message-id"})


def envelope_of_header(header: bytes) -> Envelope:
    """The envelope of a raw header block. Values are raw (encoded-words are
    not decoded) and unfolded; a missing or empty field is NIL, and Sender and
    Reply-To default to From (RFC 3501 7.4.2)."""

    fields: dict[bytes, bytes] = {}
    for field_name, text in header_fields(header):  # one pass, first field wins
        if field_name in _ENVELOPE_FIELDS and field_name not in fields:
            fields[field_name] = text

    def value(name: bytes) -> bytes | None:
        text = fields.get(name.lower())
        if text is None:
            return None
        found = unfold(text.split(b":", 1)[1])
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
