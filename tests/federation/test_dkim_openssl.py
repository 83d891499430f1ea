"""RSA DKIM signatures made by OpenSSL are the ones dkimpy's own RSA code makes.

federation.dkim lets dkimpy canonicalize and build the header field and only
replaces the RSA step (RFC 8017 RSASSA-PKCS1-v1_5, deterministic), so at a
fixed time the two must agree byte for byte, for any message, and the result
must verify with dkimpy's verifier.
"""

from __future__ import annotations

import base64
from unittest import mock

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation import dkim
from federation.keys import DKIM_RSA, SchoolKeyPaths, generate_school_keys, load_dkim_keys
from tests.support.properties import examples

NOW = 1_790_000_000.0
MESSAGE = (b"From: Paul <paul@a.test>\r\nTo: anna@b.test\r\nSubject: Hausaufgabe\r\n"
           b"Date: Mon, 07 Sep 2026 08:00:00 +0200\r\nMessage-ID: <m@a.test>\r\n\r\n"
           b"Hallo  Frau Lehrerin,\r\n\r\nhier ist sie.\r\n\r\n\r\n")


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory):
    paths = SchoolKeyPaths.in_dir(tmp_path_factory.mktemp("keys"))
    generate_school_keys(paths)
    [key] = [k for k in load_dkim_keys(paths) if k.algorithm == DKIM_RSA]
    return key


def dkimpy_reference(message: bytes, key) -> bytes:
    """The same signature made entirely by dkimpy (pure-Python RSA)."""
    pkcs1 = serialization.load_pem_private_key(key.private_pem, None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption())
    return dkimpy.DKIM(message, linesep=b"\r\n").sign(
        key.selector.encode(), b"a.test", pkcs1, signature_algorithm=b"rsa-sha256",
        canonicalize=(b"relaxed", b"relaxed"))


def signed_at(now: float, message: bytes, key) -> tuple[bytes, bytes]:
    with mock.patch.object(dkimpy.time, "time", return_value=now):
        ours = dkim.sign(message, "a.test", key.selector, key.private_pem, DKIM_RSA)
        reference = dkimpy_reference(message, key)
    return ours, reference


def test_openssl_signature_equals_dkimpy_signature(rsa_key) -> None:
    ours, reference = signed_at(NOW, MESSAGE, rsa_key)
    assert ours == reference
    assert ours.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.test;")


def test_signature_verifies_with_dkimpy_and_with_the_public_key(rsa_key) -> None:
    field = dkim.sign(MESSAGE, "a.test", rsa_key.selector, rsa_key.private_pem, DKIM_RSA)
    signed = field + MESSAGE

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        assert name == f"{rsa_key.selector}._domainkey.a.test.".encode()
        return rsa_key.dns_txt.encode()

    assert dkimpy.verify(signed, dnsfunc=dnsfunc)
    # Tampering is caught: the verifier is not just saying yes.
    assert not dkimpy.verify(signed.replace(b"hier ist sie", b"hier ist er"), dnsfunc=dnsfunc)



def test_ed25519_signing_is_unchanged(tmp_path) -> None:
    paths = SchoolKeyPaths.in_dir(tmp_path)
    generate_school_keys(paths)
    [ed] = [k for k in load_dkim_keys(paths) if k.algorithm != DKIM_RSA]
    field = dkim.sign(MESSAGE, "a.test", ed.selector, ed.private_pem, ed.algorithm)
    assert b"a=ed25519-sha256" in field

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        return ed.dns_txt.encode()

    assert dkimpy.verify(field + MESSAGE, dnsfunc=dnsfunc)


_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_body_line = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


@settings(max_examples=examples(30), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subject=_header_text, lines=st.lists(_body_line, max_size=12),
       now=st.floats(min_value=1e9, max_value=4e9))
def test_equal_for_arbitrary_messages(rsa_key, subject: str, lines: list[str],
                                      now: float) -> None:
    message = (f"From: paul@a.test\r\nTo: anna@b.test\r\nSubject: {subject}\r\n\r\n"
               + "".join(f"{line}\r\n" for line in lines)).encode()
    ours, reference = signed_at(now, message, rsa_key)
    assert ours == reference


@pytest.fixture(scope="module")
def ed25519_key(tmp_path_factory: pytest.TempPathFactory):
    paths = SchoolKeyPaths.in_dir(tmp_path_factory.mktemp("keys"))
    generate_school_keys(paths)
    [key] = [k for k in load_dkim_keys(paths) if k.algorithm != DKIM_RSA]
    return key


@settings(max_examples=examples(30), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subject=_header_text, lines=st.lists(_body_line, max_size=12),
       extra=st.lists(st.sampled_from(["Cc: x@a.test", "Reply-To: y@a.test",
                                       "Subject:  zwei  Leerzeichen ", "X-Other: 1"]),
                      max_size=3),
       now=st.floats(min_value=1e9, max_value=4e9))
def test_ed25519_equal_to_dkimpy_for_arbitrary_messages(ed25519_key, subject: str,
                                                        lines: list[str], extra: list[str],
                                                        now: float) -> None:
    """Our Ed25519 signature (key loaded once, body hash shared) is dkimpy's own."""
    message = (f"From: paul@a.test\r\nTo: anna@b.test\r\nSubject: {subject}\r\n"
               + "".join(f"{h}\r\n" for h in extra) + "\r\n"
               + "".join(f"{line}\r\n" for line in lines)).encode()
    seed = serialization.load_pem_private_key(ed25519_key.private_pem, None).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption())
    with mock.patch.object(dkimpy.time, "time", return_value=now):
        ours = dkim.sign(message, "a.test", ed25519_key.selector, ed25519_key.private_pem,
                         ed25519_key.algorithm)
        reference = dkimpy.DKIM(message, linesep=b"\r\n").sign(
            ed25519_key.selector.encode(), b"a.test", base64.b64encode(seed),
            signature_algorithm=b"ed25519-sha256", canonicalize=(b"relaxed", b"relaxed"))
    assert ours == reference


def _verdicts(signed: bytes, key) -> tuple[object, object]:
    """(ours, dkimpy's) outcome for the first signature: True, False or the exception
    class (a body hash mismatch raises); neither touches DNS."""
    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        return key.dns_txt.encode()

    def outcome(verifier: dkimpy.DKIM) -> object:
        try:
            return verifier.verify(0, dnsfunc=dnsfunc)
        except dkimpy.DKIMException as exc:
            return type(exc)

    return (outcome(dkim._OpenSslVerifyingDkim(signed, logger=dkim._library_log)),
            outcome(dkimpy.DKIM(signed, logger=dkim._library_log)))


_tamper = st.sampled_from([
    (b"", b""), (b"hier ist sie", b"hier ist er"), (b"Subject:", b"Subject: x"),
    (b"b=", b"b=AAAA"), (b"b=", b"b=A"), (b"a.test", b"b.test"), (b"Hallo  Frau", b"Hallo Frau"),
    (b"\r\n\r\n\r\n", b"\r\n"),
])


@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_body_line, max_size=8), tamper=_tamper)
def test_openssl_verifier_agrees_with_dkimpy(rsa_key, lines: list[str],
                                             tamper: tuple[bytes, bytes]) -> None:
    """Valid mail passes both, any change fails both (bodies, headers, b=, d=)."""
    message = MESSAGE + "".join(f"{line}\r\n" for line in lines).encode()
    field = dkim.sign(message, "a.test", rsa_key.selector, rsa_key.private_pem, DKIM_RSA)
    signed = (field + message).replace(tamper[0], tamper[1], 1)
    ours, reference = _verdicts(signed, rsa_key)
    assert ours == reference
    # Not a verifier that always says the same: untouched mail passes, real changes fail.
    if tamper == (b"", b""):
        assert ours is True
    elif tamper[0] in (b"hier ist sie", b"Subject:", b"a.test"):
        assert ours is not True


def _dkimpy_relaxed(body: bytes) -> bytes:
    """dkimpy's relaxed body canonicalization, from its own functions."""
    c = dkimpy.canonicalization
    return bytes(c.correct_empty_body(c.strip_trailing_lines(
        c.compress_whitespace(c.strip_trailing_whitespace(body)))))


_body_bytes = st.lists(st.sampled_from([b"a", b"Zz", b" ", b"  ", b"\t", b"\r\n", b"\r", b"\n",
                                        b" \r\n", b"\t\r\n", b"\xc3\xa4", b"."]),
                       max_size=40).map(b"".join)


@settings(max_examples=examples(400), deadline=None)
@given(body=_body_bytes | st.binary(max_size=200))
def test_relaxed_body_is_dkimpys(body: bytes) -> None:
    """The shortcut for bodies without WSP to fold gives dkimpy's bytes for any body,
    and is what dkimpy's relaxed policy now runs."""
    assert dkim.relaxed_body(body) == _dkimpy_relaxed(body)
    policy = dkimpy.canonicalization.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    assert policy.canonicalize_body(body) == _dkimpy_relaxed(body)


def test_relaxed_body_examples() -> None:
    assert dkim.relaxed_body(b"") == b""  # RFC 6376 3.4.4: an empty body stays empty
    assert dkim.relaxed_body(b"Hallo Welt\r\n\r\n\r\n") == b"Hallo Welt\r\n"
    assert dkim.relaxed_body(b"Hallo  \tWelt \r\n") == b"Hallo Welt\r\n"


def test_one_signer_for_both_keys_equals_one_per_key(tmp_path) -> None:
    """DkimSigner parses the message once for all its keys: same fields as one by one."""
    paths = SchoolKeyPaths.in_dir(tmp_path)
    generate_school_keys(paths)
    keys = load_dkim_keys(paths)
    with mock.patch.object(dkimpy.time, "time", return_value=NOW):
        together = dkim.DkimSigner("a.test", keys).sign_sync(MESSAGE)
        apart = b"".join(dkim.sign(MESSAGE, "a.test", k.selector, k.private_pem, k.algorithm)
                         for k in keys) + MESSAGE
    assert together == apart
    assert together.count(b"DKIM-Signature:") == 2


_message_parts = st.lists(st.sampled_from([
    b"From: a@x.test", b"Subject: Hallo", b" folded", b"\tfolded", b"X-A:b", b"",
    b"From other", b"Zz", b"\xc3\xa4", b".", b"\r\n", b"\n", b"\r", b"\r\n\r\n", b" "]),
    max_size=30).map(b"".join)


@settings(max_examples=examples(600), deadline=None)
@given(message=_message_parts | st.binary(max_size=200))
def test_parse_message_is_dkimpys(message: bytes) -> None:
    """The shortcut for messages with CRLF line ends gives dkimpy's header fields
    and body for any message (or its error)."""
    try:
        expected = dkimpy.rfc822_parse(message)
    except (dkimpy.MessageFormatError, IndexError) as exc:  # IndexError: a leading " x"
        with pytest.raises(type(exc)):
            dkim.parse_message(message)
        return
    assert dkim.parse_message(message) == expected


def test_parse_message_examples() -> None:
    message = b"From: a@x.test\r\nSubject: x\r\n  y\r\n\r\nBody\r\n\r\nmore\r\n"
    assert dkim.parse_message(message) == (
        [[b"From", b" a@x.test\r\n"], [b"Subject", b" x\r\n  y\r\n"]], b"Body\r\n\r\nmore\r\n")
    assert dkim.parse_message(b"From: a\nTo: b\n\nx\ny") == dkimpy.rfc822_parse(
        b"From: a\nTo: b\n\nx\ny")  # bare LF: dkimpy's own way
