"""The IMAP wire layer: bytes <-> typed values, no I/O (RFC 3501, RFC 9051)."""

from mailserver.imap.wire.errors import ParseError
from mailserver.imap.wire.framer import (
    CommandFramer,
    CommandUnit,
    ContinuationRequest,
    FramingFailure,
    LiteralTooBig,
)
from mailserver.imap.wire.parser import (
    parse_command,
    parse_idle_done,
    parse_line,
    parse_sasl_response,
)
from mailserver.imap.wire.sequence import SequenceSet

__all__ = [
    "CommandFramer",
    "CommandUnit",
    "ContinuationRequest",
    "FramingFailure",
    "LiteralTooBig",
    "ParseError",
    "SequenceSet",
    "parse_command",
    "parse_idle_done",
    "parse_line",
    "parse_sasl_response",
]
