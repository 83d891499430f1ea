"""SPF evaluation: check_host() of RFC 7208 4, asynchronously, with our resolver.

Written here rather than with pyspf: pyspf (last release 2020) is synchronous
and looks names up through a module-level function, which would mean a global
monkey-patch (two schools share a process) and a thread per check.  The
record grammar and macros live in :mod:`federation.spf_record`.

Limits (RFC 7208 4.6.4): at most 10 terms that cause DNS queries (include,
a, mx, ptr, exists, redirect) per check, at most 10 MX / PTR names per
mechanism, at most 2 "void" lookups (NXDOMAIN or no answer); exceeding any
is ``permerror``.  The whole check is bounded by ``timeout`` (temperror).
The ``exp=`` explanation is parsed but never fetched: we only receive mail.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import TypeVar

import dns.name
import dns.rdata
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

from federation.resolver import DnsNotFound, DnsTemporaryError, Resolver
from federation.spf_record import (
    LOOKUP_TERMS,
    MacroContext,
    Mechanism,
    SpfSyntaxError,
    as_query_name,
    expand,
    is_spf_record,
    is_valid_domain,
    parse_record,
)

log = logging.getLogger("schulhof.federation.spf")

_R = TypeVar("_R", bound=dns.rdata.Rdata)

PASS, FAIL, SOFTFAIL, NEUTRAL = "pass", "fail", "softfail", "neutral"
NONE, TEMPERROR, PERMERROR = "none", "temperror", "permerror"

MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_NAMES_PER_MECHANISM = 10

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class SpfResult:
    """The outcome for one identity (RFC 7208 2.6, reported per RFC 8601 2.7.2)."""

    result: str
    domain: str           # the domain whose policy was checked
    identity: str         # "mailfrom" or "helo"
    sender: str = ""      # the identity as checked, e.g. postmaster@helo
    reason: str = ""


class _Abort(Exception):
    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result, self.reason = result, reason


@dataclass
class _Budget:
    lookups: int = 0
    voids: int = 0
    trail: list[str] = field(default_factory=list)

    def spend(self, what: str) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _Abort(PERMERROR, f"more than {MAX_LOOKUPS} DNS lookups ({what})")

    def void(self, name: str) -> None:
        self.voids += 1
        if self.voids > MAX_VOID_LOOKUPS:
            raise _Abort(PERMERROR, f"more than {MAX_VOID_LOOKUPS} void lookups ({name})")


def _client_ip(text: str) -> IpAddress:
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # RFC 7208 5: IPv4-mapped IPv6 is treated as IPv4
    return ip


class SpfChecker:
    """One check_host() run: the resolver, the client and the shared lookup budget."""

    def __init__(self, resolver: Resolver, ip: IpAddress, sender: str, helo: str) -> None:
        self.resolver = resolver
        self.ip = ip
        self.sender = sender
        self.helo = helo
        self.budget = _Budget()

    async def check_host(self, domain: str) -> tuple[str, str]:
        """RFC 7208 4: the result for ``domain`` and a short reason."""
        try:
            return await self._check_host(domain, depth=0)
        except _Abort as abort:
            return abort.result, abort.reason

    async def _check_host(self, domain: str, depth: int) -> tuple[str, str]:
        domain = domain.rstrip(".").lower()
        if not is_valid_domain(domain):  # 4.3
            return NONE, f"invalid domain {domain!r}"
        try:
            texts = await self.resolver.txt(domain)
        except DnsNotFound:
            return NONE, f"{domain} does not exist"
        except DnsTemporaryError:
            return TEMPERROR, f"TXT lookup of {domain} failed"
        records = [t for t in texts if is_spf_record(t)]
        if not records:
            return NONE, f"no SPF record at {domain}"
        if len(records) > 1:
            return PERMERROR, f"{len(records)} SPF records at {domain}"  # 4.5
        try:
            record = parse_record(records[0])
        except SpfSyntaxError as exc:
            return PERMERROR, f"{domain}: {exc}"
        ctx = MacroContext(self.sender, domain, self.ip, self.helo)
        for mechanism in record.mechanisms:
            if mechanism.name in LOOKUP_TERMS:
                self.budget.spend(mechanism.name)
            if await self._matches(mechanism, ctx, depth):
                return mechanism.result, f"{domain} matched {mechanism.name}"
        if record.redirect is not None:  # 6.1
            self.budget.spend("redirect")
            target = self._target(record.redirect, ctx)
            result, reason = await self._check_host(target, depth + 1)
            if result == NONE:
                return PERMERROR, f"redirect to {target}: {reason}"
            return result, reason
        return NEUTRAL, f"{domain}: no mechanism matched"  # 4.7

    def _target(self, spec: str | None, ctx: MacroContext) -> str:
        if spec is None:
            return ctx.domain
        try:
            return as_query_name(expand(spec, ctx)).lower()
        except SpfSyntaxError as exc:
            raise _Abort(PERMERROR, str(exc)) from None

    async def _matches(self, m: Mechanism, ctx: MacroContext, depth: int) -> bool:
        if m.name == "all":
            return True
        if m.name in ("ip4", "ip6"):
            return m.network is not None and m.network.version == self.ip.version \
                and self.ip in m.network
        target = self._target(m.domain_spec, ctx)
        if m.name == "include":  # 5.2
            result, reason = await self._check_host(target, depth + 1)
            if result == PASS:
                return True
            if result == TEMPERROR:
                raise _Abort(TEMPERROR, f"include:{target}: {reason}")
            if result in (PERMERROR, NONE):
                raise _Abort(PERMERROR, f"include:{target}: {reason}")
            return False
        if m.name == "a":  # 5.3
            return self._in_any(await self._addresses(target, count_void=True), m)
        if m.name == "mx":  # 5.4
            return await self._match_mx(target, m)
        if m.name == "ptr":  # 5.5
            return await self._match_ptr(target)
        if m.name == "exists":  # 5.7: always an A query, whatever the client's family
            return bool(await self._lookup(target, "A", A, count_void=True))
        raise _Abort(PERMERROR, f"unknown mechanism {m.name}")

    def _in_any(self, addresses: list[str], m: Mechanism) -> bool:
        length = m.cidr4 if self.ip.version == 4 else m.cidr6
        network = ipaddress.ip_network(f"{self.ip}/{length}", strict=False)
        for text in addresses:
            try:
                if ipaddress.ip_address(text) in network:
                    return True
            except ValueError:
                continue
        return False

    async def _lookup(self, name: str, rdtype: str, kind: type[_R], *,
                      count_void: bool) -> list[_R]:
        if not is_valid_domain(name):
            if count_void:
                self.budget.void(name)
            return []
        try:
            answer = await self.resolver.records(name, rdtype, kind)
        except DnsNotFound:
            answer = []
        except DnsTemporaryError:
            raise _Abort(TEMPERROR, f"{rdtype} lookup of {name} failed") from None
        if not answer and count_void:
            self.budget.void(name)
        return answer

    async def _addresses(self, name: str, *, count_void: bool) -> list[str]:
        if self.ip.version == 4:
            records: list[A] | list[AAAA] = await self._lookup(name, "A", A,
                                                                count_void=count_void)
        else:
            records = await self._lookup(name, "AAAA", AAAA, count_void=count_void)
        return [str(r.address) for r in records]

    async def _match_mx(self, target: str, m: Mechanism) -> bool:
        records = await self._lookup(target, "MX", MX, count_void=True)
        hosts = [r.exchange.to_text(omit_final_dot=True) for r in records
                 if r.exchange != dns.name.root]  # a null MX (RFC 7505) has no hosts
        if len(hosts) > MAX_NAMES_PER_MECHANISM:
            raise _Abort(PERMERROR, f"mx:{target} has more than 10 MX names")  # 4.6.4
        for host in hosts:
            if self._in_any(await self._addresses(host, count_void=False), m):
                return True
        return False

    async def _match_ptr(self, target: str) -> bool:
        try:
            names = await self.resolver.ptr(str(self.ip))
        except (DnsNotFound, DnsTemporaryError):
            return False  # 5.5: a DNS error in the PTR lookup just does not match
        for name in names[:MAX_NAMES_PER_MECHANISM]:
            try:
                addresses = await self._addresses(name, count_void=False)
            except _Abort:
                continue  # errors in the forward lookups skip that name
            if str(self.ip) in addresses and (name == target or name.endswith("." + target)):
                return True
        return False


async def check_spf(resolver: Resolver, ip: str, mail_from: str, helo: str, *,
                    timeout: float = 20.0) -> SpfResult:
    """SPF for an incoming SMTP transaction (RFC 7208 2.4).

    ``mail_from`` is the MAIL FROM address without angle brackets ("" for the
    null reverse-path, in which case the HELO identity "postmaster@<helo>"
    is checked).
    """
    helo = helo.strip().rstrip(".").lower()
    if mail_from:
        local, _, domain = mail_from.rpartition("@")
        domain = domain.rstrip(".").lower()
        sender = f"{local or 'postmaster'}@{domain}"
        identity = "mailfrom"
    else:
        domain, sender, identity = helo, f"postmaster@{helo}", "helo"
    try:
        client = _client_ip(ip)
    except ValueError:
        return SpfResult(PERMERROR, domain, identity, sender, f"bad client address {ip!r}")
    checker = SpfChecker(resolver, client, sender, helo)
    try:
        async with asyncio.timeout(timeout):
            result, reason = await checker.check_host(domain)
    except TimeoutError:
        result, reason = TEMPERROR, "SPF check took too long"
    log.debug("spf result=%s identity=%s domain=%s ip=%s lookups=%d", result, identity,
             domain, client, checker.budget.lookups)
    return SpfResult(result, domain, identity, sender, reason)
