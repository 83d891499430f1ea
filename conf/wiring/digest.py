"""The room digest job of ``schulhof serve`` (issue 18.2; ``[bridge] room_digests``).

Every ``digest_check_seconds`` the messenger's ``RoomDigests`` decides who gets
which unread announcements (``messenger.room_digest``); this module turns each
``Digest`` into ``mailserver.digest_mail.DigestMail`` (the two packages never
import each other) and delivers it into the person's mailbox through the
school's delivery target (their Sieve rules apply), from the null reverse path.
A failed run is logged and the next one tries again; runs once per school
(serve's first worker).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import TYPE_CHECKING

from conf.wiring.bridge import unsubscribe_links
from conf.wiring.delivery_rules import rules_target
from conf.wiring.repeating import Repeating
from mailserver.delivery import DeliveryTarget, Envelope, LocalRecipient
from mailserver.digest_mail import DigestItem, DigestMail, compose_digest
from mailserver.webmail.i18n import Translator, load_translations
from messenger.bridge_groups import BridgeGroups
from messenger.room_digest import Digest, RoomDigests
from messenger.school_rooms import SYSTEM_LOCALPART

if TYPE_CHECKING:
    from conf.app import School, Service

log = logging.getLogger("schulhof.bridge")


class DigestMailer:
    """Turns a ``Digest`` into a mail and delivers it (the ``send`` of ``RoomDigests``)."""

    def __init__(self, school: School, target: DeliveryTarget) -> None:
        settings = school.settings
        self._domain = settings.school.domain.lower()
        self._school_name = settings.school.name or self._domain
        self._hostname = settings.smtp_hostname
        self._unsubscribe = unsubscribe_links(settings)
        self._timezone = settings.quiet_hours.timezone
        self._target = target
        self._translators: dict[str, Translator] = load_translations()

    def _address(self, user_id: str) -> str:
        localpart, _, server = user_id.lstrip("@").partition(":")
        return f"{localpart}@{self._domain}" if server == self._domain else ""

    def mail_of(self, digest: Digest) -> DigestMail:
        account = digest.account
        return DigestMail(
            to_address=f"{account.login}@{self._domain}",
            to_name=account.display_name or account.login,
            items=tuple(DigestItem(i.room_name, i.sender_name, self._address(i.sender), i.text,
                                   dt.datetime.fromtimestamp(i.ts_ms / 1000, dt.UTC))
                        for i in digest.items),
            school_name=self._school_name, from_address=f"noreply@{self._domain}",
            unsubscribe_url=self._unsubscribe.url(account.id), one_click=True,
            hostname=self._hostname,
            children=digest.as_parent_of, timezone=self._timezone,
            references=digest.references)

    async def send(self, digest: Digest) -> None:
        now = dt.datetime.now(dt.UTC)
        message = compose_digest(self.mail_of(digest), now, secrets.token_hex(12),
                                 self._translators)
        transaction = self._target.begin(Envelope(mail_from="", received_at=now))
        await transaction.add_locals([LocalRecipient(digest.account.id)], len(message))
        await transaction.commit(message)
        log.info("event=room_digest_sent account=%d messages=%d parent=%s",
                 digest.account.id, len(digest.items), bool(digest.as_parent_of))


class DigestJob:
    """``serve``'s loop over ``RoomDigests.run``."""

    def __init__(self, school: School) -> None:
        self.school = school
        server_name = school.settings.school.domain.lower()
        self.digests = RoomDigests(school.db, school.directory, BridgeGroups(school.db),
                                   server_name, f"@{SYSTEM_LOCALPART}:{server_name}")
        self.mailer = DigestMailer(school, rules_target(school))
        self._loop = Repeating(
            "room-digests", lambda: school.settings.bridge.digest_check_seconds,
            self.run_once, "room_digests_failed", log)

    async def run_once(self, now: dt.datetime | None = None) -> int:
        b = self.school.settings.bridge
        return await self.digests.run(
            now or dt.datetime.now(dt.UTC), delay=dt.timedelta(seconds=b.digest_delay_seconds),
            period=dt.timedelta(seconds=b.digest_period_seconds), send=self.mailer.send)

    async def start(self) -> list[str]:
        self._loop.start()
        b = self.school.settings.bridge
        return [f"service=room_digests delay={b.digest_delay_seconds:g}s "
                f"period={b.digest_period_seconds:g}s"]

    async def stop(self) -> None:
        await self._loop.stop()


def build(school: School) -> list[Service]:
    """Once per school (serve's first worker), with the messenger on."""
    settings = school.settings
    if not settings.bridge.room_digests or not school.singletons or settings.listen.matrix < 0:
        return []
    return [DigestJob(school)]
