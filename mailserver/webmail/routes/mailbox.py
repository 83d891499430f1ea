"""Reading and organising: folder pages, attachments, delete, move, new folder
(the message page itself is html_view.py)."""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from directory import request_timing
from directory.model import Account
from mailserver.store import InvalidMailboxName, MailboxExists, MailboxNotFound, StoreError
from mailserver.webmail.context import WEBMAIL
from mailserver.webmail.errors import browser_id
from mailserver.webmail.i18n import gettext_of
from mailserver.webmail.pages import error_page, page
from mailserver.webmail.reading import MessageGone
from mailserver.webmail.security import login_required
from mailserver.webmail.sessions import WebSession


def box_of(request: web.Request) -> str:
    return request.query.get("box", "INBOX") or "INBOX"


def number(text: str | None, default: int | None = None, *, low: int = 1) -> int:
    """An id or page number from the browser, range-checked (``errors.browser_id``)."""
    return browser_id(text, default, low=low)


def folder_url(box: str) -> str:
    return f"/mail?box={urllib.parse.quote(box, safe='')}"


@login_required
async def folder(request: web.Request, session: WebSession, account: Account
                 ) -> web.StreamResponse:
    _ = gettext_of(request)
    mail = request.app[WEBMAIL].mail
    box = box_of(request)
    with request_timing.phase("folders"):
        folders = await mail.folders(account.id)
    try:
        with request_timing.phase("page"):
            shown = await mail.page(account.id, box, number(request.query.get("page"), 1))
    except (MailboxNotFound, StoreError):
        return error_page(request, 404, _("Ordner nicht gefunden"), box, session)
    notice = _("Die Nachricht wurde gesendet.") if request.query.get("notice") == "sent" else ""
    return page(request, "folder.html", session=session, folders=folders, mailbox=box,
                page=shown, notice=notice)


@login_required
async def attachment(request: web.Request, session: WebSession, account: Account
                     ) -> web.StreamResponse:
    _ = gettext_of(request)
    mail = request.app[WEBMAIL].mail
    try:
        filename, content = await mail.attachment(
            account.id, box_of(request), number(request.query.get("uid")),
            number(request.query.get("part"), low=0))
    except (MailboxNotFound, MessageGone, StoreError):
        return error_page(request, 404, _("Anhang nicht gefunden"), "", session)
    quoted = urllib.parse.quote(filename, safe="")
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                         for c in filename)
    return web.Response(body=content, content_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; "
                               f"filename*=UTF-8''{quoted}"})


@login_required
async def delete(request: web.Request, session: WebSession, account: Account
                 ) -> web.StreamResponse:
    _ = gettext_of(request)
    form = await request.post()
    box = str(form.get("box", "INBOX"))
    try:
        await request.app[WEBMAIL].mail.move_to_trash(account.id, box,
                                                     number(str(form.get("uid", ""))))
    except (MailboxNotFound, MessageGone, StoreError):
        return error_page(request, 404, _("Nachricht nicht gefunden"), "", session)
    raise web.HTTPSeeOther(folder_url(box))


@login_required
async def move(request: web.Request, session: WebSession, account: Account
               ) -> web.StreamResponse:
    _ = gettext_of(request)
    form = await request.post()
    box, target = str(form.get("box", "INBOX")), str(form.get("target", ""))
    try:
        await request.app[WEBMAIL].mail.move(account.id, box, number(str(form.get("uid", ""))),
                                             target)
    except (MailboxNotFound, MessageGone, StoreError):
        return error_page(request, 404, _("Nicht verschoben"),
                          _("Die Nachricht oder der Ordner ist nicht (mehr) da."), session)
    raise web.HTTPSeeOther(folder_url(box))


@login_required
async def create_folder(request: web.Request, session: WebSession, account: Account
                        ) -> web.StreamResponse:
    _ = gettext_of(request)
    name = str((await request.post()).get("name", "")).strip()
    try:
        await request.app[WEBMAIL].mail.create_folder(account.id, name)
    except MailboxExists:
        return error_page(request, 409, _("Ordner gibt es schon"), name, session)
    except (InvalidMailboxName, StoreError):
        return error_page(request, 400, _("Ungültiger Ordnername"), name, session)
    raise web.HTTPSeeOther(folder_url(name))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/mail", folder),
        web.get("/attachment", attachment),
        web.post("/delete", delete),
        web.post("/move", move),
        web.post("/folders", create_folder),
    ]
