"""Error pages: whatever goes wrong, the browser gets a page in the reader's language,
never a stack trace, and never a 500 for bad input.

* Ids from the browser (UIDs, attachment parts, page numbers) are range-checked
  where they are read (``browser_id``): an IMAP UID is a 32-bit nz-number (RFC
  9051 section 9), so ``uid=9223372036854775808`` names nothing and is a 404,
  not an integer overflow in the database.
* Unknown paths, methods, folders and ids become the 404 page; a body over the
  size limit the 413 page.
* Anything unexpected is logged with its traceback (for the admin) and shown
  as a short 500 page.
"""

from __future__ import annotations

import logging

from aiohttp import web

from mailserver.store import InvalidMailboxName, MailboxNotFound
from mailserver.webmail.i18n import gettext_of
from mailserver.webmail.pages import error_page
from mailserver.webmail.reading import MessageGone
from mailserver.webmail.security import Handler, logged_in

log = logging.getLogger("schulhof.webmail")

MAX_UID = 2**32 - 1


class UnknownId(Exception):
    """An id from the browser that cannot name anything (not a number, out of range)."""


def browser_id(text: object, default: int | None = None, *, low: int = 1,
               limit: int = MAX_UID) -> int:
    """An integer id from a query or form between ``low`` and ``limit``; otherwise
    ``default`` or, without one, ``UnknownId`` (the 404 page)."""
    try:
        value = int(str(text if text is not None else "").strip())
    except ValueError:
        value = low - 1
    if low <= value <= limit:
        return value
    if default is None:
        raise UnknownId(text)
    return default


async def _page(request: web.Request, status: int, title: str, text: str) -> web.Response:
    try:
        found = await logged_in(request)
    except Exception:  # the error page must not fail on the way
        found = None
    return error_page(request, status, title, text, found[0] if found else None)


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    _ = gettext_of(request)
    try:
        return await handler(request)
    except (UnknownId, MessageGone):
        return await _page(request, 404, _("Nicht gefunden"),
                           _("Diese Nachricht oder Seite gibt es nicht (mehr)."))
    except (MailboxNotFound, InvalidMailboxName):
        return await _page(request, 404, _("Ordner nicht gefunden"),
                           _("Diesen Ordner gibt es nicht (mehr)."))
    except web.HTTPException as exc:
        if exc.status in (404, 405):
            return await _page(request, exc.status, _("Nicht gefunden"),
                               _("Diese Nachricht oder Seite gibt es nicht (mehr)."))
        if exc.status == 413:
            return await _page(request, 413, _("Zu groß"),
                               _("Die Nachricht mit ihren Anhängen ist zu groß."))
        if exc.status == 400:
            return await _page(request, 400, _("Ungültige Anfrage"),
                               _("Diese Anfrage kann der Server nicht verstehen."))
        raise
    except Exception:
        log.exception("event=webmail_error method=%s path=%s", request.method, request.path)
        return await _page(request, 500, _("Etwas ist schiefgegangen"),
                           _("Bitte versuchen Sie es später noch einmal."))
