"""Writing mail: reply, reply-all and forward forms, and the message to send (pure).

Threads stay intact in every client because a reply carries ``In-Reply-To``
(the original's Message-ID) and ``References`` (the original's References
plus its Message-ID), RFC 5322 3.6.4.  A reply goes to ``Reply-To`` when the
original has one, else to ``From`` (RFC 5322 3.6.2).  Subject prefixes are
not stacked: "AW: Re: WG: Ausflug" answered becomes "Re: Ausflug".
"""

from __future__ import annotations

import email.message
import email.policy
import email.utils
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mailserver.webmail.i18n import GERMAN, Translator
from mailserver.webmail.reading import MessageView

# Re:, AW:, Antw:, Fwd:, FW:, WG:, Wtr: ... with "[2]" counters, in any case.
_PREFIX = re.compile(r"^\s*(?:re|aw|antw|antwort|fwd?|wg|wtr|sv|vs|tr|rif|enc)"
                     r"\s*(?:\[\d+\]|\(\d+\))?\s*:\s*", re.IGNORECASE)
NO_SUBJECT = "(kein Betreff)"


@dataclass(frozen=True)
class Upload:
    """A file to attach: from the form, from a kept draft part, or a forwarded mail."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class ComposeForm:
    """What the compose page shows and sends back."""

    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    in_reply_to: str = ""
    references: str = ""
    draft_uid: int | None = None
    kept: list[tuple[int, str, int]] = field(default_factory=list)  # (index, name, size)
    forward_box: str = ""
    forward_uid: int | None = None
    forward_mode: str = ""  # "attach": the original as message/rfc822; "inline": its files


def bare_subject(subject: str) -> str:
    """The subject without any stack of reply/forward prefixes."""
    previous = None
    while previous != subject:
        previous = subject
        subject = _PREFIX.sub("", subject, count=1)
    return subject.strip()


def reply_subject(subject: str) -> str:
    return f"Re: {bare_subject(subject) or NO_SUBJECT}"


def forward_subject(subject: str) -> str:
    return f"Fwd: {bare_subject(subject) or NO_SUBJECT}"


def _addresses(*values: str) -> list[tuple[str, str]]:
    return [(name, address) for name, address in email.utils.getaddresses(list(values))
            if address]


def _join(pairs: Iterable[tuple[str, str]]) -> str:
    return ", ".join(email.utils.formataddr(pair) for pair in pairs)


def reply_recipients(original: MessageView, own: Iterable[str],
                     reply_all: bool) -> tuple[str, str]:
    """(To, Cc) of a reply: Reply-To or From; with reply-all also the original's
    To and Cc, each address once and never the user's own addresses."""
    mine = {address.lower() for address in own}
    to = _addresses(original.reply_to or original.sender)
    if not reply_all:
        return _join(to), ""
    seen = {address.lower() for _, address in to}
    cc = []
    for name, address in _addresses(original.to, original.cc):
        if address.lower() in seen or address.lower() in mine:
            continue
        seen.add(address.lower())
        cc.append((name, address))
    if not to:  # a mail of one's own answered to all: its recipients become To
        return _join(cc), ""
    return _join(to), _join(cc)


def references(original: MessageView) -> str:
    """RFC 5322 3.6.4: the parent's References (or In-Reply-To) plus its Message-ID."""
    chain = original.references.split() or original.in_reply_to.split()[:1]
    if original.message_id and original.message_id not in chain:
        chain.append(original.message_id)
    return " ".join(chain)


def signature_block(signature: str) -> str:
    """The signature under the usenet separator "-- " (RFC 3676 4.3)."""
    return f"\n\n-- \n{signature.strip()}" if signature.strip() else ""


def quoted_reply(original: MessageView, signature: str = "",
                 _: Translator = GERMAN) -> str:
    """Room to write, the signature, a blank line, the attribution (in the writer's
    language: it is their text), the quote."""
    quote = "\n".join(f"> {line}" if line else ">" for line in original.text.splitlines())
    who = original.sender
    attribution = (_("Am %(date)s schrieb %(sender)s:", date=original.date, sender=who)
                   if original.date else _("Es schrieb %(sender)s:", sender=who))
    return f"\n{signature_block(signature)}\n\n{attribution}\n{quote}\n"


def forwarded_inline(original: MessageView, signature: str = "",
                     _: Translator = GERMAN) -> str:
    """Room to write, the signature, then the forwarded message's header block
    (in the writer's language, like the quote line) and its text."""
    lines = [_("-------- Weitergeleitete Nachricht --------"),
             _("Betreff: %(subject)s", subject=original.subject),
             _("Datum: %(date)s", date=original.date),
             _("Von: %(sender)s", sender=original.sender),
             _("An: %(recipients)s", recipients=original.to)]
    if original.cc:
        lines.append(_("Cc: %(recipients)s", recipients=original.cc))
    return f"\n{signature_block(signature)}\n\n" + "\n".join(lines) + f"\n\n{original.text}\n"


def complete_addresses(text: str, domain: str) -> str:
    """A bare login ("k.schaefer-woehler") becomes the school address."""
    out = []
    for name, address in _addresses(text):
        if "@" not in address:
            address = f"{address}@{domain}"
        out.append((name, address))
    return _join(out)


def recipients(*fields: str) -> list[str]:
    """Every address of the To, Cc and Bcc fields, each once (for the envelope)."""
    found: list[str] = []
    for _name, address in _addresses(*fields):
        if address.lower() not in (a.lower() for a in found):
            found.append(address)
    return found


def build_message(*, from_name: str, sender: str, form: ComposeForm,
                  uploads: Sequence[Upload] = (), forwarded: bytes | None = None,
                  keep_bcc: bool = False) -> bytes:
    """The MIME message (RFC 5322, RFC 2046); Bcc only in a draft (``keep_bcc``).
    Raises ValueError for header values the email package will not encode."""
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"] = email.utils.formataddr((from_name, sender))
    if form.to:
        message["To"] = form.to
    if form.cc:
        message["Cc"] = form.cc
    if form.bcc and keep_bcc:
        message["Bcc"] = form.bcc
    message["Subject"] = form.subject
    if form.in_reply_to:
        message["In-Reply-To"] = form.in_reply_to
    if form.references:
        message["References"] = form.references
    message.set_content(form.body.replace("\r\n", "\n"))
    for upload in uploads:
        maintype, subtype = upload.content_type.split("/")
        message.add_attachment(upload.data, maintype=maintype, subtype=subtype,
                               filename=upload.filename)
    if forwarded is not None:
        # message/rfc822 must stay 7bit/8bit (RFC 2046 5.2.1): attach the parsed mail.
        inner = email.message_from_bytes(forwarded, policy=email.policy.SMTP)
        message.add_attachment(inner, filename=_forward_name(inner))
    return message.as_bytes()


def _forward_name(inner: email.message.Message) -> str:
    subject = bare_subject(str(inner.get("Subject", "") or "")) or "Nachricht"
    safe = re.sub(r"[^\w .,-]+", "_", subject)[:80].strip()
    return f"{safe or 'Nachricht'}.eml"
