"""The mail side of the bridge (mailserver.group_mail): what a group's room is told."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailserver.group_mail import MAX_SUBJECT, MAX_TEXT, group_mail


def test_plain_text_is_preferred_and_headers_decoded() -> None:
    raw = (b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@schule.test>\r\n"
           b"Subject: =?utf-8?q?Pr=C3=BCfung?=\r\nMessage-ID: <x@y>\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nText\r\n")
    mail = group_mail("5a", raw)
    assert (mail.group, mail.sender_name, mail.sender_address) == \
        ("5a", "Jürgen Müller", "jm@schule.test")
    assert (mail.subject, mail.text, mail.message_id) == ("Prüfung", "Text", "<x@y>")


def test_long_subject_and_text_are_cut_and_no_message_id_uses_the_bytes() -> None:
    raw = (f"From: a@b\r\nSubject: {'S' * 10_000}\r\n\r\n" + "wort " * 5000).encode()
    mail = group_mail("5a", raw)
    assert len(mail.subject) == MAX_SUBJECT and mail.subject.endswith("…")
    assert mail.truncated and len(mail.text) <= MAX_TEXT + 2
    assert mail.message_id.startswith("sha256:")
    assert group_mail("5a", raw).message_id == mail.message_id
    assert group_mail("5a", raw + b"!").message_id != mail.message_id


def test_html_becomes_text_without_markup() -> None:
    raw = (b"From: a@b\r\nContent-Type: text/html\r\n\r\n"
           b"<script>alert(1)</script><style>p{}</style><p>Hallo <b>Welt</b></p>")
    assert group_mail("5a", raw).text == "Hallo Welt"


@given(st.binary(max_size=2000))
def test_any_bytes_give_bounded_fields(raw: bytes) -> None:
    mail = group_mail("g", raw)
    assert len(mail.subject) <= MAX_SUBJECT and len(mail.text) <= MAX_TEXT + 2
    assert len(mail.sender_name) <= 120 and mail.message_id
    assert "\n" not in mail.subject and "\r" not in mail.sender_name


@given(st.text(max_size=300), st.text(max_size=3000))
def test_any_header_and_body_text(subject: str, body: str) -> None:
    raw = f"From: x@y\r\nSubject: {subject}\r\n\r\n{body}".encode("utf-8", "surrogatepass")
    mail = group_mail("g", raw)
    assert len(mail.subject) <= MAX_SUBJECT and len(mail.text) <= MAX_TEXT + 2
