"""Erasure of an account (GDPR Art. 17), composed from every package's part.

Order matters: the messenger first (devices go, so the person is logged out and
sends nothing more; events redacted; rooms left while the account still exists
for the auth rules), then the mail, then the directory entry (name, groups,
aliases, parent links, by cascade).  The audit log keeps *that* the erasure
happened, with counts, never the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from conf.admin.parts import mail_data, messenger_data, running_matrix, server_name
from directory.audit import Actor
from mailserver.store.account_data import MailErasure
from messenger.account_data import MessengerErasure
from messenger.identity import user_id_for

if TYPE_CHECKING:
    from conf.app import School


@dataclass(frozen=True)
class ErasureReport:
    login: str
    mail: MailErasure
    messenger: MessengerErasure


async def erase_account(school: School, login: str, actor: Actor, *,
                        reason: str = "request") -> ErasureReport:
    """Remove everything of ``login``; ``reason`` (``request``, ``leaver``) goes to the
    audit log."""
    account = await school.directory.get_account(login)
    messenger = await messenger_data(school).erase(
        account.id, user_id_for(account.login, server_name(school)))
    server = running_matrix(school)
    if server is not None:  # another process's cache lets the token go within seconds
        server.sessions.forget_account(account.id)
    mail = await mail_data(school).erase(account.id)
    await school.directory.delete_account(account.login)
    await school.audit.record(actor, "account.erase", account.login, {
        "reason": reason, "role": account.role.value, "mailboxes": mail.mailboxes,
        "messages": mail.messages, "bodies": mail.bodies,
        "events": messenger.events_redacted, "rooms": messenger.rooms_left,
        "devices": messenger.devices, "media": messenger.media})
    return ErasureReport(account.login, mail, messenger)
