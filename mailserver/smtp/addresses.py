"""Envelope address parsing and normalisation (RFC 5321 4.1.2, RFC 6531 3.3).

aiosmtpd parses paths with the RFC 5322 *header* parser, which accepts
comments, spaces and other header syntax that has no place in an envelope.
We parse the MAIL/RCPT argument ourselves, strictly, so every relay trick is
either a syntax error or lands on a plain ``local@domain`` whose domain
alone decides where the mail goes:

* source routes ``<@a,@b:user@x>`` are parsed and dropped (RFC 5321 4.1.1.3
  and Appendix C: accept, ignore the route) -- the mail goes to ``x``;
* ``user%other@ours``, ``a!b@ours`` and ``"user@other"@ours`` keep the
  ``%``, ``!`` and ``@`` inside the local part: the domain is ours, and such
  a local part never exists here (see ``local_key``);
* ``user@other@ours`` and trailing dots ``user@ours.`` are syntax errors;
* address literals ``user@[127.0.0.1]`` parse, but are flagged so callers
  never treat them as one of our domains.

Domains are lower-cased and IDNA-encoded (A-labels), local parts keep their
spelling (remote servers may treat case as significant; ``local_key`` folds
case for our own addresses).  Pure functions: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from directory.addresses import is_valid_local_part

MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1 (octets)
MAX_DOMAIN = 255  # RFC 5321 4.5.3.1.2
MAX_PATH = 256  # RFC 5321 4.5.3.1.3, including the angle brackets

# atext of RFC 5322 3.2.3; RFC 6531 3.3 adds any non-ASCII UTF-8 character.
# Non-ASCII characters allowed by RFC 6531 (no C1 controls, no lone surrogates, which
# is what aiosmtpd's surrogateescape turns invalid UTF-8 into).
_UTF8 = "\u00a0-\ud7ff\ue000-\U0010ffff"
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~" + _UTF8 + "-"
_DOT_STRING_RE = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
# qtextSMTP / quoted-pairSMTP (RFC 5321 4.1.2), plus UTF-8 (RFC 6531 3.3).
_QUOTED_RE = re.compile(rf'"((?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8}]|\\[\x20-\x7e])*)"')
# sub-domain = Let-dig [Ldh-str] (RFC 5321 4.1.2); U-labels are checked by IDNA.
_LABEL_RE = re.compile(rf"[A-Za-z0-9{_UTF8}](?:[A-Za-z0-9{_UTF8}-]*[A-Za-z0-9{_UTF8}])?\Z")
_DOMAIN_CHARS_RE = re.compile(rf"[A-Za-z0-9.{_UTF8}-]+")
_LITERAL_RE = re.compile(r"\[([\x21-\x5a\x5e-\x7e]+)\]")
_IPV4_RE = re.compile(r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
                      r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}\Z")
_PARAM_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9-]*(?:=[\x21-\x3c\x3e-\x7e{_UTF8}]+)?\Z")


class AddressError(ValueError):
    """The text is not a valid RFC 5321 path or mailbox."""


@dataclass(frozen=True)
class Mailbox:
    """``local_part@domain``: local part unquoted, domain normalised (or ``[literal]``)."""

    local_part: str
    domain: str

    @property
    def is_address_literal(self) -> bool:
        return self.domain.startswith("[")

    @property
    def is_ascii(self) -> bool:
        return self.local_part.isascii() and self.domain.isascii()

    def __str__(self) -> str:
        local = self.local_part
        if not _DOT_STRING_RE.fullmatch(local):
            local = '"' + re.sub(r'(["\\])', r"\\\1", local) + '"'
        return f"{local}@{self.domain}"


def local_key(mailbox: Mailbox) -> str | None:
    """The directory key of a local part at one of our domains, or None.

    Our own addresses are case-insensitive dot-atoms of a small alphabet
    (directory.addresses); anything else (``%``, ``!``, quotes, ``+``) cannot
    name an account or group here, so callers answer "unknown user".
    """
    key = mailbox.local_part.lower()
    return key if is_valid_local_part(key) else None


def split_path_argument(argument: str) -> tuple[str, str]:
    """Split ``<path> SP params`` into the bracketed path and the parameter text.

    RFC 5321 4.1.1.2/4.1.1.3: the path is enclosed in angle brackets; ESMTP
    parameters follow after one space.  Angle brackets are required.
    """
    text = argument.strip()
    if not text.startswith("<"):
        raise AddressError("the address must be enclosed in <>")
    end = _closing_bracket(text)
    path, rest = text[: end + 1], text[end + 1:]
    if rest and not rest.startswith(" "):
        raise AddressError("parameters must follow the address after a space")
    params = rest.strip()
    for param in params.split():
        if not _PARAM_RE.match(param):
            raise AddressError(f"malformed parameter {param[:40]!r}")
    return path, params


def _closing_bracket(text: str) -> int:
    """Index of the '>' ending the path, skipping quoted strings."""
    in_quotes = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif in_quotes and char == "\\":
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == ">" and not in_quotes:
            return index
    raise AddressError("missing closing '>'")


def parse_path(path: str) -> Mailbox | None:
    """Parse ``<[A-d-l:]Mailbox>``; ``<>`` (the null path) gives None.

    RFC 5321 4.1.2 Path; a source route (A-d-l) is checked and dropped.
    """
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise AddressError("path too long")
    if not (path.startswith("<") and path.endswith(">")):
        raise AddressError("the address must be enclosed in <>")
    inner = path[1:-1]
    if inner == "":
        return None
    if inner.startswith("@"):
        route, colon, inner = inner.partition(":")
        if not colon:
            raise AddressError("source route without ':'")
        for hop in route.split(","):
            if not hop.startswith("@"):
                raise AddressError("malformed source route")
            _normalise_domain(hop[1:])
    return parse_mailbox(inner)


def parse_mailbox(text: str) -> Mailbox:
    """Parse ``Local-part "@" (Domain / address-literal)`` (RFC 5321 4.1.2)."""
    if text.startswith('"'):
        match = _QUOTED_RE.match(text)
        if match is None:
            raise AddressError("unterminated quoted local part")
        local = re.sub(r"\\(.)", r"\1", match.group(1))
        rest = text[match.end():]
    else:
        match = _DOT_STRING_RE.match(text)
        if match is None:
            raise AddressError("malformed local part")
        local, rest = match.group(0), text[match.end():]
    if not rest.startswith("@"):
        raise AddressError("the address has no '@domain'")
    if local == "":
        raise AddressError("empty local part")
    if len(local.encode("utf-8", "surrogatepass")) > MAX_LOCAL_PART:
        raise AddressError("local part too long")
    domain_text = rest[1:]
    if domain_text.startswith("["):
        return Mailbox(local, _address_literal(domain_text))
    return Mailbox(local, _normalise_domain(domain_text))


def _address_literal(text: str) -> str:
    """RFC 5321 4.1.3: IPv4, ``IPv6:`` and general literals; kept as written (lower case)."""
    match = _LITERAL_RE.fullmatch(text)
    if match is None:
        raise AddressError("malformed address literal")
    body = match.group(1)
    if _IPV4_RE.match(body):
        return text
    tag, colon, value = body.partition(":")
    if not colon or not value or not re.fullmatch(r"[A-Za-z0-9-]*[A-Za-z0-9]", tag):
        raise AddressError("malformed address literal")
    return text.lower()


def _normalise_domain(text: str) -> str:
    """Check ``Domain`` syntax and return it lower-cased in A-labels (RFC 5890)."""
    if not text or not _DOMAIN_CHARS_RE.fullmatch(text):
        raise AddressError("malformed domain")
    labels = text.split(".")
    for label in labels:
        if not _LABEL_RE.match(label):
            raise AddressError("malformed domain")
    if text.isascii():
        domain = text.lower()
    else:
        try:
            domain = text.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise AddressError("domain is not valid IDNA") from None
    if len(domain) > MAX_DOMAIN or any(len(label) > 63 for label in domain.split(".")):
        raise AddressError("domain too long")
    return domain
