"""Which MX hosts of a domain we may use, and how their TLS must look: MTA-STS and DANE.

The worker asks once per domain and claim (:meth:`TlsPolicies.domain`) and
once per MX host (:meth:`TlsPolicies.requirement`):

* MTA-STS (RFC 8461 4.2): in mode ``enforce`` only MX hosts matching the
  policy, only over TLS with a certificate valid for the host name; in mode
  ``testing`` the same checks are made and their failures logged, and the
  mail goes out anyway; mode ``none`` or no policy: opportunistic TLS.
* DANE (RFC 7672): DNSSEC-validated TLSA records of an MX host take
  precedence over MTA-STS for that host (RFC 8461 2: a sender that
  validates DANE uses it where it is published); without them, MTA-STS
  or opportunistic behaviour applies.

Failures here are temporary for the message (RFC 8461 4.2 / RFC 7672 2.2:
"treat as temporary"), never bounces: policies change back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from federation.dane import TlsaAnswer
from federation.mta_sts import ENFORCE, TESTING, StsPolicy
from federation.resolver import DnsTemporaryError, MxHost
from federation.smtp_out import OPPORTUNISTIC, TlsRequirement

log = logging.getLogger("schulhof.outbound")


class PolicySource(Protocol):
    async def policy(self, domain: str) -> StsPolicy | None: ...


class TlsaSource(Protocol):
    async def lookup(self, host: str) -> TlsaAnswer: ...


class DaneUnavailable(Exception):
    """A secure host's TLSA records could not be looked up (RFC 7672 2.2.1): try later."""


@dataclass(frozen=True)
class DomainTls:
    """The MTA-STS view of one recipient domain for one delivery round."""

    domain: str
    sts: StsPolicy | None = None

    @property
    def enforced(self) -> bool:
        return self.sts is not None and self.sts.mode == ENFORCE

    @property
    def checked(self) -> bool:
        """Enforce or testing: the policy's checks are made (and failures logged)."""
        return self.sts is not None and self.sts.mode in (ENFORCE, TESTING)

    def usable_hosts(self, hosts: Sequence[MxHost]) -> list[MxHost]:
        """RFC 8461 4.1: in enforce mode, only hosts the policy names; logs the others."""
        if not self.checked:
            return list(hosts)
        assert self.sts is not None
        allowed = [mx for mx in hosts if self.sts.matches(mx.host)]
        for mx in hosts:
            if mx not in allowed:
                event = "mta_sts_refused" if self.enforced else "mta_sts_testing_failure"
                log.warning("event=%s domain=%s host=%s reason=mx_not_in_policy", event,
                            self.domain, mx.host)
        return allowed if self.enforced else list(hosts)


class TlsPolicies:
    """MTA-STS (``sts``) and DANE (``dane``); either may be None (switched off)."""

    def __init__(self, sts: PolicySource | None, dane: TlsaSource | None) -> None:
        self._sts = sts
        self._dane = dane

    async def domain(self, domain: str) -> DomainTls:
        if self._sts is None:
            return DomainTls(domain)
        try:
            policy = await self._sts.policy(domain)
        except Exception:  # a broken cache or server: opportunistic, as without a policy
            log.exception("event=mta_sts_lookup_failed domain=%s", domain)
            policy = None
        return DomainTls(domain, policy)

    async def requirement(self, domain: DomainTls, host: str) -> TlsRequirement:
        """What a connection to ``host`` must achieve; DaneUnavailable to try later."""
        if self._dane is not None:
            try:
                answer = await self._dane.lookup(host)
            except DnsTemporaryError as exc:
                raise DaneUnavailable(f"TLSA lookup of {host} failed") from exc
            if answer.applies:
                return TlsRequirement(tlsa=answer.records, dane=True)
        if domain.enforced:
            return TlsRequirement(verified=True)
        return OPPORTUNISTIC
