"""Each school's own keys: TLS certificate, DKIM keys (RSA and Ed25519), Matrix signing key.

Made with ``cryptography`` at ``schulhof init``; stored as PEM files readable
only by the owner.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to an existing file
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def make_self_signed_certificate(cert_path: Path, key_path: Path, hostnames: list[str],
                                 ip_addresses: Sequence[str] = (), days: int = 825) -> None:
    """A self-signed ECDSA P-256 certificate for ``hostnames`` (first is the CN)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    alt_names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    for ip in ip_addresses:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(ip)))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _pem(key))
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class SchoolKeyPaths:
    dkim_rsa: Path
    dkim_ed25519: Path
    matrix_signing: Path

    @classmethod
    def in_dir(cls, keys_dir: Path) -> SchoolKeyPaths:
        return cls(keys_dir / "dkim-rsa.pem", keys_dir / "dkim-ed25519.pem",
                   keys_dir / "matrix-signing.pem")


def generate_school_keys(paths: SchoolKeyPaths) -> None:
    """DKIM keys (RSA 2048, RFC 6376; Ed25519, RFC 8463) and the Matrix server key."""
    _write_private(paths.dkim_rsa, _pem(rsa.generate_private_key(65537, 2048)))
    _write_private(paths.dkim_ed25519, _pem(ed25519.Ed25519PrivateKey.generate()))
    _write_private(paths.matrix_signing, _pem(ed25519.Ed25519PrivateKey.generate()))


# --- DKIM public keys and selectors (added for DNS records and signing) ---------

DKIM_RSA = "rsa-sha256"
DKIM_ED25519 = "ed25519-sha256"


@dataclass(frozen=True)
class DkimKey:
    """One DKIM signing key with what the signer and the DNS record both need.

    ``selector`` is derived from the public key (see :func:`dkim_selector`),
    so the signer and ``schulhof dns-records`` agree without extra settings,
    and a new key automatically gets a new selector (no clash with the
    record of the old key while DNS caches still hold it).
    """

    algorithm: str  # DKIM_RSA or DKIM_ED25519
    selector: str
    private_pem: bytes
    public_b64: str  # the p= value

    @property
    def dns_txt(self) -> str:
        """The TXT value at ``<selector>._domainkey.<domain>`` (RFC 6376 3.6.1, RFC 8463 4)."""
        k = "rsa" if self.algorithm == DKIM_RSA else "ed25519"
        return f"v=DKIM1; k={k}; p={self.public_b64}"


def dkim_public_b64(private_pem: bytes) -> tuple[str, str]:
    """(algorithm, p= value) of a DKIM private key in PEM.

    RSA: base64 of the DER SubjectPublicKeyInfo (what RFC 6376 3.6.1 keys
    publish in practice and every verifier reads); Ed25519: base64 of the raw
    32-byte public key (RFC 8463 4).
    """
    key = serialization.load_pem_private_key(private_pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return DKIM_RSA, base64.b64encode(der).decode("ascii")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        return DKIM_ED25519, base64.b64encode(raw).decode("ascii")
    raise ValueError("DKIM keys are RSA or Ed25519")


def dkim_selector(algorithm: str, public_b64: str) -> str:
    """``rsa-<8 hex>`` / ``ed-<8 hex>``: the first 32 bits of SHA-256 over the p= value."""
    prefix = "rsa" if algorithm == DKIM_RSA else "ed"
    return f"{prefix}-{hashlib.sha256(public_b64.encode('ascii')).hexdigest()[:8]}"


def load_dkim_key(path: Path) -> DkimKey:
    pem = path.read_bytes()
    algorithm, public = dkim_public_b64(pem)
    return DkimKey(algorithm, dkim_selector(algorithm, public), pem, public)


def load_dkim_keys(paths: SchoolKeyPaths) -> tuple[DkimKey, DkimKey]:
    """The school's (RSA, Ed25519) DKIM keys.  Reads files: call off the event loop."""
    return load_dkim_key(paths.dkim_rsa), load_dkim_key(paths.dkim_ed25519)
