"""Wiring of the rules applied at local delivery: each recipient's Sieve script
(``mailserver.sieve.delivery``, just before the commit) and, after it, the
webmail's vacation reply and forwarding (``mailserver.delivery_rules``).
Replies go through a Submitter of their own (the role policy applies; no copy
in Sent).  Sieve and the webmail's vacation reply share one record of who
got a reply, so a sender never gets two."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from directory.model import Account
from mailserver.delivery import Envelope, LocalRecipient, RecipientOutcome
from mailserver.delivery_rules import RulesTarget
from mailserver.forwarding import Forwarder
from mailserver.sieve.delivery import SieveStep, SieveTarget
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
    local_domains = frozenset(d.lower() for d in settings.local_domains)

    async def redirect(account: Account, own: str, target: str, message: bytes) -> None:
        """A Sieve redirect (RFC 5228 4.2): asked of the role policy again at each use;
        the envelope sender is the redirecting account (SPF at the next hop)."""
        verdict = await directory.may_contact(account, target)
        if not verdict.allowed:
            log.info("event=sieve_redirect_refused account=%s reason=%s", account.login,
                     verdict.reason)
            return
        local, _, host = target.rpartition("@")
        transaction = store.begin(Envelope(mail_from=own, received_at=dt.datetime.now(dt.UTC)))
        if host.lower() in local_domains:
            resolved = await directory.resolve(local)
            if resolved is None or resolved.account is None:
                await transaction.abort()
                log.info("event=sieve_redirect_refused account=%s reason=not a person",
                         account.login)
                return
            outcomes = await transaction.add_locals([LocalRecipient(resolved.account.id)],
                                                    len(message))
            if RecipientOutcome.ACCEPTED not in outcomes:
                await transaction.abort()
                return
        else:
            transaction.add_remote(target)
        await transaction.commit(message)

    async def notice(recipient: str, message: bytes) -> None:
        """A DSN with the null sender (RFC 3464 2): into a local INBOX or the queue."""
        transaction = store.begin(Envelope(mail_from="", received_at=dt.datetime.now(dt.UTC)))
        local, _, host = recipient.rpartition("@")
        if host.lower() in local_domains:
            resolved = await directory.resolve(local)
            if resolved is None or resolved.account is None:
                await transaction.abort()
                return
            await transaction.add_locals([LocalRecipient(resolved.account.id)], len(message))
        else:
            transaction.add_remote(recipient)
        await transaction.commit(message)

    accounts = directory.get_account_by_id
    step = SieveStep(school.sieve_scripts, accounts, domain, settings.smtp_hostname,
                     local_domains, store.settings.claim_vacation_reply, redirect=redirect,
                     send=send, notice=notice, on_evaluated=school.metrics.sieve_seconds.observe)
    return RulesTarget(SieveTarget(store, step),
                       [VacationResponder(store.settings, accounts, domain, send),
                        Forwarder(store.settings, accounts, domain, deliver)])
