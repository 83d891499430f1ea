"""The webmail's web security: response headers, CSRF and origin checks, login sessions.

* Every response carries a strict Content-Security-Policy (no scripts, frames or
  foreign resources), ``Referrer-Policy: same-origin`` (with ``no-referrer``
  Chromium posts forms with ``Origin: null``, which looks like a foreign page),
  HSTS and no ``Server`` version banner.
* Every POST needs a token bound to the browser: the session's CSRF token once
  logged in; before that (the login form, against login CSRF) a random value
  in a ``__Host-`` cookie repeated in the form (double submit).  Cookies are
  SameSite=Strict, so another site can neither send nor read them.
* Where the browser says where a POST comes from, a foreign origin is refused
  before the token is even looked at: ``Sec-Fetch-Site`` (Fetch Metadata,
  https://w3c.github.io/webappsec-fetch-metadata/) when sent, else ``Origin``
  (RFC 6454 section 7).  ``Origin: null`` alone proves nothing either way
  (privacy settings and referrer policies produce it for our own forms), so
  then the token decides.
* Every request re-reads the account: a suspended account is logged out.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable

from aiohttp import web

from directory import request_timing
from directory.model import Account, DirectoryError
from mailserver.webmail.context import WEBMAIL
from mailserver.webmail.i18n import gettext_of
from mailserver.webmail.pages import error_page
from mailserver.webmail.sessions import WebSession

log = logging.getLogger("schulhof.webmail")

COOKIE = "__Host-schulhof"
LOGIN_COOKIE = "__Host-schulhof-login"
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; "
                           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# Defaults a handler may replace with stricter ones (the mail frame does).
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Always these.
FIXED_HEADERS = {
    # One year; no includeSubDomains: other hosts of the school are not ours to pin.
    "Strict-Transport-Security": "max-age=31536000",
    "Server": "Schulhof",  # aiohttp would announce its and Python's versions
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LoggedInHandler = Callable[[web.Request, WebSession, Account], Awaitable[web.StreamResponse]]


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs for every response, errors and static files too.
    A handler may set its own stricter headers (CSP, framing) for its response."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.update(FIXED_HEADERS)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"


def script_policy() -> tuple[str, str]:
    """(nonce, Content-Security-Policy) for a page with its own small script: the
    default policy plus only scripts carrying this response's nonce (CSP Level 3,
    ``nonce-source``: https://www.w3.org/TR/CSP3/#framework-directive-source-list)
    and requests to our own origin (``connect-src``)."""
    nonce = secrets.token_urlsafe(18)
    return nonce, (f"{CONTENT_SECURITY_POLICY}; script-src 'nonce-{nonce}'; "
                   "connect-src 'self'")


def from_foreign_site(request: web.Request) -> bool:
    """True when the browser tells us the request was started by another origin."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        # "none": the user's own action (bookmark, reload); "same-site" is a
        # neighbouring host of the school, still another origin.
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return False
    return urllib.parse.urlsplit(origin).netloc.lower() != request.host.lower()


def tokens_match(expected: str, given: str) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def login_token(request: web.Request) -> str:
    """The login form's token: the browser's login cookie if it has one (several
    tabs keep working), else a new one (set with ``set_login_cookie``)."""
    current = request.cookies.get(LOGIN_COOKIE, "")
    return current if 20 <= len(current) <= 100 else secrets.token_urlsafe(32)


def set_login_cookie(response: web.StreamResponse, token: str) -> None:
    response.set_cookie(LOGIN_COOKIE, token, secure=True, httponly=True, samesite="Strict",
                        path="/")


def set_session_cookie(response: web.StreamResponse, session: WebSession) -> None:
    response.set_cookie(COOKIE, session.token, secure=True, httponly=True, samesite="Strict",
                        path="/")
    response.del_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")


def end_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")


async def logged_in(request: web.Request) -> tuple[WebSession, Account] | None:
    """The request's live session and its account (still active), or None."""
    webmail = request.app[WEBMAIL]
    session = webmail.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return None
    try:
        account = await webmail.directory.get_account_by_id(session.account_id)
    except DirectoryError:
        account = None
    if account is None or not account.is_active:
        webmail.sessions.end(session.token)
        return None
    return session, account


# What a compose form posted after its session ended keeps through the new login.
RESUMED_FIELDS = ("to", "cc", "bcc", "subject", "body")
RESUMED_LIMIT = 200_000  # characters per field


async def _resume_after_login(request: web.Request) -> web.StreamResponse:
    """The session ended while someone was writing (30 minutes idle): the login page,
    carrying the text along; after the login it is a draft (routes.login)."""
    from mailserver.webmail.routes.login import login_page  # (it imports this module)

    form = await request.post()
    resume = {name: str(form.get(name, ""))[:RESUMED_LIMIT] for name in RESUMED_FIELDS}
    _ = gettext_of(request)
    return login_page(request, 401, resume=resume, error=_(
        "Sie waren zu lange nicht aktiv und wurden abgemeldet. Bitte melden Sie sich neu an: "
        "Ihr Text wird dann als Entwurf gespeichert (Anhänge bitte neu hinzufügen)."))


def login_required(handler: LoggedInHandler) -> Handler:
    """Handlers of logged-in pages get (request, session, account); a POST also needs
    the session's CSRF token in the form field ``csrf`` and no foreign origin."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        _ = gettext_of(request)
        with request_timing.phase("auth"):
            found = await logged_in(request)
        if found is None:
            if request.method == "POST":
                if request.path == "/compose" and not from_foreign_site(request):
                    return await _resume_after_login(request)
                return error_page(request, 403, _("Nicht angemeldet"), _("Bitte neu anmelden."))
            raise web.HTTPSeeOther("/login")
        session, account = found
        if request.method == "POST":
            form = await request.post()
            if from_foreign_site(request) or not session.csrf_ok(str(form.get("csrf", ""))):
                log.info("event=webmail_csrf_refused login=%s", session.login)
                return error_page(request, 403, _("Abgelehnt"),
                                  _("Das Formular ist abgelaufen. Bitte erneut versuchen."),
                                  session)
        return await handler(request, session, account)
    return wrapped
