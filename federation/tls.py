"""The one TLS server context of every listener (SMTP, IMAP, webmail, Matrix).

TLS 1.2 or newer (RFC 8996, RFC 8314 4.1) and, for TLS 1.2, only AEAD cipher
suites with forward secrecy (ECDHE/DHE with AES-GCM or ChaCha20-Poly1305):
the CBC suites OpenSSL still enables by default (ECDHE-RSA-AES256-SHA384,
ECDHE-RSA-AES128-SHA256) are left out, as RFC 9325 4.2 and BSI TR-02102-2
recommend. TLS 1.3 suites are all AEAD and not affected by ``set_ciphers``.
"""

from __future__ import annotations

import datetime as dt
import ssl
import weakref
from pathlib import Path

from cryptography import x509

#: OpenSSL cipher string for TLS 1.2: forward secrecy and AEAD only.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"


def server_tls_context(certificate: str, key: str) -> ssl.SSLContext:
    """A server context with the school's certificate chain and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.load_cert_chain(certificate, key)
    return context


class CertificateProblem(Exception):
    """A certificate the server must not start with; the text says what to do."""


def check_certificate(certificate: str, key: str, *,
                      now: dt.datetime | None = None) -> x509.Certificate:
    """The leaf certificate after checking it: readable, its key matches, in its
    validity period (RFC 5280 4.1.2.5); ``CertificateProblem`` otherwise."""
    try:
        chain = x509.load_pem_x509_certificates(Path(certificate).read_bytes())
    except (OSError, ValueError) as error:
        raise CertificateProblem(f"cannot read the certificate {certificate}: {error}") \
            from None
    if not chain:
        raise CertificateProblem(f"{certificate} holds no certificate")
    leaf = chain[0]
    now = now or dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc < now:
        raise CertificateProblem(
            f"the certificate {certificate} expired on {leaf.not_valid_after_utc:%Y-%m-%d}: "
            "renew it (e.g. certbot renew) and start again or send SIGHUP")
    if leaf.not_valid_before_utc > now:
        raise CertificateProblem(
            f"the certificate {certificate} is valid only from "
            f"{leaf.not_valid_before_utc:%Y-%m-%d}: check the server's clock")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certificate, key)
    except (ssl.SSLError, OSError) as error:
        raise CertificateProblem(
            f"the key {key} does not belong to the certificate {certificate} "
            f"(or cannot be read): {error}") from None
    return leaf


class CertificateStore:
    """The school's certificate and key, and every server context made from them.

    ``reload`` (SIGHUP) loads the files again into the same context objects:
    new TLS handshakes use the new certificate, open connections keep theirs,
    nothing is dropped.  A bad new pair is refused and the old one stays."""

    def __init__(self, certificate: str, key: str) -> None:
        self.certificate = certificate
        self.key = key
        self._contexts: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()

    def context(self) -> ssl.SSLContext:
        context = server_tls_context(self.certificate, self.key)
        self._contexts.add(context)
        return context

    def reload(self) -> x509.Certificate:
        leaf = check_certificate(self.certificate, self.key)
        for context in list(self._contexts):
            context.load_cert_chain(self.certificate, self.key)
        return leaf
