"""Logging in and out (the password check is the directory's throttled Authenticator)."""

from __future__ import annotations

import logging
import math
import re

from aiohttp import web

from directory.auth import AuthenticationFailed, AuthenticationThrottled
from directory.model import Account
from directory.passwords import MAX_PASSWORD_LENGTH
from mailserver.store import StoreError
from mailserver.webmail.compose import ComposeForm, build_message
from mailserver.webmail.context import WEBMAIL, Webmail, client_ip
from mailserver.webmail.i18n import gettext_of
from mailserver.webmail.pages import page
from mailserver.webmail.security import (
    LOGIN_COOKIE,
    RESUMED_FIELDS,
    RESUMED_LIMIT,
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

MAX_LOGIN_LENGTH = 320  # a whole address at most (RFC 5321 4.5.3.1: 64 + 1 + 255)


# Where a login may continue to: only the messenger's link to a mail (html_view's
# /message/open), matched whole, so the login page is no open redirect.
_CONTINUE = re.compile(r"/message/open\?sha256=[0-9a-f]{64}")


def continue_to(value: str) -> str:
    """``value`` if a login may continue there, else ""."""
    return value if _CONTINUE.fullmatch(value) else ""


def login_page(request: web.Request, status: int = 200, *, error: str = "",
               login: str = "", resume: dict[str, str] | None = None,
               then: str = "") -> web.Response:
    token = login_token(request)
    response = page(request, "login.html", status, error=error, login=login, csrf=token,
                    resume=resume or {}, then=continue_to(then))
    set_login_cookie(response, token)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    then = continue_to(request.query.get("weiter", ""))
    if await logged_in(request) is not None:
        raise web.HTTPSeeOther(then or "/mail")
    return login_page(request, then=then)


async def login(request: web.Request) -> web.StreamResponse:
    _ = gettext_of(request)
    webmail = request.app[WEBMAIL]
    form = await request.post()
    name, password = str(form.get("login", "")), str(form.get("password", ""))
    then = continue_to(str(form.get("weiter", "")))
    shown_name = name[:MAX_LOGIN_LENGTH]
    resume = {field: str(form.get(f"resume_{field}", ""))[:RESUMED_LIMIT]
              for field in RESUMED_FIELDS if f"resume_{field}" in form}
    if from_foreign_site(request) or not tokens_match(request.cookies.get(LOGIN_COOKIE, ""),
                                                      str(form.get("csrf", ""))):
        log.info("event=webmail_login_csrf_refused ip=%s", client_ip(request))
        return login_page(request, 403, login=shown_name, resume=resume, then=then,
                          error=_("Die Anmeldeseite war abgelaufen. Bitte noch einmal anmelden."))
    try:
        if len(name) > MAX_LOGIN_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
            # Cannot be right; not worth a password hash (a megabyte is an attack).
            raise AuthenticationFailed("too long")
        account = await webmail.authenticator.authenticate(name, password, client_ip(request))
    except AuthenticationThrottled as throttled:
        seconds = max(1, math.ceil(throttled.retry_after))
        response = login_page(request, 429, login=shown_name, resume=resume, then=then,
                              error=_(
            "Zu viele Fehlversuche. Bitte in %(seconds)s Sekunden noch einmal versuchen.",
            seconds=seconds))
        response.headers["Retry-After"] = str(seconds)
        return response
    except AuthenticationFailed:
        log.info("event=webmail_login_failed ip=%s", client_ip(request))
        return login_page(request, 401, login=shown_name, resume=resume, then=then,
                          error=_("Benutzername oder Passwort stimmt nicht."))
    session = webmail.sessions.create(account.id, account.login)
    log.info("event=webmail_login login=%s ip=%s", account.login, client_ip(request))
    target = then or "/mail"
    if any(value.strip() for value in resume.values()):
        target = await _resumed_draft(webmail, account, resume)
    response = web.HTTPSeeOther(target)
    set_session_cookie(response, session)
    raise response


async def _resumed_draft(webmail: Webmail, account: Account, resume: dict[str, str]) -> str:
    """The text of a compose form whose session had ended, saved as a draft; where to go."""
    form = ComposeForm(to=resume.get("to", ""), cc=resume.get("cc", ""),
                       bcc=resume.get("bcc", ""), subject=resume.get("subject", ""),
                       body=resume.get("body", ""))  # the RESUMED_FIELDS
    try:
        message = build_message(from_name=account.display_name,
                                sender=f"{account.login}@{webmail.domain}", form=form,
                                keep_bcc=True)
        uid = await webmail.mail.save_draft(account.id, message)
    except (ValueError, TypeError, StoreError) as exc:
        log.info("event=webmail_resume_failed login=%s error=%s", account.login,
                 exc.__class__.__name__)
        return "/compose"
    return f"/compose?draft_uid={uid}&notice=saved"


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
