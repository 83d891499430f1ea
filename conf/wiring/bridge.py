"""Wiring of mail and chat (issue 18): the SMTP service's group-mail sink, fed to the
messenger's ``MailToRoom`` once the Matrix server is built.

``mailserver`` and ``messenger`` never import each other (ARCHITECTURE.md); this
module turns a ``mailserver.group_mail.GroupMail`` into a
``messenger.mail_bridge.MailPost``: the attachments become ``MailFile``s, the
stored bytes' sha256 a link into the webmail (``/message/open``, which finds the
message among the reader's own folders), the submitting login the account the
attachments are uploaded for.  SMTP is built before the messenger, so the sink
exists first and gets its target when ``conf.wiring.matrix.build`` runs; without
a messenger (``listen.matrix`` < 0) or with ``bridge.mail_to_rooms`` off it does
nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from directory.model import NotFound
from directory.service import Directory
from mailserver.group_mail import GroupMail
from mailserver.unsubscribe import UnsubscribeLinks, load_secret
from messenger.mail_bridge import MailFile, MailPost, MailToRoom

if TYPE_CHECKING:
    from conf.settings import Settings

log = logging.getLogger("schulhof.bridge")


def webmail_url(settings: Settings) -> str:
    """The webmail as people reach it (as on the password letters, conf.admin.letters)."""
    web_port = settings.listen.web_public_port or settings.listen.web
    return f"https://{settings.smtp_hostname}" + ("" if web_port == 443 else f":{web_port}")


UNSUBSCRIBE_SECRET = "unsubscribe.key"  # in the data directory


def unsubscribe_links(settings: Settings) -> UnsubscribeLinks:
    """The digests' one-click links (RFC 8058), the same in every worker."""
    return UnsubscribeLinks(load_secret(settings.data_dir / UNSUBSCRIBE_SECRET),
                            webmail_url(settings))


class MailBridge:
    """A ``mailserver.group_mail.GroupMailSink`` posting into group rooms."""

    def __init__(self, *, enabled: bool, directory: Directory | None = None,
                 webmail: str = "") -> None:
        self.enabled = enabled
        self.target: MailToRoom | None = None
        self._directory = directory
        self._webmail = webmail.rstrip("/")

    async def _uploader(self, login: str) -> int | None:
        if not login or self._directory is None:
            return None
        try:
            return (await self._directory.get_account(login)).id
        except NotFound:
            return None

    def post_of(self, mail: GroupMail, uploader: int | None) -> MailPost:
        link = (f"{self._webmail}/message/open?sha256={mail.content_sha256}"
                if self._webmail and mail.content_sha256 else "")
        return MailPost(
            group=mail.group, sender_name=mail.sender_name,
            sender_address=mail.sender_address, subject=mail.subject, text=mail.text,
            message_id=mail.message_id, html=mail.html,
            files=tuple(MailFile(a.filename, a.content_type, a.data) for a in mail.attachments),
            files_left_out=mail.attachments_left_out, link=link, verified=mail.verified,
            uploader_account_id=uploader, replies_to=mail.replies_to)

    async def group_mail_delivered(self, mail: GroupMail) -> None:
        if not self.enabled or self.target is None:
            return
        # Whose files the attachments become: a directory read only when there are some.
        uploader = await self._uploader(mail.sender_login) if mail.attachments else None
        try:
            await self.target.post(self.post_of(mail, uploader))
        except NotFound:  # the group is gone from the directory since RCPT
            log.info("event=mail_bridge_group_gone group=%s", mail.group)
