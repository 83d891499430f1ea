"""MTA-STS (RFC 8461): which MX hosts of a domain we may use, and whether TLS must verify.

Three pieces, as the RFC lays them out:

* the TXT record at ``_mta-sts.<domain>`` (3.1) announces a policy and its
  ``id``; :func:`parse_sts_record` reads it;
* the policy file at ``https://mta-sts.<domain>/.well-known/mta-sts.txt``
  (3.2, 3.3): :func:`parse_policy` reads it, :class:`PolicyFetcher` gets it
  over HTTPS (certificate verified for ``mta-sts.<domain>``, no redirects,
  short timeouts, at most 64 KiB);
* :class:`MtaSts` puts them together with a cache (5.1): a cached policy is
  used until ``max_age`` runs out and is fetched again when the TXT ``id``
  changes; a failed lookup or fetch falls back on the cached policy.

Enforcement (4.2) is the caller's: :meth:`StsPolicy.matches` says whether an
MX host is allowed; in mode ``enforce`` delivery also needs TLS with a
certificate valid for that host name.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from federation.resolver import DnsError

log = logging.getLogger("schulhof.federation.mta_sts")

ENFORCE, TESTING, NONE = "enforce", "testing", "none"
MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 3.3: senders may limit the size; 64 KiB is plenty
MAX_AGE_LIMIT = 31_557_600  # RFC 8461 3.2: at most one year
WELL_KNOWN = "/.well-known/mta-sts.txt"

_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")  # RFC 8461 3.1 sts-id
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


class PolicyError(ValueError):
    """A TXT record or policy file that does not follow RFC 8461 3.1 / 3.2."""


class PolicyFetchError(Exception):
    """The policy could not be fetched (network, TLS, HTTP status, size, type)."""


@dataclass(frozen=True)
class StsRecord:
    """The ``_mta-sts`` TXT record (RFC 8461 3.1)."""

    id: str


@dataclass(frozen=True)
class StsPolicy:
    """A policy file (RFC 8461 3.2)."""

    mode: str
    mx: tuple[str, ...]
    max_age: int

    def matches(self, host: str) -> bool:
        """May ``host`` receive the domain's mail (RFC 8461 4.1)?"""
        return any(mx_matches(pattern, host) for pattern in self.mx)

    def to_text(self) -> str:
        """The policy in its file format (for the cache and tests)."""
        lines = ["version: STSv1", f"mode: {self.mode}",
                 *(f"mx: {p}" for p in self.mx), f"max_age: {self.max_age}"]
        return "\r\n".join(lines) + "\r\n"


def _normal_host(host: str) -> str:
    return host.strip().rstrip(".").lower()


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: an exact name, or ``*.`` standing for exactly one leftmost label."""
    pattern, host = _normal_host(pattern), _normal_host(host)
    if not pattern or not host:
        return False
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:] and "*" not in label
    return pattern == host


def parse_sts_record(text: str) -> StsRecord:
    """``v=STSv1; id=20160831085700Z;`` (RFC 8461 3.1); PolicyError if it is not one.

    ``v`` must come first; unknown fields are ignored (extensions).
    """
    fields = [f.strip() for f in text.strip().split(";")]
    if fields and fields[-1] == "":
        fields.pop()
    pairs: list[tuple[str, str]] = []
    for field_text in fields:
        key, eq, value = field_text.partition("=")
        if not eq or not key.strip():
            raise PolicyError(f"not a key=value field: {field_text[:40]!r}")
        pairs.append((key.strip(), value.strip()))
    if not pairs or pairs[0] != ("v", "STSv1"):
        raise PolicyError("the record does not start with v=STSv1")
    ids = [value for key, value in pairs if key == "id"]
    if len(ids) != 1 or not _ID.match(ids[0]):
        raise PolicyError("the record needs one id of 1-32 letters and digits")
    return StsRecord(ids[0])


def _valid_pattern(pattern: str) -> bool:
    name = pattern[2:] if pattern.startswith("*.") else pattern
    labels = name.rstrip(".").lower().split(".")
    return len(name) <= 253 and len(labels) >= 1 and all(_LABEL.match(x) for x in labels)


def parse_policy(text: str) -> StsPolicy:
    """The policy file (RFC 8461 3.2): ``key: value`` lines, CRLF or LF.

    version must be STSv1; mode enforce, testing or none; max_age 0 to one
    year; at least one mx unless the mode is none.  A key given twice keeps
    its first value (mx collects them all); unknown keys are extensions.
    """
    values: dict[str, str] = {}
    mx: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise PolicyError(f"not a key: value line: {line[:40]!r}")
        key, value = key.strip(), value.strip()
        if key == "mx":
            if not _valid_pattern(value):
                raise PolicyError(f"invalid mx pattern {value[:60]!r}")
            mx.append(_normal_host(value))
        else:
            values.setdefault(key, value)
    if values.get("version") != "STSv1":
        raise PolicyError("version is not STSv1")
    mode = values.get("mode", "")
    if mode not in (ENFORCE, TESTING, NONE):
        raise PolicyError(f"invalid mode {mode[:20]!r}")
    age = values.get("max_age", "")
    if not age.isascii() or not age.isdigit() or len(age) > 10:
        raise PolicyError("max_age is not a number")
    if int(age) > MAX_AGE_LIMIT:
        raise PolicyError("max_age is more than a year")
    if not mx and mode != NONE:
        raise PolicyError("no mx in an enforce or testing policy")
    return StsPolicy(mode, tuple(dict.fromkeys(mx)), int(age))


# --- fetching -------------------------------------------------------------------------------
class _DnsResolver(AbstractResolver):
    """aiohttp's host lookups through our resolver (the one MX lookups use)."""

    def __init__(self, addresses: Callable[[str], Awaitable[list[str]]]) -> None:
        self._addresses = addresses

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        try:
            found = await self._addresses(host)
        except DnsError as exc:
            raise OSError(f"cannot resolve {host}: {type(exc).__name__}") from exc
        results: list[ResolveResult] = []
        for address in found:
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            results.append({"hostname": host, "host": address, "port": port, "family": fam,
                            "proto": 0, "flags": socket.AI_NUMERICHOST})
        if not results:
            raise OSError(f"{host} has no address")
        return results

    async def close(self) -> None:
        pass


@dataclass(frozen=True)
class FetchConfig:
    ca_file: str | None = None  # None: the system trust store
    port: int = 443  # tests run the policy server elsewhere
    connect_timeout: float = 10.0
    total_timeout: float = 30.0  # RFC 8461 3.3: "a reasonable timeout"


class PolicyFetcher:
    """GET the policy file over verified HTTPS (RFC 8461 3.3)."""

    def __init__(self, config: FetchConfig,
                 addresses: Callable[[str], Awaitable[list[str]]]) -> None:
        self.config = config
        self._addresses = addresses
        self._context = ssl.create_default_context(cafile=config.ca_file)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2

    async def fetch(self, domain: str) -> StsPolicy:
        host = f"mta-sts.{_normal_host(domain)}"
        port = "" if self.config.port == 443 else f":{self.config.port}"
        url = f"https://{host}{port}{WELL_KNOWN}"
        timeout = aiohttp.ClientTimeout(total=self.config.total_timeout,
                                        sock_connect=self.config.connect_timeout)
        connector = aiohttp.TCPConnector(ssl=self._context,
                                         resolver=_DnsResolver(self._addresses),
                                         use_dns_cache=False)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                             trust_env=False) as session, \
                    session.get(url, allow_redirects=False) as response:
                body = await self._read(response)
        except PolicyFetchError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            raise PolicyFetchError(f"{host}: {type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())[:200]}") from exc
        try:
            return parse_policy(body.decode("utf-8"))
        except (UnicodeDecodeError, PolicyError) as exc:
            raise PolicyFetchError(f"{host}: invalid policy: {exc}") from exc

    @staticmethod
    async def _read(response: aiohttp.ClientResponse) -> bytes:
        # RFC 8461 3.3: only a 200, never a redirect, and the type text/plain.
        if response.status != 200:
            raise PolicyFetchError(f"HTTP status {response.status}")
        if response.content_type != "text/plain":
            raise PolicyFetchError(f"content type {response.content_type!r}")
        if (response.content_length or 0) > MAX_POLICY_BYTES:
            raise PolicyFetchError("policy too large")
        body = b""
        async for chunk in response.content.iter_chunked(8192):
            body += chunk
            if len(body) > MAX_POLICY_BYTES:
                raise PolicyFetchError("policy too large")
        return body


# --- cache and lookup -------------------------------------------------------------------------
@dataclass(frozen=True)
class CachedPolicy:
    domain: str
    policy_id: str
    policy: StsPolicy
    fetched_at: dt.datetime
    expires_at: dt.datetime


class PolicyCache(Protocol):
    async def get(self, domain: str) -> CachedPolicy | None: ...
    async def put(self, entry: CachedPolicy) -> None: ...


class Fetching(Protocol):
    async def fetch(self, domain: str) -> StsPolicy: ...


class TxtLookup(Protocol):
    async def txt(self, name: str) -> list[str]: ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MtaSts:
    """The policy in force for a domain, or None (RFC 8461 3 and 5.1)."""

    def __init__(self, resolver: TxtLookup, fetcher: Fetching, cache: PolicyCache, *,
                 clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self._resolver = resolver
        self._fetcher = fetcher
        self._cache = cache
        self._clock = clock

    async def _record(self, domain: str) -> StsRecord | None:
        try:
            texts = await self._resolver.txt(f"_mta-sts.{domain}")
        except DnsError:
            return None  # RFC 8461 3.1: as if there were no record (the cache may help)
        # RFC 8461 3.1: keep records starting with v=STSv1; exactly one must remain.
        candidates = [t for t in texts if t.strip().startswith("v=STSv1")]
        if len(candidates) != 1:
            return None
        try:
            return parse_sts_record(candidates[0])
        except PolicyError:
            return None

    async def policy(self, domain: str) -> StsPolicy | None:
        domain = _normal_host(domain)
        now = self._clock()
        cached = await self._cache.get(domain)
        if cached is not None and cached.expires_at <= now:
            cached = None
        record = await self._record(domain)
        if record is None or (cached is not None and cached.policy_id == record.id):
            return cached.policy if cached is not None else None
        try:
            fetched = await self._fetcher.fetch(domain)
        except PolicyFetchError as exc:
            log.warning("event=mta_sts_fetch_failed domain=%s cached=%s reason=%r", domain,
                        str(cached is not None).lower(), str(exc))
            return cached.policy if cached is not None else None
        await self._cache.put(CachedPolicy(domain, record.id, fetched, now,
                                           now + dt.timedelta(seconds=fetched.max_age)))
        log.info("event=mta_sts_policy domain=%s id=%s mode=%s max_age=%d", domain, record.id,
                 fetched.mode, fetched.max_age)
        return fetched

