"""Header fields of our stored copy that must not leave with a relayed message.

One stored body serves local recipients and queued remote ones, and the
SMTP layer put our ``Return-Path`` on top of it.  RFC 5321 4.4: the
Return-Path is added by the *final delivery* MTA; "a message-originating
SMTP system SHOULD NOT send a message that already contains a Return-path
header field" (RFC 5322 3.6.7 agrees: it is a trace field of the delivery).
So before a message is DKIM-signed and relayed, every ``Return-Path`` field
is taken out of its header section; ``Received`` fields stay (RFC 5321
4.4: a relay adds its own and never removes the others).

Only the header section is looked at; the body, and the bytes of every
other field (folding included), are passed through untouched, so a DKIM
signature made afterwards covers exactly what is sent.
"""

from __future__ import annotations

# Lower-case field names.  Delivered-To / X-Original-To are written by other
# delivery agents for the same reason; we never add them, but a message we
# relay must not carry a final-delivery claim either.
DELIVERY_ONLY_FIELDS = frozenset({b"return-path", b"delivered-to", b"x-original-to"})


def _field_name(line: bytes) -> bytes | None:
    """The lower-case name of a field line (RFC 5322 2.2: ftext up to ':'), else None."""
    name, colon, _ = line.partition(b":")
    if not colon:
        return None
    return name.rstrip(b" \t").lower()


def strip_delivery_fields(message: bytes,
                          names: frozenset[bytes] = DELIVERY_ONLY_FIELDS) -> bytes:
    """``message`` without the header fields in ``names`` (with their folded lines).

    The header section ends at the first empty line (RFC 5322 2.1); a message
    without one is all header.  Line ends are kept as they are.
    """
    out: list[bytes] = []
    position = 0
    dropping = False
    length = len(message)
    while position < length:
        end = message.find(b"\n", position)
        end = length if end < 0 else end + 1
        line = message[position:end]
        content = line.rstrip(b"\r\n")
        if not content:  # the empty line: the rest is the body
            out.append(message[position:])
            break
        if content[:1] in (b" ", b"\t"):  # a continuation of the previous field
            if not dropping:
                out.append(line)
        else:
            dropping = _field_name(content) in names
            if not dropping:
                out.append(line)
        position = end
    return b"".join(out)
