"""The room digest's mail (issue 18.2): the fast composer writes exactly the bytes
``email.message.EmailMessage`` (policy SMTP) writes for the same headers and body."""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
import email.utils

from hypothesis import given, settings
from hypothesis import strategies as st

from mailserver.digest_mail import (
    _MSG_ID,
    MAX_REFERENCES,
    MAX_REPLY_TO,
    DigestItem,
    DigestMail,
    _body,
    _fold,
    _personal_header,
    _section,
    compose_digest,
)
from mailserver.webmail.i18n import DEFAULT, GERMAN, load_translations
from tests.support.properties import examples

TRANSLATORS = load_translations()
NOW = dt.datetime(2026, 12, 7, 2, 0, tzinfo=dt.UTC)
name = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=150)
text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=3000)
items = st.lists(st.builds(
    DigestItem, room=name, sender_name=name,
    sender_address=st.sampled_from(["", "lehrer@school.test", "b@school.test"]), text=text,
    sent_at=st.integers(0, 10**6).map(lambda s: NOW - dt.timedelta(seconds=s))), max_size=8)


def reference(mail: DigestMail) -> bytes:
    """The first version: every header set on an ``EmailMessage``."""
    german = TRANSLATORS.get(DEFAULT, GERMAN)
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"] = email.utils.formataddr((mail.school_name, mail.from_address))
    message["To"] = email.utils.formataddr((mail.to_name, mail.to_address))
    teachers: dict[str, str] = {}
    for item in mail.items:
        if item.sender_address and len(teachers) < MAX_REPLY_TO:
            teachers.setdefault(item.sender_address, item.sender_name)
    if teachers:
        message["Reply-To"] = ", ".join(email.utils.formataddr((n, a))
                                        for a, n in teachers.items())
    message["Subject"] = german.ngettext("%(num)s neue Mitteilung aus den Räumen der Schule",
                                         "%(num)s neue Mitteilungen aus den Räumen der Schule",
                                         len(mail.items))
    message["Date"] = email.utils.format_datetime(NOW)
    message["Message-ID"] = f"<digest.abc123@{mail.hostname}>"
    message["Auto-Submitted"] = "auto-generated"
    ids = [r for r in mail.references[:MAX_REFERENCES] if _MSG_ID.fullmatch(r)]
    if ids:
        message["In-Reply-To"] = ids[-1]
        message["References"] = " ".join(ids)
    message["List-Unsubscribe"] = f"<{mail.unsubscribe_url}>"
    if mail.one_click:
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    body = _section(german, mail) + "\n\n\n-- English --\n\n" + _section(
        TRANSLATORS["en"], mail)
    head, _, _ = message.as_bytes().partition(b"\r\n\r\n")
    return head + b"\r\n" + set_content_bytes(body + "\n")


@settings(max_examples=examples(60), deadline=None)
@given(items=items, to_name=name, school=name, children=st.lists(name, max_size=3),
       references=st.lists(st.sampled_from(["<a@b.test>", "nonsense", "<m@x>"]), max_size=5),
       one_click=st.booleans())
def test_compose_matches_email_message(items: list[DigestItem], to_name: str, school: str,
                                       children: list[str], references: list[str],
                                       one_click: bool) -> None:
    mail = DigestMail("kind@school.test", to_name, tuple(items), school,
                      "noreply@school.test", "https://school.test/digest/unsubscribe?a=1",
                      "mx.school.test", children=tuple(children), references=tuple(references),
                      one_click=one_click)
    composed = compose_digest(mail, NOW, "abc123", TRANSLATORS)
    assert composed == reference(mail)
    parsed = email.message_from_bytes(composed, policy=email.policy.SMTP)
    assert parsed["Message-ID"] == "<digest.abc123@mx.school.test>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content().startswith("Hallo ")


def set_content_bytes(text: str) -> bytes:
    """``set_content`` with lines up to 998 octets sent as they are (7bit/8bit)."""
    part = email.message.EmailMessage(policy=email.policy.SMTP)
    data = text.encode()
    cte = None
    if max((len(line) for line in data.splitlines()), default=0) <= 998:
        cte = "7bit" if data.isascii() else "8bit"
    part.set_content(text, cte=cte)
    return part.as_bytes()


lines = st.lists(st.one_of(st.text(st.characters(blacklist_categories=["Cs"]), max_size=90),
                           st.text(st.characters(blacklist_categories=["Cs"]), min_size=990,
                                   max_size=1010)), max_size=6)


@settings(max_examples=examples(100), deadline=None)
@given(lines=lines, newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_fast_body_matches_set_content(lines: list[str], newline: str) -> None:
    text = newline.join(lines) + "\n"
    assert _body(text) == set_content_bytes(text)


ascii_word = st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True)


@settings(max_examples=examples(100), deadline=None)
@given(name=st.one_of(st.lists(ascii_word, min_size=1, max_size=5).map(" ".join), name),
       local=st.from_regex(r"[A-Za-z0-9_.\-]{1,20}", fullmatch=True),
       unique=st.from_regex(r"[A-Za-z0-9.\-]{1,40}", fullmatch=True))
def test_fast_headers_match_the_header_registry(name: str, local: str, unique: str) -> None:
    to = email.utils.formataddr((name, f"{local}@school.test"))
    assert _personal_header("To", to) == _fold("To", to) == stock_fold("To", to)
    message_id = f"<digest.{unique}@mx.school.test>"
    assert _personal_header("Message-ID", message_id) == stock_fold("Message-ID", message_id)


def stock_fold(name: str, value: str) -> bytes:
    policy = email.policy.SMTP
    return policy.fold_binary(*policy.header_store_parse(name, value))


@settings(max_examples=examples(50), deadline=None)
@given(account=st.integers(1, 10**12), port=st.integers(1, 65535),
       mailto=st.sampled_from(["", "mailto:abmelden@schule.test?subject=digest"]))
def test_a_long_unsubscribe_url_is_never_encoded_or_broken(
        account: int, port: int, mailto: str) -> None:
    """A one-click URL is longer than a header line: it must reach mail programs whole
    (the header registry would have RFC 2047-encoded it)."""
    url = (f"https://mail.eine-lange-schuladresse.schule.test:{port}/digest/unsubscribe"
           f"?a={account}&t=AbCdEfGhIjKlMnOpQrStUv")
    mail = DigestMail("kind@school.test", "Kind", (), "Schule", "noreply@school.test", url,
                      "mx.school.test", one_click=True, unsubscribe_mailto=mailto)
    composed = compose_digest(mail, NOW, "abc123", TRANSLATORS)
    assert all(len(line) <= 998 for line in composed.split(b"\r\n"))
    parsed = email.message_from_bytes(composed, policy=email.policy.default)
    expected = ", ".join(f"<{u}>" for u in (mailto, url) if u)
    assert " ".join(str(parsed["List-Unsubscribe"]).split()) == expected
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert url in parsed.get_content()
