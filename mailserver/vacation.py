"""Vacation (out-of-office) replies at local delivery, RFC 3834 and RFC 5230.

After a delivery committed (``mailserver.delivery_rules.RulesTarget``), each
local recipient with a vacation reply on may answer the envelope sender,
once per sender per period, through the normal submission path
(``mailserver.submission.Submitter``: the role policy applies, so a pupil's
reply never goes where the pupil may not write).  The reply runs as
its own task after the commit: the 250 to the sending server is not delayed.

Never answered (RFC 3834 2 and 3.1, RFC 5230 4.5): the null sender and
mailer daemons, ``Auto-Submitted`` other than ``no``, ``Precedence: bulk``,
``list`` or ``junk``, mailing lists (``List-Id``, ``List-Unsubscribe`` ...),
and mail that does not name the recipient in To or Cc (a group list).
The reply carries ``Auto-Submitted: auto-replied``, ``In-Reply-To`` and
``References``, so its answer is never answered again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.message
import email.parser
import email.policy
import email.utils
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from directory.model import Account
from mailserver.delivery import Envelope
from mailserver.store.account_settings import MailSettings, SettingsStore

log = logging.getLogger("schulhof.vacation")

_LIST_HEADERS = ("List-Id", "List-Help", "List-Subscribe", "List-Unsubscribe", "List-Post",
                 "List-Owner", "List-Archive")
_DAEMONS = ("mailer-daemon", "postmaster", "listserv", "majordomo")
_DAEMON_PREFIXES = ("owner-", "noreply", "no-reply", "donotreply", "bounce")
_HEADER_LIMIT = 64 * 1024


def _header_block(message: bytes) -> email.message.Message:
    end = message.find(b"\r\n\r\n", 0, _HEADER_LIMIT)
    head = message[:end if end >= 0 else _HEADER_LIMIT]
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)


def _value(headers: email.message.Message, name: str) -> str:
    try:
        return str(headers.get(name, "") or "")
    except Exception:
        return ""


def may_answer(envelope_sender: str, headers: email.message.Message,
               own_addresses: Iterable[str]) -> bool:
    """RFC 3834 2 and 5230 4.5: whether this message may get an automatic reply."""
    sender = envelope_sender.strip().lower()
    if not sender or "@" not in sender:
        return False
    local = sender.rsplit("@", 1)[0]
    if (local in _DAEMONS or local.startswith(_DAEMON_PREFIXES)
            or local.endswith("-request")):
        return False
    if _value(headers, "Auto-Submitted").strip().lower() not in ("", "no"):
        return False
    if _value(headers, "Precedence").strip().lower() in ("bulk", "list", "junk"):
        return False
    if any(headers.get(name) is not None for name in _LIST_HEADERS):
        return False
    named = {address.lower() for _n, address in email.utils.getaddresses(
        [_value(headers, "To"), _value(headers, "Cc")])}
    return any(address.lower() in named for address in own_addresses)


def vacation_reply(settings: MailSettings, account: Account, own_address: str,
                   to: str, original: email.message.Message) -> bytes:
    """The reply message (RFC 3834 3.1.5 Subject, 3.1.7 Auto-Submitted)."""
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"] = email.utils.formataddr((account.display_name, own_address))
    message["To"] = to
    subject = settings.vacation_subject.strip()
    if not subject:
        original_subject = " ".join(_value(original, "Subject").split())
        subject = f"Abwesend: {original_subject}" if original_subject else "Abwesend"
    message["Subject"] = subject
    message["Auto-Submitted"] = "auto-replied"
    message_id = _value(original, "Message-ID").strip()
    if message_id:
        message["In-Reply-To"] = message_id
        message["References"] = " ".join(
            [*_value(original, "References").split(), message_id])
    message.set_content(settings.vacation_body.strip() + "\n")
    return message.as_bytes()


# (account, sender address, recipients, message) -> delivered; the submission path.
Send = Callable[[Account, str, Sequence[str], bytes], Awaitable[object]]


@dataclass
class VacationResponder:
    """Decides and sends vacation replies for committed deliveries."""

    settings: SettingsStore
    accounts: Callable[[int], Awaitable[Account]]
    domain: str
    send: Send | None = None  # set once the Submitter exists (it needs this target)
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    def __post_init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    async def delivered(self, envelope: Envelope, account_ids: Sequence[int],
                        message: bytes) -> None:
        """After a commit: start replies for the recipients that are away."""
        if not envelope.mail_from or self.send is None:
            return
        away = await self.settings.vacation_accounts(account_ids)
        if not away:
            return
        task = asyncio.ensure_future(self._answer(envelope.mail_from, sorted(away), message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, sender: str, account_ids: list[int], message: bytes) -> None:
        headers = _header_block(message)
        now = self.clock()
        for account_id in account_ids:
            try:
                await self._answer_one(account_id, sender, headers, now)
            except Exception:  # one account's failure must not stop the others
                log.exception("event=vacation_failed account=%s", account_id)

    async def _answer_one(self, account_id: int, sender: str,
                          headers: email.message.Message, now: dt.datetime) -> None:
        settings = await self.settings.get(account_id)
        if not settings.vacation_active(now.date()):
            return
        account = await self.accounts(account_id)
        own = f"{account.login}@{self.domain}"
        if not account.is_active or not may_answer(sender, headers, [own]):
            return
        if sender.lower() == own.lower():
            return
        if not await self.settings.claim_vacation_reply(account_id, sender, now,
                                                         settings.vacation_days):
            return
        assert self.send is not None
        await self.send(account, own, [sender],
                        vacation_reply(settings, account, own, sender, headers))
        log.info("event=vacation_replied account=%s", account.login)

    async def wait(self) -> None:
        """Let replies in flight finish (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
