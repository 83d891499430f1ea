"""SPF, DKIM and DMARC for mail arriving on the MX, as the SMTP session sees them.

The checks themselves live in federation (federation.mail_auth); this module
is the narrow seam the session calls, so session tests can pass a fake.
RFC 7489 6.6: a DMARC ``reject`` verdict is answered 550 5.7.1 at DATA; a
``quarantine`` verdict delivers into the recipients' Junk folder.
"""

from __future__ import annotations

import logging
from typing import Protocol

from federation.mail_auth import InboundVerdict, authenticate_inbound
from federation.resolver import Resolver

log = logging.getLogger("schulhof.smtp")

QUARANTINE_MAILBOX = "Junk"


class InboundCheck(Protocol):
    async def __call__(self, message: bytes, client_ip: str, mail_from: str,
                       helo: str) -> InboundVerdict: ...


class MailAuthCheck:
    """The production check: federation.mail_auth with the school's resolver."""

    def __init__(self, resolver: Resolver, hostname: str) -> None:
        self._resolver = resolver
        self._hostname = hostname

    async def __call__(self, message: bytes, client_ip: str, mail_from: str,
                       helo: str) -> InboundVerdict:
        verdict = await authenticate_inbound(message, client_ip, mail_from, helo,
                                             self._resolver, self._hostname)
        log.info("event=smtp_inbound_auth spf=%s dkim=%s dmarc=%s from_domain=%s "
                 "reject=%s quarantine=%s", verdict.spf.result,
                 ",".join(d.result for d in verdict.dkim) or "none", verdict.dmarc.result,
                 verdict.dmarc.from_domain, verdict.reject, verdict.quarantine)
        return verdict
