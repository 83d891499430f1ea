"""Wiring of vacation replies: the store's delivery target wrapped so committed
deliveries are answered (``mailserver.vacation``), replies sent through a
Submitter of their own (role policy applies; no copy in Sent)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from directory.model import Account
from mailserver.smtp.routing import Router
from mailserver.submission import SubmissionRefused, Submitter
from mailserver.vacation import VacationResponder, VacationTarget

if TYPE_CHECKING:
    from conf.app import School

log = logging.getLogger("schulhof.vacation")


def vacation_target(school: School) -> VacationTarget:
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
            log.info("event=vacation_refused account=%s reason=%s", account.login, refused)
            return None

    responder = VacationResponder(store.settings, school.directory.get_account_by_id,
                                  settings.school.domain.lower(), send)
    return VacationTarget(store, responder)
