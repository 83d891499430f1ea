"""Reading a message: the page, its HTML body in a sandboxed frame, inline images.

The message page itself never contains mail HTML.  An HTML body is shown in
an ``<iframe sandbox>`` without ``allow-scripts`` whose document
(``/message/frame``) is the sanitised HTML (``sanitise``) with its own CSP:
no script at all, no request anywhere but this webmail's inline-image URLs,
remote images only after the reader clicked "Bilder anzeigen" (``images=1``)
or chose to always see the images of this sender (``image_senders``).
The frame keeps ``allow-same-origin`` (without scripts it grants nothing to
the mail, but it lets the ``cid:`` image requests carry the SameSite=Strict
session cookie) and ``allow-popups-to-escape-sandbox`` so links open in a
normal new tab.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from directory.model import Account
from mailserver.store import MailboxNotFound, StoreError
from mailserver.webmail.context import WEBMAIL
from mailserver.webmail.i18n import gettext_of
from mailserver.webmail.image_senders import sender_address
from mailserver.webmail.pages import error_page, page
from mailserver.webmail.reading import MessageGone, MessageView
from mailserver.webmail.routes.mailbox import box_of as _box
from mailserver.webmail.routes.mailbox import number as _number
from mailserver.webmail.sanitise import SafeHtml, linkify, sanitise_html
from mailserver.webmail.security import logged_in, login_required
from mailserver.webmail.sessions import WebSession

FRAME_SANDBOX = "allow-same-origin allow-popups allow-popups-to-escape-sandbox"
# Raster types only: an SVG "image" opened on its own could run script.
INLINE_TYPES = {"image/png", "image/gif", "image/jpeg", "image/webp"}
_FRAME_STYLE = ("body{font-family:system-ui,sans-serif;margin:.5rem;color:#1d2327;"
                "overflow-wrap:anywhere}img{max-width:100%;height:auto}")


def frame_csp(remote_images: bool) -> str:
    """The framed mail's own policy: nothing runs, only allowed images load."""
    images = "'self' data:" + (" https: http:" if remote_images else "")
    return (f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; "
            "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; "
            f"sandbox {FRAME_SANDBOX}")


def message_page_csp() -> str:
    """The message page: as every page, plus its one same-origin frame."""
    return ("default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _query(box: str, uid: int, **more: str) -> str:
    return urllib.parse.urlencode({"box": box, "uid": str(uid), **more})


def _inline_url(box: str, uid: int) -> Callable[[str], str]:
    prefix = f"/message/inline?{_query(box, uid)}&cid="
    return lambda content_id: prefix + urllib.parse.quote(content_id, safe="")


@dataclass(frozen=True)
class _Opened:
    """The message a ``box``/``uid``/``images`` query names, opened for its reader."""

    box: str
    uid: int
    shown: MessageView
    images: bool  # the reader allowed remote images
    sender: str = ""  # From's address
    remembered: bool = False  # the reader always sees this sender's images

    def sanitised(self) -> SafeHtml:
        return sanitise_html(self.shown.html or "", inline_url=_inline_url(self.box, self.uid),
                             remote_images=self.images)


async def _open(request: web.Request, account: Account) -> _Opened | None:
    """The message of the query, or None when it is not the reader's to see."""
    box = _box(request)
    uid = _number(request.query.get("uid"))
    mail = request.app[WEBMAIL].mail
    try:
        shown = await mail.open(account.id, box, uid)
    except (MailboxNotFound, MessageGone, StoreError):
        return None
    sender = sender_address(shown.sender)
    remembered = shown.html is not None and await mail.image_senders.trusted(account.id,
                                                                            sender)
    return _Opened(box, uid, shown, remembered or request.query.get("images") == "1",
                   sender, remembered)


_SHA256 = frozenset("0123456789abcdef")


async def open_by_content(request: web.Request) -> web.StreamResponse:
    """``/message/open?sha256=…``: the reader's own copy of a mail (the room link of
    the messenger bridge); the same 404 as for any message that is not theirs.  Not
    logged in: the login page, which continues here afterwards."""
    digest = request.query.get("sha256", "").lower()
    valid = len(digest) == 64 and set(digest) <= _SHA256
    if valid and await logged_in(request) is None:
        here = urllib.parse.quote(f"/message/open?sha256={digest}", safe="")
        raise web.HTTPSeeOther(f"/login?weiter={here}")
    return await _open_by_content(request)


@login_required
async def _open_by_content(request: web.Request, session: WebSession, account: Account
                           ) -> web.StreamResponse:
    _ = gettext_of(request)
    digest = request.query.get("sha256", "").lower()
    place = None
    if len(digest) == 64 and set(digest) <= _SHA256:
        place = await request.app[WEBMAIL].mail.find_content(account.id, digest)
    if place is None:
        return error_page(request, 404, _("Nachricht nicht gefunden"),
                          _("Sie wurde vielleicht gelöscht."), session)
    raise web.HTTPSeeOther(f"/message?{_query(*place)}")


@login_required
async def message(request: web.Request, session: WebSession, account: Account
                  ) -> web.StreamResponse:
    _ = gettext_of(request)
    opened = await _open(request, account)
    if opened is None:
        return error_page(request, 404, _("Nachricht nicht gefunden"),
                          _("Sie wurde vielleicht gelöscht."), session)
    box, uid, shown = opened.box, opened.uid, opened.shown
    # The page only says how many images wait; the frame's request shows the mail.
    remote = 0 if shown.html is None else sanitise_html(
        shown.html, inline_url=_inline_url(box, uid), remote_images=False).blocked_images
    frame = f"/message/frame?{_query(box, uid, **({'images': '1'} if opened.images else {}))}"
    response = page(request, "message.html", session=session,
                    folders=await request.app[WEBMAIL].mail.folders(account.id), mailbox=box,
                    message=shown, text=linkify(shown.text), frame=frame,
                    conversation=await request.app[WEBMAIL].mail.conversation(
                        account.id, box, shown),
                    sandbox=FRAME_SANDBOX, remote=remote, images=opened.images,
                    sender=opened.sender,
                    remembered=opened.remembered,
                    images_url=f"/message?{_query(box, uid, images='1')}")
    response.headers["Content-Security-Policy"] = message_page_csp()
    return response


@login_required
async def frame(request: web.Request, session: WebSession, account: Account
                ) -> web.StreamResponse:
    """The sanitised HTML body as its own document (the frame's src)."""
    _ = gettext_of(request)
    opened = await _open(request, account)
    if opened is None:
        return error_page(request, 404, _("Nachricht nicht gefunden"), "", session)
    images = opened.images
    safe = opened.sanitised()
    document = ('<!doctype html><html><head><meta charset="utf-8">'
                '<meta name="referrer" content="no-referrer">'
                f'<style>{_FRAME_STYLE}</style></head><body>{safe.html}</body></html>')
    return web.Response(text=document, content_type="text/html", charset="utf-8", headers={
        "Content-Security-Policy": frame_csp(images),
        "X-Frame-Options": "SAMEORIGIN",
        "Referrer-Policy": "no-referrer",
    })


@login_required
async def inline(request: web.Request, session: WebSession, account: Account
                 ) -> web.StreamResponse:
    """A ``cid:`` image of the message (RFC 2392), raster types only."""
    mail = request.app[WEBMAIL].mail
    try:
        kind, data = await mail.inline_part(account.id, _box(request),
                                            _number(request.query.get("uid")),
                                            request.query.get("cid", ""))
    except (MailboxNotFound, MessageGone, StoreError):
        raise web.HTTPNotFound(text="no such part") from None
    if kind not in INLINE_TYPES:
        raise web.HTTPNotFound(text="not an inline image")
    return web.Response(body=data, content_type=kind, headers={
        "Content-Disposition": "inline",
        "Content-Security-Policy": "default-src 'none'; sandbox"})


@login_required
async def image_sender(request: web.Request, session: WebSession, account: Account
                       ) -> web.StreamResponse:
    """Always (``/images/always``) or no longer (``/images/never``) show the remote
    images of the sender of the posted message; back to that message."""
    _ = gettext_of(request)
    form = await request.post()
    box, uid = str(form.get("box", "")), _number(str(form.get("uid", "")))
    mail = request.app[WEBMAIL].mail
    try:
        shown = await mail.open(account.id, box, uid)
    except (MailboxNotFound, MessageGone, StoreError):
        return error_page(request, 404, _("Nachricht nicht gefunden"), "", session)
    sender = sender_address(shown.sender)
    if request.path.endswith("/always"):
        await mail.image_senders.trust(account.id, sender)
    else:
        await mail.image_senders.forget(account.id, sender)
    raise web.HTTPSeeOther(f"/message?{_query(box, uid)}")


def routes() -> list[web.RouteDef]:
    return [web.get("/message", message), web.get("/message/open", open_by_content),
            web.get("/message/frame", frame),
            web.get("/message/inline", inline), web.post("/images/always", image_sender),
            web.post("/images/never", image_sender)]
