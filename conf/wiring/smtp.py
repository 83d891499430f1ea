"""Wiring of the SMTP service into a School: settings -> SmtpConfig, school objects -> service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conf.commands.school import KEYS_DIR
from conf.wiring.delivery_rules import rules_target
from federation.keys import SchoolKeyPaths
from mailserver.smtp import SmtpConfig, SmtpLimits, SmtpService
from mailserver.smtp.inbound_auth import MailAuthCheck
from mailserver.smtp.spam import SpamFilter

if TYPE_CHECKING:
    from conf.app import School, Service
    from conf.settings import Settings


def smtp_config(settings: Settings) -> SmtpConfig:
    s, listen = settings.smtp, settings.listen
    return SmtpConfig(
        hostname=settings.smtp_hostname,
        local_domains=frozenset(settings.local_domains),
        certificate=settings.path(settings.tls.certificate),
        key=settings.path(settings.tls.key),
        bind=listen.bind,
        mx_port=listen.smtp,
        submission_port=listen.submission,
        submissions_port=listen.submissions,
        reuse_port=listen.reuse_port,
        limits=SmtpLimits(
            max_message_size=s.max_message_size, max_recipients=s.max_recipients,
            max_line_length=s.max_line_length, max_errors=s.max_errors,
            idle_timeout_seconds=s.idle_timeout_seconds,
            max_connections_per_ip=s.max_connections_per_ip),
    )


def build(school: School) -> list[Service]:
    config = smtp_config(school.settings)
    if max(config.mx_port, config.submission_port, config.submissions_port) < 0:
        return []  # every listener disabled
    check = MailAuthCheck(
        school.resolver, config.hostname, own_domains=config.local_domains,
        key_paths=SchoolKeyPaths.in_dir(school.settings.base_dir / KEYS_DIR))
    service = SmtpService(config, school.directory, school.authenticator,
                          rules_target(school), inbound_check=check,
                          observe=school.metrics.smtp_reply, spam_filter=spam_filter(school),
                          tls_context=school.tls.context, group_mail=school.mail_bridge)
    # A directory change (here, or in another worker: conf.app's DirectoryRelay)
    # forgets the MX's cached answers at once (issue 18: a leaver gets nothing more).
    unsubscribe = school.directory.changes.subscribe(service.forget_directory_answers)

    async def release() -> None:
        unsubscribe()
    school.close_later(release)
    return [service]


def spam_filter(school: School) -> SpamFilter | None:
    spam = school.settings.spam
    if not spam.rspamd_url:
        return None
    return SpamFilter(school.rspamd, fail_open=spam.fail_open)
