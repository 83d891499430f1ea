"""SPF, DKIM and DMARC for mail arriving on the MX, as the SMTP session sees them.

The checks themselves live in federation (federation.mail_auth); this module
is the narrow seam the session calls, so session tests can pass a fake.
RFC 7489 6.6: a DMARC ``reject`` verdict is answered 550 5.7.1 at DATA; a
``quarantine`` verdict delivers into the recipients' Junk folder. A From in
the school's own domains is decided locally (federation.dmarc.own_domain_verdict).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from federation.dkim import LocalKeys
from federation.keys import DkimKey, SchoolKeyPaths, load_dkim_keys
from federation.mail_auth import InboundVerdict, authenticate_inbound
from federation.resolver import Resolver

log = logging.getLogger("schulhof.smtp")

QUARANTINE_MAILBOX = "Junk"


class InboundCheck(Protocol):
    async def __call__(self, message: bytes, client_ip: str, mail_from: str,
                       helo: str) -> InboundVerdict: ...

    async def prepare(self) -> None:
        """Read what the checks need before the first message arrives."""


class MailAuthCheck:
    """The production check: federation.mail_auth with the school's resolver.

    ``own_domains`` and ``key_paths``: mail whose From is one of the school's own
    domains must carry a DKIM signature that verifies against the school's own
    key, read from ``key_paths`` (once, off the event loop), never from DNS.
    """

    def __init__(self, resolver: Resolver, hostname: str, *,
                 own_domains: frozenset[str] = frozenset(),
                 key_paths: SchoolKeyPaths | None = None) -> None:
        self._resolver = resolver
        self._hostname = hostname
        self._own_domains = own_domains
        self._key_paths = key_paths
        self._local_keys: LocalKeys | None = None
        # The first messages arrive together: one of them reads the keys (40 ms), not all.
        self._loading = asyncio.Lock()

    async def _keys(self) -> LocalKeys:
        if self._local_keys is not None:
            return self._local_keys
        async with self._loading:
            if self._local_keys is not None:
                return self._local_keys
            keys: tuple[DkimKey, ...] = ()
            if self._key_paths is not None:
                try:
                    keys = await asyncio.to_thread(load_dkim_keys, self._key_paths)
                except (OSError, ValueError) as exc:
                    # Without keys nothing of ours verifies: own-domain From is refused.
                    log.warning("event=dkim_keys_missing reason=%s", type(exc).__name__)
            self._local_keys = LocalKeys.of(self._own_domains, keys)
        return self._local_keys

    async def prepare(self) -> None:
        """The school's DKIM keys, read when the service starts: not by the
        first messages (the RSA key's check alone is tens of milliseconds)."""
        await self._keys()

    async def __call__(self, message: bytes, client_ip: str, mail_from: str,
                       helo: str) -> InboundVerdict:
        verdict = await authenticate_inbound(message, client_ip, mail_from, helo,
                                             self._resolver, self._hostname,
                                             local_keys=await self._keys())
        if verdict.reject or verdict.quarantine:
            # Accepted mail carries these fields on its one smtp_accepted line (session).
            log.info("event=smtp_inbound_auth %s own_domain=%s reject=%s quarantine=%s",
                     verdict_fields(verdict), verdict.dmarc.own_domain, verdict.reject,
                     verdict.quarantine)
        return verdict


def verdict_fields(verdict: InboundVerdict) -> str:
    """The verdict as log fields: ``spf=.. dkim=.. dmarc=.. from_domain=..``."""
    return (f"spf={verdict.spf.result} "
            f"dkim={','.join(d.result for d in verdict.dkim) or 'none'} "
            f"dmarc={verdict.dmarc.result} from_domain={verdict.dmarc.from_domain}")
