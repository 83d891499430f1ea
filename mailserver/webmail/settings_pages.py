"""Settings: password, signature, vacation reply, forwarding.

The password change needs the old password (checked by the directory's
throttled ``Authenticator``, so this page is no way around the login
throttle) and follows the directory's rule (``directory.passwords``);
afterwards every other session of the account ends.  Signature and forwarding
are stored in the mail store's settings, where delivery reads them
(``mailserver.forwarding``).  The vacation reply is a block in the account's
active Sieve script (``mailserver.sieve.managed_vacation``: ManageSieve clients
see it, and the form shows what the script says); the settings keep its text
while it is off.  Forwarding
goes only to a person of the school this account may write to.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from aiohttp import web

from directory.auth import AuthenticationFailed, AuthenticationThrottled
from directory.model import Account
from directory.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    PasswordRejected,
    check_new_password,
)
from mailserver.forwarding import forward_target
from mailserver.sieve.managed_vacation import (
    OwnVacation,
    ScriptNotExtended,
    VacationRule,
    VacationState,
)
from mailserver.store.account_settings import MAX_DAYS, MIN_DAYS, MailSettings
from mailserver.webmail.context import WEBMAIL, client_ip
from mailserver.webmail.i18n import GERMAN, N_, Translator, gettext_of
from mailserver.webmail.pages import page
from mailserver.webmail.security import login_required
from mailserver.webmail.sessions import WebSession

log = logging.getLogger("schulhof.webmail")

SIGNATURE_LIMIT = 2000
SUBJECT_LIMIT = 200
VACATION_LIMIT = 5000
NOTICES = {"password": N_("Das Passwort wurde geändert."),
           "signature": N_("Die Signatur wurde gespeichert."),
           "vacation": N_("Die Abwesenheitsnotiz wurde gespeichert."),
           "forwarding": N_("Die Weiterleitung wurde gespeichert."),
           "digest": N_("Die Einstellung der Zusammenfassungen wurde gespeichert.")}


async def _render(request: web.Request, session: WebSession, account: Account, *,
                  status: int = 200, errors: Any = (), notice: str = "",
                  shown: MailSettings | None = None) -> web.Response:
    """The settings page; its vacation part as the active Sieve script says
    (``shown``: the form as posted, after a refusal)."""
    webmail = request.app[WEBMAIL]
    settings = await webmail.mail.settings.get(account.id)
    state = VacationState(None)
    if webmail.vacation is not None:
        state = await webmail.vacation.state(account.id)
        if state.rule is not None:
            rule = state.rule
            settings = dataclasses.replace(
                settings, vacation_enabled=True, vacation_subject=rule.subject,
                vacation_body=rule.body, vacation_days=rule.days, vacation_until=rule.until)
    digests = None if webmail.digests is None else await webmail.digests.enabled(account.id)
    return page(request, "settings.html", status, session=session, digests=digests,
                folders=await webmail.mail.folders(account.id), settings=shown or settings,
                vacation_script=state.script, vacation_own=not state.managed,
                errors=list(errors), notice=notice, min_days=MIN_DAYS, max_days=MAX_DAYS,
                min_password=MIN_PASSWORD_LENGTH, max_password=MAX_PASSWORD_LENGTH)


@login_required
async def settings_page(request: web.Request, session: WebSession, account: Account
                        ) -> web.StreamResponse:
    notice = NOTICES.get(request.query.get("saved", ""))
    return await _render(request, session, account,
                         notice=gettext_of(request)(notice) if notice else "")


@login_required
async def change_password(request: web.Request, session: WebSession, account: Account
                          ) -> web.StreamResponse:
    _ = gettext_of(request)
    webmail = request.app[WEBMAIL]
    form = await request.post()
    old, new, again = (str(form.get(k, "")) for k in ("old", "new", "again"))
    try:
        await webmail.authenticator.authenticate(account.login, old, client_ip(request))
    except AuthenticationThrottled:
        return await _render(request, session, account, status=429,
                             errors=[_("Zu viele Versuche. Bitte später noch einmal.")])
    except AuthenticationFailed:
        return await _render(request, session, account, status=400,
                             errors=[_("Das bisherige Passwort stimmt nicht.")])
    problems = password_problems(new, _)
    if new != again:
        problems.append(_("Die beiden neuen Passwörter sind nicht gleich."))
    if new == old:
        problems.append(_("Das neue Passwort muss sich vom bisherigen unterscheiden."))
    if problems:
        return await _render(request, session, account, status=400, errors=problems)
    await webmail.directory.set_password(account.login, new)
    webmail.sessions.end_account(account.id, keep=session.token)  # others log in again
    log.info("event=webmail_password_changed login=%s", account.login)
    raise web.HTTPSeeOther("/settings?saved=password")


@login_required
async def save_signature(request: web.Request, session: WebSession, account: Account
                         ) -> web.StreamResponse:
    _ = gettext_of(request)
    store = request.app[WEBMAIL].mail.settings
    signature = str((await request.post()).get("signature", "")).replace("\r\n", "\n")
    if len(signature) > SIGNATURE_LIMIT:
        return await _render(request, session, account, status=400, errors=[
            _("Die Signatur darf höchstens %(limit)s Zeichen lang sein.",
              limit=SIGNATURE_LIMIT)])
    current = await store.get(account.id)
    await store.save(account.id, dataclasses.replace(current, signature=signature))
    raise web.HTTPSeeOther("/settings?saved=signature")


@login_required
async def save_digest(request: web.Request, session: WebSession, account: Account
                      ) -> web.StreamResponse:
    """Room digests by mail on or off (a digest's one-click link turns them off too)."""
    digests = request.app[WEBMAIL].digests
    if digests is None:
        raise web.HTTPNotFound()
    enabled = (await request.post()).get("digests") == "on"
    await digests.set_enabled(account.id, enabled)
    log.info("event=webmail_digest_setting login=%s enabled=%s", account.login, enabled)
    raise web.HTTPSeeOther("/settings?saved=digest")


def password_problems(password: str, _: Translator = GERMAN) -> list[str]:
    """The directory's rule (``check_new_password``: the CLI and the messenger use
    it too), its refusals said in the reader's language."""
    try:
        check_new_password(password)
    except PasswordRejected:
        if len(password) > MAX_PASSWORD_LENGTH:
            return [_("Das Passwort darf höchstens %(limit)s Zeichen lang sein.",
                      limit=MAX_PASSWORD_LENGTH)]
        return [_("Das Passwort muss mindestens %(limit)s Zeichen lang sein.",
                  limit=MIN_PASSWORD_LENGTH)]
    return []


def _vacation(form: Any, current: MailSettings,
              _: Translator = GERMAN) -> tuple[MailSettings, list[str]]:
    errors = []
    subject = " ".join(str(form.get("subject", "")).split())
    body = str(form.get("body", "")).replace("\r\n", "\n")
    enabled = form.get("enabled") == "on"
    try:
        days = int(str(form.get("days", "7")))
    except ValueError:
        days = 7
    if not MIN_DAYS <= days <= MAX_DAYS:
        errors.append(_("Der Abstand muss zwischen %(low)s und %(high)s Tagen liegen.",
                        low=MIN_DAYS, high=MAX_DAYS))
    until = None
    if str(form.get("until", "")).strip():
        try:
            until = dt.date.fromisoformat(str(form.get("until")).strip())
        except ValueError:
            errors.append(_("Das Enddatum ist kein gültiges Datum."))
    if len(subject) > SUBJECT_LIMIT or len(body) > VACATION_LIMIT:
        errors.append(_("Betreff oder Text der Abwesenheitsnotiz ist zu lang."))
    if enabled and not body.strip():
        errors.append(_("Bitte einen Text für die Abwesenheitsnotiz eingeben."))
    return dataclasses.replace(current, vacation_enabled=enabled, vacation_subject=subject,
                               vacation_body=body, vacation_days=days,
                               vacation_until=until), errors


@login_required
async def save_vacation(request: web.Request, session: WebSession, account: Account
                        ) -> web.StreamResponse:
    _ = gettext_of(request)
    webmail = request.app[WEBMAIL]
    store = webmail.mail.settings
    settings, errors = _vacation(await request.post(), await store.get(account.id), _)
    if errors:
        return await _render(request, session, account, status=400, errors=errors,
                             shown=settings)
    script, enabled = "", settings.vacation_enabled
    if webmail.vacation is not None:
        rule = VacationRule(settings.vacation_body.strip(), settings.vacation_subject,
                            settings.vacation_days, settings.vacation_until)
        try:
            script = await webmail.vacation.save(
                account.id, rule if settings.vacation_enabled else None)
        except OwnVacation as own:
            return await _render(request, session, account, status=409, shown=settings,
                                 errors=[_("Ihre Abwesenheitsnotiz steht in Ihrem eigenen "
                                           "Sieve-Skript „%(script)s“. Bitte ändern Sie sie "
                                           "dort (z. B. im Mailprogramm).", script=own.script)])
        except ScriptNotExtended as refused:
            return await _render(request, session, account, status=409, shown=settings,
                                 errors=[_("Ihr Sieve-Skript „%(script)s“ lässt sich nicht um "
                                           "die Abwesenheitsnotiz ergänzen: %(reason)s",
                                           script=refused.script, reason=refused.reason)])
        # The script replies now; the settings keep the text for the next time
        # (and the delivery's own vacation rule stays off: never two replies).
        settings = dataclasses.replace(settings, vacation_enabled=False)
    await store.save(account.id, settings)
    log.info("event=webmail_vacation login=%s enabled=%s script=%s", account.login,
             enabled, script or "-")
    raise web.HTTPSeeOther("/settings?saved=vacation")


@login_required
async def save_forwarding(request: web.Request, session: WebSession, account: Account
                          ) -> web.StreamResponse:
    _ = gettext_of(request)
    webmail = request.app[WEBMAIL]
    text = str((await request.post()).get("forward_to", ""))[:320]
    try:
        target = forward_target(text, webmail.domain)
    except ValueError:
        return await _render(request, session, account, status=400, errors=[
            _("Weiterleiten geht nur an eine Adresse der Schule (…@%(domain)s).",
              domain=webmail.domain)])
    if target is not None:
        resolved = await webmail.directory.resolve(target.rpartition("@")[0])
        verdict = await webmail.directory.may_contact(account, target)
        if resolved is None or resolved.account is None or not verdict.allowed:
            return await _render(request, session, account, status=400, errors=[
                _("An %(address)s kann nicht weitergeleitet werden.", address=target)])
        if resolved.account.id == account.id:
            return await _render(request, session, account, status=400, errors=[
                _("Eine Weiterleitung an sich selbst ist nicht möglich.")])
    store = webmail.mail.settings
    current = await store.get(account.id)
    await store.save(account.id, dataclasses.replace(current, forward_to=target))
    log.info("event=webmail_forwarding login=%s on=%s", account.login, target is not None)
    raise web.HTTPSeeOther("/settings?saved=forwarding")


def routes() -> list[web.RouteDef]:
    return [web.get("/settings", settings_page), web.post("/settings/password", change_password),
            web.post("/settings/signature", save_signature),
            web.post("/settings/vacation", save_vacation),
            web.post("/settings/forwarding", save_forwarding),
            web.post("/settings/digest", save_digest)]
