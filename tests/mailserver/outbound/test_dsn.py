"""DSN format: parsed back with the email package (RFC 6522, RFC 3464)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailserver.outbound.dsn import (
    DELAYED,
    FAILED,
    DsnRecipient,
    DsnReport,
    ascii_line,
    build_dsn,
    header_section,
    one_line,
)
from tests.support.properties import examples

NOW = dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC)
ORIGINAL = (b"From: Paul <paul@a.test>\r\nTo: anna@b.test, x@b.test\r\n"
            b"Subject: =?utf-8?q?Hausaufgaben_f=C3=BCr_Montag?=\r\n"
            b"Message-ID: <orig-1@a.test>\r\n\r\nGeheimer Inhalt\r\n")


def report(*recipients: DsnRecipient, original: bytes = ORIGINAL) -> DsnReport:
    return DsnReport("mail.a.test", "MAILER-DAEMON@a.test", "paul@a.test", original,
                     NOW - dt.timedelta(hours=1), recipients)


def parse(data: bytes) -> email.message.Message:
    return email.message_from_bytes(data, policy=email.policy.compat32)


def test_bounce_is_multipart_report_with_status_and_headers() -> None:
    data = build_dsn(report(
        DsnRecipient("x@b.test", FAILED, "5.1.1", "550 5.1.1 <x@b.test>: no such user",
                     "mail.b.test", NOW),
        DsnRecipient("y@b.test", FAILED, "5.2.2", "552 5.2.2 mailbox full", "mail.b.test",
                     NOW)), now=NOW)
    message = parse(data)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert message["To"] == "<paul@a.test>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert "Hausaufgaben für Montag" in str(email.header.make_header(
        email.header.decode_header(message["Subject"])))
    human, status, headers = message.get_payload()
    assert human.get_content_type() == "text/plain"
    assert "x@b.test" in human.get_payload(decode=True).decode("utf-8")
    assert status.get_content_type() == "message/delivery-status"
    per_message, first, second = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mail.a.test"
    assert per_message["Arrival-Date"]
    assert first["Final-Recipient"] == "rfc822; x@b.test"
    assert first["Action"] == "failed"
    assert first["Status"] == "5.1.1"
    assert first["Remote-MTA"] == "dns; mail.b.test"
    assert first["Diagnostic-Code"] == "smtp; 550 5.1.1 <x@b.test>: no such user"
    assert second["Status"] == "5.2.2"
    assert headers.get_content_type() == "text/rfc822-headers"
    returned = headers.get_payload()
    assert "Message-ID: <orig-1@a.test>" in returned
    assert "Geheimer Inhalt" not in data.decode("utf-8", "replace")  # headers only


def test_delay_warning_has_will_retry_until() -> None:
    until = NOW + dt.timedelta(days=4)
    data = build_dsn(report(DsnRecipient("x@b.test", DELAYED, "4.4.1",
                                         "451 4.4.1 connection refused", "mail.b.test",
                                         NOW, until)), now=NOW)
    message = parse(data)
    block = message.get_payload()[1].get_payload()[1]
    assert block["Action"] == "delayed"
    assert block["Status"] == "4.4.1"
    assert email.utils.parsedate_to_datetime(block["Will-Retry-Until"]) == until
    assert "verzögert" in str(email.header.make_header(
        email.header.decode_header(message["Subject"]))).lower()


def test_international_recipient_uses_rfc6533_types() -> None:
    data = build_dsn(report(DsnRecipient("jürgen@b.test", FAILED, "5.1.1")), now=NOW)
    message = email.message_from_bytes(data, policy=email.policy.default)
    status = message.get_payload()[1]
    assert status.get_content_type() == "message/global-delivery-status"
    assert "utf-8; jürgen@b.test" in status.as_bytes().decode("utf-8")


def test_refuses_empty_or_bad_action() -> None:
    with pytest.raises(ValueError):
        build_dsn(report(), now=NOW)
    with pytest.raises(ValueError):
        build_dsn(report(DsnRecipient("x@b.test", "relayed", "2.0.0")), now=NOW)


def test_header_section_without_body() -> None:
    assert header_section(b"Subject: x\nFrom: a@b") == b"Subject: x\r\nFrom: a@b\r\n\r\n"
    assert header_section(b"Subject: x\r\n\r\nbody\r\n") == b"Subject: x\r\n\r\n"


field_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=examples(150), deadline=None)
@given(diagnostic=field_text, remote=field_text, subject=field_text,
       local=st.from_regex(r"[a-z0-9.]{1,20}", fullmatch=True))
def test_remote_text_never_adds_fields(diagnostic: str, remote: str, subject: str,
                                       local: str) -> None:
    """Whatever a remote server or the original says, the DSN parses to the same fields."""
    original = f"Subject: {one_line(subject)}\r\nFrom: p@a.test\r\n\r\nx\r\n".encode()
    data = build_dsn(report(DsnRecipient(f"{local}@b.test", FAILED, "5.0.0", diagnostic,
                                         remote, NOW), original=original), now=NOW)
    message = parse(data)
    assert message.get_content_type() == "multipart/report"
    parts = message.get_payload()
    assert len(parts) == 3
    blocks = parts[1].get_payload()
    assert len(blocks) == 2
    block = blocks[1]
    assert block["Final-Recipient"] == f"rfc822; {local}@b.test"
    assert block["Action"] == "failed"
    assert set(block.keys()) <= {"Final-Recipient", "Action", "Status", "Remote-MTA",
                                 "Diagnostic-Code", "Last-Attempt-Date"}
    if one_line(diagnostic):
        assert block["Diagnostic-Code"] == f"smtp; {ascii_line(diagnostic)}"
        assert block["Diagnostic-Code"].isascii()


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=400))
def test_header_section_is_a_header_block(data: bytes) -> None:
    headers = header_section(data)
    assert headers.endswith(b"\r\n")
    assert b"\r\n\r\n" not in headers[:-2]
    assert b"\n" not in headers.replace(b"\r\n", b"")
