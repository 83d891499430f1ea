"""The mail of a room digest (issue 18.2): room announcements someone has not read.

The messenger decides who gets which messages (``messenger.room_digest``); the
composition root hands this module plain data (``DigestMail``) and delivers the
result.  One text/plain mail: German first, then the same in English (the
webmail's catalog, ``mailserver/webmail/locale``; the school's language is
German, and a family may read English better).  Headers: ``Auto-Submitted:
auto-generated`` (RFC 3834 5: vacation responders and list software do not
answer it), ``List-Unsubscribe`` (RFC 2369 3.2) with ``List-Unsubscribe-Post``
(RFC 8058: a signed one-click link, ``mailserver.unsubscribe``), ``Reply-To``
the teachers who wrote (a reply reaches them, not the room), the null reverse
path on delivery (no bounce loops).
"""

from __future__ import annotations

import datetime as dt
import email.headerregistry
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
MAX_LINE = 998  # octets of a body line sent as it is (RFC 5322 2.1.1)
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
    unsubscribe_url: str  # https: the page to turn digests off
    hostname: str  # for the Message-ID
    children: tuple[str, ...] = ()  # names, when the digest goes to a parent
    timezone: str = "Europe/Berlin"
    # Message-IDs of the mails whose room threads the items answer (RFC 5322 3.6.4).
    references: tuple[str, ...] = ()
    # RFC 8058: ``unsubscribe_url`` takes a POST without login (a signed link,
    # ``mailserver.unsubscribe``); mail programs then offer a one-click button.
    one_click: bool = False
    unsubscribe_mailto: str = ""  # a mailto: URL as well (RFC 2369 3.2), if any


@functools.lru_cache(maxsize=1024)
def _when(_: Translator, moment: dt.datetime) -> str:
    """An announcement's time: the same for everyone a run mails it to (Babel is slow)."""
    return _.when(moment)


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
        when = _when(_, item.sent_at.astimezone(zone))
        lines.append(_("%(room)s – %(sender)s, %(when)s:", room=item.room,
                       sender=item.sender_name, when=when))
        lines.extend(item.text.splitlines() or [""])
        lines.append("")
    lines.append(_("Eine Antwort auf diese E-Mail geht an die Lehrkraft, nicht in den Raum."))
    lines.append(_("Diese Zusammenfassungen abbestellen:"))
    lines.append(mail.unsubscribe_url)
    return "\n".join(lines)


class _Registry(email.headerregistry.HeaderRegistry):
    """The standard header classes, each made once: the stock registry builds a new
    class for every header it parses (a third of composing a digest, issue 18)."""

    @functools.lru_cache(maxsize=64)  # noqa: B019 -- one registry per process
    def __getitem__(self, name: str) -> type[email.headerregistry.BaseHeader]:
        return super().__getitem__(name)


_POLICY = email.policy.SMTP.clone(header_factory=_Registry())
# Headers written as they are when they need no quoting, encoding or folding: the
# generator writes these exactly so (tests/mailserver/test_digest_mail.py).
_PLAIN_ID = re.compile(r"<[A-Za-z0-9.\-]{1,200}@[A-Za-z0-9.\-]{1,200}>")
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)* <[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*"
    r"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*>")


def _personal_header(name: str, value: str) -> bytes:
    """To or Message-ID: different in every digest, so not cached."""
    plain = _PLAIN_ID if name == "Message-ID" else _PLAIN_ADDRESS
    if len(name) + 2 + len(value) <= 78 and plain.fullmatch(value):
        return f"{name}: {value}\r\n".encode("ascii")
    return _fold(name, value)


def _fold(name: str, value: str) -> bytes:
    return _POLICY.fold_binary(*_POLICY.header_store_parse(name, value))


@functools.lru_cache(maxsize=4096)
def _header(name: str, value: str) -> bytes:
    """One header line as ``EmailMessage.as_bytes`` (policy SMTP) writes it.

    The generator folds each header on its own, so the message is the folded
    headers in order followed by the body part; the headers most digests of a
    run share (From, Reply-To, Subject, Date, List-Unsubscribe) are parsed and
    folded once, not once per person (the header registry was half the cost
    of a digest run, issue 18).
    """
    return _fold(name, value)


_TEXT_HEAD = {cte: (b'Content-Type: text/plain; charset="utf-8"\r\n'
                    b"Content-Transfer-Encoding: " + cte + b"\r\nMIME-Version: 1.0\r\n\r\n")
              for cte in (b"7bit", b"8bit")}


def _body(text: str) -> bytes:
    """The text/plain body with its MIME headers, as ``set_content`` writes it.

    Lines of at most 998 octets go as they are, 7bit or (UTF-8) 8bit (RFC 2045
    2.7 and 2.8; ``set_content`` would encode lines over 78 octets: the
    one-click link is longer, and quoted-printable would cut it with soft line
    breaks); longer ones are left to it (quoted-printable or base64).
    """
    data = text.encode("utf-8")
    lines = data.splitlines()
    if max((len(line) for line in lines), default=0) <= MAX_LINE:
        return _TEXT_HEAD[b"7bit" if data.isascii() else b"8bit"] + b"".join(
            line + b"\r\n" for line in lines)
    part = email.message.EmailMessage(policy=_POLICY)
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
    targets = [f"<{url}>" for url in (mail.unsubscribe_mailto, mail.unsubscribe_url) if url]
    headers.append(("List-Unsubscribe", ", ".join(targets)))
    if mail.one_click:
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    parts = [_section(german, mail)]
    english = languages.get("en")
    if english is not None:
        parts.append("-- English --\n\n" + _section(english, mail))
    personal = {"To", "Message-ID"}  # different in every digest: not worth caching
    return b"".join(
        (_list_unsubscribe(targets) if name == "List-Unsubscribe" else
         _personal_header(name, value) if name in personal else _header(name, value))
        for name, value in headers) + _body("\n\n\n".join(parts) + "\n")


def _list_unsubscribe(targets: list[str]) -> bytes:
    """RFC 2369 3.2 written by hand: the header registry would RFC 2047-encode a URL
    longer than a line (no mail program would find the link then).  URLs are never
    broken: one line up to 998 octets (RFC 5322 2.1.1; 78 is only a SHOULD), else
    one line per URL."""
    line = "List-Unsubscribe: " + ", ".join(targets)
    if not line.isascii():  # (an internationalised host name in the settings)
        return _fold("List-Unsubscribe", ", ".join(targets))
    if len(line) > MAX_LINE:
        line = "List-Unsubscribe: " + ",\r\n ".join(targets)
    return line.encode("ascii") + b"\r\n"
