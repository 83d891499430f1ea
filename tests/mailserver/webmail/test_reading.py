"""The webmail's text view of mail and its login sessions (pure parts)."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailserver.webmail.reading import attachments, body_text, html_to_text
from mailserver.webmail.sessions import Sessions
from mailserver.webmail.uploads import upload_filename


def test_html_becomes_text_without_scripts_styles_or_tags() -> None:
    markup = ("<html><head><title>T</title><style>p{x:y}</style></head><body>"
              "<script>steal()</script><p>Hallo&nbsp;<b>Anna</b></p><div>Zeile 2</div>"
              "<img src=x onerror=alert(1)></body></html>")
    assert html_to_text(markup) == "Hallo Anna\n\nZeile 2"


@given(st.text(max_size=300))
def test_html_to_text_takes_any_input(markup: str) -> None:
    text = html_to_text(markup)
    assert "\n\n\n" not in text and text == text.strip()


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_plain_text_is_preferred_and_attachments_are_listed() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n--c\r\n"
           b"Content-Type: text/html\r\n\r\n<p>html</p>\r\n--c--\r\n--b\r\n"
           b"Content-Type: application/pdf; name=a.pdf\r\nContent-Disposition: attachment; "
           b"filename=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b--\r\n")
    message = parse(raw)
    assert body_text(message).strip() == "plain"
    (found,) = attachments(message)
    assert (found.filename, found.content_type, found.size) == ("a.pdf", "application/pdf", 4)


def test_broken_charset_is_shown_not_raised() -> None:
    message = parse(b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nhallo \xff\r\n")
    assert body_text(message).startswith("hallo")


def test_sessions_expire_when_idle_and_end_per_account() -> None:
    now = [0.0]
    sessions = Sessions(idle=60, lifetime=600, clock=lambda: now[0])
    first = sessions.create(7, "anna")
    second = sessions.create(7, "anna")
    assert first.token != second.token and first.csrf != second.csrf
    now[0] = 50
    assert sessions.get(first.token) is first  # a request restarts the idle clock
    now[0] = 100
    assert sessions.get(first.token) is first and sessions.get(second.token) is None
    assert first.csrf_ok(first.csrf) and not first.csrf_ok(second.csrf)
    sessions.end_account(7)
    assert sessions.get(first.token) is None and len(sessions) == 0
    third = sessions.create(8, "paul")
    for t in range(60, 660, 50):  # active, but not beyond the lifetime
        now[0] = 100 + t
        alive = sessions.get(third.token)
    assert alive is None


def test_links_keep_their_target_as_text() -> None:
    markup = ('<p>Hier ist der <a href="https://schule.test/plan">Vertretungsplan</a>, '
              '<a href="javascript:alert(1)">klick</a> und '
              '<a href="https://x.test/">https://x.test/</a>.</p>')
    assert html_to_text(markup) == ("Hier ist der Vertretungsplan <https://schule.test/plan>, "
                                    "klick und https://x.test/.")


@pytest.mark.parametrize(("raw", "name"), [
    ("Übung 1.pdf", "Übung 1.pdf"), ("%C3%9Cbung%201.pdf", "Übung 1.pdf"),
    ('say %22hi%22.txt', 'say "hi".txt'), ("a%0D%0Ab.txt", "ab.txt"),
    ("C:\\Users\\anna\\Blatt.pdf", "Blatt.pdf"), ("", "attachment"), (None, "attachment"),
    ("../../etc/passwd", "passwd"), ("x" * 300, "x" * 200),
])
def test_upload_filenames(raw: str | None, name: str) -> None:
    assert upload_filename(raw) == name


@given(st.text(max_size=80))
def test_upload_filenames_are_always_printable_and_short(raw: str) -> None:
    name = upload_filename(raw)
    assert name and len(name) <= 200 and name.isprintable() and "/" not in name
