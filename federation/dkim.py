"""DKIM signing and verification (RFC 6376; Ed25519 per RFC 8463) on top of dkimpy.

dkimpy does the canonicalization, the header building and the verification.  What
we add:

* RSA signatures are made by OpenSSL (through ``cryptography``), not by
  dkimpy's pure-Python modular exponentiation: about 1 ms instead of 10 ms
  per RSA-2048 signature, and constant-time.  dkimpy still canonicalizes,
  hashes and builds the header field (see :class:`_OpenSslRsaDkim`); each key
  (RSA and Ed25519) is loaded once per process, not parsed per signature;

* keys come as PEM (federation.keys) and are converted to what dkimpy takes;
* cheaper per message, same bytes: relaxed body canonicalization skips
  dkimpy's regex passes when the body has no whitespace to fold
  (:func:`relaxed_body`), one parsed message, body hash and set of
  canonicalized header fields serve all of a school's keys,
  and a key record is parsed once, not per signature checked;
* verification never lets dkimpy touch the network: the DKIM-Signature fields
  are parsed in a worker thread, the key records are fetched with our async
  :class:`~federation.resolver.Resolver`, and the signatures are checked in a
  worker thread with a ``dnsfunc`` that only serves the prefetched records;
* each signature gets an RFC 8601 2.7.1 result: pass, fail (the signature or
  body hash does not match), permerror (malformed signature, no key, bad key),
  temperror (the key lookup failed temporarily, RFC 6376 6.1.2).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import dkim as dkimpy
import nacl.exceptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim import canonicalization as _dkimpy_canonicalization

from federation.keys import (
    DKIM_ED25519,
    DKIM_RSA,
    DkimKey,
    SchoolKeyPaths,
    load_dkim_keys,
)
from federation.resolver import DnsNotFound, DnsTemporaryError, Resolver

log = logging.getLogger("schulhof.federation.dkim")
# dkimpy logs every failed verification at ERROR; those are normal for mail
# from the internet and our results carry the reason.  A private logger
# outside the logging tree (no parent, level above CRITICAL) silences it
# without touching any process-wide logging configuration.
_library_log = logging.Logger("schulhof.federation.dkim.dkimpy", level=logging.CRITICAL + 1)

# A message with more signatures than this is not worth the lookups (DoS).
MAX_SIGNATURES = 8

# Up to this size a message is verified on the caller's thread (the event
# loop): dkimpy's parsing and canonicalisation are Python holding the GIL,
# so a worker thread ran them no more concurrently, and its two hops per
# message (a thread woken, the loop woken back) cost school B as many CPU
# samples as the verification itself (federation_mail, py-spy).  Bigger
# messages (a hash over megabytes) still go to a thread.
VERIFY_INLINE = 64 * 1024

PASS, FAIL, NEUTRAL, TEMPERROR, PERMERROR = "pass", "fail", "neutral", "temperror", "permerror"


@dataclass(frozen=True)
class DkimResult:
    """One DKIM-Signature's outcome (RFC 8601 2.7.1)."""

    result: str
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    reason: str = ""
    # The first characters of b=, to tell signatures apart (RFC 6008 header.b).
    signature_prefix: str = ""


_dkimpy_relaxed_body = _dkimpy_canonicalization.Relaxed.canonicalize_body


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4 relaxed body canonicalization, the same bytes as dkimpy's.

    dkimpy runs two regex substitutions over the whole body (trailing WSP,
    WSP runs), about 0.7 ms each for 10 KB, twice per signature made or
    checked.  Most bodies have neither a tab, nor two spaces in a row, nor a
    space before a line end, so both substitutions would change nothing:
    three substring searches (C speed) tell, and only then is dkimpy's code
    run.  Property-tested against dkimpy's own functions.
    """
    if b"\t" in body or b"  " in body or b" \r\n" in body:
        return bytes(_dkimpy_relaxed_body(body))
    stripped = _dkimpy_canonicalization.strip_trailing_lines(body)
    return bytes(_dkimpy_canonicalization.correct_empty_body(stripped))


# dkimpy has no hook for its canonicalization; its relaxed policy is this class
# attribute, which every DKIM object (ours and any other in the process) reads.
_dkimpy_canonicalization.Relaxed.canonicalize_body = staticmethod(relaxed_body)


@dataclass(frozen=True)
class _Signature:
    signature: bytes


class _DigestSigner(Protocol):
    def sign(self, digest: bytes) -> _Signature: ...


@dataclass(frozen=True)
class _PrehashedRsaSigner:
    """RSASSA-PKCS1-v1_5 (RFC 8017 8.2) over a SHA-256 digest dkimpy computed."""

    key: rsa.RSAPrivateKey

    def sign(self, digest: bytes) -> _Signature:
        return _Signature(self.key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())))


@dataclass(frozen=True)
class _Ed25519Signer:
    """Ed25519 (RFC 8032, deterministic) over the SHA-256 digest, as RFC 8463 3 says
    and as dkimpy's ``nacl`` key does it."""

    key: ed25519.Ed25519PrivateKey

    def sign(self, digest: bytes) -> _Signature:
        return _Signature(self.key.sign(digest))


@functools.lru_cache(maxsize=16)
def _digest_signer(private_pem: bytes, algorithm: str) -> _DigestSigner:
    """The key as a signer of digests, loaded once per key: loading an RSA key checks
    it (tens of ms), and dkimpy would parse its PEM (pure-Python ASN.1, about
    0.2 ms) and derive the Ed25519 key pair again for every signature."""
    if algorithm not in (DKIM_RSA, DKIM_ED25519):
        raise ValueError(f"unsupported DKIM algorithm {algorithm}")
    key = serialization.load_pem_private_key(private_pem, password=None)
    if algorithm == DKIM_RSA and isinstance(key, rsa.RSAPrivateKey):
        return _PrehashedRsaSigner(key)
    if algorithm == DKIM_ED25519 and isinstance(key, ed25519.Ed25519PrivateKey):
        return _Ed25519Signer(key)
    raise ValueError(f"key does not fit algorithm {algorithm}")


def parse_message(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's ``rfc822_parse`` (header fields, body with CRLF line ends), cheaper.

    dkimpy splits the whole message into lines and joins the body's lines
    again, for every message.  When every line end already is CRLF (no bare
    LF: what our submission and MX store), the body is the bytes after the
    first empty line as they are, and only the header block is dkimpy's to
    parse.  Property-tested against dkimpy's function.
    """
    end = message.find(b"\r\n\r\n")
    if end < 0 or message.startswith(b"\r\n") or message.count(b"\n") != message.count(
            b"\r\n"):
        return dkimpy.rfc822_parse(message)
    headers, _ = dkimpy.rfc822_parse(message[:end + 2])
    return headers, message[end + 4:]


def load_signing_keys(keys: Iterable[DkimKey]) -> None:
    """Loads the keys as signers now (start-up, in a worker thread), not with the
    first message: loading an RSA key costs tens of milliseconds, and the first
    messages, signed in several threads at once, would each load it."""
    for key in keys:
        _digest_signer(key.private_pem, key.algorithm)


_RELAXED = _dkimpy_canonicalization.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_SIGNATURE_NAME = b"DKIM-Signature"


class _OpenSslRsaDkim(dkimpy.DKIM):
    """dkimpy's message parsing and header building; keys and signatures by OpenSSL.

    RFC 6376 5 with relaxed/relaxed canonicalization, the same bytes as
    dkimpy's ``sign`` (tests compare both byte for byte, RSA and Ed25519,
    and the RFC 8463 example).  :meth:`sign_with` is dkimpy's ``sign`` and
    ``gen_header`` cut to what we use (no ``l=``, ``i=`` is ``@domain``, no
    TLSRPT), with three savings:

    * the signature step is OpenSSL's with a key loaded once
      (:func:`_digest_signer`), where dkimpy does RSA in pure Python and
      parses the key for every signature (PKCS#1 v1.5 and Ed25519 are
      deterministic, so the result is the same);
    * the body hash (``bh=``) and the canonicalized header fields are made
      once per message and shared by all of the school's keys (both
      signatures use SHA-256 and relaxed/relaxed);
    * the message is parsed once for all keys.

    Folding, tag order, the header selection (``select_headers``) and the
    hashing of the signature field itself (``hash_headers``) stay dkimpy's.
    """

    signature_algorithm: bytes  # dkimpy's attributes (dkimpy has no type hints)
    headers: list[tuple[bytes, bytes]]
    body: bytes
    should_not_sign: set[bytes]
    include_headers: tuple[bytes, ...]
    linesep: bytes

    _body_hash: bytes | None = None
    _canonical_headers: list[tuple[bytes, bytes]] | None = None

    def set_message(self, message: bytes) -> None:
        """dkimpy's, with the message parsed by :func:`parse_message`."""
        super().set_message(b"")
        if message:
            self.headers, self.body = parse_message(message)  # type: ignore[assignment]

    def sign_with(self, selector: str, domain: str, private_key_pem: bytes, algorithm: str,
                  headers: Sequence[str] | None = None) -> bytes:
        """One DKIM-Signature field; the same object signs with several keys."""
        signer = _digest_signer(private_key_pem, algorithm)
        include = tuple(x.lower() for x in (
            [h.encode("ascii") for h in headers] if headers is not None
            else self.default_sign_headers()))
        if b"from" not in include:
            raise dkimpy.ParameterError("The From header field MUST be signed")
        for name in set(include).intersection(self.should_not_sign):
            raise dkimpy.ParameterError(f"The {name!r} header field SHOULD NOT be signed")
        self.include_headers = include
        self.signature_algorithm = algorithm.encode("ascii")
        if self._body_hash is None:
            self._body_hash = base64.b64encode(
                hashlib.sha256(_RELAXED.canonicalize_body(self.body)).digest())
        domain_bytes = domain.encode("ascii")
        fields = [
            (b"v", b"1"), (b"a", self.signature_algorithm), (b"c", b"relaxed/relaxed"),
            (b"d", domain_bytes), (b"i", b"@" + domain_bytes), (b"q", b"dns/txt"),
            (b"s", selector.encode("ascii")), (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(include)), (b"bh", self._body_hash),
            # As dkimpy: b= forced onto its own line, so folding it later moves nothing.
            (b"b", b"0" * 60),
        ]
        return b"DKIM-Signature: " + self._signed_field(fields, include, signer)

    def _signed_field(self, fields: list[tuple[bytes, bytes]], include: tuple[bytes, ...],
                      signer: _DigestSigner) -> bytes:
        """dkimpy's ``gen_header`` (RFC 6376 3.7: the selected header fields, then the
        signature field with an empty b=, hashed; the digest signed)."""
        value = dkimpy.fold(b"; ".join(b"=".join(x) for x in fields),
                            namelen=len(_SIGNATURE_NAME), linesep=b"\r\n")
        value = dkimpy.RE_BTAG.sub(b"\\1", value)
        if self._canonical_headers is None:
            self._canonical_headers = _RELAXED.canonicalize_headers(self.headers)
        hasher = hashlib.sha256()
        dkimpy.hash_headers(hasher, _RELAXED, self._canonical_headers, list(include),
                            (_SIGNATURE_NAME, b" " + value), dict(fields))
        signature = signer.sign(hasher.digest()).signature
        fields = [(b"b", base64.b64encode(signature)) if name == b"b" else (name, v)
                  for name, v in fields]
        return bytes(dkimpy.fold(b"; ".join(b"=".join(x) for x in fields) + self.linesep,
                                 namelen=len(_SIGNATURE_NAME), linesep=self.linesep))


def sign(message: bytes, domain: str, selector: str, private_key_pem: bytes,
         algorithm: str = DKIM_RSA, headers: Sequence[str] | None = None) -> bytes:
    """The ``DKIM-Signature: ...\\r\\n`` header field to prepend to ``message``.

    RFC 6376 5: relaxed/relaxed canonicalization (survives the header
    re-folding some relays do).  ``headers`` defaults to dkimpy's choice: the
    RFC 6376 5.4.1 recommended fields present in the message, with From
    signed twice so no second From can be added (5.4.2).  CPU-bound: call it
    in a worker thread.
    """
    signer = _OpenSslRsaDkim(message, logger=_library_log, linesep=b"\r\n")
    return signer.sign_with(selector, domain, private_key_pem, algorithm, headers)


class DkimSigner:
    """Signs outgoing mail of one domain with every key it has (RSA and Ed25519).

    RFC 8463 3: Ed25519 signatures go next to an RSA one, because not every
    verifier reads Ed25519 yet.
    """

    def __init__(self, domain: str, keys: Sequence[DkimKey]) -> None:
        self.domain = domain
        self.keys = tuple(keys)

    @classmethod
    async def for_school(cls, domain: str, paths: SchoolKeyPaths) -> DkimSigner:
        """A signer with the school's RSA and Ed25519 keys (read in a worker thread)."""
        return cls(domain, await asyncio.to_thread(load_dkim_keys, paths))

    def sign_sync(self, message: bytes, headers: Sequence[str] | None = None) -> bytes:
        """The message with one DKIM-Signature per key prepended."""
        if not self.keys:
            return message
        signer = _OpenSslRsaDkim(message, logger=_library_log, linesep=b"\r\n")
        fields = b"".join(signer.sign_with(k.selector, self.domain, k.private_pem,
                                           k.algorithm, headers) for k in self.keys)
        return fields + message

    async def sign(self, message: bytes, headers: Sequence[str] | None = None) -> bytes:
        return await asyncio.to_thread(self.sign_sync, message, headers)


# --- verification ---------------------------------------------------------------

_RSA_HASHES: dict[bytes, hashes.HashAlgorithm] = {
    b"rsa-sha256": hashes.SHA256(), b"rsa-sha1": hashes.SHA1()}


@functools.lru_cache(maxsize=256)
def _rsa_public_key(modulus: int, exponent: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


@dataclass(frozen=True)
class _PrehashedRsaVerifier:
    """RSASSA-PKCS1-v1_5 verification (RFC 8017 8.2.2) of a digest dkimpy computed,
    shaped like the Ed25519 key dkimpy expects: ``verify`` raises on a bad signature."""

    public: dict[str, int]  # dkimpy's parsed key: {"modulus": n, "publicExponent": e}
    algorithm: hashes.HashAlgorithm

    def verify(self, digest: bytes, signature: bytes) -> None:
        key = _rsa_public_key(self.public["modulus"], self.public["publicExponent"])
        # dkimpy reads the signature as an integer (OS2IP), so leading zero octets
        # do not matter to it; OpenSSL wants exactly k octets.  Same answers as dkimpy.
        signature = signature.lstrip(b"\0").rjust((key.key_size + 7) // 8, b"\0")
        try:
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(self.algorithm))
        except (InvalidSignature, ValueError):
            raise nacl.exceptions.BadSignatureError("signature did not verify") from None


# dkimpy's verify_headerprep result: the signature's tags, the signed header names
# (lower case), the DKIM-Signature fields of the message.
_Prepared = tuple[dict[bytes, bytes], list[bytes], list[tuple[bytes, bytes]]]


class _OpenSslVerifyingDkim(dkimpy.DKIM):
    """dkimpy's verifier with the RSA step done by OpenSSL (about 0.3 ms less per
    message than its pure-Python modular arithmetic).

    The mirror of :class:`_OpenSslRsaDkim`: dkimpy checks an Ed25519 key by
    calling ``pk.verify(digest, signature)`` on the digest of the
    canonicalized header fields, so for the signature step only, an RSA key
    is handed to that path as a :class:`_PrehashedRsaVerifier`.  Hashing,
    canonicalization, the body hash and the tag checks stay dkimpy's; the
    minimum key size is checked as dkimpy's RSA path does (after a valid
    signature).  Tests compare both verifiers on valid and tampered mail.
    """

    # dkimpy's attributes (dkimpy has no type hints): the key of the signature
    # being checked, its type tag and size, the smallest size allowed.
    pk: object  # {"modulus": n, "publicExponent": e} for RSA, a nacl VerifyKey for Ed25519
    ktag: bytes | None
    keysize: int
    minkey: int

    seqtlsrpt: object
    signature_fields: dict[bytes, bytes]
    domain: bytes
    selector: bytes
    include_headers: tuple[bytes, ...]

    _prepared: dict[int, _Prepared]
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def set_message(self, message: bytes) -> None:
        """dkimpy's, with the message parsed by :func:`parse_message` (as the
        signer's): dkimpy's own split and join of the whole message was a tenth
        of the receiving school's CPU samples in federation_mail."""
        super().set_message(b"")
        if message:
            self.headers, self.body = parse_message(message)  # type: ignore[assignment]

    def verify_headerprep(self, idx: int = 0) -> _Prepared | Literal[False]:
        """dkimpy's, remembered per signature: :func:`_parse_signatures` reads each
        signature's tags and ``verify`` would read them again (a third of the CPU
        of checking a message).  Each caller gets its own list of header names:
        ``verify_sig_process`` appends to it."""
        prepared = self.__dict__.setdefault("_prepared", {})
        known = prepared.get(idx)
        if known is None:
            fresh = super().verify_headerprep(idx)
            if not fresh:
                return fresh
            sig, include, sigheaders = fresh
            known = prepared[idx] = (sig, list(include), sigheaders)
        sig, include, sigheaders = known
        self.signature_fields, self.domain, self.selector = sig, sig[b"d"], sig[b"s"]
        self.include_headers = tuple(include)
        return sig, list(include), sigheaders

    def verify_sig(self, sig: dict[bytes, bytes], include_headers: list[bytes],
                   sig_header: tuple[bytes, bytes], dnsfunc: Callable[..., object]) -> bool:
        """dkimpy's, with the key record parsed once per record, not per message
        (its pure-Python ASN.1 reading of an RSA key costs about 1 ms)."""
        name = sig[b"s"] + b"._domainkey." + sig[b"d"] + b"."
        try:
            record = dnsfunc(name, timeout=self.timeout)
            self.pk, self.keysize, self.ktag, self.seqtlsrpt = _evaluated_key(name, record)
        except (dkimpy.KeyFormatError, binascii.Error, dkimpy.DnsTimeoutError):
            return False
        return self.verify_sig_process(sig, include_headers, sig_header, dnsfunc)

    def verify_sig_process(self, sig: dict[bytes, bytes], include_headers: list[bytes],
                           sig_header: tuple[bytes, bytes],
                           dnsfunc: Callable[..., object]) -> bool:
        algorithm = _RSA_HASHES.get(sig.get(b"a", b""))
        rsa_key = self.pk
        if self.ktag != b"rsa" or algorithm is None or not isinstance(rsa_key, dict):
            return super().verify_sig_process(sig, include_headers, sig_header, dnsfunc)
        self.ktag, self.pk = b"ed25519", _PrehashedRsaVerifier(rsa_key, algorithm)
        try:
            valid = super().verify_sig_process(sig, include_headers, sig_header, dnsfunc)
        finally:
            self.ktag, self.pk = b"rsa", rsa_key
        if valid and self.keysize < self.minkey:
            raise dkimpy.KeyFormatError(f"public key too small: {self.keysize}")
        return valid


@functools.lru_cache(maxsize=256)
def _evaluated_key(name: bytes, record: object) -> tuple[object, int, bytes, object]:
    """dkimpy's parsed public key (read-only to it): key, size, type tag, t=s."""
    pk, keysize, ktag, seqtlsrpt = dkimpy.evaluate_pk(name, record)
    return pk, keysize, ktag, seqtlsrpt


@dataclass(frozen=True)
class LocalKeys:
    """The school's own DKIM keys as their TXT records, for its own domains.

    ``records`` maps ``<selector>._domainkey.<domain>`` (lower case) to the
    record ``schulhof dns-records`` publishes there.
    """

    domains: frozenset[str] = frozenset()
    records: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, domains: Iterable[str], keys: Iterable[DkimKey]) -> LocalKeys:
        own = frozenset(d.lower().rstrip(".") for d in domains)
        return cls(own, {f"{k.selector}._domainkey.{d}".lower(): k.dns_txt
                         for d in own for k in keys})


@dataclass(frozen=True)
class _Parsed:
    index: int
    domain: str
    selector: str
    algorithm: str
    prefix: str
    error: str = ""  # a permerror found while parsing

    @property
    def key_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


_SIGNATURE_FIELD = re.compile(rb"(?im)^dkim-signature[ \t]*:")


def _header_section(message: bytes) -> bytes:
    """The message up to its first empty line (CRLF or bare LF), or all of it."""
    ends = [i for i in (message.find(b"\n\r\n"), message.find(b"\n\n")) if i >= 0]
    return message[:min(ends) + 1] if ends else message

# What dkimpy raises on hostile input besides its own exceptions.
_MALFORMED = (dkimpy.DKIMException, ValueError, TypeError, KeyError, IndexError)


def _text(value: object) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")


def _parse_signatures(message: bytes) -> tuple[_OpenSslVerifyingDkim, list[_Parsed]]:
    # may raise MessageFormatError
    verifier = _OpenSslVerifyingDkim(message, logger=_library_log)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    parsed: list[_Parsed] = []
    for index in range(min(count, MAX_SIGNATURES)):
        try:
            prepared = verifier.verify_headerprep(index)
        except _MALFORMED as exc:
            fields = verifier.signature_fields or {}
            parsed.append(_Parsed(index, _text(fields.get(b"d")).lower(),
                                  _text(fields.get(b"s")), _text(fields.get(b"a")), "",
                                  error=str(exc) or exc.__class__.__name__))
            continue
        if not prepared:  # not reached: index < count
            continue
        sig = prepared[0]
        domain, selector = _text(sig[b"d"]).lower(), _text(sig[b"s"])
        b_value = b"".join(sig.get(b"b", b"").split())
        parsed.append(_Parsed(index, domain, selector, _text(sig[b"a"]),
                              _text(b_value[:8])))
    return verifier, parsed


@functools.lru_cache(maxsize=1024)
def _key_problem(name: str, record: str) -> str | None:
    """Why a key record is unusable, or None (dkimpy's verify would only say False)."""
    try:
        dkimpy.evaluate_pk(name.encode("ascii"), record.encode("utf-8"))
    except (dkimpy.DKIMException, ValueError) as exc:
        return str(exc) or exc.__class__.__name__
    return None


def _check(verifier: dkimpy.DKIM, parsed: list[_Parsed],
           keys: dict[str, str | DnsTemporaryError | None]) -> list[DkimResult]:
    results: list[DkimResult] = []
    for p in parsed:
        def result(value: str, reason: str = "", p: _Parsed = p) -> DkimResult:
            return DkimResult(value, p.domain, p.selector, p.algorithm, reason, p.prefix)

        if p.error:
            results.append(result(PERMERROR, p.error))
            continue
        key = keys.get(p.key_name)
        if isinstance(key, DnsTemporaryError):
            results.append(result(TEMPERROR, "key lookup failed"))
            continue
        if not key:
            # RFC 6376 6.1.2: no key record -> PERMFAIL "no key for signature".
            results.append(result(PERMERROR, "no key"))
            continue
        problem = _key_problem(p.key_name, key)
        if problem is not None:
            results.append(result(PERMERROR, f"bad key: {problem}"))
            continue

        def dnsfunc(name: bytes, timeout: float = 5, key: str = key) -> bytes:
            return key.encode("utf-8")

        try:
            ok = verifier.verify(p.index, dnsfunc=dnsfunc)
        except dkimpy.ValidationError as exc:  # the body hash does not match
            results.append(result(FAIL, str(exc).split(" (")[0]))
            continue
        except _MALFORMED as exc:
            results.append(result(PERMERROR, str(exc) or exc.__class__.__name__))
            continue
        results.append(result(PASS) if ok else result(FAIL, "signature did not verify"))
    return results


async def _fetch_key(resolver: Resolver, name: str) -> str | DnsTemporaryError | None:
    try:
        records = await resolver.txt(name)
    except DnsNotFound:
        return None
    except DnsTemporaryError as exc:
        return exc
    # RFC 6376 3.6.2.2: more than one record is the publisher's mistake; use
    # the first that looks like a key.
    for record in records:
        if "p=" in record:
            return record
    return None


async def verify(message: bytes, resolver: Resolver,
                 local_keys: LocalKeys | None = None) -> list[DkimResult]:
    """Every DKIM-Signature of ``message`` (top first, at most MAX_SIGNATURES).

    An empty list means the message is unsigned (RFC 8601 ``dkim=none``).
    Signatures in one of ``local_keys``' domains are checked against the
    school's own keys only, never DNS: a forged or unreachable DNS answer
    cannot vouch for mail in the school's name.
    """
    if not _SIGNATURE_FIELD.search(_header_section(message)):
        return []  # unsigned: no need to parse it in a worker thread
    inline = len(message) <= VERIFY_INLINE
    try:
        verifier, parsed = (_parse_signatures(message) if inline
                            else await asyncio.to_thread(_parse_signatures, message))
    except _MALFORMED as exc:
        return [DkimResult(PERMERROR, reason=f"unparseable message: {exc}")]
    local = local_keys or LocalKeys()
    names = sorted({p.key_name for p in parsed if not p.error and p.domain not in local.domains})
    fetched = await asyncio.gather(*(_fetch_key(resolver, n) for n in names))
    keys: dict[str, str | DnsTemporaryError | None] = dict(zip(names, fetched, strict=True))
    keys.update({p.key_name: local.records.get(p.key_name.lower()) for p in parsed
                 if not p.error and p.domain in local.domains})
    results = (_check(verifier, parsed, keys) if inline
               else await asyncio.to_thread(_check, verifier, parsed, keys))
    for r in results:
        log.info("dkim result=%s d=%s s=%s a=%s reason=%r", r.result, r.domain, r.selector,
                 r.algorithm, r.reason)
    return results
