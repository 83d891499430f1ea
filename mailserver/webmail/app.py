"""The webmail's aiohttp application: routes of every area, security headers.

Thin handlers (``routes/``): the mail store through ``reading.Mail``, sending
through ``mailserver.submission.Submitter`` (the submission listener's rules),
the password check through the directory's throttled ``Authenticator``.
Web security (headers, CSRF, origin checks, sessions) is in ``security.py``;
templates escape everything (Jinja2 autoescape), HTML mail is sanitised and
framed without scripts (``html_view.py``), attachments are only downloaded
(``application/octet-stream``, ``Content-Disposition: attachment``).
"""

from __future__ import annotations

from aiohttp import web

from mailserver.webmail import (
    compose_pages,
    html_view,
    organise,
    settings_pages,
    static_files,
    unsubscribe_pages,
)
from mailserver.webmail.context import TEMPLATES, WEBMAIL, Webmail
from mailserver.webmail.errors import error_pages
from mailserver.webmail.i18n import TRANSLATIONS, load_translations
from mailserver.webmail.pages import environments
from mailserver.webmail.routes import language, login, mailbox
from mailserver.webmail.security import add_security_headers
from mailserver.webmail.timing import server_timing

__all__ = ["Webmail", "build_app"]


def build_app(webmail: Webmail) -> web.Application:
    # Room for the largest message's attachments before their base64 encoding.
    # server_timing outermost: its figure includes the error pages' rendering.
    app = web.Application(middlewares=[server_timing, error_pages],
                          client_max_size=webmail.max_message_size + 1024 * 1024)
    app[WEBMAIL] = webmail
    app[TRANSLATIONS] = load_translations()
    app[TEMPLATES] = environments(app[TRANSLATIONS])
    app.on_response_prepare.append(add_security_headers)
    for area in (login, language, mailbox, html_view, compose_pages, organise,
                 settings_pages, static_files, unsubscribe_pages):
        app.add_routes(area.routes())
    return app
