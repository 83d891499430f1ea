"""Sending a message as a logged-in account, outside SMTP (the webmail's Send).

The decisions are the submission listener's (mailserver.smtp.routing): the
sender address must be the account's own (or an alias, or a group it owns),
every recipient passes the role policy and exists if local; local copies go
into the mail store, the rest into the outbound queue, in one delivery
transaction (250-equivalent only once it is durable), and a copy is filed in
the sender's Sent folder (\\Seen).  Unlike SMTP, where each RCPT gets its own
answer, a web form is all or nothing: one refused recipient sends nothing.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from directory.model import Account
from mailserver.delivery import (
    DeliveryTarget,
    DeliveryTransaction,
    Envelope,
    LocalRecipient,
    RecipientOutcome,
)
from mailserver.smtp import headers
from mailserver.smtp.addresses import AddressError, parse_mailbox
from mailserver.smtp.identity import identity_refusal, owned_by
from mailserver.smtp.routing import Refusal, Router
from mailserver.store import MailStore, StoreError

log = logging.getLogger("schulhof.submission")

SENT = "Sent"


@dataclass(frozen=True)
class Refused:
    """One recipient (or the sender) that was not accepted, with the reason to show."""

    address: str
    reason: str


class SubmissionRefused(Exception):
    def __init__(self, refused: Sequence[Refused]) -> None:
        super().__init__("; ".join(f"{r.address}: {r.reason}" for r in refused))
        self.refused = tuple(refused)


def _reason(reply: str) -> str:
    """The human part of an SMTP reply ("550 5.7.1 not allowed" -> "not allowed")."""
    parts = reply.split(" ", 2)
    return parts[2] if len(parts) == 3 and "." in parts[1] else reply


class Submitter:
    def __init__(self, router: Router, target: DeliveryTarget, store: MailStore, *,
                 hostname: str,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._router = router
        self._target = target
        self._store = store
        self._hostname = hostname
        self._clock = clock

    async def submit(self, account: Account, sender: str, recipients: Sequence[str],
                     message: bytes, *, client: str, file_copy: bool = True) -> str:
        """Deliver ``message`` (headers and body, CRLF) and file it in Sent (unless
        ``file_copy`` is false: automatic replies); returns the queue id.
        Raises SubmissionRefused naming every address that was refused."""
        try:
            sender_box = parse_mailbox(sender)
        except AddressError:
            raise SubmissionRefused([Refused(sender, "not a valid address")]) from None
        if not await self._router.may_send_as(account, sender_box):
            raise SubmissionRefused([Refused(sender, "you may not send as this address")])
        now = self._clock()
        transaction = self._target.begin(Envelope(mail_from=str(sender_box), received_at=now))
        try:
            refused = await self._add_recipients(transaction, account, recipients)
            if refused:
                raise SubmissionRefused(refused)
            # The SMTP submission listener's header rules (From, Sender, Resent-*).
            refusal = await identity_refusal(message, owned_by(self._router, account))
            if refusal is not None:
                raise SubmissionRefused([Refused(sender, _reason(refusal))])
            queue_id = secrets.token_hex(8)
            message = headers.submission_fixups(message, hostname=self._hostname, now=now,
                                                unique=queue_id) + message
            trace = (f"Received: from [{client}] by {self._hostname} (Schulhof webmail)"
                     f" with HTTPS id {queue_id};\r\n\t"
                     f"{email.utils.format_datetime(now)}\r\n").encode()
            await transaction.commit(trace + message)
        except BaseException:
            await transaction.abort()
            raise
        if not file_copy:
            log.info("event=auto_sent id=%s account=%s", queue_id, account.login)
            return queue_id
        try:
            await self._store.append(account.id, SENT, message, flags=("\\Seen",))
        except StoreError as exc:  # e.g. the sender's quota is full: the mail is sent anyway
            log.warning("event=webmail_sent_copy_failed id=%s account=%s error=%s", queue_id,
                        account.login, exc.__class__.__name__)
        log.info("event=webmail_sent id=%s account=%s recipients=%d", queue_id, account.login,
                 len(recipients))
        return queue_id

    async def _add_recipients(self, transaction: DeliveryTransaction, account: Account,
                              recipients: Sequence[str]) -> list[Refused]:
        refused: list[Refused] = []
        seen: set[int] = set()
        for address in recipients:
            try:
                route = await self._router.route(account, parse_mailbox(address))
            except AddressError:
                refused.append(Refused(address, "not a valid address"))
                continue
            except Refusal as refusal:
                refused.append(Refused(address, _reason(refusal.reply)))
                continue
            if route.remote is not None:
                transaction.add_remote(route.remote)
            fresh = [i for i in route.account_ids if i not in seen]
            seen.update(fresh)
            if fresh:
                outcomes = await transaction.add_locals([LocalRecipient(i) for i in fresh])
                if RecipientOutcome.ACCEPTED not in outcomes:
                    refused.append(Refused(address, "the mailbox is full"))
        if not recipients:
            refused.append(Refused("", "no recipient"))
        return refused
