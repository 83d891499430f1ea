"""Rendering the webmail's pages: one Jinja2 environment per language, error pages."""

from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web

from directory import request_timing
from mailserver.webmail.context import TEMPLATES, WEBMAIL
from mailserver.webmail.i18n import LOCALES, Translator, folder_order, gettext_of
from mailserver.webmail.sessions import WebSession

HERE = Path(__file__).parent
LANGUAGE_NAMES = {"de": "Deutsch", "en": "English"}


def environment(translator: Translator) -> jinja2.Environment:
    """The templates in ``translator``'s language: ``_()``/``ngettext()`` (new style),
    and ``folder_label(name)``."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(translator.translations, newstyle=True)  # type: ignore[attr-defined]
    env.globals["folder_label"] = translator.folder
    env.filters["folder_order"] = folder_order
    env.filters["when"] = translator.when
    env.globals["lang"] = translator.locale
    env.globals["other_languages"] = [(code, LANGUAGE_NAMES[code]) for code in LOCALES
                                      if code != translator.locale]
    return env


def environments(translators: dict[str, Translator]) -> dict[str, jinja2.Environment]:
    return {locale: environment(translator) for locale, translator in translators.items()}


def page(request: web.Request, template: str, status: int = 200,
         **values: object) -> web.Response:
    """``template`` rendered in the request's language with ``values``;
    ``session``/``folders``/``mailbox`` default to None (the frame shows the folder
    list and the logout button only with them)."""
    webmail = request.app[WEBMAIL]
    values.setdefault("session", None)
    values.setdefault("folders", None)
    values.setdefault("mailbox", None)
    values.setdefault("here", request.path_qs if request.method == "GET" else "/mail")
    env = request.app[TEMPLATES][gettext_of(request).locale]
    with request_timing.phase("render"):
        text = env.get_template(template).render(school=webmail.school_name, **values)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, status: int, title: str, text: str,
               session: WebSession | None = None) -> web.Response:
    """An error page; ``title`` and ``text`` already in the reader's language."""
    return page(request, "error.html", status, title=title, text=text, session=session)
