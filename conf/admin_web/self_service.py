"""A person's own data export (GDPR Art. 15/20) from the webmail: ``/datenauskunft``.

Any logged-in account, for itself only (the webmail's login, CSRF and headers); the
same composed export as the admin's button and ``schulhof export``, audited with the
person as actor.  The webmail's settings page can link here.
"""

from __future__ import annotations

from aiohttp import web

from conf.admin_web.accounts import send_export
from conf.admin_web.context import AdminSite
from directory.audit import Actor
from directory.model import Account
from mailserver.webmail.context import client_ip
from mailserver.webmail.security import login_required
from mailserver.webmail.sessions import WebSession


class SelfService:
    def __init__(self, site: AdminSite) -> None:
        self.site = site

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/datenauskunft", login_required(self.page)),
                web.post("/datenauskunft", login_required(self.export))]

    async def page(self, request: web.Request, session: WebSession, account: Account
                   ) -> web.StreamResponse:
        _ = self.site.translator(request)
        env = self.site.environment(_.locale)
        school = self.site.school.settings.school
        text = env.get_template("self_export.html").render(
            school=school.name or school.domain, session=session, me=account,
            here=request.path_qs, domain=school.domain, error="")
        return web.Response(text=text, content_type="text/html", charset="utf-8")

    async def export(self, request: web.Request, session: WebSession, account: Account
                     ) -> web.StreamResponse:
        return await send_export(self.site, request, account.login,
                                 Actor(account.login, client_ip(request)))
