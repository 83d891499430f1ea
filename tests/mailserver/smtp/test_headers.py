"""Trace fields, submission fix-ups and content checks (pure functions)."""

from __future__ import annotations

import datetime as dt
import email

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailserver.smtp import headers
from mailserver.smtp.headers import TlsInfo, TraceInfo

NOW = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
MESSAGE = b"From: anna@schule.test\r\nSubject: Hi\r\n\r\nBody\r\n"


def info(**changes: object) -> TraceInfo:
    base = dict(helo="client.example", client_ip="192.0.2.1", by_host="mail.schule.test",
                queue_id="abc123", received_at=NOW)
    base.update(changes)
    return TraceInfo(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "keyword"), [
    (dict(extended=False, tls=False, authenticated=False, utf8=False), "SMTP"),
    (dict(extended=True, tls=False, authenticated=False, utf8=False), "ESMTP"),
    (dict(extended=True, tls=True, authenticated=False, utf8=False), "ESMTPS"),
    (dict(extended=True, tls=True, authenticated=True, utf8=False), "ESMTPSA"),
    (dict(extended=True, tls=False, authenticated=True, utf8=False), "ESMTPA"),
    (dict(extended=True, tls=True, authenticated=True, utf8=True), "UTF8SMTPSA"),
])
def test_protocol_keywords(kwargs: dict[str, bool], keyword: str) -> None:
    assert headers.protocol_keyword(**kwargs) == keyword


def test_received_with_tls_parses_as_a_header() -> None:
    tls = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256)
    trace = headers.trace_headers("x@outside.example", info(
        tls=tls, authenticated=True, for_recipient="anna@schule.test"))
    parsed = email.message_from_bytes(trace + MESSAGE)
    assert parsed["Return-Path"] == "<x@outside.example>"
    received = " ".join(parsed["Received"].split())
    assert received.startswith("from client.example ([192.0.2.1])")
    assert "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256 bits))" in received
    assert "by mail.schule.test (Schulhof) with ESMTPSA id abc123" in received
    assert "for <anna@schule.test>;" in received
    assert received.endswith("Tue, 04 Mar 2025 05:06:07 +0000")
    assert parsed["Subject"] == "Hi"


def test_null_sender_and_hostile_helo() -> None:
    trace = headers.trace_headers("", info(helo="evil (x)\tfoo;bar"))
    assert trace.startswith(b"Return-Path: <>\r\n")
    first = trace.split(b"\r\n")[1]
    assert first == b"Received: from evil??x??foo?bar ([192.0.2.1])"
    assert b"for <" not in trace


def test_submission_fixups_only_add_what_is_missing() -> None:
    added = headers.submission_fixups(MESSAGE, hostname="mail.schule.test", now=NOW,
                                      unique="u1")
    assert added == (b"Message-ID: <u1@mail.schule.test>\r\n"
                     b"Date: Tue, 04 Mar 2025 05:06:07 +0000\r\n")
    complete = b"Date: x\r\nMessage-Id: <a@b>\r\n" + MESSAGE
    assert headers.submission_fixups(complete, hostname="h", now=NOW, unique="u") == b""


def test_header_lookup_ignores_the_body() -> None:
    message = b"Subject: a\r\n\r\nMessage-ID: <in@body>\r\nDate: never\r\n"
    added = headers.submission_fixups(message, hostname="h", now=NOW, unique="u")
    assert b"Message-ID: <u@h>" in added and b"Date:" in added


@pytest.mark.parametrize(("message", "expected"), [
    (b"From: Anna <anna@schule.test>\r\n\r\nx\r\n", ["anna@schule.test"]),
    (b"From: =?utf-8?q?A?= <a@x.example>,\r\n b@y.example\r\n\r\n", ["a@x.example",
                                                                     "b@y.example"]),
    (b"FROM:a@x.example\r\nFrom: c@z.example\r\n\r\n", ["a@x.example", "c@z.example"]),
    (b"Subject: none\r\n\r\nFrom: body@x.example\r\n", None),
    (b"From: undisclosed\r\n\r\n", None),
])
def test_from_addresses(message: bytes, expected: list[str] | None) -> None:
    assert headers.from_addresses(message) == expected


@pytest.mark.parametrize(("message", "what"), [
    (b"a\r\nb\r\n", None),
    (b"a\nb\r\n", "a bare LF"),
    (b"a\rb\r\n", "a bare CR"),
    (b"a\x00b\r\n", "a NUL byte"),
    (b"a\r\n.\nb\r\n", "a bare LF"),
])
def test_bad_bytes(message: bytes, what: str | None) -> None:
    assert headers.bad_bytes(message) == what


@given(st.binary(max_size=500))
def test_content_helpers_never_crash(data: bytes) -> None:
    headers.bad_bytes(data)
    headers.from_addresses(data)
    headers.submission_fixups(data, hostname="h", now=NOW, unique="u")


@given(st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=8), min_size=1,
                max_size=5))
def test_folded_values_are_unfolded(words: list[str]) -> None:
    folded = "\r\n ".join(words)
    block = f"X-Long: {folded}\r\nOther: y\r\n".encode()
    assert headers.header_values(block, "x-long") == [" ".join(words)]
