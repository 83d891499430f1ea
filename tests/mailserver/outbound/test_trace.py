"""Delivery-only header fields leave our stored copy before relaying (RFC 5321 4.4)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailserver.outbound.trace import strip_delivery_fields

RECEIVED = (b"Received: from client.test ([127.0.0.1])\r\n\tby mail.a.test (Schulhof) "
            b"with ESMTPSA id 1;\r\n\tMon, 1 Jan 2024 00:00:00 +0000\r\n")


def test_return_path_goes_received_and_body_stay() -> None:
    body = b"\r\nReturn-Path: <in-the-body@a.test>\r\nText\r\n"
    message = (b"Return-Path: <paul@a.test>\r\n" + RECEIVED +
               b"From: paul@a.test\r\nSubject: Hallo\r\n" + body)
    assert strip_delivery_fields(message) == (
        RECEIVED + b"From: paul@a.test\r\nSubject: Hallo\r\n" + body)


def test_folded_and_oddly_spelled_fields_go_whole() -> None:
    message = (b"From: a@a.test\r\nRETURN-PATH :\r\n <x@a.test>\r\nDelivered-To: b@a.test\r\n"
               b"Subject: s\r\n\tmore\r\n\r\nbody\r\n")
    assert strip_delivery_fields(message) == (
        b"From: a@a.test\r\nSubject: s\r\n\tmore\r\n\r\nbody\r\n")


def test_lf_only_and_headers_only_messages() -> None:
    assert strip_delivery_fields(b"Return-Path: <>\nFrom: a@a.test\n\nx\n") == (
        b"From: a@a.test\n\nx\n")
    assert strip_delivery_fields(b"Return-Path: <>\r\nFrom: a@a.test\r\n") == (
        b"From: a@a.test\r\n")
    assert strip_delivery_fields(b"") == b""


field_names = st.sampled_from([b"From", b"To", b"Subject", b"Received", b"X-Test",
                               b"Return-Path", b"return-path", b"Delivered-To"])
values = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                 max_size=20).map(str.encode)
fields = st.tuples(field_names, values, st.lists(values, max_size=2))


def render(parts: list[tuple[bytes, bytes, list[bytes]]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" + b"".join(b"\t" + c + b"\r\n" for c in cont)
                    for name, value, cont in parts)


@given(st.lists(fields, max_size=8), st.binary(max_size=200))
def test_exactly_the_delivery_fields_are_removed(
        parts: list[tuple[bytes, bytes, list[bytes]]], body: bytes) -> None:
    message = render(parts) + b"\r\n" + body
    kept = [p for p in parts if p[0].lower() not in (b"return-path", b"delivered-to")]
    assert strip_delivery_fields(message) == render(kept) + b"\r\n" + body


@given(st.binary(max_size=400))
def test_never_crashes_never_grows_and_is_idempotent(message: bytes) -> None:
    once = strip_delivery_fields(message)
    assert len(once) <= len(message)
    assert strip_delivery_fields(once) == once
    assert b"\r\n\r\n" not in message or once.endswith(message.partition(b"\r\n\r\n")[2])
