"""Admin pages for accounts: search, create, role, suspend, password letter, parents'
children, data export (Art. 15/20) and erasure (Art. 17).  Every change is audited
with the admin's login and address."""

from __future__ import annotations

import asyncio
import tempfile
from typing import IO

from aiohttp import web

from conf.admin.erasure import erase_account
from conf.admin.export import export_account
from conf.admin.letters import letter_school, render_letters
from conf.admin.passwords import reset_password
from conf.admin_web.context import AdminRequest, AdminSite
from directory.audit import Actor
from directory.importer import InitialPassword
from directory.model import DirectoryError, Role, Status
from directory.passwords import generate_password

MAX_LISTED = 300
ROLES = [r.value for r in Role]


def _form_text(form: object, name: str, limit: int = 200) -> str:
    value = form.get(name, "") if hasattr(form, "get") else ""
    return str(value).strip()[:limit]


async def hold_letters(site: AdminSite, who: AdminRequest, letters: list[InitialPassword],
                       name: str) -> str:
    """The letters as a PDF (made in a thread: 2,000 pages take seconds), kept for one
    download by this session; returns its token."""
    pdf = await asyncio.to_thread(render_letters, letters,
                                  letter_school(site.school.settings))
    return site.letters.put(who.session.token, pdf, name)


async def send_export(site: AdminSite, request: web.Request, login: str, actor: Actor
                      ) -> web.StreamResponse:
    """The account's export as a download: the ZIP is written to a temporary file
    (never whole in memory), then sent in pieces."""
    spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
    try:
        await export_account(site.school, login, spool, actor)
        size = spool.tell()
        spool.seek(0)
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{login}-export.zip"',
            "Content-Length": str(size)})
        await response.prepare(request)
        while chunk := await asyncio.to_thread(spool.read, 1 << 20):
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        spool.close()


class AccountPages:
    def __init__(self, site: AdminSite) -> None:
        self.site = site
        self.directory = site.school.directory

    def routes(self) -> list[web.RouteDef]:
        guard = self.site.admin_only
        return [
            web.get("/admin", self.root), web.get("/admin/", self.root),
            web.get("/admin/konten", guard(self.list_accounts)),
            web.post("/admin/konten", guard(self.create)),
            web.get("/admin/konten/{login}", guard(self.show)),
            web.post("/admin/konten/{login}/{action}", guard(self.act)),
            web.get("/admin/briefe/{token}", guard(self.letter)),
        ]

    async def root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/admin/konten")

    async def list_accounts(self, request: web.Request, who: AdminRequest
                            ) -> web.StreamResponse:
        query = request.query.get("q", "").strip()[:100]
        role = request.query.get("rolle", "")
        accounts = await self.directory.list_accounts(
            role=Role(role) if role in ROLES else None)
        if query:
            needle = query.casefold()
            accounts = [a for a in accounts if needle in a.login.casefold()
                        or needle in a.display_name.casefold()
                        or needle in f"{a.first_name} {a.last_name}".casefold()]
        return self.site.render(request, who, "accounts.html", accounts=accounts[:MAX_LISTED],
                                total=len(accounts), query=query, role=role, roles=ROLES,
                                error=request.query.get("fehler", ""))

    async def create(self, request: web.Request, who: AdminRequest) -> web.StreamResponse:
        _ = who._
        form = await request.post()
        role = _form_text(form, "role", 16)
        first, last = _form_text(form, "first_name", 100), _form_text(form, "last_name", 100)
        login = _form_text(form, "login", 64).lower() or None
        if role not in ROLES or not (first or last or login):
            return await self._accounts_error(request, who, _(
                "Bitte Rolle und Vor- oder Nachname angeben."))
        password = generate_password(self.site.school.settings.importer.password_length)
        try:
            account = await self.directory.create_account(
                role=Role(role), first_name=first, last_name=last, login=login,
                password=password)
        except DirectoryError as exc:
            return await self._accounts_error(request, who, _("Nicht angelegt: %(reason)s")
                                              % {"reason": exc})
        await self.site.school.audit.record(who.actor, "account.create", account.login,
                                            {"role": role, "password": True})
        letter = InitialPassword(account.login, self.directory.address_of(account.login),
                                 first, last, role, "", password)
        token = await self._hold_letters(who, [letter], f"brief-{account.login}.pdf")
        raise web.HTTPSeeOther(f"/admin/konten/{account.login}?brief={token}")

    async def _accounts_error(self, request: web.Request, who: AdminRequest,
                              message: str) -> web.StreamResponse:
        accounts = await self.directory.list_accounts()
        return self.site.render(request, who, "accounts.html", 400,
                                accounts=accounts[:MAX_LISTED], total=len(accounts),
                                query="", role="", roles=ROLES, error=message)

    async def _hold_letters(self, who: AdminRequest, letters: list[InitialPassword],
                            name: str) -> str:
        return await hold_letters(self.site, who, letters, name)

    async def show(self, request: web.Request, who: AdminRequest, *, status: int = 200,
                   error: str = "", notice: str = "") -> web.StreamResponse:
        login = request.match_info["login"]
        try:
            account = await self.directory.get_account(login)
        except DirectoryError:
            raise web.HTTPNotFound() from None
        groups = await self.directory.groups_of(account.login)
        aliases = sorted(await self.directory.addresses_of(account.login) - {account.login})
        children = await self.directory.children_of(account.login) \
            if account.role is Role.PARENT else []
        return self.site.render(request, who, "account.html", status, account=account,
                                groups=groups, aliases=aliases, children=children, roles=ROLES,
                                letter=request.query.get("brief", ""), error=error,
                                notice=notice or request.query.get("hinweis", ""))

    async def act(self, request: web.Request, who: AdminRequest) -> web.StreamResponse:
        _ = who._
        login, action = request.match_info["login"], request.match_info["action"]
        try:
            account = await self.directory.get_account(login)
        except DirectoryError:
            raise web.HTTPNotFound() from None
        form = await request.post()
        audit = self.site.school.audit
        here = f"/admin/konten/{account.login}"
        try:
            if action == "rolle":
                role = _form_text(form, "role", 16)
                if role not in ROLES:
                    raise web.HTTPBadRequest()
                await self.directory.set_role(account.login, Role(role))
                await audit.record(who.actor, "account.role", account.login,
                                   {"from": account.role.value, "to": role})
            elif action == "sperren":
                if account.status is Status.ACTIVE:
                    await self.directory.set_status(account.login, Status.SUSPENDED)
                    await audit.record(who.actor, "account.suspend", account.login)
            elif action == "entsperren":
                if account.status is not Status.ACTIVE:
                    await self.directory.set_status(account.login, Status.ACTIVE)
                    await audit.record(who.actor, "account.unsuspend", account.login,
                                       {"was": account.status.value})
            elif action == "passwort":
                issued = await reset_password(self.site.school, account.login, who.actor)
                token = await self._hold_letters(who, [issued], f"brief-{account.login}.pdf")
                raise web.HTTPSeeOther(f"{here}?brief={token}")
            elif action == "kind":
                child = _form_text(form, "child", 64).lower()
                await self.directory.link_parent(account.login, child)
                await audit.record(who.actor, "account.link_child", account.login,
                                   {"child": child})
            elif action == "kind-entfernen":
                child = _form_text(form, "child", 64).lower()
                await self.directory.unlink_parent(account.login, child)
                await audit.record(who.actor, "account.unlink_child", account.login,
                                   {"child": child})
            elif action == "export":
                return await send_export(self.site, request, account.login, who.actor)
            elif action == "loeschen":
                if _form_text(form, "confirm", 64).lower() != account.login:
                    return await self.show(request, who, status=400, error=_(
                        "Zum Löschen bitte den Benutzernamen eintippen."))
                await erase_account(self.site.school, account.login, who.actor)
                raise web.HTTPSeeOther("/admin/konten")
            else:
                raise web.HTTPNotFound()
        except DirectoryError as exc:
            return await self.show(request, who, status=400,
                                   error=_("Nicht möglich: %(reason)s") % {"reason": exc})
        raise web.HTTPSeeOther(here)

    async def letter(self, request: web.Request, who: AdminRequest) -> web.StreamResponse:
        held = self.site.letters.take(who.session.token, request.match_info["token"])
        if held is None:
            _ = who._
            return self.site.render(request, who, "message.html", 410,
                                    title=_("Nicht mehr verfügbar"), text=_(
                                        "Passwortbriefe lassen sich nur einmal herunterladen. "
                                        "Bei Bedarf das Passwort neu setzen."))
        # The PDF holds passwords: who took it, and when, belongs in the audit log.
        await self.site.school.audit.record(who.actor, "letters.download", held.name,
                                            {"bytes": len(held.data)})
        return web.Response(body=held.data, headers={
            "Content-Type": "application/pdf",
            "Content-Disposition": f'attachment; filename="{held.name}"'})
