"""The import in the browser: upload the CSV, see the dry run (created, updated, moved,
leavers with dates, groups) or every bad line, apply it, download the password letters
once.  The uploaded file waits server-side for the "apply" (never sent back and forth)."""

from __future__ import annotations

from aiohttp import web

from conf.admin_web.accounts import hold_letters
from conf.admin_web.context import AdminRequest, AdminSite
from conf.admin_web.import_reasons import file_reason, row_reason
from directory.importer import Importer, ImportFileError, InvalidImportFile, profile_named

MAX_FILE = 10 * 1024 * 1024  # a school of 3,000 people is well under a megabyte
MAX_SHOWN_ERRORS = 200  # the first bad lines tell what is wrong; the count says the rest


class ImportPages:
    def __init__(self, site: AdminSite) -> None:
        self.site = site

    def routes(self) -> list[web.RouteDef]:
        guard = self.site.admin_only
        return [web.get("/admin/import", guard(self.form)),
                web.post("/admin/import", guard(self.upload)),
                web.post("/admin/import/anwenden", guard(self.apply)),
                web.get("/admin/protokoll", guard(self.audit))]

    def _importer(self) -> Importer:
        settings = self.site.school.settings.importer
        return Importer(self.site.school.directory, profile=profile_named(settings.profile),
                        leaver_grace_days=settings.leaver_grace_days,
                        password_length=settings.password_length)

    async def form(self, request: web.Request, who: AdminRequest, *, status: int = 200,
                   error: str = "", errors: tuple[object, ...] = (), more: int = 0
                   ) -> web.StreamResponse:
        return self.site.render(request, who, "import.html", status, error=error,
                                errors=errors, more=more, summary=None, token="",
                                filename="")

    async def upload(self, request: web.Request, who: AdminRequest) -> web.StreamResponse:
        _ = who._
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return await self.form(request, who, status=400,
                                   error=_("Bitte eine CSV-Datei auswählen."))
        data = upload.file.read(MAX_FILE + 1)
        if len(data) > MAX_FILE:
            return await self.form(request, who, status=413, error=_(
                "Die Datei ist größer als 10 MiB."))
        filename = (upload.filename or "import.csv")[:200]
        try:
            summary = await self._importer().run(data, dry_run=True)
        except InvalidImportFile as exc:
            return await self.form(request, who, status=400,
                                   errors=tuple((e.line, row_reason(_, e))
                                                for e in exc.errors[:MAX_SHOWN_ERRORS]),
                                   more=max(0, len(exc.errors) - MAX_SHOWN_ERRORS), error=_(
                "%(file)s wurde nicht importiert: %(count)s fehlerhafte Zeilen.")
                % {"file": filename, "count": len(exc.errors)})
        except ImportFileError as exc:
            return await self.form(request, who, status=400, error=_(
                "%(file)s lässt sich nicht importieren: %(reason)s")
                % {"file": filename, "reason": file_reason(_, exc)})
        token = self.site.imports.put(who.session.token, data, filename)
        return self.site.render(request, who, "import.html", summary=summary, token=token,
                                filename=filename, error="", errors=(), more=0)

    async def apply(self, request: web.Request, who: AdminRequest) -> web.StreamResponse:
        _ = who._
        form = await request.post()
        held = self.site.imports.take(who.session.token, str(form.get("token", "")))
        if held is None:
            return await self.form(request, who, status=410, error=_(
                "Die Vorschau ist abgelaufen. Bitte die Datei noch einmal hochladen."))
        try:
            summary = await self._importer().run(held.data, issue_passwords=True)
        except ImportFileError as exc:
            return await self.form(request, who, status=409, error=_(
                "Nicht importiert: %(reason)s") % {"reason": file_reason(_, exc)})
        plan = summary.plan
        await self.site.school.audit.record(who.actor, "import.apply", held.name, {
            "rows": summary.rows, "created": len(plan.created), "updated": len(plan.updated),
            "moved": len(plan.moved), "leavers": len(plan.leavers),
            "restored": len(plan.restored), "groups_created": len(plan.groups_created)})
        letters = ""
        if summary.initial_passwords:
            letters = await hold_letters(self.site, who, list(summary.initial_passwords),
                                         "passwortbriefe.pdf")
        return self.site.render(request, who, "import_done.html", summary=summary,
                                letters=letters, filename=held.name)

    async def audit(self, request: web.Request, who: AdminRequest) -> web.StreamResponse:
        entries = await self.site.school.audit.entries(
            limit=200, action=request.query.get("aktion") or None,
            target=request.query.get("ziel") or None)
        return self.site.render(request, who, "audit.html", entries=entries)
