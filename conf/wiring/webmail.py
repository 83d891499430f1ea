"""Wiring of the webmail into a School: listens on ``listen.bind``:``listen.web``
over HTTPS with the school's certificate (-1 = off; no certificate = off), and
on ``listen.web_http_redirect`` a plain-HTTP listener redirecting to it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from conf.wiring.delivery_rules import rules_target
from conf.wiring.imap import server_tls_context
from conf.wiring.matrix import http_limits
from directory.client_address import TrustedProxies
from mailserver.smtp.routing import Router
from mailserver.submission import Submitter
from mailserver.webmail.app import Webmail
from mailserver.webmail.reading import Mail
from mailserver.webmail.server import WebmailServer
from mailserver.webmail.sessions import Sessions

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
        sessions=Sessions(), max_message_size=settings.smtp.max_message_size,
        trusted_proxies=TrustedProxies.parse(settings.listen.trusted_proxies))
    return [WebmailServer(webmail, bind=settings.listen.bind, port=settings.listen.web,
                          ssl_context=server_tls_context(str(cert), str(key)),
                          http_redirect_port=settings.listen.web_http_redirect,
                          public_port=settings.listen.web_public_port,
                          http_limits=http_limits(school, webmail.trusted_proxies))]
