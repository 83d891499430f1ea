"""The messenger's rules for the school's admins: quiet hours (school-wide, per role,
how many people set their own) and who may open rooms and start chats.

Read from the settings file (``[quiet_hours]``, ``[chat]``), like the partner
schools: the page says what applies and where to change it; the rules take
effect after a restart.  A person's own quiet hours (Matrix account data
``de.schulhof.quiet_hours``) win over the role's and the school's.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import func, select

from conf.admin_web.context import AdminRequest, AdminSite
from conf.admin_web.import_reasons import ROLES
from directory.model import Role
from messenger.quiet_hours import ACCOUNT_DATA_TYPE, QuietWindow, parse_role_windows
from messenger.storage.tables import AccountDataRow


@dataclass(frozen=True)
class RoleRules:
    role: str  # its label, translated
    quiet: str  # "20:00–07:00, weekends" in the admin's language, or "none"
    create_rooms: bool
    start_direct: bool


class MessengerRulesPage:
    def __init__(self, site: AdminSite) -> None:
        self.site = site

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin/messenger", self.site.admin_only(self.show))]

    async def show(self, request: web.Request, who: AdminRequest) -> web.StreamResponse:
        _ = who._
        settings = self.site.school.settings
        q, chat = settings.quiet_hours, settings.chat

        def described(window: QuietWindow | None) -> str:
            if window is None:
                return _("keine")
            daily = window.start != window.end
            text = f"{window.start:%H:%M}–{window.end:%H:%M}" if daily else ""
            if window.weekends:
                weekends = _("Samstag und Sonntag ganztags")
                text = f"{text}, {weekends}" if text else weekends
            return text or _("keine")

        school_window = QuietWindow.parse(q.window, q.weekends) if q.enabled else None
        per_role = parse_role_windows(q.roles, q.weekends) if q.enabled else {}
        rows = [RoleRules(_(ROLES[role.value]),
                          described(per_role.get(role, school_window)),
                          role.value in chat.create_rooms, role.value in chat.start_direct)
                for role in Role]
        async with self.site.school.db.read() as session:
            own = (await session.execute(select(func.count()).select_from(AccountDataRow)
                                         .where(AccountDataRow.type == ACCOUNT_DATA_TYPE,
                                                AccountDataRow.room_id == ""))).scalar_one()
        return self.site.render(request, who, "messenger_rules.html", rows=rows,
                                enabled=q.enabled, timezone=q.timezone, own=own,
                                create_groups=sorted(chat.create_rooms_groups),
                                direct_groups=sorted(chat.start_direct_groups))
