"""DANE for SMTP (RFC 7672, RFC 7671, RFC 6698): TLSA records authenticate an MX's TLS.

Two jobs:

* :class:`DaneLookup` asks a *validating* resolver (the school's) for the
  TLSA records at ``_25._tcp.<mx host>`` and trusts them only when the
  answer carries the AD flag (RFC 6698 4.1; RFC 7672 2.2: TLSA records are
  used only if they are DNSSEC-validated, and only when the MX host's
  address records are, 2.2.2).  A host whose address or TLSA records are
  insecure gets no DANE; a failed TLSA lookup for a secure host is a
  temporary failure (RFC 7672 2.2.1): an attacker must not be able to
  switch DANE off by dropping answers.
* :func:`verify_chain` checks the certificate chain a server presented
  against the records: DANE-EE(3) matches the leaf, with no name or expiry
  check (RFC 7672 3.1.1); DANE-TA(2) matches a certificate in the chain
  (or one given in full in the record), the chain up to it must be signed
  link by link, and the leaf must be valid now and carry the MX host name
  (RFC 7672 3.1.2, 3.2.2).  PKIX-TA(0) and PKIX-EE(1) are not used for SMTP
  (RFC 7672 3.1.3): such records count as unusable.  Selectors 0 (whole
  certificate) and 1 (SubjectPublicKeyInfo), matching types 0 (exact), 1
  (SHA-256) and 2 (SHA-512) (RFC 6698 2.1.2, 2.1.3).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.rdata
import dns.resolver
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from dns.rdtypes.ANY.TLSA import TLSA

from federation.resolver import DnsTemporaryError, TlsaRecord

DANE_TA, DANE_EE = 2, 3
SMTP_PORT = 25


def usable(record: TlsaRecord) -> bool:
    """RFC 7672 3.1.3 / RFC 6698 2.1: the records an SMTP client may use."""
    return record.usage in (DANE_TA, DANE_EE) and record.selector in (0, 1) \
        and record.mtype in (0, 1, 2)


@dataclass(frozen=True)
class TlsaAnswer:
    """The TLSA records of one MX host; ``secure`` only if DNSSEC-validated."""

    records: tuple[TlsaRecord, ...] = ()
    secure: bool = False

    @property
    def usable_records(self) -> tuple[TlsaRecord, ...]:
        return tuple(r for r in self.records if usable(r)) if self.secure else ()

    @property
    def applies(self) -> bool:
        """Secure TLSA records exist: TLS is mandatory (RFC 7672 2.2)."""
        return self.secure and bool(self.records)


NO_TLSA = TlsaAnswer()


class DaneLookup:
    """TLSA lookups that say whether the answer was validated (the AD flag, RFC 4035 3.2.3).

    The school's resolver must validate DNSSEC; we set AD in the query
    (RFC 6840 5.7) so it tells us.  One instance per school.
    """

    def __init__(self, nameservers: Sequence[str] = (), port: int = 53, *,
                 timeout: float = 3.0, lifetime: float = 10.0) -> None:
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.timeout = timeout
        self._resolver.lifetime = lifetime
        self._resolver.flags = dns.flags.RD | dns.flags.AD
        self._resolver.use_edns(0, dns.flags.DO, 1232)

    async def _query(self, name: str, rdtype: str) -> tuple[list[dns.rdata.Rdata], bool]:
        """(records, authenticated); [] for NXDOMAIN or no data; DnsTemporaryError else."""
        qname = dns.name.from_text(name if name.endswith(".") else name + ".")
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False,
                                                  raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            response = exc.response(exc.qnames()[0]) if exc.qnames() else None
            secure = bool(response is not None and response.flags & dns.flags.AD)
            return [], secure
        except dns.exception.DNSException as exc:
            raise DnsTemporaryError(f"{name} {rdtype}: {type(exc).__name__}") from exc
        secure = bool(answer.response.flags & dns.flags.AD)
        return (list(answer.rrset) if answer.rrset is not None else []), secure

    async def lookup(self, host: str) -> TlsaAnswer:
        """The TLSA records of ``host`` for port 25 (RFC 7672 2.2).

        Insecure address records mean no DANE at all (2.2.2).  Raises
        DnsTemporaryError when a secure host's TLSA lookup fails.
        """
        try:
            _, host_secure = await self._query(host, "A")
        except DnsTemporaryError:
            return NO_TLSA  # the address lookup of the connection itself decides
        if not host_secure:
            return NO_TLSA
        records, secure = await self._query(f"_{SMTP_PORT}._tcp.{host}", "TLSA")
        found = tuple(TlsaRecord(r.usage, r.selector, r.mtype, bytes(r.cert))
                      for r in records if isinstance(r, TLSA))
        return TlsaAnswer(found, secure)


# --- verification ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DaneResult:
    ok: bool
    reason: str
    usage: int | None = None


def _selected(cert: x509.Certificate, selector: int) -> bytes:
    if selector == 0:
        return cert.public_bytes(serialization.Encoding.DER)
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def _digest(data: bytes, mtype: int) -> bytes:
    if mtype == 1:
        return hashlib.sha256(data).digest()
    if mtype == 2:
        return hashlib.sha512(data).digest()
    return data


def matches(cert: x509.Certificate, record: TlsaRecord) -> bool:
    """Does ``cert`` match ``record`` (RFC 6698 2.1.2 selector, 2.1.3 matching type)?"""
    return _digest(_selected(cert, record.selector), record.mtype) == record.data


def name_matches(cert: x509.Certificate, host: str) -> bool:
    """RFC 7672 3.2.3 / RFC 6125 6.4: a DNS-ID, ``*`` only as the whole leftmost label."""
    host = host.rstrip(".").lower()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = [a.value.lower() for a in  # a CN is a string, never bytes
                 cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
                 if isinstance(a.value, str)]
    for name in names:
        if name == host:
            return True
        if name.startswith("*."):
            label, dot, rest = host.partition(".")
            if label and dot and rest == name[2:]:
                return True
    return False


def _record_anchor(record: TlsaRecord) -> x509.Certificate | None:
    """A trust anchor given in full (``2 0 0``) in the record itself."""
    if record.selector == 0 and record.mtype == 0:
        try:
            return x509.load_der_x509_certificate(record.data)
        except ValueError:
            return None
    return None


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, Exception):  # InvalidSignature is no ValueError
        return False
    return True


def _valid_now(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _ta_path(chain: list[x509.Certificate], record: TlsaRecord) -> bool:
    """The leaf chains up, link by link, to a certificate matching the DANE-TA record."""
    for index in range(1, len(chain)):
        if matches(chain[index], record):
            return all(_signed_by(chain[k], chain[k + 1]) for k in range(index))
    anchor = _record_anchor(record)  # not sent by the server: the record carries it
    if anchor is None:
        return False
    for index in range(len(chain)):
        if _signed_by(chain[index], anchor):
            return all(_signed_by(chain[k], chain[k + 1]) for k in range(index))
    return False


def verify_chain(chain_der: Sequence[bytes], records: Sequence[TlsaRecord],
                 host: str, now: dt.datetime) -> DaneResult:
    """Authenticate a server's chain (leaf first) against TLSA records (RFC 7672 3)."""
    candidates = [r for r in records if usable(r)]
    if not candidates:
        return DaneResult(False, "no usable TLSA record")
    if not chain_der:
        return DaneResult(False, "no certificate")
    try:
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError:
        return DaneResult(False, "unreadable certificate")
    leaf = chain[0]
    with_ip = _is_ip(host)
    for record in candidates:
        if record.usage == DANE_EE and matches(leaf, record):
            return DaneResult(True, "DANE-EE", DANE_EE)  # RFC 7672 3.1.1: nothing else
    for record in candidates:
        if record.usage == DANE_TA and _ta_path(chain, record):
            if not _valid_now(leaf, now):
                return DaneResult(False, "DANE-TA: certificate expired or not yet valid")
            if with_ip or not name_matches(leaf, host):
                return DaneResult(False, f"DANE-TA: certificate not valid for {host}")
            return DaneResult(True, "DANE-TA", DANE_TA)
    return DaneResult(False, "no TLSA record matches the certificate")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
