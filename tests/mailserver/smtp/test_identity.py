"""mailserver.smtp.identity: the sender fields of a submitted message (issue 19.2)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from mailserver.smtp.identity import identity_refusal, sender_fields
from tests.support.properties import examples

OWN = {"paul@schule.test", "p.schueler@schule.test"}


async def owns(address: str) -> bool:
    return address.lower() in OWN


def refusal(message: bytes) -> str | None:
    return asyncio.run(identity_refusal(message, owns))


def test_fields_are_found_with_obsolete_blanks_and_folding() -> None:
    message = (b"From : paul@schule.test\r\nSENDER:\r\n x@y.test\r\nResent-From:\ta@b.test\r\n"
               b"Subject: s\r\n\r\nSender: body@not.header\r\n")
    assert sender_fields(message) == [("from", "paul@schule.test"), ("sender", "x@y.test"),
                                      ("resent-from", "a@b.test")]


@given(st.binary(max_size=400))
@settings(max_examples=examples(300), deadline=None)
def test_never_crashes_on_arbitrary_bytes(data: bytes) -> None:
    result = refusal(data)
    assert result is None or result[:3] == "550"


_local = st.from_regex(r"[a-z][a-z0-9.]{0,10}[a-z0-9]", fullmatch=True)
_domain = st.from_regex(r"[a-z]{1,8}\.(test|example|de)", fullmatch=True)
_field = st.sampled_from(["From", "Sender", "Resent-From", "Resent-Sender"])
_decoration = st.sampled_from(['"{a}" <paul@schule.test>', "paul@schule.test ({a})",
                               '"Herr {a} Lehrer" <paul@schule.test>',
                               "=?utf-8?q?{q}?= <paul@schule.test>"])


@given(_local, _domain, _field, _decoration)
@settings(max_examples=examples(200), deadline=None)
def test_a_foreign_address_in_a_display_name_is_always_refused(
        local: str, domain: str, field: str, decoration: str) -> None:
    foreign = f"{local}@{domain}"
    if foreign in OWN:
        return
    q = foreign.replace("@", "=40").replace(".", "=2E")
    value = decoration.format(a=foreign, q=q)
    head = b"" if field == "From" else b"From: paul@schule.test\r\n"
    message = head + f"{field}: {value}\r\nSubject: x\r\n\r\nbody\r\n".encode()
    result = refusal(message)
    assert result is not None and result.startswith("550 5.7.1") and foreign in result


@given(_local, _domain, _field)
@settings(max_examples=examples(100), deadline=None)
def test_a_foreign_address_in_any_sender_field_is_refused(local: str, domain: str,
                                                          field: str) -> None:
    foreign = f"{local}@{domain}"
    if foreign in OWN:
        return
    head = b"" if field == "From" else b"From: paul@schule.test\r\n"
    result = refusal(head + f"{field}: Name <{foreign}>\r\n\r\nx\r\n".encode())
    assert result is not None and result.startswith("550 5.7.1")


def test_own_addresses_anywhere_are_fine() -> None:
    message = (b'From: "Paul (p.schueler@schule.test)" <paul@schule.test>\r\n'
               b"Sender: P.Schueler@schule.test\r\nResent-From: paul@schule.test\r\n\r\nx\r\n")
    assert refusal(message) is None


def test_no_from_is_refused() -> None:
    assert refusal(b"Subject: x\r\n\r\nbody\r\n").startswith("550 5.6.0")
    assert refusal(b"From: nobody\r\n\r\nbody\r\n").startswith("550 5.6.0")
