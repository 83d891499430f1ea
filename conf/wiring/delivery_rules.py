"""Wiring of the rules applied after local delivery (``mailserver.delivery_rules``):
vacation replies and forwarding, sent through a Submitter of their own (the
role policy applies; no copy in Sent)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from directory.model import Account
from mailserver.delivery import Envelope, LocalRecipient, RecipientOutcome
from mailserver.delivery_rules import RulesTarget
from mailserver.forwarding import Forwarder
from mailserver.smtp.routing import Router
from mailserver.submission import SubmissionRefused, Submitter
from mailserver.vacation import VacationResponder

if TYPE_CHECKING:
    from conf.app import School

log = logging.getLogger("schulhof.delivery_rules")


def rules_target(school: School) -> RulesTarget:
    settings = school.settings
    store = school.mail_store
    submitter = Submitter(Router(school.directory, frozenset(settings.local_domains)),
                          store, store, hostname=settings.smtp_hostname)

    async def send(account: Account, sender: str, recipients: Sequence[str],
                   message: bytes) -> object:
        try:
            return await submitter.submit(account, sender, recipients, message,
                                          client="127.0.0.1", file_copy=False)
        except SubmissionRefused as refused:  # e.g. a pupil may not write outside
            log.info("event=delivery_rule_refused account=%s reason=%s", account.login,
                     refused)
            return None

    directory = school.directory

    async def deliver(account: Account, own: str, target: str, message: bytes) -> None:
        """The forwarded copy into the target's INBOX, past the rules (no loops)."""
        verdict = await directory.may_contact(account, target)
        resolved = await directory.resolve(target.rpartition("@")[0])
        if not verdict.allowed or resolved is None or resolved.account is None:
            log.info("event=forward_refused account=%s reason=%s", account.login,
                     verdict.reason or "not a person of the school")
            return
        transaction = store.begin(Envelope(mail_from=own, received_at=dt.datetime.now(dt.UTC)))
        outcomes = await transaction.add_locals([LocalRecipient(resolved.account.id)])
        if RecipientOutcome.ACCEPTED not in outcomes:
            await transaction.abort()
            log.info("event=forward_refused account=%s reason=quota", account.login)
            return
        await transaction.commit(message)

    domain = settings.school.domain.lower()
    accounts = directory.get_account_by_id
    return RulesTarget(store, [VacationResponder(store.settings, accounts, domain, send),
                               Forwarder(store.settings, accounts, domain, deliver)])
