"""Who a submitted message says it is from: every field a reader takes as the sender.

RFC 6409 8.1 leaves the check of header addresses to local policy; ours:

* ``From`` (RFC 5322 3.6.2) must be present and every address in it must be
  one of the account's own (its address, an alias, a group it owns);
* ``Sender``, ``Resent-From`` and ``Resent-Sender`` (3.6.2, 3.6.6), when present,
  likewise: mail clients show them as the author ("on behalf of");
* a display name in any of these fields must not contain an address that is
  not the account's own: ``"lehrerin@schule.test" <paul@schule.test>`` shows
  as the teacher in most clients. Such a message is refused (550 5.7.1), not
  rewritten: the sender learns why, and nothing is changed behind their back.
  The display name is read after RFC 2047 decoding and NFKC normalisation, so
  encoded words and full-width at signs do not hide an address.

A field name followed by blanks before the colon (obsolete syntax, RFC 5322
4.5) counts too: readers accept it. One check for both ways of submitting:
the SMTP submission listener (mailserver.smtp.session) and the webmail
(mailserver.submission).
"""

from __future__ import annotations

import email.header
import email.utils
import re
import unicodedata
from collections.abc import Awaitable, Callable

from directory.model import Account
from mailserver.smtp import replies
from mailserver.smtp.addresses import AddressError, parse_mailbox
from mailserver.smtp.headers import header_block
from mailserver.smtp.routing import Router

#: The fields that name the sender; From is required, the others are optional.
SENDER_FIELDS = ("from", "sender", "resent-from", "resent-sender")

_FIELD = re.compile(rb"(?i)^(from|sender|resent-from|resent-sender)[ \t]*:")
_ADDRESS_LIKE = re.compile(r"[^\s<>()\[\]\",;:@]+@[^\s<>()\[\]\",;:@]+\.[^\s<>()\[\]\",;:@.]+")

Owns = Callable[[str], Awaitable[bool]]


def sender_fields(message: bytes) -> list[tuple[str, str]]:
    """(lower-case name, unfolded value) of every sender field in the header section."""
    fields: list[tuple[str, str]] = []
    name: str | None = None
    value: list[bytes] = []
    for line in header_block(message).split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                value.append(line)
            continue
        if name is not None:
            fields.append((name, b"".join(value).decode("utf-8", "replace").strip()))
            name = None
        match = _FIELD.match(line)
        if match:
            name = match.group(1).decode("ascii").lower()
            value = [line[match.end():]]
    if name is not None:
        fields.append((name, b"".join(value).decode("utf-8", "replace").strip()))
    return fields


def _decoded(text: str) -> str:
    """A display name after RFC 2047 decoding, NFKC-normalised (full-width @ becomes @)."""
    try:
        text = str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        pass  # not decodable: judge the raw text
    return unicodedata.normalize("NFKC", text)


def addresses_in_display_names(value: str) -> list[str]:
    """Address-like strings inside the display names (and comments) of a field value."""
    found: list[str] = []
    for name, _address in email.utils.getaddresses([value]):
        found.extend(_ADDRESS_LIKE.findall(_decoded(name)))
    return found


async def identity_refusal(message: bytes, owns: Owns) -> str | None:
    """The 550 reply refusing ``message`` for the account behind ``owns``, or None.

    ``owns(address)`` answers whether an address is the account's own.
    """
    fields = sender_fields(message)
    if not any(name == "from" for name, _ in fields):
        return replies.NO_FROM_HEADER
    for name, value in fields:
        pairs = email.utils.getaddresses([value])
        addresses = [address for _name, address in pairs]
        if not addresses or any("@" not in address for address in addresses):
            if name == "from":
                return replies.NO_FROM_HEADER
            return replies.refused("550 5.6.0", f"The {_title(name)} header field has no "
                                                "valid address")
        for address in addresses:
            if not await owns(address):
                if name == "from":
                    return replies.from_not_owned(address)
                return replies.refused(
                    "550 5.7.1", f"The {_title(name)} header address <{address}> is not one "
                                 "of your addresses or a group you own")
        for address in addresses_in_display_names(value):
            if not await owns(address):
                return replies.refused(
                    "550 5.7.1", f"The display name in the {_title(name)} header names "
                                 f"<{address}>, which is not one of your addresses")
    return None


def owned_by(router: Router, account: Account) -> Owns:
    """``owns`` for :func:`identity_refusal`: the router's answer, asked once per address."""
    answers: dict[str, bool] = {}

    async def owns(address: str) -> bool:
        key = address.lower()
        if key not in answers:
            try:
                answers[key] = await router.may_send_as(account, parse_mailbox(address))
            except AddressError:
                answers[key] = False
        return answers[key]

    return owns


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))
