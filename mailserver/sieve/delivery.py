"""Sieve at delivery: a ``DeliveryTarget`` step that runs each local recipient's
active script just before the commit (RFC 5228 2.10, RFC 5804 1.1).

``SieveTarget`` wraps the store's target (and is wrapped by
``mailserver.delivery_rules.RulesTarget``), so every local delivery passes
it: the MX, submission to local users, group expansion, the webmail.  The
recipients' folders and flags follow the scripts (``fileinto``, ``keep``,
``imap4flags``); what happens after the commit (``redirect``, ``vacation``,
the notice of a ``reject``) runs as tasks of its own and never delays or
fails the delivery.

``reject``/``ereject`` (RFC 5429 2.1): when every recipient of the message
rejects it and nothing else was asked for, the commit raises
``SieveRejected`` and the SMTP dialogue answers 550 5.7.1 with the reason:
the sending server bounces, we never send a backscatter.  When only some
recipients reject, the others get the message and the sender gets a DSN
only if its address is verified (one of our own, or SPF passed in our
``Authentication-Results``); otherwise the refusal is only logged.

Mail the delivery put in quarantine (Junk) is not filtered: no script
answers or forwards suspected spam.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.message
import email.parser
import email.policy
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from directory.model import Account
from mailserver.delivery import (
    DeliveryReceipt,
    DeliveryRefused,
    DeliveryTarget,
    DeliveryTransaction,
    Envelope,
    LocalRecipient,
    RecipientOutcome,
)
from mailserver.forwarding import MAX_HOPS, TRACE
from mailserver.outbound.dsn import FAILED, DsnRecipient, DsnReport, build_dsn, one_line
from mailserver.sieve.checks import Program
from mailserver.sieve.evaluate import Actions, MessageFacts, Vacation, evaluate
from mailserver.sieve.scripts import SieveScripts
from mailserver.store.model import StoreError
from mailserver.store.names import INBOX, normalise
from mailserver.vacation import _header_block, _value, may_answer

log = logging.getLogger("schulhof.sieve")


class SieveRejected(DeliveryRefused):
    """Every recipient's script rejected the message (SMTP 550 5.7.1, RFC 5429 2.1)."""

    def __init__(self, reason: str) -> None:
        super().__init__(one_line(reason, 400))


# (account, its own address, target address, message): a redirect, policy checked.
Redirect = Callable[[Account, str, str, bytes], Awaitable[object]]
# (account, own address, recipients, message): a reply through the submission path.
Send = Callable[[Account, str, Sequence[str], bytes], Awaitable[object]]
# (envelope recipient, message): a DSN with the null sender.
SendNotice = Callable[[str, bytes], Awaitable[object]]
# (account id, sender, now, days) -> True once per sender and period (RFC 5230 4.2).
Claim = Callable[[int, str, dt.datetime, int], Awaitable[bool]]


@dataclass(frozen=True)
class _Decision:
    account: Account
    address: str
    actions: Actions


@dataclass
class SieveStep:
    """What the delivery step needs from the rest of the school (wired in ``conf``)."""

    scripts: SieveScripts
    accounts: Callable[[int], Awaitable[Account]]
    domain: str
    hostname: str
    local_domains: frozenset[str]
    claim: Claim
    redirect: Redirect | None = None
    send: Send | None = None
    notice: SendNotice | None = None
    # Told the CPU seconds of each evaluation (metrics).
    on_evaluated: Callable[[float], None] | None = None
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    def __post_init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self.evaluations = 0
        self.seconds = 0.0

    async def decide(self, account_id: int, program: Program, envelope: Envelope,
                     message: bytes) -> _Decision:
        account = await self.accounts(account_id)
        address = f"{account.login}@{self.domain}"
        started = time.perf_counter()
        actions = evaluate(program, MessageFacts(message, envelope.mail_from, address,
                                                 self.clock()))
        took = time.perf_counter() - started
        self.seconds += took
        self.evaluations += 1
        if self.on_evaluated is not None:
            self.on_evaluated(took)
        if actions.error:
            log.warning("event=sieve_runtime_error account=%s reason=%s", account.login,
                        one_line(actions.error, 200))
        return _Decision(account, address, actions)

    def after_commit(self, decisions: Sequence[_Decision], envelope: Envelope,
                     message: bytes, stored_accounts: set[int]) -> None:
        """Redirects, vacation replies and reject notices as their own task."""
        if not any(d.actions.redirects or d.actions.vacation or d.actions.reject is not None
                   for d in decisions):
            return
        task = asyncio.ensure_future(self._after(decisions, envelope, message,
                                                 stored_accounts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after(self, decisions: Sequence[_Decision], envelope: Envelope,
                     message: bytes, stored_accounts: set[int]) -> None:
        for decision in decisions:
            try:
                await self._carry_out(decision, envelope, message, stored_accounts)
            except Exception:  # one account's failure must not stop the others
                log.exception("event=sieve_action_failed account=%s",
                              decision.account.login)

    async def _carry_out(self, decision: _Decision, envelope: Envelope, message: bytes,
                         stored_accounts: set[int]) -> None:
        actions, account, own = decision.actions, decision.account, decision.address
        if actions.reject is not None:
            await self._reject_notice(decision, envelope, message)
        if actions.redirects and self.redirect is not None:
            passed = [str(v).strip().lower()
                      for v in _header_block(message).get_all(TRACE) or []]
            if len(passed) < MAX_HOPS and own not in passed:
                for target in actions.redirects:
                    if target.lower() == own:
                        continue
                    await self.redirect(account, own, target,
                                        f"{TRACE}: {own}\r\n".encode() + message)
                    log.info("event=sieve_redirected account=%s", account.login)
        if actions.vacation is not None and self.send is not None:
            await self._vacation(decision, actions.vacation, envelope.mail_from, message)

    async def _vacation(self, decision: _Decision, vacation: Vacation, sender: str,
                        message: bytes) -> None:
        """RFC 5230 4 with the RFC 3834 2 rules in ``mailserver.vacation.may_answer``."""
        headers = _header_block(message)
        own = decision.address
        addresses = [own, *vacation.addresses]
        if sender.lower() in (a.lower() for a in addresses):
            return
        if not decision.account.is_active or not may_answer(sender, headers, addresses):
            return
        if not await self.claim(decision.account.id, sender, self.clock(), vacation.days):
            return
        assert self.send is not None
        await self.send(decision.account, own, [sender],
                        vacation_message(vacation, decision.account, own, sender, headers))
        log.info("event=sieve_vacation_replied account=%s", decision.account.login)

    def sender_verified(self, sender: str, message: bytes) -> bool:
        """Whether a notice to ``sender`` reaches the real sender, not a forged one."""
        if sender.rpartition("@")[2].lower() in self.local_domains:
            return True  # the MX refuses our own domains from outside
        for value in _header_block(message).get_all("Authentication-Results") or []:
            text = str(value)
            authserv, _, results = text.partition(";")
            if authserv.strip().lower() == self.hostname.lower():
                return "spf=pass" in results.lower()
        return False

    async def _reject_notice(self, decision: _Decision, envelope: Envelope,
                             message: bytes) -> None:
        sender = envelope.mail_from
        reason = decision.actions.reject or ""
        if not sender or self.notice is None or not self.sender_verified(sender, message):
            log.info("event=sieve_rejected account=%s notice=no", decision.account.login)
            return
        report = DsnReport(
            reporting_mta=self.hostname, postmaster=f"MAILER-DAEMON@{self.domain}",
            sender=sender, original=message, arrival_date=envelope.received_at,
            recipients=(DsnRecipient(decision.address, FAILED, "5.7.1",
                                     f"550 5.7.1 {one_line(reason, 400)}"),))
        await self.notice(sender, build_dsn(report, now=self.clock()))
        log.info("event=sieve_rejected account=%s notice=yes", decision.account.login)

    async def wait(self) -> None:
        """Let actions in flight finish (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def vacation_message(vacation: Vacation, account: Account, own: str, to: str,
                     original: email.message.Message) -> bytes:
    """The reply (RFC 5230 5: Subject, From, In-Reply-To; RFC 3834 3.1.7 Auto-Submitted)."""
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    sender = vacation.sender.strip() or email.utils.formataddr((account.display_name, own))
    message["From"] = one_line(sender, 300)
    message["To"] = to
    subject = one_line(vacation.subject, 300)
    if not subject:
        original_subject = one_line(_value(original, "Subject"), 250)
        subject = f"Abwesend: {original_subject}" if original_subject else "Abwesend"
    message["Subject"] = subject
    message["Auto-Submitted"] = "auto-replied"
    message_id = one_line(_value(original, "Message-ID"), 300)
    if message_id:
        message["In-Reply-To"] = message_id
        message["References"] = " ".join(
            [*one_line(_value(original, "References"), 600).split(), message_id])
    if vacation.mime:  # RFC 5230 4.4: the reason is a MIME part of its own
        part = email.parser.Parser(policy=email.policy.default).parsestr(
            vacation.reason.replace("\r\n", "\n"))
        body = part.get_content() if part.get_content_maintype() == "text" else ""
        message.set_content(str(body))
    else:
        message.set_content(vacation.reason.replace("\r\n", "\n").rstrip("\n") + "\n")
    return message.as_bytes()


class SieveTarget:
    """A ``DeliveryTarget`` that lets each recipient's Sieve script decide."""

    def __init__(self, target: DeliveryTarget, step: SieveStep) -> None:
        self._target = target
        self.step = step

    def begin(self, envelope: Envelope) -> DeliveryTransaction:
        return _Transaction(self._target, self._target.begin(envelope), envelope, self.step)

    def __getattr__(self, name: str) -> object:  # the store's other methods pass through
        return getattr(self._target, name)


class _Transaction:
    def __init__(self, target: DeliveryTarget, inner: DeliveryTransaction,
                 envelope: Envelope, step: SieveStep) -> None:
        self._target = target
        self._inner = inner
        self._envelope = envelope
        self._step = step
        self._accepted: list[LocalRecipient] = []
        self._remote: list[str] = []
        self._quarantined = False

    async def add_local(self, recipient: LocalRecipient, size_hint: int = 0) -> RecipientOutcome:
        [outcome] = await self.add_locals([recipient], size_hint)
        return outcome

    async def add_locals(self, recipients: Sequence[LocalRecipient],
                         size_hint: int = 0) -> list[RecipientOutcome]:
        outcomes = await self._inner.add_locals(recipients, size_hint)
        self._accepted.extend(r for r, o in zip(recipients, outcomes, strict=True)
                              if o is RecipientOutcome.ACCEPTED)
        return outcomes

    def add_remote(self, address: str) -> None:
        self._inner.add_remote(address)
        self._remote.append(address)

    def redirect_local(self, mailbox: str) -> None:
        self._quarantined = True
        self._inner.redirect_local(mailbox)

    async def commit(self, message: bytes) -> DeliveryReceipt:
        if self._quarantined or not self._accepted:
            return await self._inner.commit(message)
        programs = await self._step.scripts.active_programs(
            {r.account_id for r in self._accepted})
        if not programs:
            return await self._inner.commit(message)
        decisions: dict[int, _Decision] = {}
        for account_id, program in sorted(programs.items()):
            try:
                decisions[account_id] = await self._step.decide(
                    account_id, program, self._envelope, message)
            except Exception:  # never lose mail to the filter: deliver as if unfiltered
                log.exception("event=sieve_failed account=%s", account_id)
        recipients = self._recipients(decisions)
        rejected = [d.actions.reject for d in decisions.values() if d.actions.reject is not None]
        if not recipients and not self._remote and rejected and len(rejected) == len(
                {r.account_id for r in self._accepted}) and not any(
                d.actions.redirects for d in decisions.values()):
            await self._inner.abort()
            log.info("event=sieve_rejected_in_dialogue accounts=%d", len(rejected))
            raise SieveRejected(rejected[0])
        if recipients == self._accepted:
            receipt = await self._inner.commit(message)
        else:
            await self._inner.abort()
            fresh = self._target.begin(self._envelope)
            if recipients:
                await fresh.add_locals(recipients, len(message))
            for address in self._remote:
                fresh.add_remote(address)
            receipt = await fresh.commit(message)
        stored = {account_id for account_id, _box, _uid in receipt.stored}
        self._step.after_commit(list(decisions.values()), self._envelope, message, stored)
        return receipt

    def _recipients(self, decisions: dict[int, _Decision]) -> list[LocalRecipient]:
        out: list[LocalRecipient] = []
        for recipient in self._accepted:
            decision = decisions.get(recipient.account_id)
            if decision is None or recipient.mailbox != INBOX:
                out.append(recipient)  # no script, or a folder chosen before us
                continue
            for mailbox, flags in decision.actions.deliveries:
                try:
                    mailbox = normalise(mailbox)
                except StoreError:  # RFC 5228 4.1: a folder we cannot file into: INBOX
                    mailbox = INBOX
                out.append(LocalRecipient(recipient.account_id, mailbox,
                                          recipient.flags | flags))
        return out

    async def abort(self) -> None:
        await self._inner.abort()
