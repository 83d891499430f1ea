"""All admin pages as routes for the webmail listener (``conf.wiring.webmail``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from conf.admin_web.accounts import AccountPages
from conf.admin_web.context import HERE, AdminSite
from conf.admin_web.groups import GroupPages
from conf.admin_web.importing import ImportPages
from conf.admin_web.messenger_rules import MessengerRulesPage
from conf.admin_web.self_service import SelfService

if TYPE_CHECKING:
    from conf.app import School


STYLE = (HERE / "static" / "admin.css").read_bytes()


async def stylesheet(request: web.Request) -> web.StreamResponse:
    return web.Response(body=STYLE, content_type="text/css", charset="utf-8",
                        headers={"Cache-Control": "max-age=3600"})


def admin_routes(school: School) -> list[web.RouteDef]:
    site = AdminSite(school)
    return [*AccountPages(site).routes(), *GroupPages(site).routes(),
            *ImportPages(site).routes(), *SelfService(site).routes(),
            *MessengerRulesPage(site).routes(),
            web.get("/admin/static/admin.css", stylesheet)]
