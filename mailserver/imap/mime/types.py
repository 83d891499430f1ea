"""Values of the FETCH MIME views: ENVELOPE and BODYSTRUCTURE
(RFC 3501 7.4.2, RFC 9051 7.5.2). Strings are raw header bytes; None is NIL."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Address:
    """``(name adl mailbox host)``; group start is ``(NIL NIL group NIL)``
    and group end ``(NIL NIL NIL NIL)`` (RFC 3501 7.4.2)."""

    name: bytes | None
    adl: bytes | None
    mailbox: bytes | None
    host: bytes | None


@dataclass(frozen=True)
class Envelope:
    """RFC 3501 7.4.2 ENVELOPE; address lists are None when absent (NIL)."""

    date: bytes | None
    subject: bytes | None
    from_: tuple[Address, ...] | None
    sender: tuple[Address, ...] | None
    reply_to: tuple[Address, ...] | None
    to: tuple[Address, ...] | None
    cc: tuple[Address, ...] | None
    bcc: tuple[Address, ...] | None
    in_reply_to: bytes | None
    message_id: bytes | None


Params = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class Disposition:
    """``body-fld-dsp``: ``("attachment" ("filename" "x"))`` (RFC 2183)."""

    kind: bytes
    params: Params = ()


@dataclass(frozen=True)
class Extension:
    """Extension data (BODYSTRUCTURE only): ``body-ext-1part`` /
    ``body-ext-mpart`` of RFC 9051 9. ``md5`` is only used by single parts."""

    md5: bytes | None = None
    disposition: Disposition | None = None
    language: tuple[bytes, ...] | None = None
    location: bytes | None = None


@dataclass(frozen=True)
class SinglePart:
    """``body-type-1part``: basic, text (``lines``) or message/rfc822
    (``envelope``, ``body``, ``lines``)."""

    type: bytes
    subtype: bytes
    params: Params
    id: bytes | None
    description: bytes | None
    encoding: bytes
    size: int
    lines: int | None = None
    envelope: Envelope | None = None
    body: BodyStructure | None = None
    extension: Extension | None = None


@dataclass(frozen=True)
class MultiPart:
    """``body-type-mpart``: nested parts and the subtype."""

    parts: tuple[BodyStructure, ...]
    subtype: bytes
    params: Params = ()
    extension: Extension | None = None


BodyStructure = SinglePart | MultiPart
