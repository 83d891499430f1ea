"""DKIM-signing outgoing mail with the school's keys, in the From domain's name.

DMARC (RFC 7489 3.1.1) wants the signing domain aligned with the From
header's domain, so a message from an extra domain of the school is signed
with ``d=`` that domain (``schulhof dns-records`` publishes the same keys
under every mail domain).  Signing is CPU work: it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import email.utils
from collections.abc import Iterable, Sequence

from federation.dkim import DkimSigner, load_signing_keys
from federation.from_header import fast_from_domain
from federation.keys import DkimKey
from mailserver.outbound.dsn import header_section


def from_domain(message: bytes) -> str:
    """The domain of the (first) From address, lower case; "" if there is none.

    The common shapes (one ``From: Name <local@domain>`` or ``local@domain`` in
    plain header lines) are read by :func:`fast_from_domain`'s strict pattern, a
    tenth of the email package's time; everything else by the email package.
    """
    fast = fast_from_domain(message)
    if isinstance(fast, str):
        return fast
    return parsed_from_domain(message)


def parsed_from_domain(message: bytes) -> str:
    """:func:`from_domain` by the email package (compat32: the first address)."""
    headers = header_section(message).decode("utf-8", "replace")
    parsed = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(headers)
    addresses = email.utils.getaddresses(parsed.get_all("From") or [])
    for _, address in addresses:
        if "@" in address:
            return address.rpartition("@")[2].lower().rstrip(".")
    return ""


class MessageSigner:
    """Signs with every key (RSA and Ed25519, RFC 8463 3) as the right local domain."""

    def __init__(self, keys: Sequence[DkimKey], local_domains: Iterable[str],
                 default_domain: str) -> None:
        self._keys = tuple(keys)
        self._local = frozenset(d.lower() for d in local_domains)
        self._default = default_domain.lower()

    def load_keys(self) -> None:
        """Loads the keys for signing (tens of ms: in a worker thread, at start-up)."""
        load_signing_keys(self._keys)

    def domain_for(self, message: bytes) -> str:
        domain = from_domain(message)
        return domain if domain in self._local else self._default

    def sign_sync(self, message: bytes) -> bytes:
        if not self._keys:
            return message
        return DkimSigner(self.domain_for(message), self._keys).sign_sync(message)

    async def sign(self, message: bytes) -> bytes:
        return await asyncio.to_thread(self.sign_sync, message)
