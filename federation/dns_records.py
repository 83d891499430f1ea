"""The DNS records a school publishes so other servers and clients find and trust it.

Zone-file lines (RFC 1035 5) for: MX, SPF (RFC 7208), DKIM (RFC 6376 3.6.1,
RFC 8463), DMARC (RFC 7489), MTA-STS (RFC 8461) with its policy file,
TLS-RPT (RFC 8460), mail client SRV records (RFC 6186, RFC 8314 7.2),
Thunderbird-style autoconfig and Matrix server discovery (SRV and
.well-known, Matrix spec "Server discovery").  Pure functions: the caller
reads the keys and settings.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from federation.keys import DkimKey

TTL = 3600
MTA_STS_MAX_AGE = 604800  # one week (RFC 8461 3.2 allows up to a year)


@dataclass(frozen=True)
class DnsRecord:
    name: str     # absolute, with the final dot
    rdtype: str
    value: str    # rdata in zone-file syntax
    comment: str = ""

    def zone_line(self) -> str:
        line = f"{self.name}\t{TTL}\tIN\t{self.rdtype}\t{self.value}"
        return f"{line}\t; {self.comment}" if self.comment else line


@dataclass(frozen=True)
class SchoolDns:
    """What the records are made from (taken from settings by the caller)."""

    domain: str
    mail_host: str
    dkim_keys: Sequence[DkimKey]
    extra_domains: Sequence[str] = ()
    addresses: Sequence[str] = ()   # public addresses of the server (A/AAAA, SPF)
    submission_port: int = 587
    submissions_port: int = 465
    imap_port: int = 143
    imaps_port: int = 993
    sieve_port: int = 0  # ManageSieve (RFC 5804 1.8); 0: not published
    federation_port: int = 8448
    mta_sts_mode: str = "enforce"
    report_address: str = ""       # default postmaster@<domain>
    notes: list[str] = field(default_factory=list)

    @property
    def matrix_host(self) -> str:
        return f"matrix.{self.domain}"

    @property
    def reports(self) -> str:
        return self.report_address or f"postmaster@{self.domain}"


def fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


def txt_value(text: str) -> str:
    """TXT rdata as quoted strings of at most 255 bytes (RFC 1035 3.3.14, RFC 7208 3.3)."""
    raw = text.encode("ascii")
    chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    return " ".join('"' + c.decode("ascii").replace("\\", "\\\\").replace('"', '\\"') + '"'
                    for c in chunks)


def public_addresses(candidates: Sequence[str]) -> list[str]:
    """The globally routable IP literals among ``candidates`` (a bind of 0.0.0.0,
    a private or a loopback address says nothing about what others should use)."""
    out = []
    for text in candidates:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if ip.is_global:
            out.append(str(ip))
    return out


def spf_value(addresses: Sequence[str]) -> str:
    """``v=spf1 mx [ip4:... ip6:...] -all``: only our MX hosts send our mail."""
    terms = ["v=spf1", "mx"]
    for text in addresses:
        ip = ipaddress.ip_address(text)
        terms.append(f"ip{ip.version}:{ip}")
    return " ".join([*terms, "-all"])


def mta_sts_policy(mail_host: str, mode: str = "enforce",
                   max_age: int = MTA_STS_MAX_AGE) -> str:
    """The policy file served at https://mta-sts.<domain>/.well-known/mta-sts.txt
    (RFC 8461 3.2: CRLF-separated key/value pairs)."""
    return "\r\n".join([
        "version: STSv1", f"mode: {mode}", f"mx: {mail_host}", f"max_age: {max_age}", ""])


def mta_sts_id(policy: str) -> str:
    """RFC 8461 3.1 id: changes whenever the policy text changes (1-32 alphanumerics)."""
    return hashlib.sha256(policy.encode("ascii")).hexdigest()[:20]


def matrix_well_known(school: SchoolDns) -> tuple[str, str]:
    """(server, client) JSON for https://<domain>/.well-known/matrix/{server,client}."""
    server = json.dumps({"m.server": f"{school.matrix_host}:{school.federation_port}"})
    client = json.dumps({"m.homeserver": {"base_url": f"https://{school.matrix_host}"}})
    return server, client


def _srv(name: str, port: int, target: str, comment: str) -> DnsRecord:
    if port <= 0:  # disabled listener: RFC 2782 "service not available"
        return DnsRecord(fqdn(name), "SRV", "0 0 0 .", f"{comment} (not offered)")
    return DnsRecord(fqdn(name), "SRV", f"0 1 {port} {fqdn(target)}", comment)


def _mail_domain_records(school: SchoolDns, domain: str) -> list[DnsRecord]:
    d = fqdn(domain)
    records = [
        DnsRecord(d, "MX", f"10 {fqdn(school.mail_host)}", "mail for the domain goes here"),
        DnsRecord(d, "TXT", txt_value(spf_value(school.addresses)), "SPF (RFC 7208)"),
    ]
    for key in school.dkim_keys:
        records.append(DnsRecord(f"{key.selector}._domainkey.{d}", "TXT",
                                 txt_value(key.dns_txt), f"DKIM {key.algorithm}"))
    records.append(DnsRecord(
        f"_dmarc.{d}", "TXT",
        txt_value(f"v=DMARC1; p=reject; rua=mailto:{school.reports}"),
        "DMARC (RFC 7489): reject what fails"))
    return records


def school_records(school: SchoolDns) -> list[DnsRecord]:
    """Every record the school's zone(s) need, in the order to read them."""
    d, host = fqdn(school.domain), fqdn(school.mail_host)
    records: list[DnsRecord] = []
    for text in school.addresses:
        rdtype = "A" if ipaddress.ip_address(text).version == 4 else "AAAA"
        for name in (host, fqdn(school.matrix_host), f"mta-sts.{d}"):
            records.append(DnsRecord(name, rdtype, text))
    records.append(DnsRecord(host, "TXT", txt_value("v=spf1 a -all"),
                             "SPF for the HELO name (RFC 7208 2.3)"))
    records += _mail_domain_records(school, school.domain)
    policy = mta_sts_policy(school.mail_host, school.mta_sts_mode)
    records += [
        DnsRecord(f"_mta-sts.{d}", "TXT", txt_value(f"v=STSv1; id={mta_sts_id(policy)}"),
                  "MTA-STS (RFC 8461); serve the policy below"),
        DnsRecord(f"_smtp._tls.{d}", "TXT",
                  txt_value(f"v=TLSRPTv1; rua=mailto:{school.reports}"), "TLS-RPT (RFC 8460)"),
        _srv(f"_submission._tcp.{d}", school.submission_port, host, "RFC 6186 submission"),
        _srv(f"_submissions._tcp.{d}", school.submissions_port, host,
             "RFC 8314 submission over TLS"),
        _srv(f"_imap._tcp.{d}", school.imap_port, host, "RFC 6186 IMAP"),
        _srv(f"_imaps._tcp.{d}", school.imaps_port, host, "RFC 6186 IMAP over TLS"),
        *([_srv(f"_sieve._tcp.{d}", school.sieve_port, host, "RFC 5804 ManageSieve")]
          if school.sieve_port > 0 else []),
        DnsRecord(f"autoconfig.{d}", "CNAME", host,
                  "mail client autoconfig (/mail/config-v1.1.xml)"),
        _srv(f"_matrix-fed._tcp.{d}", school.federation_port, school.matrix_host,
             "Matrix federation (spec v1.8+)"),
        _srv(f"_matrix._tcp.{d}", school.federation_port, school.matrix_host,
             "Matrix federation (older servers)"),
    ]
    for extra in school.extra_domains:
        records += _mail_domain_records(school, extra)
    return records


def render(school: SchoolDns) -> str:
    """The zone-file text with the MTA-STS policy and Matrix .well-known as comments."""
    policy = mta_sts_policy(school.mail_host, school.mta_sts_mode)
    server, client = matrix_well_known(school)
    lines = [f"; DNS records for {school.domain} (schulhof dns-records)"]
    lines += [f"; NOTE: {note}" for note in school.notes]
    lines += [r.zone_line() for r in school_records(school)]
    lines += ["", f"; Serve at https://mta-sts.{school.domain}/.well-known/mta-sts.txt"
                  " (CRLF line ends):"]
    lines += [f";   {line}" for line in policy.split("\r\n") if line]
    lines += ["", f"; Serve at https://{school.domain}/.well-known/matrix/server:",
              f";   {server}",
              f"; Serve at https://{school.domain}/.well-known/matrix/client:",
              f";   {client}"]
    return "\n".join(lines) + "\n"
