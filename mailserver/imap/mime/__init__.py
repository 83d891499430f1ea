"""Pure MIME views for IMAP FETCH (RFC 3501 6.4.5 / 7.4.2, RFC 9051 6.4.5 /
7.5.2, RFC 3516): ENVELOPE, BODYSTRUCTURE / BODY, BODY[section], BINARY[]."""

from mailserver.imap.mime.envelope import envelope
from mailserver.imap.mime.sections import (
    UnknownTransferEncoding,
    binary,
    binary_size,
    section,
)
from mailserver.imap.mime.structure import bodystructure
from mailserver.imap.mime.types import (
    Address,
    BodyStructure,
    Disposition,
    Envelope,
    Extension,
    MultiPart,
    SinglePart,
)

__all__ = [
    "Address",
    "BodyStructure",
    "Disposition",
    "Envelope",
    "Extension",
    "MultiPart",
    "SinglePart",
    "UnknownTransferEncoding",
    "binary",
    "binary_size",
    "bodystructure",
    "envelope",
    "section",
]
