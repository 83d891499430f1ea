"""Organising mail: search, several messages at once (read, unread, flag, move,
delete, spam), and folders (rename, delete, empty Trash and Junk).

Search goes through the store's index (``mailserver.store.search``); flags
and moves are the IMAP store operations, so IMAP clients see every change.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Any

from aiohttp import web

from directory import request_timing
from directory.model import Account
from mailserver.store import (
    CannotDeleteInbox,
    InvalidMailboxName,
    MailboxExists,
    MailboxHasChildren,
    MailboxNotFound,
    StoreError,
)
from mailserver.store.search import SearchQuery
from mailserver.webmail.context import WEBMAIL
from mailserver.webmail.i18n import gettext_of
from mailserver.webmail.pages import error_page, page
from mailserver.webmail.reading import MessageGone
from mailserver.webmail.routes.mailbox import box_of as _box
from mailserver.webmail.routes.mailbox import number as _number
from mailserver.webmail.security import login_required
from mailserver.webmail.sessions import WebSession

FIELD_LIMIT = 200  # characters of one search field
JUNK, INBOX = "Junk", "INBOX"


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


def search_query(values: Any) -> SearchQuery:
    """The search form's fields (``q`` anywhere, ``from``, ``to``, ``subject``, ``body``,
    ``since``/``until`` as YYYY-MM-DD; ``until`` is inclusive)."""
    def field(name: str) -> str:
        return str(values.get(name, ""))[:FIELD_LIMIT]
    until = _day(field("until"))
    return SearchQuery(text=field("q"), sender=field("from"), recipient=field("to"),
                       subject=field("subject"), body=field("body"), since=_day(field("since")),
                       before=until + dt.timedelta(days=1) if until else None)


def _folder_url(box: str, **more: str) -> str:
    return "/mail?" + urllib.parse.urlencode({"box": box, **more})


@login_required
async def search(request: web.Request, session: WebSession, account: Account
                 ) -> web.StreamResponse:
    _ = gettext_of(request)
    mail = request.app[WEBMAIL].mail
    box = _box(request)
    query = search_query(request.query)
    try:
        with request_timing.phase("page"):
            shown = await mail.page(account.id, box, _number(request.query.get("page"), 1),
                                    query)
    except (MailboxNotFound, StoreError):
        return error_page(request, 404, _("Ordner nicht gefunden"), box, session)
    terms = {k: request.query.get(k, "") for k in ("q", "from", "to", "subject", "body",
                                                    "since", "until")}
    with request_timing.phase("folders"):
        folders = await mail.folders(account.id)
    return page(request, "folder.html", session=session, folders=folders, mailbox=box,
                page=shown, notice="", search=terms,
                pager_base="/search?" + urllib.parse.urlencode({"box": box, **terms}))


def _uids(form: Any) -> list[int]:
    found = []
    for value in form.getall("uid", []):
        try:
            uid = int(str(value))
        except ValueError:
            continue
        if 0 < uid < 2**32:
            found.append(uid)
    return sorted(set(found))


def _back(form: Any, box: str) -> str:
    """Where to return: the page the form was on, if it is one of ours."""
    back = str(form.get("back", ""))
    if back.startswith(("/mail?", "/search?", "/message?")) and "\n" not in back:
        return back
    return _folder_url(box)


@login_required
async def bulk(request: web.Request, session: WebSession, account: Account
               ) -> web.StreamResponse:
    """One action on the ticked messages of a folder."""
    _ = gettext_of(request)
    mail = request.app[WEBMAIL].mail
    form = await request.post()
    box, action, uids = str(form.get("box", INBOX)), str(form.get("action", "")), _uids(form)
    back = _back(form, box)
    if not uids:
        raise web.HTTPSeeOther(back)
    try:
        if action in ("read", "unread"):
            await mail.set_flag(account.id, box, uids, "\\Seen", action == "read")
        elif action in ("flag", "unflag"):
            await mail.set_flag(account.id, box, uids, "\\Flagged", action == "flag")
        elif action == "delete":
            await mail.delete_many(account.id, box, uids)
            back = _folder_url(box) if back.startswith("/message?") else back
        elif action in ("move", "spam", "notspam"):
            target = {"spam": JUNK, "notspam": INBOX}.get(action, str(form.get("target", "")))
            await mail.move_many(account.id, box, uids, target)
            back = _folder_url(box) if back.startswith("/message?") else back
        else:
            return error_page(request, 400, _("Unbekannte Aktion"), action, session)
    except (MailboxNotFound, MessageGone, StoreError):
        return error_page(request, 404, _("Nicht ausgeführt"),
                          _("Die Nachricht oder der Ordner ist nicht (mehr) da."), session)
    raise web.HTTPSeeOther(back)


@login_required
async def rename_folder(request: web.Request, session: WebSession, account: Account
                        ) -> web.StreamResponse:
    _ = gettext_of(request)
    form = await request.post()
    old, new = str(form.get("box", "")), str(form.get("name", "")).strip()
    try:
        await request.app[WEBMAIL].mail.rename_folder(account.id, old, new)
    except MailboxExists:
        return error_page(request, 409, _("Ordner gibt es schon"), new, session)
    except MailboxNotFound:
        return error_page(request, 404, _("Ordner nicht gefunden"), old, session)
    except (InvalidMailboxName, StoreError):
        return error_page(request, 400, _("Ordner nicht umbenannt"),
                          f"„{old}“ kann nicht in „{new}“ umbenannt werden.", session)
    raise web.HTTPSeeOther(_folder_url(new))


@login_required
async def delete_folder(request: web.Request, session: WebSession, account: Account
                        ) -> web.StreamResponse:
    _ = gettext_of(request)
    name = str((await request.post()).get("box", ""))
    try:
        await request.app[WEBMAIL].mail.delete_folder(account.id, name)
    except MailboxNotFound:
        return error_page(request, 404, _("Ordner nicht gefunden"), name, session)
    except MailboxHasChildren:
        return error_page(request, 409, _("Ordner nicht gelöscht"),
                          _("Er enthält noch Unterordner."), session)
    except (InvalidMailboxName, CannotDeleteInbox, StoreError):
        return error_page(request, 400, _("Ordner nicht gelöscht"),
                          _("„%(name)s“ kann nicht gelöscht werden.", name=name), session)
    raise web.HTTPSeeOther(_folder_url(INBOX))


@login_required
async def empty_folder(request: web.Request, session: WebSession, account: Account
                       ) -> web.StreamResponse:
    _ = gettext_of(request)
    name = str((await request.post()).get("box", ""))
    try:
        await request.app[WEBMAIL].mail.empty(account.id, name)
    except (MailboxNotFound, StoreError):
        return error_page(request, 400, _("Nicht geleert"),
                          _("Nur Papierkorb und Spam werden geleert."), session)
    raise web.HTTPSeeOther(_folder_url(name))


def routes() -> list[web.RouteDef]:
    return [web.get("/search", search), web.post("/bulk", bulk),
            web.post("/folders/rename", rename_folder),
            web.post("/folders/delete", delete_folder),
            web.post("/folders/empty", empty_folder)]

