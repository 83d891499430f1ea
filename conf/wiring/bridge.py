"""Wiring of mail and chat (issue 18): the SMTP service's group-mail sink, fed to the
messenger's ``MailToRoom`` once the Matrix server is built.

``mailserver`` and ``messenger`` never import each other (ARCHITECTURE.md); this
module turns a ``mailserver.group_mail.GroupMail`` into a
``messenger.mail_bridge.MailPost``.  SMTP is built before the messenger, so the
sink exists first and gets its target when ``conf.wiring.matrix.build`` runs;
without a messenger (``listen.matrix`` < 0) or with ``bridge.mail_to_rooms`` off
it does nothing.
"""

from __future__ import annotations

import logging

from directory.model import NotFound
from mailserver.group_mail import GroupMail
from messenger.mail_bridge import MailPost, MailToRoom

log = logging.getLogger("schulhof.bridge")


class MailBridge:
    """A ``mailserver.group_mail.GroupMailSink`` posting into group rooms."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.target: MailToRoom | None = None

    async def group_mail_delivered(self, mail: GroupMail) -> None:
        if not self.enabled or self.target is None:
            return
        post = MailPost(group=mail.group, sender_name=mail.sender_name,
                        sender_address=mail.sender_address, subject=mail.subject,
                        text=mail.text, message_id=mail.message_id)
        try:
            await self.target.post(post)
        except NotFound:  # the group is gone from the directory since RCPT
            log.info("event=mail_bridge_group_gone group=%s", mail.group)
