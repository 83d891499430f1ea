"""One-click unsubscribe from the room digests (RFC 8058; issue 18.2).

The link in a digest's ``List-Unsubscribe`` (``mailserver.unsubscribe``) works
without a login: the signed account id is the permission.  A POST (a mail
program's one-click button, RFC 8058 3.2, or the button of the page below)
turns that person's digests off; a GET changes nothing and only shows that
button, German first (link checkers and previews open links).  No cookies,
no CSRF token: RFC 8058 3.2 says the POST carries none, and the link itself
is the secret.  A link that is not ours gets the same 404 as any unknown page.
"""

from __future__ import annotations

import logging

from aiohttp import web

from directory.model import Account, DirectoryError
from mailserver.unsubscribe import PATH
from mailserver.webmail.context import WEBMAIL
from mailserver.webmail.i18n import gettext_of
from mailserver.webmail.pages import error_page, page

log = logging.getLogger("schulhof.webmail")


async def _account(request: web.Request) -> Account | None:
    webmail = request.app[WEBMAIL]
    if webmail.unsubscribe is None or webmail.digests is None:
        return None
    account_id = webmail.unsubscribe.account_of(request.query.get("a", ""),
                                                request.query.get("t", ""))
    if account_id is None:
        return None
    try:
        return await webmail.directory.get_account_by_id(account_id)
    except DirectoryError:
        return None


def _not_ours(request: web.Request) -> web.Response:
    _ = gettext_of(request)
    return error_page(request, 404, _("Link ungültig"),
                      _("Dieser Abmeldelink ist ungültig. Die Zusammenfassungen lassen sich "
                        "auch in den Einstellungen abbestellen."))


async def confirm_page(request: web.Request) -> web.StreamResponse:
    account = await _account(request)
    if account is None:
        return _not_ours(request)
    webmail = request.app[WEBMAIL]
    return page(request, "unsubscribe.html", address=f"{account.login}@{webmail.domain}",
                action=request.path_qs, done=False)


async def unsubscribe(request: web.Request) -> web.StreamResponse:
    await request.read()  # "List-Unsubscribe=One-Click" (RFC 8058 3.1); nothing else asked
    account = await _account(request)
    if account is None:
        log.info("event=digest_unsubscribe_refused")
        return _not_ours(request)
    webmail = request.app[WEBMAIL]
    assert webmail.digests is not None
    await webmail.digests.set_enabled(account.id, False)
    log.info("event=digest_unsubscribed login=%s", account.login)
    return page(request, "unsubscribe.html", address=f"{account.login}@{webmail.domain}",
                action="", done=True)


def routes() -> list[web.RouteDef]:
    return [web.get(PATH, confirm_page), web.post(PATH, unsubscribe)]
