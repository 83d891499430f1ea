"""The one TLS server context of every listener (SMTP, IMAP, webmail, Matrix).

TLS 1.2 or newer (RFC 8996, RFC 8314 4.1) and, for TLS 1.2, only AEAD cipher
suites with forward secrecy (ECDHE/DHE with AES-GCM or ChaCha20-Poly1305):
the CBC suites OpenSSL still enables by default (ECDHE-RSA-AES256-SHA384,
ECDHE-RSA-AES128-SHA256) are left out, as RFC 9325 4.2 and BSI TR-02102-2
recommend. TLS 1.3 suites are all AEAD and not affected by ``set_ciphers``.
"""

from __future__ import annotations

import ssl

#: OpenSSL cipher string for TLS 1.2: forward secrecy and AEAD only.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"


def server_tls_context(certificate: str, key: str) -> ssl.SSLContext:
    """A server context with the school's certificate chain and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.load_cert_chain(certificate, key)
    return context
