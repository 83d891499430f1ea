"""A mail delivered to a group address, told to whoever listens (the messenger bridge).

The SMTP session calls a ``GroupMailSink`` after the commit of a mail that had a
group among its recipients (``mailserver.smtp.session``); the composition root
(``conf.wiring.bridge``) connects the sink to the messenger, so this package never
imports it.  What the sink gets is plain data, bounded: the sender's name and
address (RFC 5322 3.6.2 ``From``), the subject (3.6.5, RFC 2047 decoded), the text
(text/plain preferred, else the HTML's text: never markup) and the Message-ID
(3.6.4) that makes a second delivery of the same mail recognisable.
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Protocol

from mailserver.webmail.reading import body_text

MAX_SUBJECT = 300  # characters
MAX_TEXT = 4000  # characters; longer text is cut and marked
MAX_NAME = 120


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


def group_mail(group: str, raw: bytes) -> GroupMail:
    """Read ``raw`` (the stored message) into what the bridge posts (pure)."""
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    name, address = email.utils.parseaddr(_header(message, "From"))
    message_id = _header(message, "Message-ID").strip()
    if not message_id:  # no id: the same bytes are the same mail
        message_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        text = body_text(message)
    except Exception:
        text = ""
    text = text.replace("\r\n", "\n").strip()
    truncated = len(text) > MAX_TEXT
    if truncated:
        text = text[:MAX_TEXT].rstrip() + "\n…"
    return GroupMail(group=group, sender_name=_clean(name, MAX_NAME),
                     sender_address=_clean(address, 254),
                     subject=_clean(_header(message, "Subject"), MAX_SUBJECT),
                     text=text, message_id=message_id[:998], truncated=truncated)
