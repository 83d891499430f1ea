"""Certificates: reload on SIGHUP without dropping connections, a refused bad
reload keeps the old pair, clear start-up errors for expired or mismatched ones."""

from __future__ import annotations

import asyncio
import datetime as dt
import imaplib
import os
import signal
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conf.app import School
from conf.commands.school import reload_certificate
from conf.settings import Settings
from directory.model import Role
from federation.keys import make_self_signed_certificate
from federation.tls import CertificateProblem

PASSWORD = "ein-sicheres-passwort"


def _serial(school: School) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4_SSL("127.0.0.1", school.settings.listen.imaps, ssl_context=context,
                           timeout=20) as imap:
        der = imap.sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _open_session(school: School) -> imaplib.IMAP4_SSL:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    imap = imaplib.IMAP4_SSL("127.0.0.1", school.settings.listen.imaps, ssl_context=context,
                             timeout=20)
    imap.login("anna", PASSWORD)
    return imap


def _paths(settings: Settings) -> tuple[Path, Path]:
    return settings.path(settings.tls.certificate), settings.path(settings.tls.key)


async def test_sighup_reload_keeps_open_connections(running_school: School) -> None:
    await running_school.directory.create_account(role=Role.PUPIL, login="anna",
                                                  password=PASSWORD)
    cert, key = _paths(running_school.settings)
    first = await asyncio.to_thread(_serial, running_school)
    session = await asyncio.to_thread(_open_session, running_school)
    make_self_signed_certificate(cert, key, ["mail.schule.test", "localhost"],
                                 ip_addresses=["127.0.0.1"])
    # The handler ``schulhof serve`` installs for SIGHUP, called by a real signal.
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, lambda: reload_certificate(running_school))
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.2)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    second = await asyncio.to_thread(_serial, running_school)
    assert second != first
    assert (await asyncio.to_thread(session.noop))[0] == "OK"  # the old connection lives
    await asyncio.to_thread(session.logout)

    # A key that does not belong to the certificate: refused, the good pair stays.
    other_key = ec.generate_private_key(ec.SECP256R1())
    good_key = key.read_bytes()
    key.write_bytes(other_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    with pytest.raises(CertificateProblem, match="does not belong"):
        running_school.tls.reload()
    reload_certificate(running_school)  # logs the refusal, raises nothing
    assert await asyncio.to_thread(_serial, running_school) == second
    key.write_bytes(good_key)


def _expired(cert: Path, key: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.schule.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(days=30))
                   .not_valid_after(now - dt.timedelta(days=1))
                   .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


async def test_expired_or_mismatched_certificate_stops_the_start(settings: Settings) -> None:
    cert, key = _paths(settings)
    _expired(cert, key)
    school = await School.open(settings, migrate=False)
    try:
        with pytest.raises(CertificateProblem, match="expired on"):
            await school.start()
        assert school.services == []  # nothing listens
        make_self_signed_certificate(cert, key, ["mail.schule.test"])
        good = cert.read_bytes()
        make_self_signed_certificate(cert, key, ["mail.schule.test"])
        cert.write_bytes(good)  # the first certificate with the second key
        with pytest.raises(CertificateProblem, match="does not belong"):
            await school.start()
    finally:
        await school.close()
