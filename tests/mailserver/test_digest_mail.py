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
    _section,
    compose_digest,
)
from mailserver.webmail.i18n import DEFAULT, GERMAN, load_translations

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
    body = _section(german, mail) + "\n\n\n-- English --\n\n" + _section(
        TRANSLATORS["en"], mail)
    message.set_content(body + "\n")
    return message.as_bytes()


@settings(max_examples=60, deadline=None)
@given(items=items, to_name=name, school=name, children=st.lists(name, max_size=3),
       references=st.lists(st.sampled_from(["<a@b.test>", "nonsense", "<m@x>"]), max_size=5))
def test_compose_matches_email_message(items: list[DigestItem], to_name: str, school: str,
                                       children: list[str], references: list[str]) -> None:
    mail = DigestMail("kind@school.test", to_name, tuple(items), school,
                      "noreply@school.test", "https://school.test/settings#zusammenfassungen",
                      "mx.school.test", children=tuple(children), references=tuple(references))
    composed = compose_digest(mail, NOW, "abc123", TRANSLATORS)
    assert composed == reference(mail)
    parsed = email.message_from_bytes(composed, policy=email.policy.SMTP)
    assert parsed["Message-ID"] == "<digest.abc123@mx.school.test>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content().startswith("Hallo ")
