"""The mail side of the bridge (mailserver.group_mail): what a group's room is told."""

from __future__ import annotations

import hashlib
from email.message import EmailMessage

from hypothesis import given
from hypothesis import strategies as st

from mailserver.group_mail import (
    MAX_ATTACHMENTS,
    MAX_REPLY_IDS,
    MAX_SUBJECT,
    MAX_TEXT,
    group_mail,
    replies_to,
    without_quote,
)


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


def test_html_attachments_digest_and_sender() -> None:
    message = EmailMessage()
    message["From"] = "a@b"
    message.set_content("Text")
    message.add_alternative("<p>Text</p>", subtype="html")
    for number in range(MAX_ATTACHMENTS + 3):
        message.add_attachment(bytes([number]) * 10, maintype="application",
                               subtype="pdf", filename=f"f{number}.pdf")
    raw = message.as_bytes()
    mail = group_mail("5a", raw, verified=True, sender_login="lehrer")
    assert mail.html.strip() == "<p>Text</p>" and mail.text == "Text"
    assert [a.filename for a in mail.attachments] == \
        [f"f{n}.pdf" for n in range(MAX_ATTACHMENTS)]
    assert mail.attachments[1].data == b"\x01" * 10
    assert mail.attachments_left_out == 3
    assert mail.verified and mail.sender_login == "lehrer"
    assert mail.content_sha256 == hashlib.sha256(raw).hexdigest()
    assert not group_mail("5a", raw).verified  # unverified unless the session says so


def test_replies_name_their_parents_nearest_first_and_lose_the_quote() -> None:
    raw = (b"From: a@b\r\nMessage-ID: <c@x>\r\nIn-Reply-To: <b@x>\r\n"
           b"References: <a@x>\r\n <b@x>\r\n\r\n"
           b"Gern.\r\n\r\nOn Mon, Dec 7, 2026 at 10:00 Anna wrote:\r\n> Frage?\r\n>\r\n")
    mail = group_mail("5a", raw)
    assert mail.replies_to == ("<b@x>", "<a@x>")
    assert mail.text == "Gern."
    # Not a reply: the text stays whole, quotes and all.
    plain = group_mail("5a", b"From: a@b\r\n\r\nOben.\r\n> zitiert\r\n")
    assert plain.replies_to == () and plain.text == "Oben.\n> zitiert"
    # Only a quote: the quote stays (nothing else would remain).
    only = group_mail("5a", b"From: a@b\r\nIn-Reply-To: <a@x>\r\n\r\n> alles\r\n")
    assert only.text == "> alles"


@given(st.text(max_size=500), st.text(max_size=300))
def test_any_reply_headers_give_bounded_ids(in_reply_to: str, references: str) -> None:
    ids = replies_to(in_reply_to, references)
    assert len(ids) <= MAX_REPLY_IDS and len(set(ids)) == len(ids)
    assert all(i.startswith("<") and i.endswith(">") for i in ids)
    own = without_quote(in_reply_to)
    assert own.strip() or not in_reply_to.strip()  # never empties a text
    assert in_reply_to.startswith(own.rstrip())
