"""Logging in and out (the password check is the directory's throttled Authenticator)."""

from __future__ import annotations

import logging
import math

from aiohttp import web

from directory.auth import AuthenticationFailed, AuthenticationThrottled
from directory.model import Account
from mailserver.webmail.context import WEBMAIL, client_ip
from mailserver.webmail.i18n import gettext_of
from mailserver.webmail.pages import page
from mailserver.webmail.security import (
    LOGIN_COOKIE,
    end_session_cookie,
    from_foreign_site,
    logged_in,
    login_required,
    login_token,
    set_login_cookie,
    set_session_cookie,
    tokens_match,
)
from mailserver.webmail.sessions import WebSession

log = logging.getLogger("schulhof.webmail")


def login_page(request: web.Request, status: int = 200, *, error: str = "",
               login: str = "") -> web.Response:
    token = login_token(request)
    response = page(request, "login.html", status, error=error, login=login, csrf=token)
    set_login_cookie(response, token)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    if await logged_in(request) is not None:
        raise web.HTTPSeeOther("/mail")
    return login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    _ = gettext_of(request)
    webmail = request.app[WEBMAIL]
    form = await request.post()
    name, password = str(form.get("login", "")), str(form.get("password", ""))
    if from_foreign_site(request) or not tokens_match(request.cookies.get(LOGIN_COOKIE, ""),
                                                      str(form.get("csrf", ""))):
        log.info("event=webmail_login_csrf_refused ip=%s", client_ip(request))
        return login_page(request, 403, login=name,
                          error=_("Die Anmeldeseite war abgelaufen. Bitte noch einmal anmelden."))
    try:
        account = await webmail.authenticator.authenticate(name, password, client_ip(request))
    except AuthenticationThrottled as throttled:
        seconds = max(1, math.ceil(throttled.retry_after))
        response = login_page(request, 429, login=name, error=_(
            "Zu viele Fehlversuche. Bitte in %(seconds)s Sekunden noch einmal versuchen.",
            seconds=seconds))
        response.headers["Retry-After"] = str(seconds)
        return response
    except AuthenticationFailed:
        log.info("event=webmail_login_failed ip=%s", client_ip(request))
        return login_page(request, 401, login=name,
                          error=_("Benutzername oder Passwort stimmt nicht."))
    session = webmail.sessions.create(account.id, account.login)
    log.info("event=webmail_login login=%s ip=%s", account.login, client_ip(request))
    response = web.HTTPSeeOther("/mail")
    set_session_cookie(response, session)
    raise response


@login_required
async def logout(request: web.Request, session: WebSession, account: Account
                 ) -> web.StreamResponse:
    request.app[WEBMAIL].sessions.end(session.token)
    response = web.HTTPSeeOther("/login")
    end_session_cookie(response)
    raise response


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/mail")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", root),
        web.get("/login", login_form),
        web.post("/login", login),
        web.post("/logout", logout),
    ]
