"""The mail of a room digest (issue 18.2): room announcements someone has not read.

The messenger decides who gets which messages (``messenger.room_digest``); the
composition root hands this module plain data (``DigestMail``) and delivers the
result.  One text/plain mail: German first, then the same in English (the
webmail's catalog, ``mailserver/webmail/locale``; the school's language is
German, and a family may read English better).  Headers: ``Auto-Submitted:
auto-generated`` (RFC 3834 5: vacation responders and list software do not
answer it), ``List-Unsubscribe`` (RFC 2369 3.2: the webmail's setting that turns
digests off), ``Reply-To`` the teachers who wrote (a reply reaches them, not the
room), the null reverse path on delivery (no bounce loops).
"""

from __future__ import annotations

import datetime as dt
import email.message
import email.policy
import email.utils
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from mailserver.webmail.i18n import DEFAULT, GERMAN, Translator, load_translations

MAX_REPLY_TO = 10  # teachers named in Reply-To
MAX_REFERENCES = 20
_MSG_ID = re.compile(r"<[!-;=?-~]{1,900}>")  # printable ASCII without < and >


@dataclass(frozen=True)
class DigestItem:
    room: str
    sender_name: str
    sender_address: str
    text: str
    sent_at: dt.datetime  # aware


@dataclass(frozen=True)
class DigestMail:
    to_address: str
    to_name: str
    items: tuple[DigestItem, ...]
    school_name: str
    from_address: str  # the school's no-reply address
    unsubscribe_url: str
    hostname: str  # for the Message-ID
    children: tuple[str, ...] = ()  # names, when the digest goes to a parent
    timezone: str = "Europe/Berlin"
    # Message-IDs of the mails whose room threads the items answer (RFC 5322 3.6.4).
    references: tuple[str, ...] = ()


def _section(_: Translator, mail: DigestMail) -> str:
    zone = ZoneInfo(mail.timezone)
    if mail.children:
        intro = _("Mitteilungen aus den Räumen der Schule, in denen %(children)s ist:",
                  children=", ".join(mail.children))
    else:
        intro = _("Mitteilungen aus Ihren Räumen der Schule, die Sie noch nicht gelesen "
                  "haben:")
    lines = [_("Hallo %(name)s,", name=mail.to_name), "", intro, ""]
    for item in mail.items:
        when = _.when(item.sent_at.astimezone(zone))
        lines.append(_("%(room)s – %(sender)s, %(when)s:", room=item.room,
                       sender=item.sender_name, when=when))
        lines.extend(item.text.splitlines() or [""])
        lines.append("")
    lines.append(_("Eine Antwort auf diese E-Mail geht an die Lehrkraft, nicht in den Raum."))
    lines.append(_("Diese Zusammenfassungen abbestellen: %(url)s", url=mail.unsubscribe_url))
    return "\n".join(lines)


@functools.lru_cache(maxsize=4096)
def _header(name: str, value: str) -> bytes:
    """One header line as ``EmailMessage.as_bytes`` (policy SMTP) writes it.

    The generator folds each header on its own, so the message is the folded
    headers in order followed by the body part; the headers most digests of a
    run share (From, Reply-To, Subject, Date, List-Unsubscribe) are parsed and
    folded once, not once per person (the header registry was half the cost
    of a digest run, issue 18).
    """
    policy = email.policy.SMTP
    return policy.fold_binary(*policy.header_store_parse(name, value))


def _body(text: str) -> bytes:
    """The text/plain body with its MIME headers (``set_content`` picks the encoding)."""
    part = email.message.EmailMessage(policy=email.policy.SMTP)
    part.set_content(text)
    return part.as_bytes()


def compose_digest(mail: DigestMail, now: dt.datetime, unique: str,
                   translators: Mapping[str, Translator] | None = None) -> bytes:
    """The digest as bytes to deliver (RFC 5322), German first and English below."""
    languages = translators if translators is not None else load_translations()
    german = languages.get(DEFAULT, GERMAN)
    headers: list[tuple[str, str]] = [
        ("From", email.utils.formataddr((mail.school_name, mail.from_address))),
        ("To", email.utils.formataddr((mail.to_name, mail.to_address)))]
    teachers: dict[str, str] = {}
    for item in mail.items:
        if item.sender_address and len(teachers) < MAX_REPLY_TO:
            teachers.setdefault(item.sender_address, item.sender_name)
    if teachers:
        headers.append(("Reply-To", ", ".join(email.utils.formataddr((name, address))
                                              for address, name in teachers.items())))
    count = len(mail.items)
    headers.append(("Subject", german.ngettext(
        "%(num)s neue Mitteilung aus den Räumen der Schule",
        "%(num)s neue Mitteilungen aus den Räumen der Schule", count)))
    headers.append(("Date", email.utils.format_datetime(now)))
    message_id = f"<digest.{unique}@{mail.hostname}>"
    headers.append(("Message-ID", message_id))
    headers.append(("Auto-Submitted", "auto-generated"))
    if mail.references:
        ids = [r for r in mail.references[:MAX_REFERENCES] if _MSG_ID.fullmatch(r)]
        if ids:
            headers.append(("In-Reply-To", ids[-1]))
            headers.append(("References", " ".join(ids)))
    headers.append(("List-Unsubscribe", f"<{mail.unsubscribe_url}>"))
    parts = [_section(german, mail)]
    english = languages.get("en")
    if english is not None:
        parts.append("-- English --\n\n" + _section(english, mail))
    personal = {"To", "Message-ID"}  # different in every digest: not worth caching
    return b"".join(
        (_header.__wrapped__(name, value) if name in personal else _header(name, value))
        for name, value in headers) + _body("\n\n\n".join(parts) + "\n")
