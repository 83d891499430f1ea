"""The RFC5322.From domain of a message (RFC 7489 6.6.1), cheaply.

DMARC needs the From domain of every inbound message.  The email package's
``policy.default`` header parser gets it right on hostile input but costs
about a quarter of a millisecond per message, a tenth of what the whole MX
spends.  Nearly every real From field is one of two shapes,
``Name <local@domain>`` or ``local@domain``, in a header block of plain
``Name: value`` lines; for those a strict pattern decides.  Everything else
(folded From, comments, groups, several addresses, odd header lines, bare
LF) goes to the email package, so the answer is always the one it gives:
the property tests check that the two agree wherever the fast path answers.
"""

from __future__ import annotations

import email.parser
import email.policy
import enum
import re
from typing import Final

# Header lines exactly as the email package reads them as fields: a name of
# printable ASCII without ":" directly followed by ":", or a continuation line.
_CLEAN_BLOCK = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)*")
_FROM_FIELD = re.compile(rb"(?im)^from:([^\r\n]*)\r\n(?![ \t])")
_ANY_FROM = re.compile(rb"(?im)^from:")

_ATEXT = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = rb"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = (rb"(?:" + _ATEXT + rb"+(?:\." + _ATEXT + rb"+)*)"
            rb"@(" + _LABEL + rb"(?:\." + _LABEL + rb")*)")
# A display name of plain words (RFC 2047 encoded words included) or one
# quoted string without escapes.
_WORD = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DISPLAY = rb'(?:"[^"\\\r\n\x00-\x1f\x7f-\xff]*"|' + _WORD + rb"(?:[ ]+" + _WORD + rb")*)"
_SIMPLE_FROM = re.compile(
    rb"[ ]*(?:" + _ADDRESS + rb"|(?:" + _DISPLAY + rb"[ ]*)?<" + _ADDRESS + rb">)[ ]*")


class _Undecided(enum.Enum):
    """The fast path cannot tell; ask the email package.  (An enum member, so a
    type checker narrows ``x is UNDECIDED``.)"""

    UNDECIDED = enum.auto()


UNDECIDED: Final = _Undecided.UNDECIDED


def _header_block(message: bytes) -> bytes | None:
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return None
    return message[:end + 2]


def fast_from_domain(message: bytes) -> str | _Undecided | None:
    """The From domain when the message is of the common simple shape, else UNDECIDED."""
    block = _header_block(message)
    if block is None or _CLEAN_BLOCK.fullmatch(block) is None:
        return UNDECIDED
    fields = _FROM_FIELD.findall(block)
    if len(fields) != 1 or len(_ANY_FROM.findall(block)) != 1:
        return UNDECIDED  # no From, several, or a folded one
    match = _SIMPLE_FROM.fullmatch(fields[0])
    if match is None:
        return UNDECIDED
    domain = (match.group(1) or match.group(2)).decode("ascii")
    return domain.lower() or None


def parsed_from_domain(message: bytes) -> str | None:
    """The From domain as the email package's default policy reads it (the reference)."""
    try:
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
            message)
        fields = headers.get_all("From") or []
        if len(fields) != 1:
            return None
        domains = {a.domain.lower().rstrip(".") for a in fields[0].addresses}
    except Exception:  # the email package raises many kinds on hostile headers
        return None
    if len(domains) != 1:
        return None
    (domain,) = domains
    return domain or None


def from_domain(message: bytes) -> str | None:
    """The RFC5322.From domain, or None when there is not exactly one From field or
    its addresses do not share one domain."""
    fast = fast_from_domain(message)
    if fast is UNDECIDED:
        return parsed_from_domain(message)
    return fast


_UNFOLD = re.compile(rb"\r?\n[ \t]")


def mentioned_domain(message: bytes, domains: frozenset[str]) -> str | None:
    """One of ``domains`` that any From field names as an address domain (``@domain``),
    also where the field is too odd for :func:`from_domain` (several From fields,
    several domains, groups, comments): such a message must not escape the
    own-domain check just by being malformed."""
    end = message.find(b"\n\r\n")
    end2 = message.find(b"\n\n")
    ends = [e for e in (end, end2) if e >= 0]
    block = _UNFOLD.sub(b" ", message[:min(ends) + 1] if ends else message)
    for field in re.findall(rb"(?im)^from[ \t]*:([^\r\n]*)", block):
        text = field.decode("utf-8", "replace").lower()
        for domain in domains:
            if re.search(r"@\s*" + re.escape(domain) + r"(?![a-z0-9.-])", text):
                return domain
    return None
