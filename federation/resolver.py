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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdata
import dns.rdatatype
import dns.resolver
import dns.reversename
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.TLSA import TLSA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

log = logging.getLogger("schulhof.federation.dns")

_R = TypeVar("_R", bound=dns.rdata.Rdata)


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


def _negative_ttl(exc: dns.resolver.NXDOMAIN) -> int:
    """How long an NXDOMAIN may be cached: the SOA in its authority section (RFC 2308 5)."""
    ttls = [min(rrset.ttl, rrset[0].minimum)
            for response in exc.responses().values()
            for rrset in getattr(response, "authority", ())
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset)]
    return min(ttls, default=0)


def _host(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


class Resolver:
    """Typed async DNS lookups.  One instance per school; holds no global state."""

    def __init__(self, nameservers: Sequence[str] = (), port: int = 53, *,
                 timeout: float = 3.0, lifetime: float = 10.0, cache_size: int = 0,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        else:
            self._resolver = dns.asyncresolver.Resolver()
        # Answers kept for their TTL (negative ones for the SOA's, RFC 2308): every
        # inbound mail asks for SPF, DMARC and DKIM keys, mostly of a few domains.
        # Kept here as typed results, in front of dnspython, whose own cache
        # lookup costs about as much as the rest of an SPF check.
        self._cache_size = cache_size
        self._answers: dict[tuple[str, str], tuple[float, tuple[dns.rdata.Rdata, ...] | None]] = {}
        self._clock = clock
        self._resolver.timeout = timeout
        self._resolver.lifetime = lifetime
        # No search list: a mail domain is always fully qualified.
        self._resolver.search = []
        self._resolver.use_search_by_default = False
        self._rng = rng or random.Random()

    async def query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        """The rdata of ``name``/``rdtype``; [] when the name exists without such records.

        Raises DnsNotFound on NXDOMAIN, DnsTemporaryError on timeouts and
        server failures.  CNAMEs are followed by the resolver.
        """
        key = (name.lower(), rdtype)
        cached = self._answers.get(key) if self._cache_size else None
        if cached is not None and cached[0] > self._clock():
            if cached[1] is None:
                raise DnsNotFound(name)
            return list(cached[1])
        try:
            qname = dns.name.from_text(name if name.endswith(".") else name + ".")
        except dns.exception.DNSException:
            raise DnsInvalidName(name) from None
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False,
                                                  raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            ttl = _negative_ttl(exc)
            if ttl:
                self._remember(key, self._clock() + ttl, None)
            raise DnsNotFound(name) from None
        except dns.resolver.NoNameservers as exc:  # every server said SERVFAIL/REFUSED
            raise DnsTemporaryError(f"{name} {rdtype}: no nameserver answered") from exc
        except dns.exception.Timeout as exc:  # LifetimeTimeout is a subclass
            raise DnsTemporaryError(f"{name} {rdtype}: timeout") from exc
        except dns.exception.DNSException as exc:
            raise DnsTemporaryError(f"{name} {rdtype}: {exc.__class__.__name__}") from exc
        records = tuple(answer.rrset) if answer.rrset is not None else ()
        if answer.expiration > self._clock():
            self._remember(key, answer.expiration, records)
        return list(records)

    def _remember(self, key: tuple[str, str], expires: float,
                  records: tuple[dns.rdata.Rdata, ...] | None) -> None:
        if not self._cache_size:
            return
        if len(self._answers) >= self._cache_size:
            now = self._clock()
            self._answers = {k: v for k, v in self._answers.items() if v[0] > now}
            if len(self._answers) >= self._cache_size:
                self._answers.clear()
        self._answers[key] = (expires, records)

    async def records(self, name: str, rdtype: str, kind: type[_R]) -> list[_R]:
        """:meth:`query` narrowed to ``kind``, dnspython's class for ``rdtype``
        (its answers are typed only as ``Rdata``)."""
        return [r for r in await self.query(name, rdtype) if isinstance(r, kind)]

    async def txt(self, name: str) -> list[str]:
        """TXT records, each with its character-strings joined (RFC 7208 3.3)."""
        records = await self.records(name, "TXT", TXT)
        return [b"".join(r.strings).decode("utf-8", "replace") for r in records]

    async def a(self, host: str) -> list[str]:
        return [str(r.address) for r in await self.records(host, "A", A)]

    async def aaaa(self, host: str) -> list[str]:
        return [str(r.address) for r in await self.records(host, "AAAA", AAAA)]

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
        return [_host(r.target) for r in await self.records(name, "PTR", PTR)]

    async def mx(self, domain: str) -> list[MxHost] | NullMx:
        """Mail exchangers of ``domain`` in the order to try them.

        RFC 5321 5.1: sorted by preference, equal preferences in random order;
        no MX records -> the domain itself as an implicit MX (if it has an
        address).  RFC 7505: a single ``0 .`` record -> NullMx.
        Raises DnsNotFound when the domain does not exist.
        """
        records = await self.records(domain, "MX", MX)
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
        records = await self.records(name, "SRV", SRV)
        if len(records) == 1 and records[0].target == dns.name.root:
            return []
        targets = [SrvTarget(r.priority, r.weight, r.port, _host(r.target)) for r in records]
        return sorted(targets, key=lambda t: (t.priority, -t.weight))

    async def tlsa(self, port: int, host: str, proto: str = "tcp") -> list[TlsaRecord]:
        """TLSA records at ``_port._proto.host`` (RFC 6698 3)."""
        records = await self.records(f"_{port}._{proto}.{host}", "TLSA", TLSA)
        return [TlsaRecord(r.usage, r.selector, r.mtype, bytes(r.cert)) for r in records]
