"""What every admin page shares: the school, its templates, the admin check, and
short-lived server-side files (an uploaded import waiting to be applied, password
letters waiting for their one download)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

from directory.audit import Actor
from directory.model import Account, Role
from mailserver.webmail.context import client_ip
from mailserver.webmail.i18n import DEFAULT, LOCALES, Translator, load_translations, locale_of
from mailserver.webmail.pages import LANGUAGE_NAMES, error_page
from mailserver.webmail.security import login_required
from mailserver.webmail.sessions import WebSession

if TYPE_CHECKING:
    from conf.app import School

log = logging.getLogger("schulhof.admin")

HERE = Path(__file__).parent
HELD_SECONDS = 30 * 60.0
MAX_HELD_PER_SESSION = 5

AdminHandler = Callable[[web.Request, "AdminRequest"], Awaitable[web.StreamResponse]]


@dataclass
class Held:
    """A file kept for one session: an import to apply, letters to download once."""

    session: str
    data: bytes
    name: str
    created: float = field(default_factory=time.monotonic)


class HeldFiles:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._files: dict[str, Held] = {}

    def put(self, session: str, data: bytes, name: str) -> str:
        self._expire()
        mine = sorted((h.created, t) for t, h in self._files.items() if h.session == session)
        for _created, token in mine[:max(0, len(mine) - MAX_HELD_PER_SESSION + 1)]:
            del self._files[token]
        token = secrets.token_urlsafe(24)
        self._files[token] = Held(session, data, name, self._clock())
        return token

    def get(self, session: str, token: str) -> Held | None:
        self._expire()
        held = self._files.get(token)
        return held if held is not None and held.session == session else None

    def take(self, session: str, token: str) -> Held | None:
        """The file, removed: it can be had once."""
        held = self.get(session, token)
        if held is not None:
            del self._files[token]
        return held

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, h in self._files.items() if now - h.created > HELD_SECONDS]:
            del self._files[token]


@dataclass(frozen=True)
class AdminRequest:
    session: WebSession
    account: Account
    actor: Actor
    _: Translator


class AdminSite:
    """The pages' shared state, one per school."""

    def __init__(self, school: School) -> None:
        self.school = school
        self.translators = load_translations(HERE / "locale")
        self.imports = HeldFiles()
        self.letters = HeldFiles()
        self._envs = {locale: self._environment(t) for locale, t in self.translators.items()}

    def environment(self, locale: str) -> jinja2.Environment:
        return self._envs[locale]

    def _environment(self, translator: Translator) -> jinja2.Environment:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                 autoescape=True, undefined=jinja2.StrictUndefined,
                                 extensions=["jinja2.ext.i18n"])
        env.install_gettext_translations(translator.translations, newstyle=True)  # type: ignore[attr-defined]
        env.globals["lang"] = translator.locale
        env.globals["other_languages"] = [(code, LANGUAGE_NAMES[code]) for code in LOCALES
                                          if code != translator.locale]
        return env

    def translator(self, request: web.Request) -> Translator:
        return self.translators.get(locale_of(request)) or self.translators[DEFAULT]

    def render(self, request: web.Request, who: AdminRequest, template: str,
               status: int = 200, **values: object) -> web.Response:
        env = self._envs[who._.locale]
        values.setdefault("error", "")
        school = self.school.settings.school
        text = env.get_template(template).render(
            school=school.name or school.domain, session=who.session, me=who.account,
            here=request.path_qs if request.method == "GET" else "/admin/",
            domain=school.domain, **values)
        return web.Response(text=text, status=status, content_type="text/html",
                            charset="utf-8")

    def admin_only(self, handler: AdminHandler) -> Callable[[web.Request],
                                                          Awaitable[web.StreamResponse]]:
        """The webmail's login (and, for POST, its CSRF and origin checks), then the
        role: only admins; everyone else gets 403."""
        @login_required
        async def wrapped(request: web.Request, session: WebSession, account: Account
                          ) -> web.StreamResponse:
            _ = self.translator(request)
            if account.role is not Role.ADMIN:
                log.info("event=admin_refused login=%s path=%s", account.login, request.path)
                return error_page(request, 403, _("Kein Zugang"),
                                  _("Diese Seiten sind für die Schulverwaltung."), session)
            if not await _plausible(request):
                return error_page(request, 404, _("Nicht gefunden"),
                                  _("Diese Seite gibt es nicht."), session)
            who = AdminRequest(session, account, Actor(account.login, client_ip(request)), _)
            return await handler(request, who)
        return wrapped


MAX_NAME = 255  # longer than any login, group name or alias the directory keeps


async def _plausible(request: web.Request) -> bool:
    """No name from the path, the query or the form is a NUL-carrying string, none from
    the path over-long: such names are no account, group or audit entry, and
    PostgreSQL refuses NUL in text (a 500 before)."""
    values = [*request.match_info.values(), *request.query.values()]
    if request.method == "POST":
        values += [v for v in (await request.post()).values() if isinstance(v, str)]
    return not any("\x00" in v for v in values) and \
        all(len(v) <= MAX_NAME for v in request.match_info.values())
