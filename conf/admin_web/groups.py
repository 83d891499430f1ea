"""Admin pages for groups and their members, aliases, and the partner schools."""

from __future__ import annotations

from aiohttp import web

from conf.admin_web.context import AdminRequest, AdminSite
from directory.model import DirectoryError, GroupKind, MemberRole

KINDS = [k.value for k in GroupKind]


def _text(form: object, name: str, limit: int = 200) -> str:
    value = form.get(name, "") if hasattr(form, "get") else ""
    return str(value).strip()[:limit]


class GroupPages:
    def __init__(self, site: AdminSite) -> None:
        self.site = site
        self.directory = site.school.directory

    def routes(self) -> list[web.RouteDef]:
        guard = self.site.admin_only
        return [
            web.get("/admin/gruppen", guard(self.list_groups)),
            web.post("/admin/gruppen", guard(self.create)),
            web.get("/admin/gruppen/{name}", guard(self.show)),
            web.post("/admin/gruppen/{name}/{action}", guard(self.act)),
            web.get("/admin/aliase", guard(self.aliases)),
            web.post("/admin/aliase/{action}", guard(self.alias_act)),
            web.get("/admin/partner", guard(self.partners)),
        ]

    async def list_groups(self, request: web.Request, who: AdminRequest, *,
                          status: int = 200, error: str = "") -> web.StreamResponse:
        groups = await self.directory.list_groups()
        return self.site.render(request, who, "groups.html", status, groups=groups,
                                kinds=KINDS, error=error)

    async def create(self, request: web.Request, who: AdminRequest) -> web.StreamResponse:
        form = await request.post()
        name, kind = _text(form, "name", 64).lower(), _text(form, "kind", 16)
        if kind not in KINDS:
            kind = GroupKind.CUSTOM.value
        try:
            group = await self.directory.create_group(
                name, kind=GroupKind(kind), display_name=_text(form, "display_name") or None,
                members_may_post=bool(form.get("members_may_post")))
        except DirectoryError as exc:
            return await self.list_groups(request, who, status=400, error=who._(
                "Nicht angelegt: %(reason)s") % {"reason": exc})
        await self.site.school.audit.record(who.actor, "group.create", group.name,
                                            {"kind": kind})
        raise web.HTTPSeeOther(f"/admin/gruppen/{group.name}")

    async def show(self, request: web.Request, who: AdminRequest, *, status: int = 200,
                   error: str = "") -> web.StreamResponse:
        try:
            group = await self.directory.get_group(request.match_info["name"])
            members = await self.directory.group_members(group.name)
        except DirectoryError:
            raise web.HTTPNotFound() from None
        return self.site.render(request, who, "group.html", status, group=group,
                                members=members, error=error)

    async def act(self, request: web.Request, who: AdminRequest) -> web.StreamResponse:
        name, action = request.match_info["name"].lower(), request.match_info["action"]
        form = await request.post()
        login = _text(form, "login", 64).lower()
        audit = self.site.school.audit
        try:
            if action == "mitglied":
                role = MemberRole.OWNER if form.get("owner") else MemberRole.MEMBER
                await self.directory.add_member(name, login, role)
                await audit.record(who.actor, "group.add_member", name,
                                   {"login": login, "role": role.value})
            elif action == "entfernen":
                await self.directory.remove_member(name, login)
                await audit.record(who.actor, "group.remove_member", name, {"login": login})
            else:
                raise web.HTTPNotFound()
        except DirectoryError as exc:
            return await self.show(request, who, status=400, error=who._(
                "Nicht möglich: %(reason)s") % {"reason": exc})
        raise web.HTTPSeeOther(f"/admin/gruppen/{name}")

    async def aliases(self, request: web.Request, who: AdminRequest, *, status: int = 200,
                      error: str = "") -> web.StreamResponse:
        return self.site.render(request, who, "aliases.html", status,
                                aliases=await self.directory.list_aliases(), error=error)

    async def alias_act(self, request: web.Request, who: AdminRequest) -> web.StreamResponse:
        form = await request.post()
        alias = _text(form, "alias", 64).lower()
        audit = self.site.school.audit
        try:
            if request.match_info["action"] == "anlegen":
                entry = await self.directory.add_alias(alias, _text(form, "target", 64))
                await audit.record(who.actor, "alias.create", entry.local_part,
                                   {entry.owner_kind: entry.owner})
            elif request.match_info["action"] == "loeschen":
                await self.directory.delete_alias(alias)
                await audit.record(who.actor, "alias.delete", alias)
            else:
                raise web.HTTPNotFound()
        except DirectoryError as exc:
            return await self.aliases(request, who, status=400, error=who._(
                "Nicht möglich: %(reason)s") % {"reason": exc})
        raise web.HTTPSeeOther("/admin/aliase")

    async def partners(self, request: web.Request, who: AdminRequest) -> web.StreamResponse:
        settings = self.site.school.settings
        return self.site.render(request, who, "partners.html", partners=settings.partners,
                                matrix_servers=sorted(settings.federation.matrix_servers))
