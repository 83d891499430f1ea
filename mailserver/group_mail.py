"""A mail delivered to a group address, told to whoever listens (the messenger bridge).

The SMTP session calls a ``GroupMailSink`` after the commit of a mail that had a
group among its recipients (``mailserver.smtp.session``); the composition root
(``conf.wiring.bridge``) connects the sink to the messenger, so this package never
imports it.  What the sink gets is plain data, bounded: the sender's name and
address (RFC 5322 3.6.2 ``From``), the subject (3.6.5, RFC 2047 decoded), the text
(text/plain preferred, else the HTML's text), the HTML body as the sender wrote it
(unsanitised: whoever shows it sanitises it for its own medium), the attachments
(RFC 2183 ``Content-Disposition``; the first ``MAX_ATTACHMENTS`` with their bytes),
the Message-ID (3.6.4) that makes a second delivery of the same mail recognisable,
the stored bytes' sha256 (how the webmail finds the message in a reader's folders),
and whether the sender was verified (a logged-in submission, or DMARC pass on the MX).
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Protocol

from mailserver.webmail.reading import body_text, html_body

MAX_SUBJECT = 300  # characters
MAX_TEXT = 4000  # characters; longer text is cut and marked
MAX_HTML = 100_000  # characters; longer HTML is left out (the text stands)
MAX_NAME = 120
MAX_ATTACHMENTS = 10  # with their bytes; the others are only counted
MAX_FILENAME = 200
MAX_REPLY_IDS = 20  # msg-ids of In-Reply-To and References looked at
_MSG_ID = re.compile(r"<[^<>\s]{1,990}>")
# The line a mail program writes above a quoted reply (German and English clients).
_ATTRIBUTION = re.compile(r"^(am|on)\b.*(schrieb|wrote)\b.*:\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class MailAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class GroupMail:
    """One mail to one group (by the group's name in the directory)."""

    group: str
    sender_name: str
    sender_address: str
    subject: str
    text: str
    message_id: str
    truncated: bool = False
    html: str = ""
    attachments: tuple[MailAttachment, ...] = ()
    attachments_left_out: int = 0  # beyond MAX_ATTACHMENTS
    content_sha256: str = ""  # of the stored message: the webmail's link finds it by this
    # The sender is who From says: a logged-in submission (sender_login), or mail
    # from outside whose DMARC check passed (RFC 7489).  False: do not repeat it.
    verified: bool = False
    sender_login: str = ""  # the submitting account; "" on the MX
    # The msg-ids this mail answers, nearest first: In-Reply-To, then References
    # from the end (RFC 5322 3.6.4); the room thread is found by them.
    replies_to: tuple[str, ...] = ()


class GroupMailSink(Protocol):
    async def group_mail_delivered(self, mail: GroupMail) -> None:
        """Called after the commit; must not raise for a mail it cannot handle."""


def _clean(value: str, limit: int) -> str:
    text = " ".join(value.split())  # no control characters or folded lines
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a header the policy cannot parse: treat as absent
        return ""
    return str(value) if value is not None else ""


def _attachments(message: EmailMessage) -> tuple[tuple[MailAttachment, ...], int]:
    found: list[MailAttachment] = []
    left_out = 0
    try:
        parts = list(message.iter_attachments())
    except Exception:  # a broken MIME tree: no attachments rather than none of the mail
        return (), 0
    for number, part in enumerate(parts):
        if len(found) >= MAX_ATTACHMENTS:
            left_out += 1
            continue
        try:
            name = part.get_filename() or ""
            payload = part.get_payload(decode=True)
        except Exception:
            left_out += 1
            continue
        found.append(MailAttachment(
            filename=_clean(name, MAX_FILENAME) or f"anhang-{number + 1}",
            content_type=part.get_content_type(),
            data=payload if isinstance(payload, bytes) else b""))
    return tuple(found), left_out


def replies_to(in_reply_to: str, references: str) -> tuple[str, ...]:
    """The msg-ids a reply names, nearest first, each once (pure)."""
    ids = _MSG_ID.findall(in_reply_to) + list(reversed(_MSG_ID.findall(references)))
    return tuple(dict.fromkeys(ids))[:MAX_REPLY_IDS]


def without_quote(text: str) -> str:
    """A reply's own text: the quoted original at its end (lines starting with ">",
    and the "Am ... schrieb ...:" line above them) left out; the text as it is when
    nothing else would remain."""
    lines = text.split("\n")
    end = len(lines)
    while end and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith(">")):
        end -= 1
    if end == len(lines) or not any(lines[i].lstrip().startswith(">")
                                    for i in range(end, len(lines))):
        return text
    if end and _ATTRIBUTION.match(lines[end - 1].strip()):
        end -= 1
    own = "\n".join(lines[:end]).rstrip()
    return own if own.strip() else text


def group_mail(group: str, raw: bytes, *, verified: bool = False,
               sender_login: str = "") -> GroupMail:
    """Read ``raw`` (the stored message) into what the bridge posts (pure)."""
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    name, address = email.utils.parseaddr(_header(message, "From"))
    digest = hashlib.sha256(raw).hexdigest()
    message_id = _header(message, "Message-ID").strip()
    if not message_id:  # no id: the same bytes are the same mail
        message_id = "sha256:" + digest
    try:
        text = body_text(message)
    except Exception:
        text = ""
    text = text.replace("\r\n", "\n").strip()
    answered = replies_to(_header(message, "In-Reply-To"), _header(message, "References"))
    if answered:
        text = without_quote(text)
    truncated = len(text) > MAX_TEXT
    if truncated:
        text = text[:MAX_TEXT].rstrip() + "\n…"
    try:
        html = html_body(message) or ""
    except Exception:
        html = ""
    attachments, left_out = _attachments(message)
    return GroupMail(group=group, sender_name=_clean(name, MAX_NAME),
                     sender_address=_clean(address, 254),
                     subject=_clean(_header(message, "Subject"), MAX_SUBJECT),
                     text=text, message_id=message_id[:998], truncated=truncated,
                     html=html if len(html) <= MAX_HTML else "",
                     attachments=attachments, attachments_left_out=left_out,
                     content_sha256=digest, verified=verified,
                     sender_login=sender_login, replies_to=answered)
