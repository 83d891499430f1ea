"""The webmail's HTTP side (aiohttp): login, folders, reading, sending, deleting.

Thin handlers: the mail store through ``reading.Mail``, sending through
``mailserver.submission.Submitter`` (the submission listener's rules), the
password check through the directory's throttled ``Authenticator``.

Web security, since a webmail is what an attacker aims at first:
* the session cookie is ``__Host-``, Secure, HttpOnly, SameSite=Strict;
* every state-changing request is a POST with the session's CSRF token, and
  the login form is refused from another origin;
* templates escape everything (Jinja2 autoescape), mail is shown as text
  only, attachments are only downloaded (``application/octet-stream``,
  ``Content-Disposition: attachment``), and a strict Content-Security-Policy
  forbids scripts, frames and foreign resources altogether;
* every request re-reads the account: a suspended account is logged out.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from directory.auth import AuthenticationFailed, AuthenticationThrottled, Authenticator
from directory.client_address import TrustedProxies
from directory.model import Account, DirectoryError
from directory.service import Directory
from mailserver.store import InvalidMailboxName, MailboxExists, MailboxNotFound, StoreError
from mailserver.submission import Submitter
from mailserver.webmail.compose import Upload
from mailserver.webmail.reading import Mail, MessageGone
from mailserver.webmail.sessions import Sessions, WebSession

log = logging.getLogger("schulhof.webmail")

COOKIE = "__Host-schulhof"
HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Webmail:
    """What the handlers need, one per school."""

    school_name: str
    domain: str
    directory: Directory
    authenticator: Authenticator
    mail: Mail
    submitter: Submitter
    sessions: Sessions
    max_message_size: int = 25 * 1024 * 1024  # the SMTP limit: what other servers take
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)


WEBMAIL = web.AppKey("webmail", Webmail)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def _client_ip(request: web.Request) -> str:
    """The browser's address, also behind a trusted reverse proxy (login throttling)."""
    peer = request.remote or "unknown"
    return request.app[WEBMAIL].trusted_proxies.client_address(
        peer, request.headers.getall("X-Forwarded-For", []))


def page(request: web.Request, template: str, status: int = 200,
         **values: object) -> web.Response:
    webmail = request.app[WEBMAIL]
    values.setdefault("session", None)
    values.setdefault("folders", None)
    values.setdefault("mailbox", None)
    text = request.app[TEMPLATES].get_template(template).render(
        school=webmail.school_name, **values)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, status: int, title: str, text: str,
               session: WebSession | None = None) -> web.Response:
    return page(request, "error.html", status, title=title, text=text, session=session)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)  # a handler may set a stricter one
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException):
        raise response
    return response


# --- sessions --------------------------------------------------------------------------------
async def _logged_in(request: web.Request) -> tuple[WebSession, Account] | None:
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


def login_required(handler: Callable[[web.Request, WebSession, Account],
                                     Awaitable[web.StreamResponse]]) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        found = await _logged_in(request)
        if found is None:
            if request.method == "POST":
                return error_page(request, 403, "Nicht angemeldet", "Bitte neu anmelden.")
            raise web.HTTPSeeOther("/login")
        session, account = found
        if request.method == "POST":
            form = await request.post()
            if not session.csrf_ok(str(form.get("csrf", ""))):
                log.info("event=webmail_csrf_refused login=%s", session.login)
                return error_page(request, 403, "Abgelehnt",
                                  "Das Formular ist abgelaufen. Bitte erneut versuchen.",
                                  session)
        return await handler(request, session, account)
    return wrapped


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    parsed = urllib.parse.urlsplit(origin)
    return parsed.netloc == request.host


async def login_form(request: web.Request) -> web.StreamResponse:
    if await _logged_in(request) is not None:
        raise web.HTTPSeeOther("/mail")
    return page(request, "login.html", error="", login="")


async def login(request: web.Request) -> web.StreamResponse:
    if not _same_origin(request):
        return error_page(request, 403, "Abgelehnt", "Anmeldung nur über diese Seite.")
    webmail = request.app[WEBMAIL]
    form = await request.post()
    name, password = str(form.get("login", "")), str(form.get("password", ""))
    try:
        account = await webmail.authenticator.authenticate(name, password, _client_ip(request))
    except AuthenticationThrottled:
        return page(request, "login.html", 429, login=name,
                    error="Zu viele Versuche. Bitte später noch einmal.")
    except AuthenticationFailed:
        log.info("event=webmail_login_failed ip=%s", _client_ip(request))
        return page(request, "login.html", 401, login=name,
                    error="Benutzername oder Passwort stimmt nicht.")
    session = webmail.sessions.create(account.id, account.login)
    log.info("event=webmail_login login=%s ip=%s", account.login, _client_ip(request))
    response = web.HTTPSeeOther("/mail")
    response.set_cookie(COOKIE, session.token, secure=True, httponly=True, samesite="Strict",
                        path="/")
    raise response


@login_required
async def logout(request: web.Request, session: WebSession, account: Account
                 ) -> web.StreamResponse:
    request.app[WEBMAIL].sessions.end(session.token)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    raise response


# --- reading ---------------------------------------------------------------------------------
def _box(request: web.Request) -> str:
    return request.query.get("box", "INBOX") or "INBOX"


def _number(text: str | None, default: int | None = None) -> int:
    try:
        return int(text or "")
    except ValueError:
        if default is None:
            raise web.HTTPBadRequest(text="bad number") from None
        return default


@login_required
async def folder(request: web.Request, session: WebSession, account: Account
                 ) -> web.StreamResponse:
    mail = request.app[WEBMAIL].mail
    box = _box(request)
    folders = await mail.folders(account.id)
    try:
        shown = await mail.page(account.id, box, _number(request.query.get("page"), 1))
    except (MailboxNotFound, StoreError):
        return error_page(request, 404, "Ordner nicht gefunden", box, session)
    notice = "Die Nachricht wurde gesendet." if request.query.get("notice") == "sent" else ""
    return page(request, "folder.html", session=session, folders=folders, mailbox=box,
                page=shown, notice=notice)


@login_required
async def attachment(request: web.Request, session: WebSession, account: Account
                     ) -> web.StreamResponse:
    mail = request.app[WEBMAIL].mail
    try:
        filename, content = await mail.attachment(
            account.id, _box(request), _number(request.query.get("uid")),
            _number(request.query.get("part")))
    except (MailboxNotFound, MessageGone, StoreError):
        return error_page(request, 404, "Anhang nicht gefunden", "", session)
    quoted = urllib.parse.quote(filename, safe="")
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                         for c in filename)
    return web.Response(body=content, content_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; "
                               f"filename*=UTF-8''{quoted}"})


@login_required
async def delete(request: web.Request, session: WebSession, account: Account
                 ) -> web.StreamResponse:
    form = await request.post()
    box = str(form.get("box", "INBOX"))
    try:
        await request.app[WEBMAIL].mail.move_to_trash(account.id, box,
                                                     _number(str(form.get("uid", ""))))
    except (MailboxNotFound, MessageGone, StoreError):
        return error_page(request, 404, "Nachricht nicht gefunden", "", session)
    raise web.HTTPSeeOther(f"/mail?box={urllib.parse.quote(box, safe='')}")


@login_required
async def move(request: web.Request, session: WebSession, account: Account
               ) -> web.StreamResponse:
    form = await request.post()
    box, target = str(form.get("box", "INBOX")), str(form.get("target", ""))
    try:
        await request.app[WEBMAIL].mail.move(account.id, box, _number(str(form.get("uid", ""))),
                                             target)
    except (MailboxNotFound, MessageGone, StoreError):
        return error_page(request, 404, "Nicht verschoben",
                          "Die Nachricht oder der Ordner ist nicht (mehr) da.", session)
    raise web.HTTPSeeOther(f"/mail?box={urllib.parse.quote(box, safe='')}")


@login_required
async def create_folder(request: web.Request, session: WebSession, account: Account
                        ) -> web.StreamResponse:
    name = str((await request.post()).get("name", "")).strip()
    try:
        await request.app[WEBMAIL].mail.create_folder(account.id, name)
    except MailboxExists:
        return error_page(request, 409, "Ordner gibt es schon", name, session)
    except (InvalidMailboxName, StoreError):
        return error_page(request, 400, "Ungültiger Ordnername", name, session)
    raise web.HTTPSeeOther(f"/mail?box={urllib.parse.quote(name, safe='')}")


# --- sending (the compose page is compose_pages) ---------------------------------------
def _uploads(form: Any) -> list[Upload]:
    """The files of the compose form's ``attachments`` field (empty ones skipped)."""
    found = []
    for item in form.getall("attachments", []):
        if not isinstance(item, web.FileField):
            continue
        data = item.file.read()
        if not data and not item.filename:
            continue  # the browser's empty file input
        kind = item.content_type or ""
        if kind.count("/") != 1 or not all(kind.split("/")):
            kind = "application/octet-stream"
        found.append(Upload(upload_filename(item.filename), kind, data))
    return found


def upload_filename(raw: str | None) -> str:
    """A file name as it goes into the mail: browsers escape '"', CR and LF as %22,
    %0D, %0A (HTML multipart/form-data) and some clients percent-encode it all; old
    ones send a whole Windows path.  No control characters, at most 200 characters."""
    name = urllib.parse.unquote(raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[:200] or "attachment"


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/mail")


def _feature_routes() -> list[web.RouteDef]:
    """Pages that live in their own modules (they import this one's helpers)."""
    from mailserver.webmail import compose_pages, html_view
    return html_view.routes() + compose_pages.routes()


def build_app(webmail: Webmail) -> web.Application:
    # Room for the largest message's attachments before their base64 encoding.
    app = web.Application(middlewares=[security_headers],
                          client_max_size=webmail.max_message_size + 1024 * 1024)
    app[WEBMAIL] = webmail
    app[TEMPLATES] = _environment()
    app.add_routes([
        web.get("/", root),
        web.get("/login", login_form),
        web.post("/login", login),
        web.post("/logout", logout),
        web.get("/mail", folder),
        web.get("/attachment", attachment),
        web.post("/delete", delete),
        web.post("/move", move),
        web.post("/folders", create_folder),
        web.static("/static", HERE / "static"),
    ])
    app.add_routes(_feature_routes())
    return app
