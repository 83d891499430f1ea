"""The compose page: new mail, reply, reply-all, forward, drafts.

A draft is a message in the Drafts folder (\\Draft), so IMAP clients see
the same drafts.  When a send is refused (policy, unknown recipient, size)
the mail is kept as a draft at once and the form comes back with the draft's
attachments listed and ticked: nothing the user attached is lost.

With script, the page saves the draft by itself (``static/autosave.js``, loaded
under a per-response nonce): a pause in typing posts the form with
``action=autosave`` (new uploads left out), the same draft path answers with
JSON, and the script puts the new draft's UID into the form, so the next save
and the final send replace it instead of piling up copies.  Without script
nothing changes: the buttons post the form as before.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

from aiohttp import web

from directory.model import Account
from mailserver.store import MailboxNotFound, StoreError
from mailserver.submission import Refused, SubmissionRefused
from mailserver.webmail import compose as c
from mailserver.webmail.contacts import reachable_contacts
from mailserver.webmail.context import WEBMAIL, Webmail
from mailserver.webmail.context import client_ip as _client_ip
from mailserver.webmail.i18n import Translator, gettext_of
from mailserver.webmail.pages import page
from mailserver.webmail.reading import DRAFTS, MessageGone, MessageView
from mailserver.webmail.refusals import refusal_text
from mailserver.webmail.security import login_required, script_policy
from mailserver.webmail.sessions import WebSession
from mailserver.webmail.uploads import uploads as _uploads

log = logging.getLogger("schulhof.webmail")

REPLY_MODES = ("reply", "all", "forward", "attach")


def _sender(webmail: Webmail, account: Account) -> str:
    return f"{account.login}@{webmail.domain}"


def _int(text: object) -> int | None:
    try:
        value = int(str(text))
    except ValueError:
        return None
    return value if 0 < value < 2**32 else None


async def _signature(webmail: Webmail, account: Account) -> str:
    return (await webmail.mail.settings.get(account.id)).signature


async def _own_addresses(webmail: Webmail, account: Account) -> set[str]:
    local_parts = await webmail.directory.addresses_of(account.login)
    return {f"{part}@{webmail.domain}" for part in local_parts | {account.login}}


async def _from_original(webmail: Webmail, account: Account, box: str, uid: int,
                         mode: str, _: Translator) -> c.ComposeForm:
    original = await webmail.mail.open(account.id, box, uid)
    signature = await _signature(webmail, account)
    if mode in ("forward", "attach"):
        body = (c.forwarded_inline(original, signature, _) if mode == "forward"
                else f"\n{c.signature_block(signature)}\n")
        return c.ComposeForm(subject=c.forward_subject(original.subject), body=body,
                             forward_box=box, forward_uid=uid,
                             forward_mode="inline" if mode == "forward" else "attach")
    to, cc = c.reply_recipients(original, await _own_addresses(webmail, account),
                                reply_all=mode == "all")
    return c.ComposeForm(to=to, cc=cc, subject=c.reply_subject(original.subject),
                         body=c.quoted_reply(original, signature, _),
                         in_reply_to=original.message_id, references=c.references(original))


def _draft_form(draft: MessageView, uid: int) -> c.ComposeForm:
    return c.ComposeForm(
        to=draft.to, cc=draft.cc, bcc=draft.bcc, subject=draft.subject, body=draft.text,
        in_reply_to=draft.in_reply_to, references=draft.references, draft_uid=uid,
        kept=[(a.index, a.filename, a.size) for a in draft.attachments])


async def _render(request: web.Request, session: WebSession, account: Account,
                  form: c.ComposeForm, *, status: int = 200, refused: Any = (),
                  notice: str = "") -> web.Response:
    webmail = request.app[WEBMAIL]
    nonce, policy = script_policy()
    response = page(request, "compose.html", status, session=session,
                    folders=await webmail.mail.folders(account.id),
                    sender=_sender(webmail, account), form=form, refused=list(refused),
                    notice=notice, nonce=nonce,
                    contacts=await reachable_contacts(webmail.directory, account,
                                                      webmail.domain))
    response.headers["Content-Security-Policy"] = policy
    return response


@login_required
async def compose_form(request: web.Request, session: WebSession, account: Account
                       ) -> web.StreamResponse:
    _ = gettext_of(request)
    webmail = request.app[WEBMAIL]
    query = request.query
    form = c.ComposeForm(to=query.get("to", ""))
    try:
        draft_uid = _int(query.get("draft_uid"))
        reply_uid = _int(query.get("reply_uid"))
        if draft_uid is not None:
            form = _draft_form(await webmail.mail.open(account.id, DRAFTS, draft_uid),
                               draft_uid)
        elif reply_uid is not None and query.get("reply_box"):
            mode = query.get("mode", "reply")
            form = await _from_original(webmail, account, query["reply_box"], reply_uid,
                                        mode if mode in REPLY_MODES else "reply", _)
        else:
            form.body = f"\n{c.signature_block(await _signature(webmail, account))}\n"
    except (MailboxNotFound, MessageGone, StoreError):
        raise web.HTTPNotFound(text=_("Nachricht nicht gefunden")) from None
    notice = _("Der Entwurf wurde gespeichert.") if query.get("notice") == "saved" else ""
    return await _render(request, session, account, form, notice=notice)


def _posted_form(form: Any, domain: str) -> c.ComposeForm:
    text = {key: str(form.get(key, "")) for key in (
        "to", "cc", "bcc", "subject", "body", "in_reply_to", "references", "forward_box",
        "forward_mode")}
    return c.ComposeForm(
        to=c.complete_addresses(text["to"], domain), cc=c.complete_addresses(text["cc"], domain),
        bcc=c.complete_addresses(text["bcc"], domain), subject=text["subject"],
        body=text["body"], in_reply_to=" ".join(text["in_reply_to"].split()),
        references=" ".join(text["references"].split()),
        draft_uid=_int(form.get("draft_uid", "")), forward_box=text["forward_box"],
        forward_uid=_int(form.get("forward_uid", "")),
        forward_mode=text["forward_mode"] if text["forward_mode"] in ("inline", "attach")
        else "")


async def _attachments(webmail: Webmail, account: Account, form: c.ComposeForm, posted: Any
                       ) -> tuple[list[c.Upload], bytes | None]:
    """Kept draft attachments, the forwarded mail's files or itself, and new uploads."""
    uploads: list[c.Upload] = []
    forwarded = None
    if form.draft_uid is not None:
        keep = {_int(value) for value in posted.getall("keep", [])}
        try:
            parts = await webmail.mail.attachment_parts(account.id, DRAFTS, form.draft_uid)
        except (MailboxNotFound, MessageGone):
            parts = []
        uploads += [c.Upload(name, kind, data) for index, (name, kind, data) in enumerate(parts)
                    if index + 1 in keep]  # +1: _int refuses 0
    if form.forward_uid is not None and form.forward_box:
        if form.forward_mode == "attach":
            forwarded = await webmail.mail.raw(account.id, form.forward_box, form.forward_uid)
        else:
            uploads += [c.Upload(*part) for part in await webmail.mail.attachment_parts(
                account.id, form.forward_box, form.forward_uid)]
    uploads += _uploads(posted)
    return uploads, forwarded


@login_required
async def compose(request: web.Request, session: WebSession, account: Account
                  ) -> web.StreamResponse:
    _ = gettext_of(request)
    webmail = request.app[WEBMAIL]
    posted = await request.post()
    form = _posted_form(posted, webmail.domain)
    sender = _sender(webmail, account)
    try:
        uploads, forwarded = await _attachments(webmail, account, form, posted)
    except (MailboxNotFound, MessageGone, StoreError):
        uploads, forwarded = [], None
    action = str(posted.get("action", "send"))
    if action == "autosave":
        return await _autosave(webmail, account, form, uploads, forwarded)
    if action == "draft":
        return await _save_draft(request, session, account, form, uploads, forwarded)
    try:
        recipients = c.recipients(form.to, form.cc, form.bcc)
        if not recipients:
            raise SubmissionRefused([Refused("", _("keine Empfängeradresse"))])
        try:
            message = c.build_message(from_name=account.display_name, sender=sender, form=form,
                                      uploads=uploads, forwarded=forwarded)
        except (ValueError, TypeError):  # header values the email package will not encode
            raise SubmissionRefused([Refused("", _("ungültige Eingabe"))]) from None
        if len(message) > webmail.max_message_size:
            limit = webmail.max_message_size // (1024 * 1024)
            raise SubmissionRefused([Refused("", _(
                "die Nachricht ist größer als %(limit)s MiB (Anhänge werden beim Senden "
                "um ein Drittel größer)", limit=limit))])
        try:
            await webmail.submitter.submit(account, sender, recipients, message,
                                           client=_client_ip(request))
        except SubmissionRefused as lower:  # the protocol's English, said for people
            raise SubmissionRefused([Refused(r.address, refusal_text(_, r.reason))
                                     for r in lower.refused]) from None
    except SubmissionRefused as refused:
        kept = await _keep_as_draft(webmail, account, form, uploads, forwarded)
        return await _render(request, session, account, kept, status=400,
                             refused=refused.refused)
    if form.draft_uid is not None:
        await webmail.mail.delete_draft(account.id, form.draft_uid)
    raise web.HTTPSeeOther("/mail?box=INBOX&notice=sent")


async def _keep_as_draft(webmail: Webmail, account: Account, form: c.ComposeForm,
                         uploads: list[c.Upload], forwarded: bytes | None) -> c.ComposeForm:
    """After a refused send: the mail as a draft, so its attachments come back."""
    try:
        message = c.build_message(from_name=account.display_name,
                                  sender=_sender(webmail, account), form=form, uploads=uploads,
                                  forwarded=forwarded, keep_bcc=True)
        uid = await webmail.mail.save_draft(account.id, message, form.draft_uid)
        draft = await webmail.mail.open(account.id, DRAFTS, uid)
    except (ValueError, TypeError, StoreError, MessageGone) as exc:
        log.info("event=webmail_draft_not_kept account=%s error=%s", account.login,
                 exc.__class__.__name__)
        return form
    kept = _draft_form(draft, uid)
    # The user's text as typed (the draft's parsed text would be re-wrapped).
    kept.to, kept.cc, kept.bcc, kept.subject, kept.body = (form.to, form.cc, form.bcc,
                                                           form.subject, form.body)
    return kept


async def _save_draft(request: web.Request, session: WebSession, account: Account,
                      form: c.ComposeForm, uploads: list[c.Upload],
                      forwarded: bytes | None) -> web.StreamResponse:
    webmail = request.app[WEBMAIL]
    try:
        message = c.build_message(from_name=account.display_name,
                                  sender=_sender(webmail, account), form=form, uploads=uploads,
                                  forwarded=forwarded, keep_bcc=True)
        uid = await webmail.mail.save_draft(account.id, message, form.draft_uid)
    except (ValueError, TypeError, StoreError) as exc:
        _ = gettext_of(request)
        reason = (_("kein Platz mehr im Postfach") if isinstance(exc, StoreError)
                  else _("ungültige Eingabe"))
        return await _render(request, session, account, form, status=400, refused=[
            Refused("", _("Entwurf nicht gespeichert: %(reason)s", reason=reason))])
    raise web.HTTPSeeOther(f"/compose?{urllib.parse.urlencode({'draft_uid': uid})}"
                           "&notice=saved")


async def _autosave(webmail: Webmail, account: Account, form: c.ComposeForm,
                    uploads: list[c.Upload], forwarded: bytes | None) -> web.Response:
    """The script's save: the draft replaced, its new UID as JSON (``{"draft_uid": n}``;
    ``{"error": ...}`` with 400 when it cannot be saved: the page then says so)."""
    try:
        message = c.build_message(from_name=account.display_name,
                                  sender=_sender(webmail, account), form=form, uploads=uploads,
                                  forwarded=forwarded, keep_bcc=True)
        uid = await webmail.mail.save_draft(account.id, message, form.draft_uid)
    except (ValueError, TypeError, StoreError) as exc:
        log.info("event=webmail_autosave_failed account=%s error=%s", account.login,
                 exc.__class__.__name__)
        return web.json_response({"error": exc.__class__.__name__}, status=400)
    return web.json_response({"draft_uid": uid})


def routes() -> list[web.RouteDef]:
    return [web.get("/compose", compose_form), web.post("/compose", compose)]
