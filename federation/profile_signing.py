"""Signing configuration profiles (Apple ``.mobileconfig``) as CMS SignedData
(RFC 5652, PKCS #7) with the server's TLS certificate and key, so a device
shows the profile as "verified" when the certificate is trusted."""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7


def cms_signer(certificate_pem: bytes, key_pem: bytes) -> Callable[[bytes], bytes] | None:
    """A function that wraps data into DER SignedData, or None when the key
    type cannot sign CMS (only RSA and EC keys can)."""
    chain = x509.load_pem_x509_certificates(certificate_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not chain or not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return None
    leaf, extra = chain[0], chain[1:]

    def sign(data: bytes) -> bytes:
        builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(
            leaf, key, hashes.SHA256())
        for certificate in extra:
            builder = builder.add_certificate(certificate)
        return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])

    return sign
