"""DMARC (RFC 7489): policy discovery, identifier alignment and the verdict.

Organizational domain (RFC 7489 3.2) without the Public Suffix List: the
registrable domain is the last two labels, or three when the last two form a
known multi-label public suffix in :data:`MULTI_LABEL_SUFFIXES` (``co.uk``,
``com.au``, ...).  Limit: private suffixes on the PSL (e.g. ``github.io``)
and unlisted national second-level suffixes are not known, so two tenants of
such a suffix count as one organization for relaxed alignment, and the
fallback lookup for ``a.b.example.co.xx`` may go to ``_dmarc.co.xx``.
Callers who need exactness pass their own ``organizational_domain`` function
(e.g. built on the ``publicsuffixlist`` package).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from federation.dkim import DkimResult
from federation.resolver import DnsNotFound, DnsTemporaryError, Resolver
from federation.spf import SpfResult

log = logging.getLogger("schulhof.federation.dmarc")

MULTI_LABEL_SUFFIXES = frozenset({
    "co.uk", "org.uk", "ac.uk", "gov.uk", "sch.uk", "ltd.uk", "plc.uk", "me.uk", "net.uk",
    "com.au", "net.au", "org.au", "edu.au", "gov.au", "co.nz", "org.nz", "school.nz",
    "co.at", "or.at", "ac.at", "gv.at", "co.jp", "ne.jp", "or.jp", "ac.jp", "co.za",
    "com.br", "com.cn", "com.tr", "com.mx", "co.in", "co.il", "co.kr", "com.pl", "edu.pl",
})

POLICIES = ("none", "quarantine", "reject")


class DmarcSyntaxError(ValueError):
    """The TXT record is not a usable DMARC record."""


@dataclass(frozen=True)
class DmarcRecord:
    """RFC 7489 6.3."""

    policy: str
    subdomain_policy: str | None = None
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    rua: tuple[str, ...] = ()


@dataclass(frozen=True)
class DmarcVerdict:
    """What DMARC says about one message (RFC 7489 6.6, reported per RFC 8601)."""

    result: str                     # pass, fail, none, temperror, permerror
    from_domain: str = ""
    policy: str = "none"            # the published policy that applies
    disposition: str = "none"       # what to do after pct sampling (6.6.4)
    record_domain: str = ""         # where the record was found
    spf_aligned: bool = False
    dkim_aligned: bool = False
    reason: str = ""
    own_domain: bool = False        # decided locally: the From domain is the school's own

    @property
    def reject(self) -> bool:
        return self.result == "fail" and self.disposition == "reject"

    @property
    def quarantine(self) -> bool:
        return self.result == "fail" and self.disposition == "quarantine"


def parse_record(text: str) -> DmarcRecord:
    """Parse a DMARC TXT record (RFC 7489 6.3, 6.4; invalid p handled per 6.6.3)."""
    parts = [p.strip() for p in text.split(";")]
    tags: dict[str, str] = {}
    for i, part in enumerate(parts):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            raise DmarcSyntaxError(f"not a tag=value pair: {part!r}")
        if i == 0 and (key != "v" or value != "DMARC1"):
            raise DmarcSyntaxError("record does not start with v=DMARC1")
        tags.setdefault(key, value)  # the first of a repeated tag counts
    if "v" not in tags:
        raise DmarcSyntaxError("no v=DMARC1")
    rua = tuple(u.strip() for u in tags.get("rua", "").split(",") if u.strip())
    policy = tags.get("p", "").lower()
    sp = tags.get("sp", "").lower() or None
    if policy not in POLICIES or (sp is not None and sp not in POLICIES):
        if not any(u.lower().startswith("mailto:") for u in rua):
            raise DmarcSyntaxError("no valid p= and no rua=")
        policy, sp = "none", None  # 6.6.3: act as if p=none
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        pct = 100
    return DmarcRecord(policy, sp, adkim if adkim in ("r", "s") else "r",
                       aspf if aspf in ("r", "s") else "r", min(max(pct, 0), 100), rua)


def organizational_domain(domain: str) -> str:
    """RFC 7489 3.2 with the built-in suffix list (see the module docstring)."""
    labels = domain.lower().rstrip(".").split(".")
    keep = 3 if ".".join(labels[-2:]) in MULTI_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


def aligned(identifier: str, from_domain: str, mode: str,
            org: Callable[[str], str] = organizational_domain) -> bool:
    """RFC 7489 3.1.1/3.1.2: strict = same domain, relaxed = same organizational domain."""
    a, b = identifier.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not a or not b:
        return False
    return a == b if mode == "s" else org(a) == org(b)


def _is_dmarc(text: str) -> bool:
    key, _, value = text.split(";", 1)[0].partition("=")
    return key.strip().lower() == "v" and value.strip() == "DMARC1"


async def _fetch(resolver: Resolver, domain: str) -> DmarcRecord | None:
    try:
        texts = await resolver.txt(f"_dmarc.{domain}")
    except DnsNotFound:
        return None
    candidates = [t for t in texts if _is_dmarc(t)]
    if len(candidates) != 1:
        return None  # 6.6.3: none, or more than one -> no policy
    try:
        return parse_record(candidates[0])
    except DmarcSyntaxError:
        return None


async def lookup_policy(resolver: Resolver, domain: str, *,
                        org: Callable[[str], str] = organizational_domain,
                        ) -> tuple[DmarcRecord, str] | None:
    """RFC 7489 6.6.3: the record at _dmarc.<domain>, else at the organizational domain.

    Raises DnsTemporaryError when DNS fails (the caller reports temperror).
    """
    record = await _fetch(resolver, domain)
    if record is not None:
        return record, domain
    org_domain = org(domain)
    if org_domain != domain:
        record = await _fetch(resolver, org_domain)
        if record is not None:
            return record, org_domain
    return None


async def evaluate(resolver: Resolver, from_dom: str | None, spf: SpfResult,
                   dkim: Sequence[DkimResult], *, rng: random.Random | None = None,
                   org: Callable[[str], str] = organizational_domain) -> DmarcVerdict:
    """The DMARC verdict for a message whose From domain is ``from_dom`` (RFC 7489 6.6)."""
    if not from_dom:
        return DmarcVerdict("permerror", reason="not exactly one From domain")
    try:
        found = await lookup_policy(resolver, from_dom, org=org)
    except DnsTemporaryError:
        return DmarcVerdict("temperror", from_dom, reason="DMARC record lookup failed")
    if found is None:
        return DmarcVerdict("none", from_dom, reason="no DMARC record")
    record, record_domain = found
    policy = record.policy
    if record_domain != from_dom and record.subdomain_policy:
        policy = record.subdomain_policy  # 6.3 sp: for subdomains of the org domain
    spf_ok = spf.result == "pass" and aligned(spf.domain, from_dom, record.aspf, org)
    dkim_ok = any(r.result == "pass" and aligned(r.domain, from_dom, record.adkim, org)
                  for r in dkim)
    if spf_ok or dkim_ok:
        return DmarcVerdict("pass", from_dom, policy, "none", record_domain, spf_ok, dkim_ok)
    disposition = policy
    if record.pct < 100 and (rng or random.Random()).random() * 100 >= record.pct:
        # 6.6.4: not sampled -> the next less strict policy
        disposition = {"reject": "quarantine", "quarantine": "none"}.get(policy, "none")
    log.info("dmarc result=fail from=%s policy=%s disposition=%s", from_dom, policy,
             disposition)
    return DmarcVerdict("fail", from_dom, policy, disposition, record_domain, False, False,
                        reason="no aligned SPF or DKIM pass")


def own_domain_verdict(from_dom: str, dkim: Sequence[DkimResult],
                       own: frozenset[str]) -> DmarcVerdict:
    """DMARC for a From domain that is one of the school's own, decided without DNS.

    The school publishes ``p=reject`` and signs everything it sends with its own
    keys, so it need not ask DNS what its policy is (RFC 7489 6.6.3 would, and
    an unreachable or forged answer turns a forgery into ``temperror`` and lets
    it in): the message passes only with a DKIM signature in an own domain that
    verified against the school's local key (see federation.dkim.LocalKeys).
    """
    signed = any(r.result == "pass" and r.domain in own for r in dkim)
    if signed:
        return DmarcVerdict("pass", from_dom, "reject", "none", from_dom, False, True,
                            reason="signed with the school's own key", own_domain=True)
    log.info("dmarc result=fail from=%s own_domain=yes disposition=reject", from_dom)
    return DmarcVerdict("fail", from_dom, "reject", "reject", from_dom, False, False,
                        reason="the school's own domain without the school's signature",
                        own_domain=True)
