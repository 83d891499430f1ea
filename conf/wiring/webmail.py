"""Wiring of the webmail into a School: listens on ``listen.bind``:``listen.web``
over HTTPS with the school's certificate (-1 = off; no certificate = off), and
on ``listen.web_http_redirect`` a plain-HTTP listener redirecting to it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from conf.admin_web.pages import admin_routes
from conf.wiring.bridge import unsubscribe_links
from conf.wiring.delivery_rules import rules_target
from conf.wiring.matrix import http_limits
from directory.client_address import TrustedProxies
from federation.dns_records import SchoolDns, matrix_well_known, mta_sts_policy
from federation.profile_signing import cms_signer
from mailserver.autoconfig.documents import MailEndpoints
from mailserver.autoconfig.routes import Discovery
from mailserver.autoconfig.routes import routes as autoconfig_routes
from mailserver.sieve.managed_vacation import VacationScripts
from mailserver.smtp.routing import Router
from mailserver.submission import Submitter
from mailserver.webmail.app import Webmail
from mailserver.webmail.reading import Mail
from mailserver.webmail.server import WebmailServer
from mailserver.webmail.sessions import Sessions
from messenger.room_digest import DigestPreferences

if TYPE_CHECKING:
    from conf.app import School, Service

log = logging.getLogger("schulhof.webmail")


def build(school: School) -> list[Service]:
    settings = school.settings
    if settings.listen.web < 0:
        return []
    cert, key = settings.path(settings.tls.certificate), settings.path(settings.tls.key)
    if not cert.exists():
        log.warning("event=webmail_off reason=no_certificate path=%s", cert)
        return []
    store = school.mail_store
    # Fresh directory answers (no cache): a web form is not a busy MX.
    router = Router(school.directory, frozenset(settings.local_domains))
    webmail = Webmail(
        school_name=settings.school.name or settings.school.domain,
        domain=settings.school.domain.lower(), directory=school.directory,
        authenticator=school.authenticator, mail=Mail(store, store.db),
        submitter=Submitter(router, rules_target(school), store,
                            hostname=settings.smtp_hostname),
        sessions=Sessions(), vacation=VacationScripts(school.sieve_scripts),
        max_message_size=settings.smtp.max_message_size,
        trusted_proxies=TrustedProxies.parse(settings.listen.trusted_proxies),
        digests=DigestPreferences(school.db) if settings.bridge.room_digests else None,
        unsubscribe=unsubscribe_links(settings) if settings.bridge.room_digests else None)
    return [WebmailServer(webmail, bind=settings.listen.bind, port=settings.listen.web,
                          extra_routes=[*autoconfig_routes(discovery(school, cert, key)),
                                        *admin_routes(school)],
                          ssl_context=school.tls.context(),
                          http_redirect_port=settings.listen.web_http_redirect,
                          public_port=settings.listen.web_public_port,
                          http_limits=http_limits(school, webmail.trusted_proxies))]


def discovery(school: School, cert: Path, key: Path) -> Discovery:
    """The client configuration documents, from the listeners' settings (a port
    that is off is left out of them)."""
    settings = school.settings
    listen = settings.listen
    domain = settings.school.domain.lower()
    endpoints = MailEndpoints(
        domain=domain, host=settings.smtp_hostname,
        school_name=settings.school.name or domain, imaps_port=max(listen.imaps, 0),
        imap_port=max(listen.imap, 0), submissions_port=max(listen.submissions, 0),
        submission_port=max(listen.submission, 0))
    server, client = matrix_well_known(SchoolDns(
        domain=domain, mail_host=settings.smtp_hostname, dkim_keys=(),
        federation_port=max(listen.federation, 0)))
    try:
        sign = cms_signer(cert.read_bytes(), key.read_bytes())
    except (OSError, ValueError) as error:  # a profile is still useful unsigned
        log.warning("event=profile_unsigned reason=%s", error)
        sign = None
    return Discovery(endpoints, frozenset(d.lower() for d in settings.local_domains),
                     mta_sts_policy(settings.smtp_hostname, settings.smtp.mta_sts_mode),
                     server, client, sign)
