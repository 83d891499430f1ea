"""One entry point for the SMTP layer: SPF + DKIM + DMARC for an incoming message.

The SMTP server calls :func:`authenticate_inbound` after DATA and acts on the
verdict (reject / quarantine / deliver) and stores ``verdict.apply(message)``:
the message with forged Authentication-Results in our name removed and ours
added on top (RFC 8601 5, 7489 6.6).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from federation import authresults, dkim, dmarc, from_header, spf
from federation.resolver import Resolver


@dataclass(frozen=True)
class InboundVerdict:
    spf: spf.SpfResult
    dkim: tuple[dkim.DkimResult, ...]
    dmarc: dmarc.DmarcVerdict
    header: bytes           # our Authentication-Results field, CRLF-terminated
    authserv_id: str

    @property
    def reject(self) -> bool:
        """DMARC failed and the domain's policy (after pct sampling) is reject."""
        return self.dmarc.reject

    @property
    def quarantine(self) -> bool:
        return self.dmarc.quarantine

    @property
    def trusted(self) -> bool:
        """The From domain is authenticated (DMARC pass). ``temperror`` is never trusted:
        DNS failing is not evidence that the sender is who the From field says."""
        return self.dmarc.result == "pass"

    def apply(self, message: bytes) -> bytes:
        """The message to deliver: forged claims in our name removed, our header on top."""
        return self.header + authresults.remove_claims(message, self.authserv_id)


async def authenticate_inbound(message: bytes, client_ip: str, mail_from: str, helo: str,
                               resolver: Resolver, our_hostname: str, *,
                               rng: random.Random | None = None,
                               local_keys: dkim.LocalKeys | None = None) -> InboundVerdict:
    """SPF (RFC 7208) and DKIM (RFC 6376) concurrently, then DMARC (RFC 7489) on both.

    ``mail_from`` is the MAIL FROM address without brackets ("" for the null
    sender); ``our_hostname`` is the authserv-id of our Authentication-Results.
    ``local_keys``: the school's own domains and DKIM keys. A From field in one
    of them is decided without DNS (dmarc.own_domain_verdict): an outsider can
    not impersonate a teacher by making the school's DMARC record unreachable.
    """
    own = local_keys.domains if local_keys is not None else frozenset()
    spf_check = spf.check_spf(resolver, client_ip, mail_from, helo)
    dkim_check = dkim.verify(message, resolver, local_keys)
    fast_from = from_header.fast_from_domain(message)
    from_dom: str | None
    if fast_from is from_header.UNDECIDED:  # unusual headers: the full parser, off the loop
        spf_result, dkim_results, from_dom = await asyncio.gather(
            spf_check, dkim_check, asyncio.to_thread(from_header.parsed_from_domain, message))
    else:
        spf_result, dkim_results = await asyncio.gather(spf_check, dkim_check)
        from_dom = fast_from
    own_from = from_dom if from_dom in own else (
        from_header.mentioned_domain(message, own) if own and from_dom is None else None)
    if own_from:
        verdict = dmarc.own_domain_verdict(own_from, dkim_results, own)
    else:
        verdict = await dmarc.evaluate(resolver, from_dom, spf_result, dkim_results, rng=rng)
    header = authresults.build_header(our_hostname, spf_result, dkim_results, verdict)
    return InboundVerdict(spf_result, tuple(dkim_results), verdict, header, our_hostname)
