"""The From domain outgoing mail is signed for (RFC 7489 3.1.1 alignment)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

from hypothesis import example, given, settings

from federation.keys import SchoolKeyPaths, generate_school_keys, load_dkim_keys
from mailserver.outbound.signing import MessageSigner, from_domain, parsed_from_domain
from tests.federation.test_from_header import messages
from tests.support.properties import examples


@settings(max_examples=examples(1500), deadline=None)
@given(messages())
@example(b"From: Frau Lehrerin <l@Schule.Test>\r\nTo: x@y\r\n\r\n")
@example(b"From: a@x.test, b@y.test\r\n\r\n")
@example(b"From: a@x.test\r\nFrom: b@y.test\r\n\r\n")
def test_fast_from_domain_is_the_email_packages(message: bytes) -> None:
    """Where the strict pattern answers, it gives what the email package (compat32,
    the first address) gives; elsewhere the email package answers."""
    assert from_domain(message) == parsed_from_domain(message)


def test_signing_domain_is_the_from_domain_if_local() -> None:
    signer = MessageSigner([], ["a.test", "schule.test"], "a.test")
    assert signer.domain_for(b"From: L <l@Schule.Test>\r\n\r\nx") == "schule.test"
    assert signer.domain_for(b"From: l@elsewhere.test\r\n\r\nx") == "a.test"
    assert signer.domain_for(b"Subject: no sender\r\n\r\nx") == "a.test"


def test_keys_are_loaded_before_the_first_message(tmp_path: Path) -> None:
    """load_keys (start-up) loads them; signing then never parses a key."""
    paths = SchoolKeyPaths.in_dir(tmp_path / "keys")
    generate_school_keys(paths)
    signer = MessageSigner(load_dkim_keys(paths), ["a.test"], "a.test")
    signer.load_keys()
    with mock.patch("federation.dkim.serialization.load_pem_private_key",
                    side_effect=AssertionError("key parsed while signing")):
        signed = signer.sign_sync(b"From: paul@a.test\r\nSubject: x\r\n\r\nText\r\n")
    assert signed.count(b"DKIM-Signature: ") == 2
