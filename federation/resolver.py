"""An async DNS resolver with typed answers for mail and Matrix discovery.

Wraps ``dns.asyncresolver`` (dnspython).  The nameservers and port are plain
constructor arguments (the composition root passes
``settings.federation.dns_nameservers`` / ``dns_port``); an empty list means
the system's resolver.  Every lookup distinguishes three outcomes, because
callers act differently on each:

* an answer (possibly empty: the name exists but has no record of that type),
* :class:`DnsNotFound`: NXDOMAIN, a permanent "this name does not exist",
* :class:`DnsTemporaryError`: timeout, SERVFAIL, refused: try again later.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename

log = logging.getLogger("schulhof.federation.dns")


class DnsError(Exception):
    """Base class of lookup failures."""


class DnsNotFound(DnsError):
    """NXDOMAIN: the name does not exist (permanent)."""


class DnsInvalidName(DnsNotFound):
    """The name is not a valid DNS name (too long, empty label): it cannot exist."""


class DnsTemporaryError(DnsError):
    """Timeout, SERVFAIL or similar: the answer may come later (retryable)."""


@dataclass(frozen=True)
class MxHost:
    """One mail exchanger.  ``implicit`` marks the RFC 5321 5.1 A/AAAA fallback."""

    preference: int
    host: str
    implicit: bool = False


@dataclass(frozen=True)
class NullMx:
    """RFC 7505: the domain publishes ``MX 0 .``: it accepts no mail at all."""

    domain: str


@dataclass(frozen=True)
class SrvTarget:
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True)
class TlsaRecord:
    usage: int
    selector: int
    mtype: int
    data: bytes


def _host(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


class Resolver:
    """Typed async DNS lookups.  One instance per school; holds no global state."""

    def __init__(self, nameservers: Sequence[str] = (), port: int = 53, *,
                 timeout: float = 3.0, lifetime: float = 10.0, cache_size: int = 0,
                 rng: random.Random | None = None) -> None:
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        else:
            self._resolver = dns.asyncresolver.Resolver()
        if cache_size:
            # Answers kept for their TTL: every inbound mail asks for SPF and DMARC.
            self._resolver.cache = dns.resolver.LRUCache(cache_size)
        self._resolver.timeout = timeout
        self._resolver.lifetime = lifetime
        # No search list: a mail domain is always fully qualified.
        self._resolver.search = []
        self._resolver.use_search_by_default = False
        self._rng = rng or random.Random()

    async def query(self, name: str, rdtype: str) -> list[object]:
        """The rdata of ``name``/``rdtype``; [] when the name exists without such records.

        Raises DnsNotFound on NXDOMAIN, DnsTemporaryError on timeouts and
        server failures.  CNAMEs are followed by the resolver.
        """
        try:
            qname = dns.name.from_text(name if name.endswith(".") else name + ".")
        except dns.exception.DNSException:
            raise DnsInvalidName(name) from None
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False,
                                                  raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            raise DnsNotFound(name) from None
        except dns.resolver.NoNameservers as exc:  # every server said SERVFAIL/REFUSED
            raise DnsTemporaryError(f"{name} {rdtype}: no nameserver answered") from exc
        except dns.exception.Timeout as exc:  # LifetimeTimeout is a subclass
            raise DnsTemporaryError(f"{name} {rdtype}: timeout") from exc
        except dns.exception.DNSException as exc:
            raise DnsTemporaryError(f"{name} {rdtype}: {exc.__class__.__name__}") from exc
        if answer.rrset is None:
            return []
        return list(answer.rrset)

    async def txt(self, name: str) -> list[str]:
        """TXT records, each with its character-strings joined (RFC 7208 3.3)."""
        records = await self.query(name, "TXT")
        return [b"".join(r.strings).decode("utf-8", "replace") for r in records]

    async def a(self, host: str) -> list[str]:
        return [r.address for r in await self.query(host, "A")]

    async def aaaa(self, host: str) -> list[str]:
        return [r.address for r in await self.query(host, "AAAA")]

    async def addresses(self, host: str) -> list[str]:
        """A and AAAA of ``host``; NXDOMAIN only if both say so."""
        found: list[str] = []
        missing = 0
        for lookup in (self.a, self.aaaa):
            try:
                found.extend(await lookup(host))
            except DnsNotFound:
                missing += 1
        if missing == 2:
            raise DnsNotFound(host)
        return found

    async def ptr(self, ip: str) -> list[str]:
        name = dns.reversename.from_address(ip).to_text()
        return [_host(r.target) for r in await self.query(name, "PTR")]

    async def mx(self, domain: str) -> list[MxHost] | NullMx:
        """Mail exchangers of ``domain`` in the order to try them.

        RFC 5321 5.1: sorted by preference, equal preferences in random order;
        no MX records -> the domain itself as an implicit MX (if it has an
        address).  RFC 7505: a single ``0 .`` record -> NullMx.
        Raises DnsNotFound when the domain does not exist.
        """
        records = await self.query(domain, "MX")
        if not records:
            if not await self.addresses(domain):
                return []
            return [MxHost(0, domain.lower().rstrip("."), implicit=True)]
        if any(r.exchange == dns.name.root for r in records):
            # RFC 7505 3: the null MX must be the only record; if mixed with
            # others it is an error and the root entry is simply unusable.
            if len(records) == 1:
                return NullMx(domain.lower().rstrip("."))
            records = [r for r in records if r.exchange != dns.name.root]
        by_pref: dict[int, list[str]] = {}
        for r in records:
            by_pref.setdefault(r.preference, []).append(_host(r.exchange))
        ordered: list[MxHost] = []
        for pref in sorted(by_pref):
            hosts = sorted(set(by_pref[pref]))
            self._rng.shuffle(hosts)
            ordered.extend(MxHost(pref, h) for h in hosts)
        return ordered

    async def srv(self, name: str) -> list[SrvTarget]:
        """SRV records sorted by priority, then by weight (heaviest first).

        A single ``0 0 0 .`` target means "service not offered" (RFC 2782)
        and yields [].  Weighted random selection is left to the caller.
        """
        records = await self.query(name, "SRV")
        if len(records) == 1 and records[0].target == dns.name.root:
            return []
        targets = [SrvTarget(r.priority, r.weight, r.port, _host(r.target)) for r in records]
        return sorted(targets, key=lambda t: (t.priority, -t.weight))

    async def tlsa(self, port: int, host: str, proto: str = "tcp") -> list[TlsaRecord]:
        """TLSA records at ``_port._proto.host`` (RFC 6698 3)."""
        records = await self.query(f"_{port}._{proto}.{host}", "TLSA")
        return [TlsaRecord(r.usage, r.selector, r.mtype, bytes(r.cert)) for r in records]
