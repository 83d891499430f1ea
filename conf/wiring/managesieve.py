"""Wiring of the ManageSieve listener (RFC 5804): the school's authenticator
(throttled like every login), its Sieve scripts, and the role policy for the
upload check of ``redirect`` targets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from directory.model import Account
from mailserver.managesieve.server import ManageSieveServer
from mailserver.managesieve.session import ManageSieveLimits, SessionServices

if TYPE_CHECKING:
    from conf.app import School, Service


def build(school: School) -> list[Service]:
    settings = school.settings
    listen = settings.listen
    if listen.managesieve < 0:
        return []
    cert = settings.path(settings.tls.certificate)
    context = school.tls.context() if cert.exists() else None
    directory = school.directory

    async def may_redirect(account: Account, address: str) -> str | None:
        verdict = await directory.may_contact(account, address)
        return None if verdict.allowed else (verdict.reason or "not allowed")

    services = SessionServices(authenticator=school.authenticator,
                               scripts=school.sieve_scripts, may_redirect=may_redirect,
                               ssl_context=context, limits=ManageSieveLimits())
    return [ManageSieveServer(services, listen.bind, listen.managesieve,
                              max_connections_per_ip=settings.imap.max_connections_per_ip,
                              reuse_port=listen.reuse_port)]
